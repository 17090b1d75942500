# -*- coding: utf-8 -*-
# Copyright: seedops.deploy contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""HAProxy runtime API over its admin socket (private to seedops.deploy).

The runtime API reads ``;`` and line breaks as command separators, so a backend or server name is
checked (``check_name``) before it goes into a command, and ``command`` refuses a line that would
carry more than one command: nothing reaches the socket then."""

from __future__ import annotations

import csv
import io
import re
import socket

FMAINT = 0x01
FDRAIN = 0x08
CHK_ST_ENABLED = 0x04
# srv_op_state: what HAProxy's health checks (or their absence) make of the server.
SRV_ST_RUNNING = 2
OP_STATES = {0: "down", 1: "starting", SRV_ST_RUNNING: "up", 3: "stopping"}
# The characters HAProxy accepts in proxy (backend) and server names.
NAME = re.compile(r"[A-Za-z0-9_.:-]+\Z")


# The options of every module that talks to the runtime API (doc fragment seedops.deploy.haproxy).
RUNTIME_API_SPEC = dict(
    backend=dict(type="str", required=True),
    socket=dict(type="path", default="/run/haproxy/admin.sock"),
)


class HAProxyError(Exception):
    """The runtime API could not be reached or refused a command."""


def check_name(what, name):
    """`name` when it is a valid HAProxy name (letters, digits, - _ . :), else HAProxyError naming it."""
    if not isinstance(name, str) or not NAME.match(name):
        raise HAProxyError("%s %r is not a valid HAProxy name: use only letters, digits and - _ . : (the runtime API "
                           "would read ';', spaces or line breaks in it as further commands or arguments). Nothing "
                           "was sent to HAProxy" % (what, name))
    return name


def command(path, line, timeout=5.0):
    """Send one command, return the whole answer. A line holding a command separator (';', a line break)
    or another control character is refused before anything is sent."""
    return _send(path, _one_command(line), timeout)


def _one_command(line):
    if any(c == ";" or ord(c) < 32 or ord(c) == 127 for c in line):
        raise HAProxyError("refusing to send %r to HAProxy's runtime API: it holds a command separator or a control "
                           "character, which would make it more than one command" % (line,))
    return line


def _send(path, line, timeout):
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
            s.settimeout(timeout)
            s.connect(path)
            s.sendall(line.encode("utf-8") + b"\n")
            chunks = []
            while True:
                data = s.recv(65536)
                if not data:
                    break
                chunks.append(data)
    except OSError as exc:
        raise HAProxyError("cannot talk to HAProxy's runtime API at %s: %s (is the stats socket configured with "
                           "level admin, and does the task run as a user that may open it?)" % (path, exc))
    return b"".join(chunks).decode("utf-8", "replace")


def commands(path, lines, timeout=5.0):
    """Send several commands in one connection, as one line joined by ';': HAProxy runs them in order, right after
    one another, with no connection set up or torn down between them. Each command is checked as `command` checks
    one (none may hold a separator of its own), before anything is sent. Returns the answers, joined."""
    return _send(path, ";".join(_one_command(line) for line in lines), timeout)


def parse_servers_state(text):
    """`show servers state` -> {(backend, server): {admin_state, op_state, weight, initial_weight (the
    configuration's), address, check_state, check_health}}."""
    lines = [line for line in text.splitlines() if line.strip()]
    header = None
    servers = {}
    for line in lines:
        if line.startswith("#"):
            header = line.lstrip("# ").split()
            continue
        if header is None:
            continue
        fields = line.split()
        if len(fields) < len(header):
            continue
        row = dict(zip(header, fields))
        servers[(row["be_name"], row["srv_name"])] = {
            "admin_state": int(row["srv_admin_state"]),
            "op_state": int(row["srv_op_state"]),
            "weight": int(row["srv_uweight"]),
            "initial_weight": int(row.get("srv_iweight") or row["srv_uweight"]),
            "address": row.get("srv_addr"),
            "port": int(row["srv_port"]) if (row.get("srv_port") or "").isdigit() else None,
            "check_state": int(row.get("srv_check_state") or 0),
            "check_health": int(row.get("srv_check_health") or 0),
        }
    return servers


def admin_name(admin_state):
    if admin_state & FMAINT:
        return "maint"
    if admin_state & FDRAIN:
        return "drain"
    return "ready"


def op_name(op_state):
    """'down', 'starting', 'up' or 'stopping' from srv_op_state."""
    return OP_STATES.get(op_state, "unknown (%s)" % op_state)


def checks_name(check_state):
    """'enabled' or 'disabled' from srv_check_state (CHK_ST_* bits)."""
    return "enabled" if check_state & CHK_ST_ENABLED else "disabled"


def parse_stat(text):
    """`show stat` CSV -> {(pxname, svname): row}."""
    text = text.lstrip("# ")
    rows = {}
    for row in csv.DictReader(io.StringIO(text)):
        if row.get("pxname") and row.get("svname"):
            rows[(row["pxname"], row["svname"])] = row
    return rows


def check_answer(answer, what):
    """Commands answer nothing on success; anything else is an error message."""
    text = answer.strip()
    if text and not text.lower().startswith(("done", "weight", "state")):
        raise HAProxyError("HAProxy refused %s: %s" % (what, text))


def server_state(path, backend, server, timeout=5.0):
    """One server's entry of `show servers state <backend>` (see parse_servers_state)."""
    return servers_state(path, backend, [server], timeout)[server]


def servers_state(path, backend, names, timeout=5.0):
    """The entries of the servers `names` of one backend, from one `show servers state <backend>`: {name: entry}.
    Fails naming the first server the backend lacks."""
    check_name("backend", backend)
    for name in names:
        check_name("server", name)
    servers = parse_servers_state(command(path, "show servers state %s" % backend, timeout))
    for name in names:
        if (backend, name) not in servers:
            found = sorted(s for b, s in servers if b == backend)
            raise HAProxyError("HAProxy has no server %s in backend %s (it has: %s)"
                               % (name, backend, ", ".join(found) or "no such backend"))
    return {name: servers[(backend, name)] for name in names}


def sessions(path, backend, server, timeout=5.0):
    """The server's current sessions (scur of `show stat`); 0 when HAProxy does not list it."""
    return sessions_of(path, backend, [server], timeout)[server]


def sessions_of(path, backend, names, timeout=5.0):
    """The current sessions of the servers `names` of one backend, from one `show stat`: {name: scur}."""
    check_name("backend", backend)
    for name in names:
        check_name("server", name)
    rows = parse_stat(command(path, "show stat", timeout))
    return {name: int(rows.get((backend, name), {}).get("scur") or 0) for name in names}
