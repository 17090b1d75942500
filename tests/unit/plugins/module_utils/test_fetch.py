"""Downloads against a real HTTP server on 127.0.0.1: streaming digest, Range resume, retries,
clear errors, and the partial file's fate."""

import errno
import hashlib
import http.server
import os
import threading

import httptest
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
        path = self.path.split("?")[0]
        if path == "/private" and self.headers.get("Authorization") != "Bearer s3cret":
            self.send_response(401)
            self.send_header("Content-Length", "0")
            self.end_headers()
            return
        if path == "/missing":
            self.send_error(404)
            return
        if path == "/flaky" and srv.flaky > 0:
            srv.flaky -= 1
            self.send_error(503)
            return
        if path == "/SHA256SUMS":
            body = ("%s  app.tar.gz\n" % DIGEST).encode()
            self.send_response(200)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)
            return
        partial = bool(self.headers.get("Range")) and srv.ranges
        start = 0 if not partial or srv.range_from_zero else httptest.range_start(self)
        if start >= len(PAYLOAD):
            self.send_response(416)
            self.send_header("Content-Range", "bytes */%d" % len(PAYLOAD))
            self.send_header("Content-Length", "0")
            self.end_headers()
            return
        cut, srv.cut_after = srv.cut_after, None
        httptest.send_payload(self, PAYLOAD, start, partial, cut)


@pytest.fixture
def server():
    srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    srv.requests, srv.flaky, srv.cut_after, srv.ranges, srv.range_from_zero = [], 0, None, True, False
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
    assert base.replace("http://", "http://deploy:********@") + "/missing" in str(err.value)
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
    assert _fetch.safe_url("https://u:p@repo.example:8443/a?b=1") == "https://u:********@repo.example:8443/a?b=1"
    assert _fetch.safe_url("https://repo.example/a") == "https://repo.example/a"
    assert _fetch.url_file_name("https://r/x/app%201.tar.gz") == "app 1.tar.gz"


def test_without_resume_a_partial_from_an_earlier_run_is_started_over(server, tmp_path):
    srv, base = server
    partial = tmp_path / ".partial"
    partial.write_bytes(PAYLOAD[:500000])
    info = fetcher().download(base + "/app.tar.gz", str(partial), "sha256", resume=False)
    assert info == {"hexdigest": DIGEST, "size": len(PAYLOAD), "bytes_transferred": len(PAYLOAD), "resumed": False}
    assert [r["range"] for r in srv.requests] == [None]
    assert partial.read_bytes() == PAYLOAD


def test_without_resume_a_cut_connection_starts_over(server, tmp_path):
    srv, base = server
    srv.cut_after = 1024 * 1024
    partial = tmp_path / ".partial"
    info = fetcher().download(base + "/app.tar.gz", str(partial), "sha256", resume=False)
    assert info["hexdigest"] == DIGEST and not info["resumed"]
    assert info["bytes_transferred"] == 1024 * 1024 + len(PAYLOAD)
    assert [r["range"] for r in srv.requests] == [None, None]
    assert partial.read_bytes() == PAYLOAD


def test_a_partial_longer_than_the_file_is_refused_by_the_server_and_started_over(server, tmp_path):
    srv, base = server
    partial = tmp_path / ".partial"
    partial.write_bytes(PAYLOAD + b"stale tail")
    delays = []
    info = fetcher(sleep=delays.append).download(base + "/app.tar.gz", str(partial), "sha256")
    assert info["hexdigest"] == DIGEST and not info["resumed"] and info["size"] == len(PAYLOAD)
    assert [r["range"] for r in srv.requests] == ["bytes=%d-" % (len(PAYLOAD) + 10), None]
    assert len(delays) == 1, "the 416 counts as one interrupted attempt"
    assert partial.read_bytes() == PAYLOAD


def test_a_206_from_another_offset_starts_over(server, tmp_path):
    srv, base = server
    srv.range_from_zero = True  # answers 206 with bytes 0-, whatever was asked
    partial = tmp_path / ".partial"
    partial.write_bytes(PAYLOAD[:1000])
    info = fetcher().download(base + "/app.tar.gz", str(partial), "sha256")
    assert info["hexdigest"] == DIGEST and not info["resumed"] and info["bytes_transferred"] == len(PAYLOAD)
    assert partial.read_bytes() == PAYLOAD


def test_download_state_between_attempts(tmp_path):
    """offset is the partial file's size and the hasher has seen exactly its bytes."""
    partial = tmp_path / ".partial"
    partial.write_bytes(PAYLOAD[:12345])
    job = _fetch.Download(fetcher(), "https://u:p@r.example/app.tar.gz", str(partial), "sha256")
    assert job.shown == "https://u:********@r.example/app.tar.gz"
    job.take_over_partial()
    assert job.offset == 12345 and job.hasher.hexdigest() == hashlib.sha256(PAYLOAD[:12345]).hexdigest()
    job.start_over()
    assert job.offset == 0 and partial.read_bytes() == b""
    assert job.hasher.hexdigest() == hashlib.sha256(b"").hexdigest()


class Answer:
    def __init__(self, status, content_range=None):
        self.status = status
        self.headers = {"Content-Range": content_range} if content_range else {}

    def getcode(self):
        return self.status


def test_continues_at_offset_needs_a_206_with_the_matching_range(tmp_path):
    job = _fetch.Download(fetcher(), "https://r/a", str(tmp_path / "p"), "sha256")
    job.offset = 500
    assert job.continues_at_offset(Answer(206, "bytes 500-999/1000"))
    assert not job.continues_at_offset(Answer(206, "bytes 0-999/1000"))
    assert not job.continues_at_offset(Answer(206, "bytes 5000-9999/10000"))
    assert not job.continues_at_offset(Answer(206))
    assert not job.continues_at_offset(Answer(200))


def test_fetcher_from_module_params():
    params = dict(headers={"X-Env": "prod"}, url_username="deploy", url_password="pw", force_basic_auth=True,
                  bearer_token=None, client_cert="/c.pem", client_key="/k.pem", validate_certs=False,
                  use_proxy=False, timeout=7, retries=5, retry_delay=0.25, store="/ignored")
    f = _fetch.Fetcher.from_params(params)
    assert f.headers == {"X-Env": "prod", "Accept-Encoding": "identity"}
    assert f.auth == {"url_username": "deploy", "url_password": "pw", "force_basic_auth": True}
    assert (f.client_cert, f.client_key, f.validate_certs, f.use_proxy, f.timeout) == ("/c.pem", "/k.pem", False, False, 7)
    assert (f.retries, f.retry_delay) == (5, 0.25)
    assert sorted(_fetch.url_argument_spec()) == sorted(k for k in params if k not in ("retries", "retry_delay", "store"))


@pytest.mark.parametrize("url, shown", [
    ("https://deploy:hunter2@repo.example/a.tgz", "https://deploy:********@repo.example/a.tgz"),
    ("https://deploy:@repo.example/a.tgz", "https://deploy:********@repo.example/a.tgz"),
    ("https://ghp_tok3n@repo.example/a.tgz", "https://********@repo.example/a.tgz"),
    ("https://u:p%40ss@[::1]:8443/a", "https://u:********@[::1]:8443/a"),
    ("https://s3.example/b/a.tgz?X-Amz-Algorithm=AWS4-HMAC-SHA256&X-Amz-Credential=AKIA%2F20240101&X-Amz-Date=20240101T000000Z"
     "&X-Amz-Expires=900&X-Amz-SignedHeaders=host&X-Amz-Security-Token=FwoG&X-Amz-Signature=9f86d0",
     "https://s3.example/b/a.tgz?X-Amz-Algorithm=AWS4-HMAC-SHA256&X-Amz-Credential=********&X-Amz-Date=20240101T000000Z"
     "&X-Amz-Expires=900&X-Amz-SignedHeaders=host&X-Amz-Security-Token=********&X-Amz-Signature=********"),
    ("https://gitlab.example/api/v4/projects/1/packages/generic/app/1.0/a.tgz?private_token=glpat-xyz&ref=main",
     "https://gitlab.example/api/v4/projects/1/packages/generic/app/1.0/a.tgz?private_token=********&ref=main"),
    ("https://blob.example/c/a.tgz?sv=2022-11-02&se=2030-01-01&sr=b&sp=r&sig=abc%2Bdef%3D",
     "https://blob.example/c/a.tgz?sv=2022-11-02&se=2030-01-01&sr=b&sp=r&sig=********"),
    ("https://r.example/a?token=t&access_token=a&api_key=k&apiKey=K&client_secret=s&password=p&v=1&flag&empty_token=",
     "https://r.example/a?token=********&access_token=********&api_key=********&apiKey=********&client_secret=********"
     "&password=********&v=1&flag&empty_token="),
    ("https://r.example/a.tgz#token=frag", "https://r.example/a.tgz#token=frag"),
])
def test_safe_url_masks_passwords_and_credential_query_values(url, shown):
    assert _fetch.safe_url(url) == shown


def test_url_secrets_are_the_masked_values_as_given_and_decoded():
    assert _fetch.url_secrets("https://u:p%40ss@r.example/a?sig=abc%2Bdef%3D&X-Amz-Signature=9f86&v=1") == {
        "p%40ss", "p@ss", "abc%2Bdef%3D", "abc+def=", "9f86"}
    assert _fetch.url_secrets("https://ghp_tok3n@r.example/a") == {"ghp_tok3n"}
    assert _fetch.url_secrets("https://r.example/a?v=1") == set() and _fetch.url_secrets(None) == set()


def test_errors_never_show_query_credentials(server, tmp_path):
    srv, base = server
    url = base + "/missing?X-Amz-Signature=9f86d0a&X-Amz-Date=20240101T000000Z"
    with pytest.raises(_fetch.FetchError) as err:
        fetcher().download(url, str(tmp_path / "p"), "sha256")
    assert str(err.value) == "GET %s/missing?X-Amz-Signature=********&X-Amz-Date=20240101T000000Z answered HTTP 404 " \
                             "not found" % base
    assert srv.requests[0]["path"] == "/missing?X-Amz-Signature=9f86d0a&X-Amz-Date=20240101T000000Z", "sent as given"
    with pytest.raises(_fetch.FetchError) as err:
        fetcher(retries=0).download("http://127.0.0.1:9/a?token=s3cr3t", str(tmp_path / "p"), "sha256")
    assert "s3cr3t" not in str(err.value) and "token=********" in str(err.value)
    with pytest.raises(_fetch.FetchError, match=r"ftp://r.example/a\?token=\*{8} is not an http:// or https:// URL"):
        fetcher().download("ftp://r.example/a?token=s3cr3t", str(tmp_path / "p"), "sha256")
