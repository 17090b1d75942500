# -*- coding: utf-8 -*-
# Copyright: seedops.deploy contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""A backend server's place in HAProxy's rotation: the logic of seedops.deploy.lb_member (private to seedops.deploy).

Reads the server first, sends only the commands that change something, then waits as asked: for the
sessions to drain (drain, maint) or for HAProxy's health checks to see the server up (ready, wait_up)."""

from __future__ import annotations

import time

from ansible_collections.seedops.deploy.plugins.module_utils import _haproxy as hap


class LbError(Exception):
    """The task fails; `result` is what it returns with the message."""

    def __init__(self, msg, result=None):
        super().__init__(msg)
        self.msg = msg
        self.result = result or {}


class Member:
    """One lb_member task. `params` are lb_member's options."""

    def __init__(self, params, check_mode=False, diff=False, clock=time.monotonic, sleep=time.sleep):
        self.p = params
        self.check_mode = check_mode
        self.diff = diff
        self.clock = clock
        self.sleep = sleep
        self.target = "%s/%s" % (params["backend"], params["server"])

    def read(self):
        return hap.server_state(self.p["socket"], self.p["backend"], self.p["server"])

    def sessions(self):
        return hap.sessions(self.p["socket"], self.p["backend"], self.p["server"])

    def run(self):
        """Returns the result; raises LbError, or hap.HAProxyError when the runtime API fails."""
        p = self.p
        for what in ("backend", "server"):
            try:
                hap.check_name(what, p[what])
            except hap.HAProxyError as exc:
                raise LbError(str(exc))
        if p["weight"] is not None and not 0 <= p["weight"] <= 256:
            raise LbError("weight must be from 0 to 256, got %d" % p["weight"])
        before = self.read()
        result = {"changed": False, "previous_state": hap.admin_name(before["admin_state"]),
                  "previous_weight": before["weight"], "previous_checks": hap.checks_name(before["check_state"]),
                  "waited": 0.0}
        want = {"state": p["state"] or result["previous_state"],
                "weight": p["weight"] if p["weight"] is not None else before["weight"],
                "checks": p["checks"] or result["previous_checks"]}
        commands = self.commands(result, want)
        result["changed"] = bool(commands)
        if self.diff and commands:
            result["diff"] = {"before": {"state": result["previous_state"], "weight": result["previous_weight"],
                                         "checks": result["previous_checks"]},
                              "after": dict(want)}
        if self.check_mode:
            result.update(want, op_state=hap.op_name(before["op_state"]), sessions=self.sessions())
            return result
        for line in commands:
            hap.check_answer(hap.command(p["socket"], line), line)
        if p["wait"] and want["state"] in ("drain", "maint"):
            self.wait_drained(result, want)
        if p["wait_up"] and want["state"] == "ready":
            self.wait_up(result)
        after = self.read()
        result.update(state=hap.admin_name(after["admin_state"]), weight=after["weight"],
                      checks=hap.checks_name(after["check_state"]), op_state=hap.op_name(after["op_state"]),
                      sessions=self.sessions())
        return result

    def commands(self, result, want):
        """The runtime API commands that take the server from what it is to what is wanted."""
        commands = []
        if want["state"] != result["previous_state"]:
            commands.append("set server %s state %s" % (self.target, want["state"]))
        if want["weight"] != result["previous_weight"]:
            commands.append("set server %s weight %d" % (self.target, want["weight"]))
        if want["checks"] != result["previous_checks"]:
            commands.append("%s health %s" % ("enable" if want["checks"] == "enabled" else "disable", self.target))
        return commands

    def wait_drained(self, result, want):
        """Until the server's sessions reach zero, or drain_timeout."""
        p = self.p
        started = self.clock()
        current = self.sessions()
        while current > 0 and self.clock() - started < p["drain_timeout"]:
            self.sleep(p["poll_interval"])
            current = self.sessions()
        result["waited"] = round(self.clock() - started, 3)
        if current > 0:
            result.update(want, sessions=current)
            raise LbError("%s still has %d sessions after %.0f s of %s (drain_timeout); it stays in %s"
                          % (self.target, current, p["drain_timeout"], want["state"], want["state"]), result)

    def wait_up(self, result):
        """Until HAProxy sees the server operationally up (srv_op_state 2), or up_timeout. Whether its checks
        are enabled, disabled or not configured, up means the same: HAProxy would send it traffic."""
        p = self.p
        started = self.clock()
        seen = self.read()
        while seen["op_state"] != hap.SRV_ST_RUNNING and self.clock() - started < p["up_timeout"]:
            self.sleep(p["poll_interval"])
            seen = self.read()
        result["waited"] = round(self.clock() - started, 3)
        if seen["op_state"] == hap.SRV_ST_RUNNING:
            return
        checks = hap.checks_name(seen["check_state"])
        result.update(state=hap.admin_name(seen["admin_state"]), weight=seen["weight"], checks=checks,
                      op_state=hap.op_name(seen["op_state"]))
        hint = ("its health checks are disabled, so HAProxy keeps it %s until they are enabled again (checks=enabled)"
                % result["op_state"]) if checks == "disabled" else (
            "look at why the load balancer's health checks fail (the service on the server, the address %s, the "
            "check's path and port)" % seen.get("address"))
        raise LbError("server %s of backend %s is %s, but HAProxy does not see it up: its operational state is still "
                      "%s (srv_op_state %d) after %g s (up_timeout); %s"
                      % (p["server"], p["backend"], result["state"], result["op_state"], seen["op_state"],
                         p["up_timeout"], hint), result)
