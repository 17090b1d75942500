# -*- coding: utf-8 -*-
# Copyright: seedops.deploy contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Which servers a HAProxy backend has: the logic of seedops.deploy.lb_servers (private to seedops.deploy).

The backend's server list is made to match a wanted list through the runtime API, with no reload: a server that
joins is added in maintenance with its health checks on, so it takes no traffic until something (a deploy's health
gate) sets it ready; a server that leaves is drained first (its sessions end, or drain_timeout), put in maintenance,
which closes HAProxy's idle connections to it, and then deleted."""

from __future__ import annotations

import re
import time

from ansible_collections.seedops.deploy.plugins.module_utils import _haproxy as hap
from ansible_collections.seedops.deploy.plugins.module_utils import _lb

# A server address: an IPv4 or IPv6 address or a host name, nothing the runtime API would read as more arguments.
ADDRESS = re.compile(r"[A-Za-z0-9_.:-]+\Z")
# A check interval as HAProxy writes times: a number and an optional unit.
INTERVAL = re.compile(r"[0-9]+(us|ms|s|m|h|d)?\Z")
# What the runtime API answers when a command of this module worked (add, del, a new address or port).
OK_ANSWER = re.compile(r"(new server registered|server deleted|done|no need to change|ip changed|port changed)")


# The task fails with the message and `result`: the same error lb_member's logic raises.
ServersError = _lb.LbError


def wanted_servers(servers):
    """The wanted list, checked: [{name, address, port, weight}] in the order given. ServersError names the first
    entry that is wrong and why."""
    seen = set()
    out = []
    for i, entry in enumerate(servers or []):
        if not isinstance(entry, dict):
            raise ServersError("servers[%d] must be a mapping with name, address and port, got %r" % (i, entry))
        name = entry.get("name")
        try:
            hap.check_name("server", name)
        except hap.HAProxyError as exc:
            raise ServersError("servers[%d]: %s" % (i, exc))
        if name in seen:
            raise ServersError("servers[%d]: the server %s is listed twice" % (i, name))
        seen.add(name)
        address = entry.get("address")
        if not isinstance(address, str) or not ADDRESS.match(address):
            raise ServersError("servers[%d] (%s): address %r is not an IP address or host name" % (i, name, address))
        try:
            port = int(entry.get("port"))
            weight = int(entry.get("weight", 1) if entry.get("weight") is not None else 1)
        except (TypeError, ValueError):
            raise ServersError("servers[%d] (%s): port and weight must be whole numbers, got port=%r weight=%r"
                               % (i, name, entry.get("port"), entry.get("weight")))
        if not 1 <= port <= 65535:
            raise ServersError("servers[%d] (%s): port %d is not from 1 to 65535" % (i, name, port))
        if not 0 <= weight <= 256:
            raise ServersError("servers[%d] (%s): weight %d is not from 0 to 256" % (i, name, weight))
        out.append({"name": name, "address": address, "port": port, "weight": weight, "host": entry.get("host") or None})
    return out


def renamed_hosts(current, wanted, joined, left):
    """The hosts whose servers change names (one server `app1` becomes `app1-8080` and `app1-8081`, or back): a
    host named in `wanted` (`host`) that has a joining server while the backend has a server of it already, or whose
    server leaves while the host stays. The runtime API would add the new names in maintenance and delete the old,
    taking the host out of rotation, so such a change is left to a reload of the configuration."""
    hosts = sorted({w["host"] for w in wanted if w.get("host")}, key=len, reverse=True)

    def owner(name):
        return next((h for h in hosts if name == h or name.startswith(h + "-")), None)

    renamed = {owner(name) for name in left} - {None}
    renamed |= {w["host"] for w in joined if w.get("host") and any(owner(name) == w["host"] for name in current)}
    return sorted(renamed)


def changes(current, wanted, prune=True):
    """(joined, left, moved) between `current` ({server: {address, port, ...}}) and `wanted` (wanted_servers):
    the wanted servers the backend lacks, in the wanted order; the backend's servers not wanted (when `prune`), in
    name order; and the servers in both whose address or port differs."""
    names = {w["name"] for w in wanted}
    joined = [w for w in wanted if w["name"] not in current]
    left = sorted(name for name in current if name not in names) if prune else []
    moved = [w for w in wanted if w["name"] in current
             and (current[w["name"]].get("address"), current[w["name"]].get("port")) != (w["address"], w["port"])]
    return joined, left, moved


def add_command(backend, server, check):
    """The runtime API line that adds `server` (a wanted_servers entry). Added servers start in maintenance."""
    line = "add server %s/%s %s:%d weight %d" % (
        backend, server["name"], server["address"], server["port"], server["weight"])
    if check:
        line += " check inter %s rise %d fall %d" % (check["interval"], check["rise"], check["fall"])
    return line


class Servers:
    """One lb_servers task. `params` are lb_servers' options."""

    def __init__(self, params, check_mode=False, diff=False, clock=time.monotonic, sleep=time.sleep):
        self.p = params
        self.check_mode = check_mode
        self.diff = diff
        self.clock = clock
        self.sleep = sleep

    def read(self):
        """{server: {admin_state, op_state, weight, address, port, ...}} of the backend; ServersError when HAProxy
        has no such backend."""
        answer = hap.command(self.p["socket"], "show servers state %s" % self.p["backend"])
        if "can't find backend" in answer.lower():
            raise ServersError("HAProxy has no backend %s: it must be in the configuration (the seedops.deploy.haproxy "
                               "role writes it); lb_servers only changes its servers" % self.p["backend"])
        return {server: entry for (name, server), entry in hap.parse_servers_state(answer).items()
                if name == self.p["backend"]}

    def check(self):
        p = self.p
        if not p["check"]:
            return None
        if not INTERVAL.match(str(p["check_interval"])):
            raise ServersError("check_interval %r is not an HAProxy time such as 1s or 500ms" % (p["check_interval"],))
        return {"interval": p["check_interval"], "rise": p["check_rise"], "fall": p["check_fall"]}

    def run(self):
        p = self.p
        try:
            hap.check_name("backend", p["backend"])
        except hap.HAProxyError as exc:
            raise ServersError(str(exc))
        wanted = wanted_servers(p["servers"])
        check = self.check()
        current = self.read()
        joined, left, moved = changes(current, wanted, p["prune"])
        renamed = renamed_hosts(current, wanted, joined, left)
        if renamed:
            return {"changed": False, "joined": [], "left": [], "moved": [], "previous": sorted(current),
                    "servers": sorted(current), "renamed": renamed}
        result = {"renamed": [], "changed": bool(joined or left or moved), "joined": [s["name"] for s in joined], "left": left,
                  "moved": [s["name"] for s in moved], "previous": sorted(current)}
        if self.diff and result["changed"]:
            result["diff"] = {"before": "".join("%s %s:%s\n" % (n, current[n].get("address"), current[n].get("port"))
                                                for n in sorted(current)),
                              "after": "".join("%s %s:%d\n" % (w["name"], w["address"], w["port"])
                                               for w in sorted(wanted, key=lambda w: w["name"]))
                              + "".join("%s (kept)\n" % n for n in sorted(current) if n not in left
                                        and n not in {w["name"] for w in wanted})}
        if self.check_mode or not result["changed"]:
            result["servers"] = sorted(set(current) - set(left) | {w["name"] for w in wanted})
            return result
        for server in joined:
            self.add(server, check)
        for server in moved:
            line = "set server %s/%s addr %s port %d" % (p["backend"], server["name"], server["address"], server["port"])
            self.send([line], "the new address of %s" % server["name"])
        for name in left:
            self.remove(name, result)
        result["servers"] = sorted(self.read())
        return result

    def send(self, lines, what):
        answer = hap.commands(self.p["socket"], lines)
        text = answer.strip()
        bad = [line for line in text.splitlines() if line.strip() and not OK_ANSWER.match(line.strip().lower())]
        if bad:
            raise ServersError("HAProxy refused %s: %s" % (what, " ".join(bad)))
        return text

    def add(self, server, check):
        """Add the server, in maintenance, then turn its checks on: they run once it leaves maintenance."""
        target = "%s/%s" % (self.p["backend"], server["name"])
        lines = [add_command(self.p["backend"], server, check)]
        if check:
            lines.append("enable health %s" % target)
        self.send(lines, "adding %s" % target)
        seen = self.read().get(server["name"])
        if seen is None or hap.admin_name(seen["admin_state"]) != "maint":
            raise ServersError("HAProxy added %s but it is %s, not in maintenance" % (
                target, "missing" if seen is None else hap.admin_name(seen["admin_state"])))

    def remove(self, name, result):
        """Drain, maintenance, then delete; waits for the sessions (drain_timeout) and for HAProxy to let the
        server go (its idle connections closed)."""
        p = self.p
        target = "%s/%s" % (p["backend"], name)
        if hap.admin_name(self.read()[name]["admin_state"]) == "ready":
            self.send(["set server %s state drain" % target], "the drain of %s" % target)
        started = self.clock()
        current = hap.sessions(p["socket"], p["backend"], name)
        while current > 0 and self.clock() - started < p["drain_timeout"]:
            self.sleep(p["poll_interval"])
            current = hap.sessions(p["socket"], p["backend"], name)
        if current > 0:
            raise ServersError("%s still has %d sessions after %.0f s (drain_timeout): it is left in drain, still in "
                               "the backend" % (target, current, p["drain_timeout"]), result)
        self.send(["set server %s state maint" % target], "maintenance of %s" % target)
        # Deleting waits for HAProxy to close its idle connections to the server.
        while True:
            answer = hap.command(p["socket"], "del server %s" % target).strip()
            if answer.lower().startswith("server deleted"):
                return
            if self.clock() - started >= p["drain_timeout"] + 10:
                raise ServersError("HAProxy would not delete %s: %s. It is in maintenance, taking no traffic"
                                   % (target, answer), result)
            self.sleep(p["poll_interval"])
