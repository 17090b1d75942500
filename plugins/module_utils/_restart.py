# -*- coding: utf-8 -*-
# Copyright: seedops.deploy contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Health-gated restarts of a systemd service with a rollback of the release (private to seedops.deploy).

The logic of seedops.deploy.staged_restart. systemctl and journalctl are reached through a `Systemd`
object built on a runner with the signature of AnsibleModule.run_command, so tests can drive it with
a fake one."""

from __future__ import annotations

import time

from ansible_collections.seedops.deploy.plugins.module_utils import _health
from ansible_collections.seedops.deploy.plugins.module_utils import _lock
from ansible_collections.seedops.deploy.plugins.module_utils import _release
from ansible_collections.seedops.deploy.plugins.module_utils import _releases as rel

JOURNAL_LINES = 15


class RestartFailed(Exception):
    """The service did not end healthy (or could not be restarted); `result` is what the task returns."""

    def __init__(self, msg, result):
        super().__init__(msg)
        self.msg = msg
        self.result = result


class Systemd:
    """systemctl and journalctl through `run(argv) -> (rc, stdout, stderr)` (AnsibleModule.run_command)."""

    def __init__(self, run, systemctl, journalctl=None):
        self.run = run
        self.systemctl = systemctl
        self.journalctl = journalctl

    def ctl(self, *args):
        """(rc, stdout and stderr joined and stripped)."""
        rc, out, err = self.run([self.systemctl] + list(args))
        return rc, (out + err).strip()

    def main_pid(self, service):
        """The unit's main process id; 0 when it has none or systemctl cannot tell."""
        rc, out = self.ctl("show", "--property=MainPID", "--value", service)
        try:
            return int(out.splitlines()[-1]) if rc == 0 and out else 0
        except ValueError:
            return 0

    def journal_tail(self, service, lines=JOURNAL_LINES):
        if not self.journalctl:
            return []
        rc, out, _err = self.run([self.journalctl, "-u", service, "-n", str(lines), "--no-pager", "-o", "cat"])
        return out.splitlines()[-lines:] if rc == 0 else []


def not_acted(error):
    """A health report for a restart or reload that systemctl refused."""
    return {"healthy": False, "attempts": 0, "consecutive": 0, "elapsed": 0, "responses": [{"error": error}]}


class Restarter:
    """One staged restart. `params` are staged_restart's options; `check` probes until healthy (by
    default the health check in params["health"]) and returns a _health.wait_healthy report.

    With params["release_id"], current is first switched to that staged release (as the release module's
    state=active does, under the same deploy lock), so a deploy's switch and restart are one module run. A switch
    that fails restarts nothing: the result then has no "health"."""

    def __init__(self, params, systemd, check_mode=False, check=None, clock=time.time):
        self.p = params
        self.h = params["health"]
        self.systemd = systemd
        self.check_mode = check_mode
        self.check = check or self.wait_healthy
        self.clock = clock
        self.result = {"changed": False, "healthy": False, "rolled_back": False}
        self.warnings = []
        self.diff = None

    def wait_healthy(self):
        h = self.h
        return _health.wait_healthy(_health.probe_from(h), h["successes"], h["interval"], h["timeout"])

    def now(self):
        return round(self.clock(), 3)

    def fail(self, msg):
        raise RestartFailed(msg, self.result)

    def run(self):
        """Restart or reload and wait for health; roll back when it stays unhealthy. Returns the result, or
        raises RestartFailed (after a rollback too), rel.ReleaseError, _lock.LockTimeout or OSError."""
        p = self.p
        if not self.h["url"] and not self.h["port"]:
            self.fail("health needs url (an HTTP check) or port (a TCP check)")
        if p["path"] is not None and p["rollback_to"] is not None:
            try:
                rel.validate_release_id(p["rollback_to"])
            except rel.ReleaseError as exc:
                self.fail("rollback_to: %s" % exc)
        if p.get("release_id") is not None and (p["path"] is None or p["mode"] != "restart"):
            self.fail("release_id needs path (the release base directory) and mode=restart")
        layout = rel.Layout(p["path"]) if p["path"] else None
        self.result["pid_before"] = self.systemd.main_pid(p["service"])
        if layout:
            self.result["release"] = rel.current_release(layout)
        start = self.now()
        if p.get("release_id") is not None:
            self.switch()
        self.result["changed"] = True
        if self.check_mode:
            self.result["healthy"] = True
            return self.result
        times = self.result["times"] = {"start": start}
        if p.get("release_id") is not None:
            times["switched"] = self.now()
        if p["daemon_reload"]:
            self.systemd.ctl("daemon-reload")
        rc, out = self.systemd.ctl(p["mode"], p["service"])
        times["acted"] = self.now()
        report = self.check() if rc == 0 else not_acted("systemctl %s failed: %s" % (p["mode"], out))
        self.result["health"] = report
        self.result["pid_after"] = self.systemd.main_pid(p["service"])
        times["end"] = self.now()
        problem = self.problem(rc, out, report)
        if problem is None:
            self.result["healthy"] = True
            return self.result
        self.result["journal"] = self.systemd.journal_tail(p["service"])
        if not (layout and p["rollback"] and p["mode"] == "restart"):
            self.fail(problem + ". Nothing was rolled back%s." % ("" if layout else " (give path to roll back the release)"))
        return self.roll_back(layout, problem)

    def switch(self):
        """current -> release_id under the deploy lock (pruning to keep); a refusal fails before any restart."""
        p = self.p
        releaser = _release.Releaser.switcher(
            p["path"], p["release_id"], keep=p.get("keep"), deployed_by=p.get("deployed_by"),
            lock_timeout=p["lock_timeout"], leaving_state=p.get("previous_state") or "previous",
            check_mode=self.check_mode)
        try:
            done = releaser.run()
        except _release.ERRORS + (OSError,) as exc:
            self.result.update(switched=False, pruned=[])
            self.fail("could not switch %s to release %s: %s. Nothing was restarted: %s runs %s as before"
                      % (p["path"], p["release_id"], exc, p["service"], self.result.get("release")))
        finally:
            self.warnings.extend(releaser.warnings)
        self.diff = releaser.diff
        self.result.update(switched=done["switched"], previous=done["previous"], pruned=done["pruned"],
                           lock_wait=done["lock_wait"], release=done["current"])

    def problem(self, rc, out, report):
        """What went wrong, in one sentence, or None."""
        p = self.p
        if rc != 0:
            return "systemctl %s %s failed (rc %d): %s" % (p["mode"], p["service"], rc, out)
        if not report["healthy"]:
            return "%s did not become healthy after %s: %d of %d consecutive successes in %.1f s; last: %s" % (
                p["service"], p["mode"], report["consecutive"], self.h["successes"], report["elapsed"],
                _health.describe(report))
        before, after = self.result["pid_before"], self.result["pid_after"]
        if p["mode"] == "reload" and before and after != before:
            return "%s restarted during a reload (pid %s -> %s); reload must keep the process" % (p["service"], before, after)
        return None

    def who(self):
        """Who switched (failed_by of a release rolled back): the task's deployed_by, when it gave one."""
        given = self.p.get("deployed_by")
        return _release.with_remote_user(given) if given else None

    def roll_back(self, layout, problem):
        """Switch current back under the deploy lock, restart, probe again; always ends in RestartFailed."""
        p = self.p
        with _lock.DeployLock(layout.lock, "seedops.deploy.staged_restart rollback", p["lock_timeout"]):
            records = rel.read_records(layout)
            current = rel.current_release(layout)
            target = p["rollback_to"] or rel.rollback_target(records, current)
            if not target or target not in records or not records[target].get("exists") or target == current:
                self.fail("%s. No previous healthy release to roll back to under %s; the service is left in %s"
                          % (problem, layout.releases, current))
            rel.activate(layout, records, current, target, leaving_state="failed", by=self.who())
        self.result.update(rolled_back=True, rolled_back_to=target, failed_release=current, release=target)
        rc, out = self.systemd.ctl("restart", p["service"])
        again = self.check() if rc == 0 else not_acted(out)
        self.result["rollback_health"] = again
        self.result["pid_after"] = self.systemd.main_pid(p["service"])
        final = ("healthy in %s" % target) if again["healthy"] else (
            "STILL UNHEALTHY in %s (last: %s); look at the service now" % (target, _health.describe(again)))
        self.fail("%s. Rolled back: %s marked failed, current switched to %s and %s restarted; the service is %s."
                  % (problem, current, target, p["service"], final))
