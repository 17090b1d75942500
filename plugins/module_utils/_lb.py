# -*- coding: utf-8 -*-
# Copyright: seedops.deploy contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""A backend server's place in HAProxy's rotation: the logic of seedops.deploy.lb_member (private to seedops.deploy).

Reads the server first, sends only the commands that change something, then waits as asked: for the
sessions to drain (drain, maint) or for HAProxy's health checks to see the server up (ready or drain, wait_up).

With `replaces`, a flip between two servers of one host (the old release's instance and the new one's, started
beside it on another port): the new server comes out of maintenance into drain, so that HAProxy's checks run
while it takes no traffic; once a check of it passed (HAProxy counts it up before that), one runtime API call sets
it ready and the old one to drain; when the old one's sessions have ended it goes to maint, which also closes
HAProxy's idle connections to it (drain alone keeps them, and would send new requests over them). With `flips`, the
flips of several hosts in one task, their traffic moved in one call (Flips). With `servers`, several servers set to
drain or maint in one call and waited on together (Servers)."""

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

    @staticmethod
    def described(seen):
        """A `show servers state` entry as the task returns it: state, weight, checks, op_state."""
        return {"state": hap.admin_name(seen["admin_state"]), "weight": seen["weight"],
                "checks": hap.checks_name(seen["check_state"]), "op_state": hap.op_name(seen["op_state"])}

    def now(self):
        """The server as it is now, with its sessions."""
        return dict(self.described(self.read()), sessions=self.sessions())

    def poll(self, read, done, timeout):
        """read() every poll_interval until done(value) or `timeout` seconds; (the last value, seconds waited)."""
        started = self.clock()
        value = read()
        while not done(value) and self.clock() - started < timeout:
            self.sleep(self.p["poll_interval"])
            value = read()
        return value, round(self.clock() - started, 3)

    @staticmethod
    def up(seen):
        return seen["op_state"] == hap.SRV_ST_RUNNING

    def checked_up(self, stat=None):
        """The test that HAProxy's checks see the server up. A server that leaves maintenance counts as up at once
        (HAProxy starts its check health at `rise`; measured on HAProxy 2.6), before any check ran, so up alone proves
        nothing: with its checks enabled (and `fall` above 1), the test also wants its health above `rise`, where a
        check that passed since puts it - a failing one takes it down. With `fall` 1 there is no room above `rise`,
        and up is all there is to see. `stat`: `show stat` read already (parse_stat), for several servers at once."""
        if stat is None:
            stat = hap.parse_stat(hap.command(self.p["socket"], "show stat"))
        row = stat.get((self.p["backend"], self.p["server"]), {})
        try:
            rise, fall = int(row.get("check_rise") or 0), int(row.get("check_fall") or 0)
        except ValueError:
            rise, fall = 0, 0
        if rise < 1 or fall < 2:
            return self.up
        return lambda seen: self.up(seen) and (not seen["check_state"] & hap.CHK_ST_ENABLED
                                               or seen["check_health"] > rise)

    def unchecked(self, seen):
        """Why an up server failed checked_up, for the error message."""
        if self.up(seen):
            return ("HAProxy counts it up only because it left maintenance: none of its health checks has passed since "
                    "(check health %d). " % seen.get("check_health", 0))
        return ""

    def run(self):
        """Returns the result; raises LbError, or hap.HAProxyError when the runtime API fails."""
        p = self.p
        if p.get("flips") is not None or p.get("servers") is not None:
            try:
                hap.check_name("backend", p["backend"])
            except hap.HAProxyError as exc:
                raise LbError(str(exc))
            return Flips(self).run() if p.get("flips") is not None else Servers(self).run()
        if not p.get("server"):
            raise LbError("give server (or flips)")
        for what in ("backend", "server") + (("replaces",) if p.get("replaces") else ()):
            try:
                hap.check_name(what, p[what])
            except hap.HAProxyError as exc:
                raise LbError(str(exc))
        if p["weight"] is not None and not 0 <= p["weight"] <= 256:
            raise LbError("weight must be from 0 to 256, got %d" % p["weight"])
        if p.get("replaces"):
            return Flip(self).run()
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
        waits = self.waits_up(want, before)
        warm = self.warms(result, want, before, waits)
        if warm:
            self.warm(result, result["previous_state"], [line for line in commands if not line.endswith(" state ready")])
            commands = ["set server %s state ready" % self.target]
        for line in commands:
            hap.check_answer(hap.command(p["socket"], line), line)
        if p["wait"] and want["state"] in ("drain", "maint"):
            self.wait_drained(result, want)
        if waits and want["state"] in ("ready", "drain") and not warm:
            self.wait_up(result)
        result.update(self.now())
        return result

    def waits_up(self, want, before):
        """Whether the task waits for HAProxy's checks to see the server up: wait_up, or wait_if_down for a server
        set ready whose enabled checks see it down (they failed while its service restarted)."""
        if self.p["wait_up"]:
            return True
        return bool(self.p.get("wait_if_down") and want["state"] == "ready" and want["checks"] == "enabled"
                    and before["check_state"] & hap.CHK_ST_ENABLED and not self.up(before))

    def warms(self, result, want, before, waits):
        """Whether ready with wait_up (or wait_if_down, for a server down) waits in drain first: from maint, or from
        a drain in which no check of the server has passed yet (it left maintenance since, or a check failed), with
        its health checks enabled."""
        if not (waits and want["state"] == "ready" and want["checks"] == "enabled"):
            return False
        if result["previous_state"] == "maint":
            return True
        return result["previous_state"] == "drain" and not self.checked_up()(before)

    def warm(self, result, state, lines=()):
        """A server on its way to ready waits in drain, where HAProxy checks it without sending it traffic, until a
        check of it passed (a server that left maintenance is up at once, before any check): one in `state` maint
        goes to drain first, with the other commands in `lines`. LbError, the server left in drain, after up_timeout."""
        lines = (["set server %s state drain" % self.target] if state == "maint" else []) + list(lines)
        for line in lines:
            hap.check_answer(hap.command(self.p["socket"], line), line)
        self.wait_up(result, staying="drain")

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
        current, result["waited"] = self.poll(self.sessions, lambda n: n == 0, p["drain_timeout"])
        if current > 0:
            result.update(want, sessions=current)
            raise LbError("%s still has %d sessions after %.0f s of %s (drain_timeout); it stays in %s"
                          % (self.target, current, p["drain_timeout"], want["state"], want["state"]), result)

    def wait_up(self, result, staying=None):
        """Until HAProxy's checks see the server up (checked_up), or up_timeout. With its checks disabled or not
        configured, up (srv_op_state 2) means the same: HAProxy would send it traffic. `staying` is the state a
        warm-up leaves the server in when it fails (drain, on its way to ready)."""
        p = self.p
        up = self.checked_up()
        seen, result["waited"] = self.poll(self.read, up, p["up_timeout"])
        if up(seen):
            return
        result.update(self.described(seen))
        if staying:
            raise LbError("server %s of backend %s was not set ready: HAProxy's checks do not see it up after %g s "
                          "(up_timeout; its operational state is %s, srv_op_state %d). It stays in %s, where it takes "
                          "no traffic. %slook at why the load balancer's health checks fail (the service on the "
                          "server, the address %s, the check's path and port)"
                          % (p["server"], p["backend"], p["up_timeout"], result["op_state"], seen["op_state"],
                             staying, self.unchecked(seen), seen.get("address")), result)
        hint = ("its health checks are disabled, so HAProxy keeps it %s until they are enabled again (checks=enabled)"
                % result["op_state"]) if result["checks"] == "disabled" else (
            "look at why the load balancer's health checks fail (the service on the server, the address %s, the "
            "check's path and port)" % seen.get("address"))
        raise LbError("server %s of backend %s is %s, but HAProxy's checks do not see it up: its operational state is "
                      "%s (srv_op_state %d) after %g s (up_timeout). %s%s"
                      % (p["server"], p["backend"], result["state"], result["op_state"], seen["op_state"],
                         p["up_timeout"], self.unchecked(seen), hint), result)


def wait_all_up(m, members, read):
    """Until HAProxy's checks see every server of `members` ({name: Member}) up (Member.checked_up, their rise and fall
    from one `show stat`), or up_timeout; `read()` reads them all ({name: entry}). Returns the last read, the seconds
    waited and {name: whether its checks see it up}."""
    stat = hap.parse_stat(hap.command(m.p["socket"], "show stat"))
    ups = {name: member.checked_up(stat) for name, member in members.items()}
    seen, waited = m.poll(read, lambda now: all(up(now[name]) for name, up in ups.items()), m.p["up_timeout"])
    return seen, waited, {name: bool(up(seen[name])) for name, up in ups.items()}


def drain_then_maint(m, names, sessions_of, maint=True):
    """Until the sessions of every server in `names` end, or drain_timeout; then (with `maint`) every drained one goes
    to maint, in one call. Returns {name: sessions} and the names whose sessions stay (left in drain)."""
    sessions, _waited = m.poll(sessions_of, lambda now: all(now[name] == 0 for name in names), m.p["drain_timeout"])
    done = [name for name in names if sessions[name] == 0]
    if maint and done:
        lines = ["set server %s/%s state maint" % (m.p["backend"], name) for name in done]
        hap.check_answer(hap.commands(m.p["socket"], lines), "maint of %s" % ", ".join(done))
    return sessions, [name for name in names if sessions[name] > 0]


class Flip:
    """lb_member with `replaces`: traffic moves from the old server to the new one in one runtime API call."""

    def __init__(self, member):
        self.m = member
        self.p = member.p
        # The replaced server, read and waited on as lb_member reads and waits on any server.
        self.o = Member(dict(self.p, server=self.p["replaces"], replaces=None), clock=member.clock, sleep=member.sleep)
        self.old, self.new = self.o.target, member.target

    def run(self):
        p, m = self.p, self.m
        if p["replaces"] == p["server"]:
            raise LbError("replaces names the server itself (%s): name the server that serves now, to be replaced by %s"
                          % (p["replaces"], p["server"]))
        if p["state"] not in (None, "ready") or p["checks"] is not None:
            raise LbError("with replaces, the server is set ready (state=ready or no state) and checks cannot be "
                          "changed in the same task; got state=%s checks=%s" % (p["state"], p["checks"]))
        new, old = m.read(), self.o.read()
        result = {"changed": False, "previous_state": hap.admin_name(new["admin_state"]), "previous_weight": new["weight"],
                  "previous_checks": hap.checks_name(new["check_state"]), "waited": 0.0, "flipped_at": None,
                  "replaced": {"server": p["replaces"], "previous_state": hap.admin_name(old["admin_state"])}}
        # The new server takes the weight asked for, else the one the old server has (a canary's share stays).
        weight = p["weight"] if p["weight"] is not None else old["weight"]
        # Without wait, the old server is left in drain (its requests end there; a later state=maint waits for them).
        settled = ("maint",) if p["wait"] else ("drain", "maint")
        done = (result["previous_state"] == "ready" and new["weight"] == weight
                and result["replaced"]["previous_state"] in settled)
        result["changed"] = not done
        if m.diff and not done:
            result["diff"] = {"before": {p["server"]: result["previous_state"], p["replaces"]: result["replaced"]["previous_state"]},
                              "after": {p["server"]: "ready", p["replaces"]: settled[0]}}
        if m.check_mode or done:
            result.update(m.described(new), state="ready", weight=weight, sessions=m.sessions())
            result["replaced"].update(state=result["replaced"]["previous_state"] if done else settled[0],
                                      sessions=self.o.sessions())
            return result
        started = m.clock()
        self.warm_up(result, new, weight)
        # The flip: in one call the new server takes new requests and the old one stops taking them.
        answer = hap.commands(p["socket"], ["set server %s state ready" % self.new, "set server %s state drain" % self.old])
        hap.check_answer(answer, "the flip from %s to %s" % (self.old, self.new))
        result["flipped_at"] = round(time.time(), 3)
        if p["wait"]:
            self.drain_old(result)
            hap.check_answer(hap.command(p["socket"], "set server %s state maint" % self.old), "maint of %s" % self.old)
        result["waited"] = round(m.clock() - started, 3)
        result.update(m.now())
        old_now = self.o.now()
        result["replaced"].update(state=old_now["state"], sessions=old_now["sessions"])
        return result

    def warm_up(self, result, new, weight):
        """Bring the new server to drain at its weight, where HAProxy checks it without sending it traffic, and wait
        until its checks see it up. Fails (the old server untouched, the new one left in drain) after up_timeout."""
        p, m = self.p, self.m
        lines = []
        if hap.admin_name(new["admin_state"]) == "maint":
            lines.append("set server %s state drain" % self.new)
        if new["weight"] != weight:
            lines.append("set server %s weight %d" % (self.new, weight))
        if lines:
            hap.check_answer(hap.commands(p["socket"], lines), "; ".join(lines))
        up = m.checked_up()
        seen, waited = m.poll(m.read, up, p["up_timeout"])
        if not up(seen):
            result.update(m.described(seen), waited=waited, sessions=m.sessions())
            raise LbError("%s is not up in HAProxy's health checks after %g s (up_timeout; it is %s), so traffic was not "
                          "moved to it: %s still serves. %s is left in drain, where it takes no traffic; look at the "
                          "new instance on %s (its port, its health check path). %s"
                          % (self.new, p["up_timeout"], result["op_state"], self.old, self.new, seen.get("address"),
                             m.unchecked(seen)),
                          result)

    def drain_old(self, result):
        """Until the old server's sessions (the requests it was serving at the flip) end, or drain_timeout."""
        p = self.p
        current, waited = self.o.poll(self.o.sessions, lambda n: n == 0, p["drain_timeout"])
        if current > 0:
            result["replaced"].update(state="drain", sessions=current)
            result.update(state="ready", waited=waited)
            msg = ("%s serves now, but %s still has %d sessions after %.0f s (drain_timeout): it stays in drain, so its "
                   "old instance must not be stopped yet" % (self.new, self.old, current, p["drain_timeout"]))
            raise LbError(msg, result)


class Flips:
    """lb_member with `flips`: the flips of several hosts (each a new server and the old one it replaces) in one task
    and one runtime API call: every new server is warmed in drain until a check of it passed, then a single call sets
    every new server ready and every old one to drain, so a batch of hosts moves at once. When one new server is not
    up in time, nothing moves: every old server serves on."""

    def __init__(self, member):
        self.m = member
        self.p = member.p
        self.flips = []
        for flip in self.p["flips"]:
            params = dict(self.p, server=flip.get("server"), replaces=flip.get("replaces"), weight=flip.get("weight"),
                          flips=None, state=None, checks=None)
            self.flips.append(Flip(Member(params, check_mode=member.check_mode, diff=member.diff, clock=member.clock,
                                          sleep=member.sleep)))

    def check(self):
        """Every flip names two valid servers, each server in one flip only, before anything is read or sent."""
        p = self.p
        given = [name for name in ("server", "replaces", "state", "checks", "weight") if p.get(name) is not None]
        if given:
            raise LbError("flips cannot be given with %s: each flip names its server, the one it replaces and its "
                          "weight" % ", ".join(given))
        if not self.flips:
            raise LbError("flips is empty: give at least one flip (server, replaces)")
        seen = set()
        for flip in self.flips:
            for what in ("server", "replaces"):
                if not flip.p.get(what):
                    raise LbError("every flip needs server and replaces; got %s" % {
                        k: flip.p.get(k) for k in ("server", "replaces", "weight")})
                try:
                    hap.check_name(what, flip.p[what])
                except hap.HAProxyError as exc:
                    raise LbError(str(exc))
            if flip.p["weight"] is not None and not 0 <= flip.p["weight"] <= 256:
                raise LbError("weight must be from 0 to 256, got %d (the flip to %s)" % (flip.p["weight"], flip.new))
            if flip.p["server"] == flip.p["replaces"]:
                raise LbError("a flip's replaces names its server itself (%s): name the server that serves now"
                              % flip.p["server"])
            for name in (flip.p["server"], flip.p["replaces"]):
                if name in seen:
                    raise LbError("server %s is named in more than one flip: each server can move once in a task"
                                  % name)
                seen.add(name)

    def names(self):
        return [name for flip in self.flips for name in (flip.p["server"], flip.p["replaces"])]

    def read(self):
        """Every server of the flips, from one `show servers state` of the backend: {server name: entry}."""
        return hap.servers_state(self.p["socket"], self.p["backend"], self.names())

    def sessions(self):
        """The current sessions of every server of the flips, from one `show stat`: {server name: scur}."""
        return hap.sessions_of(self.p["socket"], self.p["backend"], self.names())

    def run(self):
        self.check()
        m = self.m
        seen = self.read()
        rows, todo = [], []
        # Without wait, an old server left in drain is a flip made (its requests end there).
        settled = ("maint",) if self.p["wait"] else ("drain", "maint")
        for flip in self.flips:
            new, old = seen[flip.p["server"]], seen[flip.p["replaces"]]
            weight = flip.p["weight"] if flip.p["weight"] is not None else old["weight"]
            row = {"server": flip.p["server"], "previous_state": hap.admin_name(new["admin_state"]),
                   "previous_weight": new["weight"], "weight": weight,
                   "replaced": {"server": flip.p["replaces"], "previous_state": hap.admin_name(old["admin_state"])}}
            done = (row["previous_state"] == "ready" and new["weight"] == weight
                    and row["replaced"]["previous_state"] in settled)
            rows.append(row)
            if not done:
                todo.append((flip, row, new, settled[0]))
        result = {"changed": bool(todo), "flipped_at": None, "waited": 0.0, "flips": rows}
        if m.diff and todo:
            result["diff"] = {"before": {}, "after": {}}
            for _flip, row, _new, after in todo:
                result["diff"]["before"].update({row["server"]: row["previous_state"],
                                                 row["replaced"]["server"]: row["replaced"]["previous_state"]})
                result["diff"]["after"].update({row["server"]: "ready", row["replaced"]["server"]: after})
        if not m.check_mode and todo:
            started = m.clock()
            self.warm_up(result, todo)
            # The flips: in one call every new server takes new requests and every old one stops taking them.
            lines = []
            for flip, _row, _new, _after in todo:
                lines += ["set server %s state ready" % flip.new, "set server %s state drain" % flip.old]
            hap.check_answer(hap.commands(self.p["socket"], lines),
                             "the flips to %s" % ", ".join(flip.new for flip, _r, _n, _a in todo))
            result["flipped_at"] = round(time.time(), 3)
            if self.p["wait"]:
                self.drain_old(result, todo)
            result["waited"] = round(m.clock() - started, 3)
        self.describe(result, check_mode=m.check_mode, todo=todo)
        return result

    def describe(self, result, check_mode=False, todo=()):
        """Each flip's row as the servers are now (in check mode, as the flips would leave them)."""
        seen, sessions = self.read(), self.sessions()
        planned = {row["server"]: after for _flip, row, _new, after in todo}
        for row in result["flips"]:
            new, old = seen[row["server"]], seen[row["replaced"]["server"]]
            if check_mode:
                row.update(Member.described(new), state="ready", weight=row["weight"])
                row["replaced"]["state"] = planned.get(row["server"], row["replaced"]["previous_state"])
            else:
                row.update(Member.described(new))
                row["replaced"]["state"] = hap.admin_name(old["admin_state"])
            row["sessions"] = sessions[row["server"]]
            row["replaced"]["sessions"] = sessions[row["replaced"]["server"]]

    def warm_up(self, result, todo):
        """Every new server to drain at its weight (one call), then wait until the checks see every one up. Fails,
        every old server untouched and the new ones left in drain, after up_timeout."""
        m = self.m
        lines = []
        for flip, row, new, _after in todo:
            if hap.admin_name(new["admin_state"]) == "maint":
                lines.append("set server %s state drain" % flip.new)
            if new["weight"] != row["weight"]:
                lines.append("set server %s weight %d" % (flip.new, row["weight"]))
        if lines:
            hap.check_answer(hap.commands(self.p["socket"], lines), "; ".join(lines))
        seen, waited, up = wait_all_up(m, {flip.p["server"]: flip.m for flip, _row, _new, _after in todo}, self.read)
        down = [flip for flip, _row, _new, _after in todo if not up[flip.p["server"]]]
        if not down:
            return
        result["waited"] = waited
        self.describe(result)
        raise LbError("%s not up in HAProxy's health checks after %g s (up_timeout), so no traffic was moved: %s still "
                      "serve%s. The new servers are left in drain, where they take no traffic; look at the new "
                      "instances (%s: their port, their health check path). %s"
                      % (", ".join("%s (%s)" % (f.new, hap.op_name(seen[f.p["server"]]["op_state"])) for f in down)
                         + (" is" if len(down) == 1 else " are"), self.p["up_timeout"],
                         ", ".join(f.old for f, _r, _n, _a in todo), "s" if len(todo) == 1 else "",
                         ", ".join(str(seen[f.p["server"]].get("address")) for f in down),
                         " ".join(f.m.unchecked(seen[f.p["server"]]) for f in down).strip()), result)

    def drain_old(self, result, todo):
        """Until every old server's sessions end, or drain_timeout; then every drained one goes to maint (one call).
        Fails naming those whose sessions stay: they stay in drain, so their instances must not be stopped yet."""
        sessions, stay = drain_then_maint(self.m, [flip.p["replaces"] for flip, _row, _new, _after in todo],
                                          self.sessions)
        if stay:
            self.describe(result)
            one = len(stay) == 1
            raise LbError("the new servers serve now, but sessions stay after %g s (drain_timeout) on %s: %s in drain, "
                          "so %s must not be stopped yet"
                          % (self.p["drain_timeout"],
                             ", ".join("%s/%s (%d)" % (self.p["backend"], n, sessions[n]) for n in stay),
                             "it stays" if one else "they stay", "its old instance" if one else "their old instances"),
                          result)


class Servers:
    """lb_member with `servers`: several servers of the backend set to one state (drain or maint) in one task, the
    commands in one runtime API call and one wait for all of them. State drain with wait_up is a warm-up: servers in
    maintenance come into drain, where HAProxy checks them without sending them traffic, and the task waits until a
    check of every one passed. State maint with wait retires them: each one not in maintenance drains, and once its
    sessions ended (drain_timeout) goes to maint; those whose sessions stay are left in drain. Each server's row says
    how it ended (its state, op_state, sessions; `up` with wait_up), so that a caller can tell which one failed."""

    def __init__(self, member):
        self.m = member
        self.p = member.p
        self.names = list(self.p["servers"] or [])

    def check(self):
        """Valid names, each once, a state this mode sets, and nothing it does not take, before anything is read."""
        p = self.p
        given = [name for name in ("server", "replaces", "checks", "weight") if p.get(name) is not None]
        given += ["flips"] if p.get("flips") is not None else []
        if given:
            raise LbError("servers cannot be given with %s: servers sets the state of each server it names"
                          % ", ".join(given))
        if not self.names:
            raise LbError("servers is empty: name at least one server")
        if p["state"] not in ("drain", "maint"):
            raise LbError("servers sets state=drain or state=maint (got state=%s); set servers ready one by one "
                          "(server), or flip to them (flips)" % p["state"])
        if p["wait_up"] and p["state"] != "drain":
            raise LbError("wait_up with servers needs state=drain (a warm-up: HAProxy checks each server in drain); "
                          "got state=%s" % p["state"])
        seen = set()
        for name in self.names:
            try:
                hap.check_name("server", name)
            except hap.HAProxyError as exc:
                raise LbError(str(exc))
            if name in seen:
                raise LbError("server %s is named twice in servers: name each server once" % name)
            seen.add(name)

    def read(self):
        return hap.servers_state(self.p["socket"], self.p["backend"], self.names)

    def sessions(self):
        return hap.sessions_of(self.p["socket"], self.p["backend"], self.names)

    def target(self, name):
        return "%s/%s" % (self.p["backend"], name)

    def send(self, state, names):
        """One call that sets every server in `names` to `state`."""
        if names:
            lines = ["set server %s state %s" % (self.target(name), state) for name in names]
            hap.check_answer(hap.commands(self.p["socket"], lines), "%s of %s" % (state, ", ".join(names)))

    def run(self):
        self.check()
        p, m = self.p, self.m
        want = p["state"]
        seen = self.read()
        rows = [{"server": name, "previous_state": hap.admin_name(seen[name]["admin_state"])} for name in self.names]
        todo = [row["server"] for row in rows if row["previous_state"] != want]
        result = {"changed": bool(todo), "waited": 0.0, "servers": rows}
        if m.diff and todo:
            result["diff"] = {"before": {row["server"]: row["previous_state"] for row in rows if row["server"] in todo},
                              "after": {name: want for name in todo}}
        if m.check_mode:
            self.describe(result, planned={name: want for name in todo})
            return result
        started = m.clock()
        try:
            if want == "drain":
                self.send("drain", todo)
                if p["wait_up"]:
                    self.wait_up(result)
                if p["wait"]:
                    self.wait_drained(result, self.names, "drain")
            elif p["wait"]:
                # Retire: each server drains (those in drain already stay), and goes to maint once its sessions ended.
                self.send("drain", [row["server"] for row in rows if row["previous_state"] == "ready"])
                self.wait_drained(result, todo, "maint")
            else:
                self.send("maint", todo)
        finally:
            result["waited"] = round(m.clock() - started, 3)
        self.describe(result)
        return result

    def describe(self, result, planned=None):
        """Each server's row as it is now (in check mode, with the state the task would set)."""
        seen, sessions = self.read(), self.sessions()
        for row in result["servers"]:
            row.update(Member.described(seen[row["server"]]), sessions=sessions[row["server"]])
            if planned is not None:
                row["state"] = planned.get(row["server"], row["state"])

    def wait_up(self, result):
        """Until HAProxy's checks see every server up (Member.checked_up), or up_timeout. Fails naming those that are
        not: every server stays in drain, where it takes no traffic."""
        members = {name: Member(dict(self.p, server=name, servers=None)) for name in self.names}
        seen, _waited, up = wait_all_up(self.m, members, self.read)
        for row in result["servers"]:
            row["up"] = up[row["server"]]
        down = [name for name in self.names if not up[name]]
        if down:
            self.describe(result)
            raise LbError("%s not up in HAProxy's health checks after %g s (up_timeout): %s. %s in drain, where %s "
                          "no traffic; look at %s (the service on the server, its port, the check's path). %s"
                          % (", ".join(self.target(name) for name in down), self.p["up_timeout"],
                             ", ".join("%s is %s at %s" % (name, hap.op_name(seen[name]["op_state"]),
                                                           seen[name].get("address")) for name in down),
                             "It stays" if len(down) == 1 else "They stay", "it takes" if len(down) == 1 else
                             "they take", "its instance" if len(down) == 1 else "their instances",
                             " ".join(members[name].unchecked(seen[name]) for name in down).strip()), result)

    def wait_drained(self, result, names, then):
        """Until the sessions of every server in `names` end, or drain_timeout; with `then` maint, the drained ones go
        to maint in one call. Fails naming the servers whose sessions stay: they stay in drain."""
        if not names:
            return
        sessions, stay = drain_then_maint(self.m, names, self.sessions, maint=then == "maint")
        if stay:
            self.describe(result)
            one = len(stay) == 1
            raise LbError("sessions stay after %g s (drain_timeout) on %s: %s in drain%s"
                          % (self.p["drain_timeout"],
                             ", ".join("%s (%d)" % (self.target(name), sessions[name]) for name in stay),
                             "it stays" if one else "they stay",
                             (", so %s must not be stopped yet" % ("its instance" if one else "their instances"))
                             if then == "maint" else ""), result)
