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
  - With O(release_id), C(current) is first switched to that staged release, as M(seedops.deploy.release) with
    C(state=active) does (the same deploy lock, records and O(keep)), so a deploy's switch and restart are one task
    and one module run. A switch that is refused restarts nothing.
options:
  service:
    description: The systemd unit, for example V(app) or V(app.service).
    type: str
    required: true
  instance:
    description:
      - Restart one instance of a template unit that runs beside itself (C(deploy_beside_ports)) - the unit
        C(<service>@<instance>) - and check its health at that port - O(health)'s URL, or TCP check, with its port
        replaced by O(instance).
    type: int
  mode:
    description: V(restart) the service, or V(reload) it (C(systemctl reload), for example SIGHUP) for configuration-only changes.
    type: str
    choices: [restart, reload]
    default: restart
  daemon_reload:
    description: Run C(systemctl daemon-reload) first (after a unit file changed).
    type: bool
    default: false
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
  release_id:
    description:
      - Before the restart, switch C(current) under O(path) to this release, which must be staged there already
        (see M(seedops.deploy.release)). Needs O(path) and O(mode=restart).
      - Unchanged when it is live already; the service is restarted either way.
    type: str
  previous_state:
    description:
      - What the release that was live becomes when O(release_id) switches away from it - V(previous), a rollback
        target, or V(failed), as a rollback leaves it (for example, going back from a release that failed later).
    type: str
    choices: [previous, failed]
    default: previous
  keep:
    description: After the switch to O(release_id), keep this many releases that are not failed (see M(seedops.deploy.release)).
    type: int
  deployed_by:
    description:
      - Who switches, recorded as C(activated_by) of O(release_id) (and C(failed_by) of a release this task marks
        failed). The action plugin fills in the controller host and user and the AWX/Tower job id and user, as
        M(seedops.deploy.release) does; the module adds the remote user.
    type: dict
    default: {}
  lock_timeout:
    description: Seconds to wait for the deploy lock of O(path) before the switch to O(release_id) or a rollback.
    type: int
    default: 60
attributes:
  check_mode:
    support: full
    details: In check mode nothing is switched or restarted; the task reports that it would be.
  diff_mode:
    support: partial
    details: With O(release_id), the diff shows C(current) before and after and the releases pruned.
  action:
    support: full
    details: The action plugin records the controller host and user, and the AWX/Tower job id and user, in O(deployed_by).
extends_documentation_fragment:
  - seedops.deploy.attributes
  - seedops.deploy.attributes.action
  - ansible.builtin.action_common_attributes
  - ansible.builtin.action_common_attributes.flow
  - seedops.deploy.health.suboptions
seealso:
  - module: seedops.deploy.health_check
  - module: seedops.deploy.release
"""

EXAMPLES = r"""
- name: Switch to the staged release 2.0.0 and restart into it; roll back by itself if it is not healthy
  seedops.deploy.staged_restart:
    service: app
    path: /srv/app
    release_id: 2.0.0
    keep: 5
    health:
      url: http://127.0.0.1:8080/healthz
      successes: 3
      timeout: 30

- name: Restart into the release current points at
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
switched:
  description: Whether this task switched C(current) to O(release_id).
  returned: when O(release_id) is given
  type: bool
previous:
  description: The release that was live before the switch to O(release_id).
  returned: when O(release_id) is given and the switch was made or found done
  type: str
pruned:
  description: Releases removed by O(keep).
  returned: when O(release_id) is given
  type: list
  elements: str
lock_wait:
  description: Seconds spent blocked behind another holder of the deploy lock before the switch; V(0.0) when it was free.
  returned: when O(release_id) is given and the switch was made or found done
  type: float
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
      task began, V(switched) when C(current) pointed at O(release_id) (only with O(release_id)), V(acted) when
      C(systemctl) returned (the new process is running), V(end) when the health check ended.
      M(seedops.deploy.deploy_report) uses them for the timeline and the version-skew window.
  returned: unless check mode
  type: dict
  sample: {"start": 1795791234.12, "switched": 1795791234.2, "acted": 1795791234.51, "end": 1795791235.43}
"""

from ansible.module_utils.basic import AnsibleModule
from ansible.module_utils.common.text.converters import to_native

from ansible_collections.seedops.deploy.plugins.module_utils import _health
from ansible_collections.seedops.deploy.plugins.module_utils import _lock
from ansible_collections.seedops.deploy.plugins.module_utils import _releases as rel
from ansible_collections.seedops.deploy.plugins.module_utils import _restart


def main():
    module = AnsibleModule(
        argument_spec=dict(
            service=dict(type="str", required=True),
            instance=dict(type="int"),
            mode=dict(type="str", default="restart", choices=["restart", "reload"]),
            daemon_reload=dict(type="bool", default=False),
            health=_health.DICT_OPTION,
            path=dict(type="path"),
            rollback=dict(type="bool", default=True),
            rollback_to=dict(type="str"),
            release_id=dict(type="str"),
            previous_state=dict(type="str", default="previous", choices=["previous", "failed"]),
            keep=dict(type="int"),
            deployed_by=dict(type="dict", default={}),
            lock_timeout=dict(type="int", default=60),
        ),
        supports_check_mode=True,
        required_by={"release_id": ("path",), "keep": ("release_id",)},
    )
    systemd = _restart.Systemd(module.run_command, module.get_bin_path("systemctl", required=True),
                               module.get_bin_path("journalctl"))
    params = dict(module.params)
    if params["instance"] is not None:
        if not 0 < params["instance"] < 65536:
            module.fail_json(msg="instance must be a port (1-65535), got %s" % params["instance"])
        params["service"] = "%s@%d" % (params["service"], params["instance"])
        params["health"] = _health.at_port(params["health"], params["instance"])
    restarter = _restart.Restarter(params, systemd, check_mode=module.check_mode)
    try:
        result = restarter.run()
    except _restart.RestartFailed as exc:
        warn(module, restarter)
        module.fail_json(msg=exc.msg, **exc.result)
    except (rel.ReleaseError, _lock.LockTimeout, OSError) as exc:
        warn(module, restarter)
        module.fail_json(msg=to_native(exc), **restarter.result)
    warn(module, restarter)
    if module._diff and restarter.diff is not None:
        result["diff"] = restarter.diff
    module.exit_json(**result)


def warn(module, restarter):
    for warning in restarter.warnings:
        module.warn(warning)


if __name__ == "__main__":
    main()
