"""The artifact action plugin's controller logic: the digest cache shared by the forks, ssh
arguments for the push connection, the checksum a push needs, and the push itself against a
stand-in connection (named test_artifact_action.py: tests/unit has no __init__.py files, so test
file names must be unique across it)."""

import hashlib
import json
import os
import posixpath
from unittest import mock

import pytest

from ansible import constants as C
from ansible.errors import AnsibleActionFail

from ansible_collections.seedops.deploy.plugins.action import artifact as action

PAYLOAD = b"artifact bytes\n" * 5000
HEX = hashlib.sha256(PAYLOAD).hexdigest()


@pytest.fixture
def src(tmp_path):
    path = tmp_path / "dist" / "app.tar.gz"
    path.parent.mkdir()
    path.write_bytes(PAYLOAD)
    return path


# -- local_digest ------------------------------------------------------------------------------


def test_local_digest_is_computed_once_and_then_read_from_the_cache(tmp_path, src, monkeypatch):
    cache = tmp_path / "cache"
    cache.mkdir()
    hashed = []
    real = action._digest.file_digest
    monkeypatch.setattr(action._digest, "file_digest", lambda p, a: hashed.append(p) or real(p, a))
    assert action.local_digest(str(src), "sha256", str(cache)) == (HEX, False)
    assert action.local_digest(str(src), "sha256", str(cache)) == (HEX, True)
    assert hashed == [str(src)]
    known = json.loads((cache / "seedops-artifact-digests.json").read_text())
    assert list(known.values()) == [HEX]
    sha512 = hashlib.sha512(PAYLOAD).hexdigest()
    assert action.local_digest(str(src), "sha512", str(cache)) == (sha512, False), "one entry per algorithm"


def test_local_digest_notices_a_changed_file(tmp_path, src):
    cache = str(tmp_path)
    action.local_digest(str(src), "sha256", cache)
    src.write_bytes(PAYLOAD + b"more")
    os.utime(str(src), ns=(src.stat().st_atime_ns, src.stat().st_mtime_ns + 10 ** 9))
    assert action.local_digest(str(src), "sha256", cache) == (hashlib.sha256(PAYLOAD + b"more").hexdigest(), False)


def test_local_digest_survives_a_corrupt_cache(tmp_path, src):
    (tmp_path / "seedops-artifact-digests.json").write_text("{not json")
    assert action.local_digest(str(src), "sha256", str(tmp_path)) == (HEX, False)
    assert action.local_digest(str(src), "sha256", str(tmp_path)) == (HEX, True)
    assert not (tmp_path / "seedops-artifact-digests.json.tmp").exists()


# -- ssh arguments -----------------------------------------------------------------------------


def test_push_ssh_args_drop_compression_and_multiplexing_only():
    w = action.without_multiplexing_or_compression
    assert w("-C -o ControlMaster=auto -o ControlPersist=60s") == \
        "-o Compression=no -o ControlMaster=no -o ControlPath=none"
    assert w("-C -oControlPersist=30s -o ForwardAgent=yes -F '/x/my cfg'") == \
        "-o Compression=no -o ControlMaster=no -o ControlPath=none -o ForwardAgent=yes -F '/x/my cfg'"
    assert w("-o compression=yes -o ControlPath=/tmp/%h -o ProxyJump=bastion") == \
        "-o Compression=no -o ControlMaster=no -o ControlPath=none -o ProxyJump=bastion"
    assert w("") == "-o Compression=no -o ControlMaster=no -o ControlPath=none"


# -- push_checksum -----------------------------------------------------------------------------


def test_push_checksum():
    assert action.push_checksum({"checksum": "sha256:" + HEX}, "f") == ("sha256", HEX)
    assert action.push_checksum({"allow_unverified": True}, "f") == ("sha256", None)
    with pytest.raises(AnsibleActionFail, match="malformed"):
        action.push_checksum({"checksum": "sha256:abc"}, "f")
    with pytest.raises(AnsibleActionFail, match="checksum_url works with url only"):
        action.push_checksum({"checksum_url": "https://r/SHA256SUMS"}, "f")
    with pytest.raises(AnsibleActionFail, match="refusing to push dist/f without a checksum"):
        action.push_checksum({}, "dist/f")


# -- the action against a stand-in connection --------------------------------------------------


class Host:
    """What the module on the host answers: whether its store holds the digest yet."""

    def __init__(self, holds=False):
        self.holds = holds
        self.calls = []
        self.transfers = []

    def execute(self, module_name=None, module_args=None, task_vars=None):
        self.calls.append((module_name, dict(module_args)))
        if module_args.get("src") or self.holds:
            self.holds = True
            return {"changed": "src" in module_args, "digest": module_args.get("checksum")}
        return {"failed": True, "missing": True, "msg": "not in the store"}


def make_action(tmp_path, monkeypatch, args, host, check_mode=False, transport="local"):
    monkeypatch.setattr(C, "DEFAULT_LOCAL_TMP", str(tmp_path))
    task = mock.MagicMock(args=args, check_mode=check_mode, async_val=0)
    connection = mock.MagicMock(transport=transport)
    connection._shell.tmpdir = "/remote/tmp"
    connection._shell.join_path = posixpath.join
    plugin = action.ActionModule(task, connection, mock.MagicMock(), mock.MagicMock(), mock.MagicMock(), None)
    plugin._execute_module = host.execute
    plugin._find_needle = lambda kind, name: name
    plugin._transfer_file = lambda source, remote: host.transfers.append((source, remote))
    plugin._fixup_perms2 = lambda paths: None
    plugin._remove_tmp_path = lambda path: None
    return plugin


def test_pull_arguments_go_to_the_module_unchanged(tmp_path, monkeypatch):
    host = Host(holds=True)
    args = {"url": "https://r/app.tar.gz", "checksum": "sha256:" + HEX, "store": "/s"}
    result = make_action(tmp_path, monkeypatch, args, host).run(task_vars={})
    assert host.calls == [("seedops.deploy.artifact", args)] and host.transfers == []
    assert result == {"changed": False, "digest": "sha256:" + HEX}


def test_push_transfers_only_when_the_store_lacks_the_digest(tmp_path, monkeypatch, src):
    host = Host()
    args = {"src": str(src), "checksum": "sha256:" + HEX, "store": "/s"}
    result = make_action(tmp_path, monkeypatch, args, host).run(task_vars={})
    assert host.transfers == [(str(src), "/remote/tmp/artifact")]
    assert [c[1] for c in host.calls] == [{"checksum": "sha256:" + HEX, "store": "/s"},
                                          {"checksum": "sha256:" + HEX, "store": "/s", "src": "/remote/tmp/artifact"}]
    assert result["changed"] and result["bytes_transferred"] == len(PAYLOAD) and not result["digest_cached"]

    result = make_action(tmp_path, monkeypatch, args, host).run(task_vars={})
    assert len(host.transfers) == 1 and len(host.calls) == 3, "the second run asks once and sends nothing"
    assert not result["changed"] and result["bytes_transferred"] == 0 and result["digest_cached"]


def test_push_in_check_mode_sends_nothing(tmp_path, monkeypatch, src):
    host = Host()
    args = {"src": str(src), "allow_unverified": True, "store": "/s"}
    result = make_action(tmp_path, monkeypatch, args, host, check_mode=True).run(task_vars={})
    assert result["changed"] and result["msg"] == "would push %s" % src and result["digest"] == "sha256:" + HEX
    assert host.transfers == [] and len(host.calls) == 1


def test_push_of_a_file_that_does_not_match_its_checksum_asks_nothing(tmp_path, monkeypatch, src):
    host = Host()
    args = {"src": str(src), "checksum": "sha256:" + "0" * 64, "store": "/s"}
    result = make_action(tmp_path, monkeypatch, args, host).run(task_vars={})
    assert result["failed"] and "does not match its checksum" in result["msg"] and result["bytes_transferred"] == 0
    assert host.calls == [] and host.transfers == []


def test_push_over_ssh_uses_its_own_uncompressed_connection(tmp_path, monkeypatch, src):
    host = Host()
    plugin = make_action(tmp_path, monkeypatch, {"src": str(src), "checksum": "sha256:" + HEX, "store": "/s"},
                         host, transport="ssh")
    options = {"ssh_args": "-C -o ControlMaster=auto -o ControlPersist=60s"}
    plugin._connection.get_option = options.get
    plugin._connection.set_option = options.__setitem__
    plugin._transfer_file = lambda source, remote: host.transfers.append(options["ssh_args"])
    plugin.run(task_vars={})
    assert host.transfers == ["-o Compression=no -o ControlMaster=no -o ControlPath=none"]
    assert options["ssh_args"] == "-C -o ControlMaster=auto -o ControlPersist=60s", "restored after the push"
