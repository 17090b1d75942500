"""The artifact module end to end through main(), on real temp files and a real HTTP(S) server on
127.0.0.1: the argument spec, the file attributes of dest, failures with nothing stored, secrets
kept out of the output, the checksum list's transport, and the docs matching the spec."""

import hashlib
import http.server
import json
import os
import ssl
import threading

import pytest
import yaml

import httptest
from fakes import patch_module_args

from ansible_collections.seedops.deploy.plugins.doc_fragments.url import ModuleDocFragment
from ansible_collections.seedops.deploy.plugins.modules import artifact

PAYLOAD = b"build output\n" * 1000
HEX = hashlib.sha256(PAYLOAD).hexdigest()


def run_module(capsys, **args):
    with patch_module_args(args):
        with pytest.raises(SystemExit) as exited:
            artifact.main()
    result = json.loads(capsys.readouterr().out)
    assert (exited.value.code != 0) == bool(result.get("failed"))
    return result


@pytest.fixture
def src(tmp_path):
    path = tmp_path / "app.tar.gz"
    path.write_bytes(PAYLOAD)
    return path


def test_store_and_place_with_mode_and_diff(tmp_path, src, capsys):
    store = tmp_path / "store"
    dest = tmp_path / "opt" / "app.tar.gz"
    dest.parent.mkdir()
    args = dict(store=str(store), src=str(src), remote_src=True, checksum="sha256:" + HEX, dest=str(dest),
                mode="0600", _ansible_diff=True)
    result = run_module(capsys, **args)
    assert result["changed"] and result["path"] == str(store / "sha256" / HEX)
    assert dest.read_bytes() == PAYLOAD and oct(dest.stat().st_mode & 0o777) == "0o600"
    assert result["diff"]["after"]["store"] == str(store / "sha256" / HEX)
    assert result["bytes_transferred"] == 0 and result["pruned"] == []

    again = run_module(capsys, **args)
    assert not again["changed"]
    os.chmod(str(dest), 0o644)
    fixed = run_module(capsys, **args)
    assert fixed["changed"] and oct(dest.stat().st_mode & 0o777) == "0o600"


def test_mismatch_fails_with_nothing_stored(tmp_path, src, capsys):
    store = tmp_path / "store"
    result = run_module(capsys, store=str(store), src=str(src), remote_src=True, checksum="sha256:" + "0" * 64)
    assert result["failed"] and "checksum mismatch" in result["msg"] and "Nothing was stored" in result["msg"]
    assert result["source"] == str(src)
    assert os.listdir(str(store / "sha256")) == []


def test_bad_arguments_fail_before_anything_happens(tmp_path, capsys):
    result = run_module(capsys, store=str(tmp_path / "store"), checksum="sha256:" + HEX, keep=-1)
    assert result["failed"] and "keep must be 0 or more" in result["msg"]
    result = run_module(capsys, store=str(tmp_path / "store"), url="https://r/a", src="/a")
    assert result["failed"] and "mutually exclusive" in result["msg"]
    result = run_module(capsys, store=str(tmp_path / "store"), checksum="sha256:" + HEX)
    assert result["failed"] and result["missing"] is True
    assert not (tmp_path / "store").exists()


def test_documentation_with_the_url_fragment_matches_the_argument_spec(monkeypatch):
    seen = {}

    class Capture:
        def __init__(self, **kwargs):
            seen.update(kwargs)
            raise SystemExit(0)

    monkeypatch.setattr(artifact, "AnsibleModule", Capture)
    with pytest.raises(SystemExit):
        artifact.main()
    spec = seen["argument_spec"]
    doc = yaml.safe_load(artifact.DOCUMENTATION)
    assert "seedops.deploy.url" in doc["extends_documentation_fragment"]
    options = dict(doc["options"])
    fragment = yaml.safe_load(ModuleDocFragment.DOCUMENTATION)["options"]
    assert not set(options) & set(fragment), "an option is documented twice"
    options.update(fragment)
    assert sorted(options) == sorted(spec)
    for name, option in options.items():
        assert option["type"] == spec[name]["type"], name
        assert option.get("default") == spec[name].get("default"), name
    assert spec["url_password"]["no_log"] and spec["bearer_token"]["no_log"] and spec["headers"]["no_log"]


class Repo(http.server.BaseHTTPRequestHandler):
    """Serves server.files by path (the query ignored); records path and Authorization of each request."""

    protocol_version = "HTTP/1.1"

    def log_message(self, *args):
        pass

    def do_GET(self):
        self.server.seen.append((self.path, self.headers.get("Authorization")))
        body = self.server.files.get(self.path.split("?")[0])
        self.send_response(200 if body is not None else 404)
        self.send_header("Content-Length", str(len(body or b"")))
        self.end_headers()
        self.wfile.write(body or b"")


@pytest.fixture
def repo(tmp_path):
    """start(tls=False) -> a server with .base and .seen, serving /app.tar.gz and /SHA256SUMS."""
    running = []

    def start(tls=False):
        srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Repo)
        srv.seen = []
        srv.files = {"/app.tar.gz": PAYLOAD, "/SHA256SUMS": ("%s  app.tar.gz\n" % HEX).encode()}
        if tls:
            context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            context.load_cert_chain(*httptest.self_signed(tmp_path))
            srv.socket = context.wrap_socket(srv.socket, server_side=True)
        srv.base = "%s://127.0.0.1:%d" % ("https" if tls else "http", srv.server_address[1])
        threading.Thread(target=srv.serve_forever, daemon=True).start()
        running.append(srv)
        return srv

    yield start
    for srv in running:
        srv.shutdown()
        srv.server_close()


SECRETS = ("hunter2", "glpat-s3cr3t", "key-s3cr3t", "AbCdEf0123")


def test_secrets_in_the_url_and_headers_never_reach_the_output(tmp_path, repo, capsys):
    srv = repo()
    inline = srv.base.replace("http://", "http://deploy:hunter2@")
    result = run_module(capsys, store=str(tmp_path / "store"), checksum="sha256:" + HEX,
                        url=inline + "/app.tar.gz?private_token=glpat-s3cr3t&v=1", headers={"X-Api-Key": "key-s3cr3t"})
    assert result["changed"] and result["digest"] == "sha256:" + HEX
    shown = srv.base.replace("http://", "http://deploy:********@") + "/app.tar.gz?private_token=********&v=1"
    assert result["source"] == shown
    assert result["invocation"]["module_args"]["url"] == shown
    assert srv.seen[0][0] == "/app.tar.gz?private_token=glpat-s3cr3t&v=1", "the server gets the URL as given"
    assert srv.seen[0][1] == "Basic ZGVwbG95Omh1bnRlcjI="

    failed = run_module(capsys, store=str(tmp_path / "store2"), checksum="sha256:" + HEX,
                        url=inline + "/gone.tar.gz?X-Amz-Signature=AbCdEf0123&X-Amz-Expires=900")
    shown = srv.base.replace("http://", "http://deploy:********@") + "/gone.tar.gz?X-Amz-Signature=********&X-Amz-Expires=900"
    assert failed["failed"] and failed["msg"] == "GET %s answered HTTP 404 not found" % shown
    assert failed["source"] == shown
    for secret in SECRETS:
        assert secret not in json.dumps(result) + json.dumps(failed), secret


def test_an_http_artifact_needs_its_checksum_list_over_https(tmp_path, repo, capsys):
    plain = repo()
    store = tmp_path / "store"
    args = dict(store=str(store), url=plain.base + "/app.tar.gz", checksum_url=plain.base + "/SHA256SUMS")
    for check in (True, False):
        refused = run_module(capsys, _ansible_check_mode=check, **args)
        assert refused["failed"] and refused["msg"] == (
            "refusing to verify %s/app.tar.gz (plain http://) against %s/SHA256SUMS: a checksum list fetched without TLS "
            "can be altered along with the artifact. Serve checksum_url over https://, give the digest inline with "
            "checksum, or set allow_unverified: true" % (plain.base, plain.base))
    assert plain.seen == [] and not store.exists(), "nothing fetched, nothing written"

    secure = repo(tls=True)
    ok = run_module(capsys, store=str(store), url=args["url"], checksum_url=secure.base + "/SHA256SUMS", validate_certs=False)
    assert ok["changed"] and ok["digest"] == "sha256:" + HEX
    assert [seen[0] for seen in secure.seen] == ["/SHA256SUMS"] and [seen[0] for seen in plain.seen] == ["/app.tar.gz"]

    accepted = run_module(capsys, store=str(tmp_path / "store2"), url=args["url"], checksum_url=args["checksum_url"],
                          allow_unverified=True)
    assert accepted["changed"] and accepted["digest"] == "sha256:" + HEX
    inline = run_module(capsys, store=str(tmp_path / "store3"), url=plain.base + "/app.tar.gz", checksum="sha256:" + HEX)
    assert inline["changed"] and inline["digest"] == "sha256:" + HEX
