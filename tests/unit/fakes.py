"""Stand-ins the unit tests share: a fake clock, a small HTTP server on 127.0.0.1 answering fixed routes, and a Unix
socket that answers like HAProxy's runtime API (one command per connection)."""

import contextlib
import http.server
import json
import socket
import threading

import pytest

try:
    from ansible.module_utils.testing import patch_module_args
except ImportError:  # ansible-core before 2.19 (make compat runs these tests there too)

    @contextlib.contextmanager
    def patch_module_args(args=None):
        """The module arguments an AnsibleModule made inside this block reads, as ansible-core 2.19's helper of the
        same name gives them."""
        from ansible.module_utils import basic  # pylint: disable=import-outside-toplevel

        saved = basic._ANSIBLE_ARGS  # pylint: disable=protected-access
        basic._ANSIBLE_ARGS = json.dumps({"ANSIBLE_MODULE_ARGS": args or {}}).encode()
        try:
            yield
        finally:
            basic._ANSIBLE_ARGS = saved


class Clock:
    """A monotonic clock that only moves when `sleep` is called."""

    def __init__(self):
        self.now = 0.0

    def __call__(self):
        return self.now

    def sleep(self, seconds):
        self.now += seconds


@contextlib.contextmanager
def http_routes(routes):
    """A ThreadingHTTPServer on 127.0.0.1 answering GET <path> with routes[path] = (status, body bytes), else 404;
    yields (base URL, port)."""

    class Handler(http.server.BaseHTTPRequestHandler):
        def log_message(self, *a):
            pass

        def do_GET(self):
            code, body = routes.get(self.path, (404, b""))
            self.send_response(code)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

    srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    try:
        yield "http://127.0.0.1:%d" % srv.server_address[1], srv.server_address[1]
    finally:
        srv.shutdown()
        srv.server_close()


@contextlib.contextmanager
def runtime_api(path, answer):
    """A Unix socket at `path` that reads one command per connection, logs it, and answers answer(command);
    yields the list of commands seen."""
    seen = []
    server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    server.bind(path)
    server.listen(8)

    def serve():
        while True:
            try:
                conn, _addr = server.accept()
            except OSError:
                return
            with conn:
                command = conn.recv(4096).decode().strip()
                seen.append(command)
                conn.sendall(answer(command).encode())

    threading.Thread(target=serve, daemon=True).start()
    try:
        yield seen
    finally:
        server.close()


def run_main(main, capsys, args):
    """Run a module's main() with `args` as its module arguments: (exit code, the JSON result it printed)."""
    with patch_module_args(args), pytest.raises(SystemExit) as exc:
        main()
    return exc.value.code, json.loads(capsys.readouterr().out)
