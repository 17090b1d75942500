# -*- coding: utf-8 -*-
# Copyright: seedops.deploy contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""What a load balancer's backend looks like right now: every server's rotation state (private to seedops.deploy)."""

from __future__ import annotations

from ansible_collections.seedops.deploy.plugins.module_utils import _haproxy as hap


def describe(entry):
    """One server of `show servers state` as people and plays read it."""
    admin = hap.admin_name(entry["admin_state"])
    op = hap.op_name(entry["op_state"])
    return {
        "admin": admin,
        "op": op,
        "weight": entry["weight"],
        "initial_weight": entry.get("initial_weight", entry["weight"]),
        "checks": hap.checks_name(entry.get("check_state", 0)),
        "address": entry.get("address"),
        "in_rotation": admin == "ready" and op == "up" and entry["weight"] > 0,
    }


def backend_servers(text, backend):
    """{server: describe(...)} for every server of `backend` in a `show servers state` answer."""
    return {server: describe(entry) for (name, server), entry in sorted(hap.parse_servers_state(text).items())
            if name == backend}


def read_backend(path, backend, timeout=5.0):
    """Ask HAProxy's runtime API at `path` for `backend`'s servers; HAProxyError when it has no such backend."""
    hap.check_name("backend", backend)
    servers = backend_servers(hap.command(path, "show servers state %s" % backend, timeout), backend)
    if not servers:
        raise hap.HAProxyError("HAProxy has no backend %s with servers (ask `show servers state` on %s for the names)"
                               % (backend, path))
    return servers
