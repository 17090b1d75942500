"""Downloads against a real HTTP server on 127.0.0.1: streaming digest, Range resume, retries,
clear errors, and the partial file's fate."""

import errno
import hashlib
import http.server
import os
import threading

import pytest

from ansible_collections.seedops.deploy.plugins.module_utils import _fetch

PAYLOAD = os.urandom(3 * 1024 * 1024 + 123)
DIGEST = hashlib.sha256(PAYLOAD).hexdigest()


class Handler(http.server.BaseHTTPRequestHandler):
    server_version = "test"
    protocol_version = "HTTP/1.1"

    def log_message(self, *args):
        pass

    def do_GET(self):
        srv = self.server
        srv.requests.append({"path": self.path, "range": self.headers.get("Range"),
                             "auth": self.headers.get("Authorization")})
        if self.path == "/private" and self.headers.get("Authorization") != "Bearer s3cret":
            self.send_response(401)
            self.send_header("Content-Length", "0")
            self.end_headers()
            return
        if self.path == "/missing":
            self.send_error(404)
            return
        if self.path == "/flaky" and srv.flaky > 0:
            srv.flaky -= 1
            self.send_error(503)
            return
        if self.path == "/SHA256SUMS":
            body = ("%s  app.tar.gz\n" % DIGEST).encode()
            self.send_response(200)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)
            return
        start = 0
        rng = self.headers.get("Range")
        if rng and srv.ranges:
            start = int(rng.split("=")[1].rstrip("-"))
            self.send_response(206)
            self.send_header("Content-Range", "bytes %d-%d/%d" % (start, len(PAYLOAD) - 1, len(PAYLOAD)))
        else:
            self.send_response(200)
        body = PAYLOAD[start:]
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if srv.cut_after is not None:
            cut, srv.cut_after = srv.cut_after, None
            self.wfile.write(body[:cut])
            self.wfile.flush()
            self.connection.shutdown(2)
            return
        self.wfile.write(body)


@pytest.fixture
def server():
    srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    srv.requests, srv.flaky, srv.cut_after, srv.ranges = [], 0, None, True
    t = threading.Thread(target=srv.serve_forever, daemon=True)
    t.start()
    yield srv, "http://127.0.0.1:%d" % srv.server_address[1]
    srv.shutdown()


def fetcher(**kw):
    kw.setdefault("sleep", lambda s: None)
    return _fetch.Fetcher(**kw)


def test_download_hashes_while_streaming(server, tmp_path):
    srv, base = server
    partial = str(tmp_path / ".partial")
    info = fetcher().download(base + "/app.tar.gz", partial, "sha256")
    assert info == {"hexdigest": DIGEST, "size": len(PAYLOAD), "bytes_transferred": len(PAYLOAD), "resumed": False}
    assert open(partial, "rb").read() == PAYLOAD


def test_cut_connection_is_resumed_with_range(server, tmp_path):
    srv, base = server
    srv.cut_after = 1024 * 1024
    partial = str(tmp_path / ".partial")
    info = fetcher().download(base + "/app.tar.gz", partial, "sha256")
    assert info["hexdigest"] == DIGEST and info["resumed"]
    assert info["bytes_transferred"] == len(PAYLOAD)  # 1 MiB, then the rest: nothing fetched twice
    assert srv.requests[-1]["range"] == "bytes=%d-" % (1024 * 1024)


def test_partial_from_an_earlier_run_is_continued(server, tmp_path):
    srv, base = server
    partial = tmp_path / ".partial"
    partial.write_bytes(PAYLOAD[:500000])
    info = fetcher().download(base + "/app.tar.gz", str(partial), "sha256")
    assert info["hexdigest"] == DIGEST and info["resumed"] and info["bytes_transferred"] == len(PAYLOAD) - 500000


def test_server_without_range_support_starts_over(server, tmp_path):
    srv, base = server
    srv.ranges = False
    partial = tmp_path / ".partial"
    partial.write_bytes(b"junk" * 1000)
    info = fetcher().download(base + "/app.tar.gz", str(partial), "sha256")
    assert info["hexdigest"] == DIGEST and not info["resumed"]
    assert partial.read_bytes() == PAYLOAD


def test_transient_errors_are_retried_with_backoff(server, tmp_path):
    srv, base = server
    srv.flaky = 2
    delays = []
    f = fetcher(retries=3, retry_delay=0.5, sleep=delays.append)
    info = f.download(base + "/flaky", str(tmp_path / "p"), "sha256")
    assert info["hexdigest"] == DIGEST and delays == [0.5, 1.0]


def test_retries_give_up_naming_the_url(server, tmp_path):
    srv, base = server
    srv.flaky = 10
    with pytest.raises(_fetch.FetchError, match=r"HTTP 503; gave up after 3 attempts"):
        fetcher(retries=2).download(base + "/flaky", str(tmp_path / "p"), "sha256")


def test_fatal_statuses_name_url_without_credentials(server, tmp_path):
    srv, base = server
    url = base.replace("http://", "http://deploy:hunter2@") + "/missing"
    with pytest.raises(_fetch.FetchError) as err:
        fetcher(url_username="deploy", url_password="hunter2").download(url, str(tmp_path / "p"), "sha256")
    assert "HTTP 404 not found" in str(err.value) and "hunter2" not in str(err.value)
    assert base + "/missing" in str(err.value)
    with pytest.raises(_fetch.FetchError, match="HTTP 401 unauthorized"):
        fetcher(bearer_token="wrong").download(base + "/private", str(tmp_path / "p"), "sha256")
    info = fetcher(bearer_token="s3cret").download(base + "/private", str(tmp_path / "p2"), "sha256")
    assert info["hexdigest"] == DIGEST


def test_connection_refused_is_transient_then_fails(tmp_path):
    with pytest.raises(_fetch.FetchError, match="gave up after 2 attempts"):
        fetcher(retries=1, timeout=2).download("http://127.0.0.1:9/x", str(tmp_path / "p"), "sha256")


def test_disk_full_is_reported(server, tmp_path, monkeypatch):
    srv, base = server
    real_open = open

    class Full:
        def __init__(self, f):
            self.f = f

        def write(self, data):
            raise OSError(errno.ENOSPC, "No space left on device")

        def __getattr__(self, name):
            return getattr(self.f, name)

        def __enter__(self):
            return self

        def __exit__(self, *a):
            self.f.close()

    def fake_open(path, mode="r", *a, **kw):
        f = real_open(path, mode, *a, **kw)
        return Full(f) if "a" in mode else f

    monkeypatch.setattr(_fetch, "open", fake_open, raising=False)
    with pytest.raises(_fetch.FetchError, match="no space left"):
        fetcher().download(base + "/app.tar.gz", str(tmp_path / "p"), "sha256")


def test_get_text_and_safe_url(server):
    srv, base = server
    assert DIGEST in fetcher().get_text(base + "/SHA256SUMS")
    assert _fetch.safe_url("https://u:p@repo.example:8443/a?b=1") == "https://repo.example:8443/a?b=1"
    assert _fetch.safe_url("https://repo.example/a") == "https://repo.example/a"
    assert _fetch.url_file_name("https://r/x/app%201.tar.gz") == "app 1.tar.gz"
