"""Unit tests for the load client's pure logic: loopback only, percentiles, windows, version overlap."""

import http.server
import threading

import pytest

import load


@pytest.mark.parametrize("url", ["http://127.0.0.1:8080/", "http://[::1]:80/x", "http://localhost/"])
def test_loopback_urls_are_accepted(url):
    assert load.loopback_only(url) == url


@pytest.mark.parametrize("url", ["http://10.0.0.1/", "http://example.com/", "http://172.18.0.3:8080/"])
def test_anything_else_is_refused(url):
    with pytest.raises(SystemExit, match="not a loopback address"):
        load.loopback_only(url)


def test_percentile():
    values = [float(v) for v in range(1, 101)]
    assert load.percentile(values, 0.5) in (50.0, 51.0)
    assert load.percentile(values, 0.99) == 99.0
    assert load.percentile([], 0.5) is None


def row(sent, ok, version, done=None):
    return (sent, 0.01, ok, version, False, sent if done is None else done)


def test_mixed_window_spans_first_new_answer_to_last_old_one():
    rows = [row(1, True, "1"), row(2, True, "2"), row(3, True, "1"), row(4, True, "2")]
    assert load.mixed_window(rows) == 1.0
    assert load.mixed_window([row(1, True, "1"), row(2, True, "2")]) == 0.0
    assert load.mixed_window([row(1, True, "1"), row(2, False, "HTTP 503")]) is None


class Handler(http.server.BaseHTTPRequestHandler):
    def do_GET(self):  # noqa: N802 (http.server's name)
        code = 503 if "fail" in self.path else 200
        body = b"hello version=9.9 host=test\n"
        self.send_response(code)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


def test_a_short_run_counts_every_answer_by_window_and_version():
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        client = load.Load(f"http://127.0.0.1:{server.server_port}/", 50, 0.5, "1ms", 5)
        client.start()
        threading.Event().wait(0.5)
        client.stop()
        summary = client.summary({"start": 0, "end": float("inf")})
        assert summary["all"]["sent"] >= 10 and summary["all"]["failed"] == 0
        assert summary["during"]["sent"] == summary["all"]["sent"]
        assert summary["all"]["slow_sent"] > 0
        assert set(summary["versions"]) == {"9.9"}
        failing = load.Load(f"http://127.0.0.1:{server.server_port}/fail", 20, 0, "1s", 5)
        failing.start()
        threading.Event().wait(0.3)
        failing.stop()
        out = failing.summary()
        assert out["all"]["failed"] == out["all"]["sent"] > 0 and out["errors"] == {"HTTP 503": out["all"]["sent"]}
    finally:
        server.shutdown()


def test_around_loads_before_during_and_after_the_work():
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        client = load.Load(f"http://127.0.0.1:{server.server_port}/", 40, 0, "1s", 5)
        value, summary = client.around(lambda: threading.Event().wait(0.3) or "done", margin=0.3)
        assert value == "done"
        assert summary["before"]["sent"] > 0 and summary["during"]["sent"] > 0 and summary["after"]["sent"] > 0
        assert summary["all"]["failed"] == 0
    finally:
        server.shutdown()
