#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: seedops.deploy contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
module: staged_restart
short_description: Restart or reload a systemd service, wait until it is healthy, roll back the release if not
version_added: 0.1.0
author: Seedops Maintainers (@seedops-maintainers)
description:
  - Restarts (or, with O(mode=reload), reloads) a systemd service and waits for its health check - HTTP or TCP,
    N consecutive successes within a deadline (see M(seedops.deploy.health_check)).
  - When the service does not become healthy and O(path) names its release directory, switches C(current) back to
    the previous healthy release (or O(rollback_to)), marks the release that failed, restarts the service, confirms
    its health, and then fails with a report - the health responses seen, what was rolled back, and the final state.
  - With O(mode=reload) the service's main process must stay the same; a reload that restarts the process counts
    as a failure of the reload.
options:
  service:
    description: The systemd unit, for example V(app) or V(app.service).
    type: str
    required: true
  mode:
    description: V(restart) the service, or V(reload) it (C(systemctl reload), for example SIGHUP) for configuration-only changes.
    type: str
    choices: [restart, reload]
    default: restart
  daemon_reload:
    description: Run C(systemctl daemon-reload) first (after a unit file changed).
    type: bool
    default: false
  health:
    description: The health check.
    type: dict
    required: true
    suboptions:
      url:
        description: HTTP(S) URL to GET; give this or O(health.port).
        type: str
      status_code:
        description: Status codes that count as healthy.
        type: list
        elements: int
        default: [200]
      body_regex:
        description: Regular expression the body must match.
        type: str
      headers:
        description: Extra request headers.
        type: dict
        default: {}
      host:
        description: Host for a TCP check.
        type: str
        default: 127.0.0.1
      port:
        description: TCP port for a TCP check.
        type: int
      successes:
        description: Consecutive successes needed.
        type: int
        default: 3
      interval:
        description: Seconds between probes.
        type: float
        default: 0.5
      timeout:
        description: Seconds to wait for health in all.
        type: float
        default: 60
      request_timeout:
        description: Seconds to wait for one probe.
        type: float
        default: 5
      validate_certs:
        description: Verify TLS certificates.
        type: bool
        default: true
  path:
    description:
      - The application's release base directory (see M(seedops.deploy.release)). When given, an unhealthy service
        is rolled back to the previous healthy release.
    type: path
  rollback:
    description: Roll back when the service is not healthy (needs O(path)).
    type: bool
    default: true
  rollback_to:
    description: Roll back to this release instead of the previous healthy one.
    type: str
  lock_timeout:
    description: Seconds to wait for the deploy lock of O(path) before a rollback.
    type: int
    default: 60
attributes:
  check_mode:
    support: full
    details: In check mode nothing is restarted; the task reports that it would be.
  diff_mode:
    support: none
  platform:
    support: full
    platforms: posix
extends_documentation_fragment:
  - ansible.builtin.action_common_attributes
seealso:
  - module: seedops.deploy.health_check
  - module: seedops.deploy.release
"""

EXAMPLES = r"""
- name: Restart into the new release; roll back by itself if it is not healthy
  seedops.deploy.staged_restart:
    service: app
    path: /srv/app
    health:
      url: http://127.0.0.1:8080/healthz
      successes: 3
      timeout: 30

- name: Apply a configuration change without a restart
  seedops.deploy.staged_restart:
    service: app
    mode: reload
    health:
      url: http://127.0.0.1:8080/healthz
"""

RETURN = r"""
healthy:
  description: Whether the service ended healthy in the release it was started in.
  returned: always
  type: bool
health:
  description: The health report after the restart or reload - healthy, attempts, elapsed, responses.
  returned: unless check mode
  type: dict
pid_before:
  description: The service's main process id before.
  returned: always
  type: int
pid_after:
  description: The service's main process id after.
  returned: unless check mode
  type: int
release:
  description: The live release after the task (when O(path) is given).
  returned: when O(path) is given
  type: str
rolled_back:
  description: Whether the release was rolled back.
  returned: always
  type: bool
rolled_back_to:
  description: The release switched back to.
  returned: when rolled back
  type: str
failed_release:
  description: The release that was rolled back and marked failed.
  returned: when rolled back
  type: str
rollback_health:
  description: The health report after the rollback's restart.
  returned: when rolled back
  type: dict
times:
  description:
    - Wall-clock times (seconds since the epoch, from the host's clock) of the restart or reload - V(start) when the
      task began, V(acted) when C(systemctl) returned (the new process is running), V(end) when the health check
      ended. M(seedops.deploy.deploy_report) uses them for the timeline and the version-skew window.
  returned: unless check mode
  type: dict
  sample: {"start": 1795791234.12, "acted": 1795791234.51, "end": 1795791235.43}
"""

import time

from ansible.module_utils.basic import AnsibleModule
from ansible.module_utils.common.text.converters import to_native

from ansible_collections.seedops.deploy.plugins.module_utils import _health
from ansible_collections.seedops.deploy.plugins.module_utils import _lock
from ansible_collections.seedops.deploy.plugins.module_utils import _releases as rel


class Restarter:
    def __init__(self, module):
        self.module = module
        self.p = module.params
        self.h = module.params["health"]
        self.systemctl = module.get_bin_path("systemctl", required=True)
        self.result = {"changed": False, "healthy": False, "rolled_back": False}

    def run_systemctl(self, *args):
        rc, out, err = self.module.run_command([self.systemctl] + list(args))
        return rc, (out + err).strip()

    def main_pid(self):
        rc, out = self.run_systemctl("show", "--property=MainPID", "--value", self.p["service"])
        try:
            return int(out.splitlines()[-1]) if rc == 0 and out else 0
        except ValueError:
            return 0

    def check(self):
        h = self.h
        return _health.wait_healthy(_health.probe_from(h), h["successes"], h["interval"], h["timeout"])

    def journal_tail(self):
        journalctl = self.module.get_bin_path("journalctl")
        if not journalctl:
            return []
        rc, out, err = self.module.run_command([journalctl, "-u", self.p["service"], "-n", "15", "--no-pager",
                                                "-o", "cat"])
        return out.splitlines()[-15:] if rc == 0 else []

    def act(self, mode):
        rc, out = self.run_systemctl(mode, self.p["service"])
        return rc, out

    def run(self):
        p = self.p
        if not self.h["url"] and not self.h["port"]:
            self.module.fail_json(msg="health needs url (an HTTP check) or port (a TCP check)")
        if p["path"] is not None and p["rollback_to"] is not None:
            try:
                rel.validate_release_id(p["rollback_to"])
            except rel.ReleaseError as exc:
                self.module.fail_json(msg=to_native(exc))
        layout = rel.Layout(p["path"]) if p["path"] else None
        self.result["pid_before"] = self.main_pid()
        if layout:
            self.result["release"] = rel.current_release(layout)
        self.result["changed"] = True
        if self.module.check_mode:
            self.result["healthy"] = True
            return self.result
        times = self.result["times"] = {"start": round(time.time(), 3)}
        if p["daemon_reload"]:
            self.run_systemctl("daemon-reload")
        rc, out = self.act(p["mode"])
        times["acted"] = round(time.time(), 3)
        report = self.check() if rc == 0 else {"healthy": False, "attempts": 0, "consecutive": 0, "elapsed": 0,
                                               "responses": [{"error": "systemctl %s failed: %s" % (p["mode"], out)}]}
        self.result["health"] = report
        self.result["pid_after"] = self.main_pid()
        times["end"] = round(time.time(), 3)
        problem = None
        if rc != 0:
            problem = "systemctl %s %s failed (rc %d): %s" % (p["mode"], p["service"], rc, out)
        elif not report["healthy"]:
            problem = "%s did not become healthy after %s: %d of %d consecutive successes in %.1f s; last: %s" % (
                p["service"], p["mode"], report["consecutive"], self.h["successes"], report["elapsed"],
                _health.describe(report))
        elif p["mode"] == "reload" and self.result["pid_before"] and self.result["pid_after"] != self.result["pid_before"]:
            problem = "%s restarted during a reload (pid %s -> %s); reload must keep the process" % (
                p["service"], self.result["pid_before"], self.result["pid_after"])
        if problem is None:
            self.result["healthy"] = True
            return self.result
        self.result["journal"] = self.journal_tail()
        if not (layout and p["rollback"] and p["mode"] == "restart"):
            self.module.fail_json(msg=problem + ". Nothing was rolled back%s." % (
                "" if layout else " (give path to roll back the release)"), **self.result)
        self.roll_back(layout, problem)

    def roll_back(self, layout, problem):
        p = self.p
        with _lock.DeployLock(layout.lock, "seedops.deploy.staged_restart rollback", p["lock_timeout"]):
            records = rel.read_records(layout)
            current = rel.current_release(layout)
            target = p["rollback_to"] or rel.rollback_target(records, current)
            if not target or target not in records or not records[target].get("exists") or target == current:
                self.module.fail_json(msg="%s. No previous healthy release to roll back to under %s; the service is "
                                          "left in %s" % (problem, layout.releases, current), **self.result)
            rel.activate(layout, records, current, target, leaving_state="failed")
        self.result.update(rolled_back=True, rolled_back_to=target, failed_release=current, release=target)
        rc, out = self.act("restart")
        again = self.check() if rc == 0 else {"healthy": False, "attempts": 0, "consecutive": 0, "elapsed": 0,
                                              "responses": [{"error": out}]}
        self.result["rollback_health"] = again
        self.result["pid_after"] = self.main_pid()
        final = ("healthy in %s" % target) if again["healthy"] else (
            "STILL UNHEALTHY in %s (last: %s); look at the service now" % (target, _health.describe(again)))
        self.module.fail_json(msg="%s. Rolled back: %s marked failed, current switched to %s and %s restarted; the "
                                  "service is %s." % (problem, current, target, p["service"], final), **self.result)


def main():
    module = AnsibleModule(
        argument_spec=dict(
            service=dict(type="str", required=True),
            mode=dict(type="str", default="restart", choices=["restart", "reload"]),
            daemon_reload=dict(type="bool", default=False),
            health=dict(type="dict", required=True, options=_health.ARGUMENT_SPEC),
            path=dict(type="path"),
            rollback=dict(type="bool", default=True),
            rollback_to=dict(type="str"),
            lock_timeout=dict(type="int", default=60),
        ),
        supports_check_mode=True,
    )
    restarter = Restarter(module)
    try:
        result = restarter.run()
    except (rel.ReleaseError, _lock.LockTimeout, OSError) as exc:
        module.fail_json(msg=to_native(exc), **restarter.result)
    module.exit_json(**result)


if __name__ == "__main__":
    main()
