"""Redirects, followed by _fetch itself against real HTTP(S) servers on 127.0.0.1: two servers on two
ports stand for two hosts. Credentials stay on the origin of the URL, https never falls back to
http, the number of hops is limited, relative Locations and Range resumes work across a redirect."""

import base64
import hashlib
import http.server
import os
import ssl
import threading

import pytest

import httptest

from ansible_collections.seedops.deploy.plugins.module_utils import _fetch

PAYLOAD = os.urandom(2 * 1024 * 1024 + 77)
DIGEST = hashlib.sha256(PAYLOAD).hexdigest()
BASIC = "Basic " + base64.b64encode(b"deploy:hunter2").decode()


class Handler(http.server.BaseHTTPRequestHandler):
    """Answers from server.routes: path -> ("redirect", status, location) | ("file",) | ("auth",) | ("sums",).

    ("auth",) serves the payload only with the basic credentials deploy:hunter2. Every request is
    recorded with the headers that matter here."""

    server_version = "test"
    protocol_version = "HTTP/1.1"

    def log_message(self, *args):
        pass

    def empty(self, status, headers=()):
        self.send_response(status)
        for name, value in headers:
            self.send_header(name, value)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def do_GET(self):
        srv = self.server
        path = self.path.split("?")[0]
        srv.seen.append({"path": self.path, "auth": self.headers.get("Authorization"),
                         "key": self.headers.get("X-Api-Key"), "range": self.headers.get("Range")})
        route = srv.routes.get(path)
        if route is None:
            self.empty(404)
        elif route[0] == "redirect":
            self.empty(route[1], [("Location", route[2])] if route[2] is not None else [])
        elif route[0] == "auth" and self.headers.get("Authorization") != BASIC:
            self.empty(401, [("WWW-Authenticate", 'Basic realm="repo"')])
        elif route[0] == "sums":
            body = ("%s  app.tar.gz\n" % DIGEST).encode()
            self.send_response(200)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)
        else:
            self.send_payload()

    def send_payload(self):
        cut, self.server.cut_after = self.server.cut_after, None
        httptest.send_payload(self, PAYLOAD, httptest.range_start(self), bool(self.headers.get("Range")), cut)


@pytest.fixture(scope="module")
def certificate(tmp_path_factory):
    """A self-signed certificate for 127.0.0.1: (certfile, keyfile)."""
    return httptest.self_signed(tmp_path_factory.mktemp("tls"))


@pytest.fixture
def start(certificate):
    """start(routes, tls=False) -> a running server with .base ("http://127.0.0.1:<port>") and .seen."""
    running = []

    def start_server(routes, tls=False):
        srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        srv.routes, srv.seen, srv.cut_after = routes, [], None
        scheme = "http"
        if tls:
            context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            context.load_cert_chain(*certificate)
            srv.socket = context.wrap_socket(srv.socket, server_side=True)
            scheme = "https"
        srv.base = "%s://127.0.0.1:%d" % (scheme, srv.server_address[1])
        threading.Thread(target=srv.serve_forever, daemon=True).start()
        running.append(srv)
        return srv

    yield start_server
    for srv in running:
        srv.shutdown()
        srv.server_close()


def fetcher(**kw):
    kw.setdefault("sleep", lambda s: None)
    kw.setdefault("validate_certs", False)
    return _fetch.Fetcher(**kw)


def download(f, url, tmp_path, name="p"):
    return f.download(url, str(tmp_path / name), "sha256")


# -- credentials stay on the origin of url ----------------------------------------------------------


def test_basic_auth_is_not_sent_to_another_host(start, tmp_path):
    other = start({"/app.tar.gz": ("file",)})
    origin = start({"/app.tar.gz": ("redirect", 302, other.base + "/app.tar.gz")})
    info = download(fetcher(url_username="deploy", url_password="hunter2", force_basic_auth=True),
                    origin.base + "/app.tar.gz", tmp_path)
    assert info["hexdigest"] == DIGEST
    assert origin.seen[0]["auth"] == BASIC
    assert [r["auth"] for r in other.seen] == [None]


def test_credentials_in_the_url_are_not_sent_to_another_host(start, tmp_path):
    other = start({"/app.tar.gz": ("file",)})
    origin = start({"/app.tar.gz": ("redirect", 307, other.base + "/app.tar.gz")})
    url = origin.base.replace("http://", "http://deploy:hunter2@") + "/app.tar.gz"
    assert download(fetcher(force_basic_auth=True), url, tmp_path)["hexdigest"] == DIGEST
    assert origin.seen[0]["auth"] == BASIC
    assert [r["auth"] for r in other.seen] == [None]


def test_bearer_token_and_headers_are_not_sent_to_another_host(start, tmp_path):
    other = start({"/app.tar.gz": ("file",)})
    origin = start({"/app.tar.gz": ("redirect", 303, other.base + "/app.tar.gz")})
    f = fetcher(bearer_token="tok-3", headers={"X-Api-Key": "key-4"})
    assert download(f, origin.base + "/app.tar.gz", tmp_path)["hexdigest"] == DIGEST
    assert (origin.seen[0]["auth"], origin.seen[0]["key"]) == ("Bearer tok-3", "key-4")
    assert [(r["auth"], r["key"]) for r in other.seen] == [(None, None)]


def test_a_redirect_on_the_same_origin_keeps_the_credentials(start, tmp_path):
    origin = start({"/old/app.tar.gz": ("redirect", 301, "/private/app.tar.gz"), "/private/app.tar.gz": ("auth",)})
    f = fetcher(url_username="deploy", url_password="hunter2", force_basic_auth=True)
    assert download(f, origin.base + "/old/app.tar.gz", tmp_path)["hexdigest"] == DIGEST
    assert [r["auth"] for r in origin.seen] == [BASIC, BASIC]


def test_credentials_are_not_sent_again_once_the_chain_left_the_origin(start, tmp_path):
    origin = start({"/private/app.tar.gz": ("auth",)})
    other = start({"/bounce": ("redirect", 302, origin.base + "/private/app.tar.gz")})
    origin.routes["/app.tar.gz"] = ("redirect", 302, other.base + "/bounce")
    f = fetcher(url_username="deploy", url_password="hunter2", force_basic_auth=True)
    with pytest.raises(_fetch.FetchError) as err:
        download(f, origin.base + "/app.tar.gz", tmp_path)
    message = str(err.value)
    assert "GET %s/app.tar.gz -> %s/bounce -> %s/private/app.tar.gz answered HTTP 401" % (
        origin.base, other.base, origin.base) in message
    assert "credentials are sent only to %s" % origin.base in message and "give the final URL in url" in message
    assert [r["auth"] for r in origin.seen] == [BASIC, None]
    assert [r["auth"] for r in other.seen] == [None]


def test_http_to_https_on_another_port_drops_credentials_and_works(start, tmp_path):
    secure = start({"/app.tar.gz": ("file",)}, tls=True)
    origin = start({"/app.tar.gz": ("redirect", 308, secure.base + "/app.tar.gz")})
    f = fetcher(url_username="deploy", url_password="hunter2", force_basic_auth=True)
    assert download(f, origin.base + "/app.tar.gz", tmp_path)["hexdigest"] == DIGEST
    assert [r["auth"] for r in secure.seen] == [None]


def test_url_origin_normalises_default_ports_and_case():
    assert _fetch.url_origin("http://Repo.Example/a") == _fetch.url_origin("http://repo.example:80/b")
    assert _fetch.url_origin("https://u:p@repo.example/a") == ("https", "repo.example", 443)
    assert _fetch.url_origin("https://[::1]:8443/a") == ("https", "::1", 8443)
    assert _fetch.url_origin("http://repo.example/a") != _fetch.url_origin("https://repo.example/a")
    assert _fetch.url_origin("http://repo.example:8080/a") != _fetch.url_origin("http://repo.example/a")


# -- what is refused ----------------------------------------------------------------------------------


def test_https_to_plain_http_is_refused(start, tmp_path):
    plain = start({"/app.tar.gz": ("file",)})
    secure = start({"/app.tar.gz": ("redirect", 302, plain.base + "/app.tar.gz?X-Amz-Signature=abc123")}, tls=True)
    delays = []
    with pytest.raises(_fetch.FetchError) as err:
        download(fetcher(bearer_token="tok-3", sleep=delays.append), secure.base + "/app.tar.gz", tmp_path)
    message = str(err.value)
    assert "GET %s/app.tar.gz redirected to %s/app.tar.gz?X-Amz-Signature=********" % (secure.base, plain.base) in message
    assert "refusing to follow a redirect from https:// to plain http://" in message
    assert "abc123" not in message
    assert plain.seen == [] and delays == [], "nothing sent over plain http, no retry"


def test_the_number_of_hops_is_limited_and_the_error_names_the_chain(start, tmp_path):
    routes = dict(("/hop%d" % i, ("redirect", 302, "/hop%d" % (i + 1))) for i in range(11))
    routes["/hop10"] = ("file",)
    srv = start(routes)
    assert download(fetcher(), srv.base + "/hop0", tmp_path)["hexdigest"] == DIGEST  # 10 redirects: fine

    routes["/hop10"] = ("redirect", 302, "/hop11")
    routes["/hop11"] = ("file",)
    srv.seen.clear()
    with pytest.raises(_fetch.FetchError) as err:
        download(fetcher(), srv.base + "/hop0", tmp_path, "p2")
    message = str(err.value)
    assert message.startswith("GET %s/hop0: more than 10 redirects (%s/hop0 -> " % (srv.base, srv.base))
    assert "%s/hop10 -> %s/hop11)" % (srv.base, srv.base) in message
    assert len(srv.seen) == 11, "/hop11 is never asked for, and a loop is not retried"


def test_a_redirect_loop_stops_at_the_limit(start, tmp_path):
    srv = start({"/a": ("redirect", 302, "/b"), "/b": ("redirect", 302, "/a")})
    with pytest.raises(_fetch.FetchError, match="more than 10 redirects"):
        download(fetcher(), srv.base + "/a", tmp_path)


@pytest.mark.parametrize("location, what", [
    (None, "without a Location header"),
    ("file:///etc/passwd", "only http:// and https:// redirects are followed"),
    ("ftp://127.0.0.1/app.tar.gz", "only http:// and https:// redirects are followed"),
])
def test_a_redirect_that_cannot_be_followed_fails_at_once(start, tmp_path, location, what):
    srv = start({"/app.tar.gz": ("redirect", 302, location)})
    delays = []
    with pytest.raises(_fetch.FetchError, match=what):
        download(fetcher(sleep=delays.append), srv.base + "/app.tar.gz", tmp_path)
    assert delays == []


def test_relative_locations(start, tmp_path):
    srv = start({"/a/b/app.tar.gz": ("redirect", 302, "../c/app.tar.gz"), "/a/c/app.tar.gz": ("redirect", 302, "/d/app"),
                 "/d/app": ("redirect", 302, "app.tar.gz?v=2"), "/d/app.tar.gz": ("file",)})
    assert download(fetcher(), srv.base + "/a/b/app.tar.gz", tmp_path)["hexdigest"] == DIGEST
    assert [r["path"] for r in srv.seen] == ["/a/b/app.tar.gz", "/a/c/app.tar.gz", "/d/app", "/d/app.tar.gz?v=2"]


def test_a_credential_in_the_location_is_not_used(start, tmp_path):
    other = start({"/app.tar.gz": ("file",)})
    origin = start({"/app.tar.gz": ("redirect", 302, other.base.replace("//", "//deploy:hunter2@") + "/app.tar.gz")})
    assert download(fetcher(), origin.base + "/app.tar.gz", tmp_path)["hexdigest"] == DIGEST
    assert [r["auth"] for r in other.seen] == [None]


# -- resume and checksum lists across a redirect -------------------------------------------------------


def test_a_cut_download_resumes_with_range_after_the_redirect(start, tmp_path):
    other = start({"/blob": ("file",)})
    other.cut_after = 1024 * 1024
    origin = start({"/app.tar.gz": ("redirect", 302, other.base + "/blob")})
    info = download(fetcher(url_username="deploy", url_password="hunter2", force_basic_auth=True),
                    origin.base + "/app.tar.gz", tmp_path)
    assert info["hexdigest"] == DIGEST and info["resumed"] and info["bytes_transferred"] == len(PAYLOAD)
    assert [(r["range"], r["auth"]) for r in other.seen] == [(None, None), ("bytes=%d-" % (1024 * 1024), None)]
    assert [r["range"] for r in origin.seen] == [None, "bytes=%d-" % (1024 * 1024)]


def test_a_partial_from_an_earlier_run_is_continued_through_a_redirect(start, tmp_path):
    other = start({"/blob": ("file",)})
    origin = start({"/app.tar.gz": ("redirect", 302, other.base + "/blob")})
    partial = tmp_path / "p"
    partial.write_bytes(PAYLOAD[:300000])
    info = fetcher().download(origin.base + "/app.tar.gz", str(partial), "sha256")
    assert info["hexdigest"] == DIGEST and info["resumed"] and info["bytes_transferred"] == len(PAYLOAD) - 300000
    assert [r["range"] for r in other.seen] == ["bytes=300000-"]


def test_checksum_lists_follow_the_same_rules(start):
    other = start({"/SHA256SUMS": ("sums",)})
    origin = start({"/SHA256SUMS": ("redirect", 302, other.base + "/SHA256SUMS")})
    text = fetcher(url_username="deploy", url_password="hunter2", force_basic_auth=True).get_text(origin.base + "/SHA256SUMS")
    assert DIGEST in text and [r["auth"] for r in other.seen] == [None]
    secure = start({"/SHA256SUMS": ("redirect", 302, other.base + "/SHA256SUMS")}, tls=True)
    with pytest.raises(_fetch.FetchError, match="from https:// to plain http://"):
        fetcher().get_text(secure.base + "/SHA256SUMS")
