"""Health probes against a real HTTP server on 127.0.0.1, and the waiting logic on a fake clock."""

import http.server
import socket
import threading

import pytest

from ansible_collections.seedops.deploy.plugins.module_utils import _health


class Clock:
    def __init__(self):
        self.now = 0.0

    def __call__(self):
        return self.now

    def sleep(self, seconds):
        self.now += seconds


def run(results, **kw):
    clock = Clock()
    seq = iter(results)
    return _health.wait_healthy(lambda: (next(seq), {}), clock=clock, sleep=clock.sleep, **kw)


def test_needs_consecutive_successes():
    report = run([True, False, True, True, True], successes=3, interval=1, timeout=60)
    assert report["healthy"] and report["attempts"] == 5 and report["consecutive"] == 3


def test_times_out_with_the_last_responses():
    report = run([False] * 100, successes=1, interval=1, timeout=5, keep=3)
    assert not report["healthy"] and report["attempts"] == 6 and len(report["responses"]) == 3
    assert report["responses"][-1]["ok"] is False


class Handler(http.server.BaseHTTPRequestHandler):
    def log_message(self, *a):
        pass

    def do_GET(self):
        code, body = {"/ok": (200, b"ok version=2"), "/down": (503, b"draining")}.get(self.path, (404, b"no"))
        self.send_response(code)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


@pytest.fixture(scope="module")
def base():
    srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    yield "http://127.0.0.1:%d" % srv.server_address[1], srv.server_address[1]
    srv.shutdown()


def test_http_probe_status_and_body(base):
    url, _port = base
    assert _health.http_probe(url + "/ok")[0]
    ok, seen = _health.http_probe(url + "/down")
    assert not ok and seen["status"] == 503 and seen["body"] == "draining"
    assert _health.http_probe(url + "/down", status_codes=(503,))[0]
    ok, seen = _health.http_probe(url + "/ok", body_regex=r"version=3")
    assert not ok and "does not match" in seen["error"]
    assert _health.http_probe(url + "/ok", body_regex=r"version=2")[0]


def test_probes_of_nothing_listening():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    ok, seen = _health.http_probe("http://127.0.0.1:%d/" % port, timeout=2)
    assert not ok and seen["error"]
    assert not _health.tcp_probe("127.0.0.1", port, 2)[0]


def test_tcp_probe(base):
    _url, port = base
    assert _health.tcp_probe("127.0.0.1", port)[0]


def test_describe():
    report = {"responses": [{"status": 503, "body": "draining"}, {"error": "connection refused"}]}
    assert _health.describe(report) == "HTTP 503 'draining'; connection refused"
