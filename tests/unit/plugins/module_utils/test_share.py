"""seedops.deploy.artifact_share: a real server process on 127.0.0.1 serving one store entry, stopped by its pid."""

import hashlib
import os
import socket
import urllib.error
import urllib.request

import pytest

from ansible_collections.seedops.deploy.plugins.module_utils import _share


def listening(port):
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.2):
            return True
    except OSError:
        return False


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def store(tmp_path):
    payload = os.urandom(300_000)
    hexdigest = hashlib.sha256(payload).hexdigest()
    (tmp_path / "store" / "sha256").mkdir(parents=True)
    (tmp_path / "store" / "sha256" / hexdigest).write_bytes(payload)
    (tmp_path / "run").mkdir()
    return tmp_path, payload, hexdigest


def share(tmp_path, **params):
    base = {"state": "serving", "store": str(tmp_path / "store"), "address": "127.0.0.1", "lifetime": 30}
    return _share.Share(dict(base, **params), run_dir=str(tmp_path / "run")).run()


def test_serves_the_entry_and_nothing_else_then_stops(store):
    tmp_path, payload, hexdigest = store
    port = free_port()
    started = share(tmp_path, checksum="sha256:" + hexdigest, port=port)
    try:
        assert started["changed"] and started["url"] == "http://127.0.0.1:%d/%s" % (port, hexdigest)
        with urllib.request.urlopen(started["url"], timeout=5) as r:
            assert r.read() == payload
        with pytest.raises(urllib.error.HTTPError, match="404"):
            urllib.request.urlopen("http://127.0.0.1:%d/etc/passwd" % port, timeout=5)
        again = share(tmp_path, checksum="sha256:" + hexdigest, port=port)
        assert again == {"changed": False, "url": started["url"], "pid": started["pid"]}
    finally:
        stopped = share(tmp_path, state="stopped", port=port)
    assert stopped == {"changed": True, "stopped": started["pid"]}
    assert not listening(port)
    assert share(tmp_path, state="stopped", port=port) == {"changed": False, "stopped": None}


def test_a_pid_file_naming_another_process_is_never_signalled(store):
    tmp_path, _payload, _hexdigest = store
    port = free_port()
    (tmp_path / "run" / ("seedops-artifact-share-%d.pid" % port)).write_text("%d %s\n" % (os.getpid(), "a" * 64))
    assert share(tmp_path, state="stopped", port=port) == {"changed": False, "stopped": None}


def test_refuses_what_it_cannot_serve(store):
    tmp_path, _payload, _hexdigest = store
    with pytest.raises(_share.ShareError, match="has no verified entry for sha256:" + "b" * 64):
        share(tmp_path, checksum="sha256:" + "b" * 64, port=free_port())
    with pytest.raises(_share.ShareError, match="checksum must be sha256"):
        share(tmp_path, checksum="md5:abc", port=free_port())


def test_a_port_in_use_is_a_clear_error(store):
    tmp_path, _payload, hexdigest = store
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen(1)
        port = busy.getsockname()[1]
        # Something else listens there: the server cannot bind and says why.
        with pytest.raises(_share.ShareError, match="could not listen on 127.0.0.1 port %d" % port):
            _share.Share({"state": "serving", "store": str(tmp_path / "store"), "address": "127.0.0.1", "port": port,
                          "lifetime": 30, "checksum": "sha256:" + hexdigest}, run_dir=str(tmp_path / "run"),
                         ).start(str(tmp_path / "store" / "sha256" / hexdigest), hexdigest,
                                 str(tmp_path / "run" / "x.pid"))
