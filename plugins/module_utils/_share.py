# -*- coding: utf-8 -*-
# Copyright: seedops.deploy contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Peer fan-out of verified artifacts (private to seedops.deploy): the logic of seedops.deploy.artifact_share.

A host that holds a verified artifact in its store serves that one entry over HTTP to the next hosts of a
deploy, so the origin (the repository host or the controller) sends it about once instead of once per host.
The server is a detached Python process that answers GET /<hex> with the store entry <store>/sha256/<hex> and
nothing else, and exits by itself after its lifetime. Its process id and digest are kept in a pid file, so a
later task stops exactly the process it started - never another one.

Receivers fetch with seedops.deploy.artifact and the digest from the plan: every byte is hashed while it
streams, so a peer cannot hand out anything else; a peer that fails is skipped (the receiver fetches from the
origin), never trusted.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

from ansible_collections.seedops.deploy.plugins.module_utils import _digest

# The server, run as `python3 -c SERVER <file> <address> <port> <lifetime> <hex>`. It needs nothing but the
# standard library: it runs outside Ansible's module wrapper.
SERVER = r"""
import http.server, os, sys, threading
path, address, port, lifetime, name = sys.argv[1], sys.argv[2], int(sys.argv[3]), float(sys.argv[4]), sys.argv[5]

class Handler(http.server.BaseHTTPRequestHandler):
    def log_message(self, *args):
        pass

    def do_GET(self):
        if self.path != "/" + name:
            self.send_error(404)
            return
        try:
            f = open(path, "rb")
        except OSError:
            self.send_error(404)
            return
        with f:
            self.send_response(200)
            self.send_header("Content-Type", "application/octet-stream")
            self.send_header("Content-Length", str(os.fstat(f.fileno()).st_size))
            self.end_headers()
            while True:
                chunk = f.read(1 << 20)
                if not chunk:
                    break
                self.wfile.write(chunk)

family = http.server.socket.AF_INET6 if ":" in address else http.server.socket.AF_INET
http.server.ThreadingHTTPServer.address_family = family
server = http.server.ThreadingHTTPServer((address, port), Handler)
server.daemon_threads = True
sys.stderr.write("listening\n")
sys.stderr.flush()
threading.Timer(lifetime, server.shutdown).start()
server.serve_forever()
"""
MARKER = "seedops-artifact-share"


class ShareError(Exception):
    pass


def parse_checksum(checksum):
    """`sha256:<hex>` -> hex (the store's sha256 entries are what the fan-out serves)."""
    try:
        algorithm, hexdigest = _digest.parse_checksum(checksum)
    except _digest.DigestError:
        algorithm = hexdigest = None
    if algorithm != "sha256":
        raise ShareError("checksum must be sha256:<64 hex digits>, got %r" % checksum)
    return hexdigest


def pid_file(run_dir, port):
    return os.path.join(run_dir, "%s-%d.pid" % (MARKER, port))


def read_pid_file(path):
    """(pid, hex) from a pid file, or (None, None)."""
    try:
        with open(path, encoding="ascii") as f:
            pid, hexdigest = f.read().split()[:2]
        return int(pid), hexdigest
    except (OSError, ValueError):
        return None, None


def ours(pid, hexdigest):
    """Whether process `pid` is a share server this module started for `hexdigest` (its command line says so)."""
    try:
        with open("/proc/%d/cmdline" % pid, "rb") as f:
            argv = f.read().split(b"\0")
    except OSError:
        return False
    return len(argv) > 6 and argv[1] == b"-c" and MARKER.encode() in argv[2] and argv[-2] == hexdigest.encode()


def running(pid):
    """Whether process `pid` still runs: it exists, and is not a zombie whose threads are all gone. A thread group
    leader shows as a zombie (Z) as soon as its own thread exits, while its other threads - the server's, holding
    its socket - may still be exiting."""
    try:
        with open("/proc/%d/stat" % pid, "rb") as f:
            fields = f.read().rsplit(b")", 1)[1].split()
        return fields[0] != b"Z" or int(fields[17]) > 1
    except (OSError, IndexError, ValueError):
        return False


class Share:
    """Serve one store entry (state serving) or stop serving (state stopped); `run()` returns the result."""

    def __init__(self, params, check_mode=False, run_dir="/run", clock=time.monotonic, sleep=time.sleep):
        self.p = params
        self.check = check_mode
        self.run_dir = run_dir
        self.clock = clock
        self.sleep = sleep

    def run(self):
        path = pid_file(self.run_dir, self.p["port"])
        pid, serving = read_pid_file(path)
        alive = pid is not None and ours(pid, serving)
        if self.p["state"] == "stopped":
            if alive and not self.check:
                self.end(pid)
            if not self.check and os.path.exists(path):
                os.unlink(path)
            return {"changed": alive, "stopped": pid if alive else None}
        hexdigest = parse_checksum(self.p["checksum"])
        entry = os.path.join(self.p["store"], "sha256", hexdigest)
        if not os.path.isfile(entry):
            raise ShareError("this host's store %s has no verified entry for sha256:%s to share; stage the artifact "
                             "first" % (self.p["store"], hexdigest))
        url = "http://%s:%d/%s" % ("[%s]" % self.p["address"] if ":" in self.p["address"] else self.p["address"],
                                   self.p["port"], hexdigest)
        if alive and serving == hexdigest:
            return {"changed": False, "url": url, "pid": pid}
        if self.check:
            return {"changed": True, "url": url, "pid": None}
        if alive:
            self.end(pid)
        return {"changed": True, "url": url, "pid": self.start(entry, hexdigest, path)}

    def end(self, pid):
        """SIGTERM to a server this module started, then wait (up to 5 s) until it is gone and its port free."""
        os.kill(pid, signal.SIGTERM)
        deadline = self.clock() + 5
        while running(pid) and self.clock() < deadline:
            self.sleep(0.05)

    def start(self, entry, hexdigest, path):
        argv = [sys.executable, "-c", "# %s\n%s" % (MARKER, SERVER), entry, self.p["address"], str(self.p["port"]),
                str(self.p["lifetime"]), hexdigest]
        log = path[:-len(".pid")] + ".log"
        with open(log, "wb") as err:
            proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=err,
                                    start_new_session=True, close_fds=True)
        deadline = self.clock() + 10
        while True:
            with open(log, "rb") as f:
                lines = f.read().decode("utf-8", "replace").strip().splitlines()
            if "listening" in lines:
                break
            if proc.poll() is not None:
                raise ShareError("the share server could not listen on %s port %d: %s" % (
                    self.p["address"], self.p["port"], lines[-1] if lines else "exit code %s" % proc.returncode))
            if self.clock() > deadline:
                proc.kill()
                raise ShareError("the share server did not listen on %s port %d within 10 s" % (
                    self.p["address"], self.p["port"]))
            self.sleep(0.05)
        tmp = path + ".tmp"
        with open(tmp, "w", encoding="ascii") as f:
            f.write("%d %s\n" % (proc.pid, hexdigest))
        os.replace(tmp, path)
        return proc.pid
