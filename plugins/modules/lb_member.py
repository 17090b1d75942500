#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: seedops.deploy contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
module: lb_member
short_description: Take a backend server out of HAProxy's rotation and back, through the runtime API
version_added: 0.1.0
author: Seedops Maintainers (@seedops-maintainers)
description:
  - Sets a server's administrative state in HAProxy over its runtime API (the admin stats socket) - V(drain)
    (no new connections; waits until its sessions reach zero), V(maint) (out of rotation), V(ready) (back in) - and
    its weight (for a canary share of traffic).
  - Runs on the load balancer, usually with C(delegate_to). Reads the state first; unchanged when it already is
    as asked. Check mode and diff mode.
  - With O(checks), turns the server's health checks off and on. While they are off, HAProxy keeps the server's
    last known state, so a server restarting for a moment stays in rotation and HAProxy's own retries (C(retries),
    C(option redispatch)) carry the requests that hit the restart. C(deploy_switch=together) uses this.
  - The states are runtime states, which a reload of HAProxy resets to the configuration's.
options:
  backend:
    description: The backend, for example V(app).
    type: str
    required: true
  server:
    description: The server's name in the backend (the seedops.deploy.haproxy role names servers after inventory hosts).
    type: str
    required: true
  state:
    description: Administrative state to set.
    type: str
    choices: [ready, drain, maint]
  weight:
    description: Weight to set, 0-256 (relative to the others; 0 takes no new traffic while staying up).
    type: int
  checks:
    description: Turn the server's health checks V(enabled) or V(disabled) (C(enable health) / C(disable health)).
    type: str
    choices: [enabled, disabled]
  socket:
    description: Path of HAProxy's admin socket.
    type: path
    default: /run/haproxy/admin.sock
  wait:
    description: With O(state=drain) or O(state=maint), wait until the server's current sessions reach zero.
    type: bool
    default: true
  drain_timeout:
    description: Seconds to wait for the sessions to reach zero before failing.
    type: float
    default: 60
  poll_interval:
    description: Seconds between session counts while waiting.
    type: float
    default: 0.25
attributes:
  check_mode:
    support: full
  diff_mode:
    support: full
  platform:
    support: full
    platforms: posix
extends_documentation_fragment:
  - ansible.builtin.action_common_attributes
notes:
  - "Why not community.general.haproxy: collections cannot come from Galaxy on every build machine, and one module
    should not pull in all of community.general; this one also waits for sessions to drain and reports them."
seealso:
  - module: seedops.deploy.staged_restart
"""

EXAMPLES = r"""
- name: Drain this host in the load balancer (wait for in-flight requests)
  seedops.deploy.lb_member:
    backend: app
    server: "{{ inventory_hostname }}"
    state: drain
    drain_timeout: 30
  delegate_to: "{{ item }}"
  loop: "{{ groups['lb'] }}"

- name: Back into rotation
  seedops.deploy.lb_member:
    backend: app
    server: "{{ inventory_hostname }}"
    state: ready
  delegate_to: "{{ groups['lb'][0] }}"

- name: A canary share of traffic
  seedops.deploy.lb_member:
    backend: app
    server: app1
    weight: 10
  delegate_to: lb1
"""

RETURN = r"""
state:
  description: The administrative state after the task.
  returned: always
  type: str
  sample: drain
previous_state:
  description: The administrative state before.
  returned: always
  type: str
weight:
  description: The weight after the task.
  returned: always
  type: int
previous_weight:
  description: The weight before.
  returned: always
  type: int
sessions:
  description: The server's current sessions when the task ended.
  returned: always
  type: int
waited:
  description: Seconds spent waiting for sessions to drain.
  returned: always
  type: float
checks:
  description: Whether the server's health checks are V(enabled) or V(disabled) after the task.
  returned: always
  type: str
  sample: enabled
previous_checks:
  description: The same, before.
  returned: always
  type: str
"""

import time

from ansible.module_utils.basic import AnsibleModule
from ansible.module_utils.common.text.converters import to_native

from ansible_collections.seedops.deploy.plugins.module_utils import _haproxy as hap


def read(module, p):
    servers = hap.parse_servers_state(hap.command(p["socket"], "show servers state %s" % p["backend"]))
    key = (p["backend"], p["server"])
    if key not in servers:
        names = sorted(s for b, s in servers if b == p["backend"])
        module.fail_json(msg="HAProxy has no server %s in backend %s (it has: %s)"
                         % (p["server"], p["backend"], ", ".join(names) or "no such backend"))
    return servers[key]


def sessions(p):
    row = hap.parse_stat(hap.command(p["socket"], "show stat")).get((p["backend"], p["server"]), {})
    return int(row.get("scur") or 0)


def main():
    module = AnsibleModule(
        argument_spec=dict(
            backend=dict(type="str", required=True),
            server=dict(type="str", required=True),
            state=dict(type="str", choices=["ready", "drain", "maint"]),
            weight=dict(type="int"),
            checks=dict(type="str", choices=["enabled", "disabled"]),
            socket=dict(type="path", default="/run/haproxy/admin.sock"),
            wait=dict(type="bool", default=True),
            drain_timeout=dict(type="float", default=60),
            poll_interval=dict(type="float", default=0.25),
        ),
        required_one_of=[("state", "weight", "checks")],
        supports_check_mode=True,
    )
    p = module.params
    if p["weight"] is not None and not 0 <= p["weight"] <= 256:
        module.fail_json(msg="weight must be from 0 to 256, got %d" % p["weight"])
    target = "%s/%s" % (p["backend"], p["server"])
    try:
        before = read(module, p)
        result = {"changed": False, "previous_state": hap.admin_name(before["admin_state"]),
                  "previous_weight": before["weight"], "previous_checks": hap.checks_name(before["check_state"]),
                  "waited": 0.0}
        state = p["state"] or result["previous_state"]
        weight = p["weight"] if p["weight"] is not None else before["weight"]
        commands = []
        if state != result["previous_state"]:
            commands.append("set server %s state %s" % (target, state))
        if weight != before["weight"]:
            commands.append("set server %s weight %d" % (target, weight))
        checks = p["checks"] or result["previous_checks"]
        if checks != result["previous_checks"]:
            commands.append("%s health %s" % ("enable" if checks == "enabled" else "disable", target))
        result["changed"] = bool(commands)
        if module._diff and commands:
            result["diff"] = {"before": {"state": result["previous_state"], "weight": before["weight"],
                                         "checks": result["previous_checks"]},
                              "after": {"state": state, "weight": weight, "checks": checks}}
        if not module.check_mode:
            for line in commands:
                hap.check_answer(hap.command(p["socket"], line), line)
            if p["wait"] and state in ("drain", "maint"):
                started = time.monotonic()
                current = sessions(p)
                while current > 0 and time.monotonic() - started < p["drain_timeout"]:
                    time.sleep(p["poll_interval"])
                    current = sessions(p)
                result["waited"] = round(time.monotonic() - started, 3)
                if current > 0:
                    module.fail_json(msg="%s still has %d sessions after %.0f s of %s (drain_timeout); it stays in %s"
                                     % (target, current, p["drain_timeout"], state, state),
                                     sessions=current, state=state, weight=weight, **result)
            after = read(module, p)
            state, weight = hap.admin_name(after["admin_state"]), after["weight"]
            checks = hap.checks_name(after["check_state"])
        result.update(state=state, weight=weight, checks=checks, sessions=sessions(p))
    except hap.HAProxyError as exc:
        module.fail_json(msg=to_native(exc))
    module.exit_json(**result)


if __name__ == "__main__":
    main()
