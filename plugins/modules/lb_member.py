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
  - With O(wait_up), V(ready) and V(drain) also wait until HAProxy's own health checks see the server up, so that it
    takes traffic again (or, in drain, would) before the task ends. HAProxy counts a server that leaves maintenance as
    up at once, before any check ran; so the task waits for a check that passed since (its check health above
    C(rise)), and V(ready) from V(maint) waits for it in V(drain), out of rotation.
  - Runs on the load balancer, usually with C(delegate_to). Reads the state first; unchanged when it already is
    as asked. Check mode and diff mode.
  - With O(checks), turns the server's health checks off and on. While they are off, HAProxy keeps the server's
    last known state, so a server restarting for a moment stays in rotation and HAProxy's own retries (C(retries),
    C(option redispatch)) carry the requests that hit the restart. C(deploy_switch=together) uses this.
  - With O(replaces), flips traffic between two servers of one host, such as the old release's instance and a new
    one started beside it on another port. The new server (O(server)) goes from V(maint) to V(drain), where HAProxy
    checks it without sending it traffic, and the task waits until a check of it passed (O(up_timeout)). Then one
    runtime API call sets it V(ready) and O(replaces) to V(drain). When the old server's sessions have ended
    (O(drain_timeout)), it goes to V(maint), which also closes HAProxy's idle connections to it. Only then may its
    instance stop. Running it again with the two names swapped is the flip back. With O(wait=false), the task returns
    once traffic moved and leaves the old server in V(drain), where its requests end; a later task with
    O(state=maint) (and O(wait)) waits for them and puts it in maintenance, and only then may its instance stop.
  - With O(flips), the flips of several hosts (a rolling batch) in one task. Every new server is warmed in V(drain)
    until a check of it passed; then one runtime API call sets every new server V(ready) and every old one V(drain),
    so the batch moves at once. When one new server is not up within O(up_timeout), no traffic moves. One task on the
    load balancer costs one module run whatever the batch's size.
  - With O(servers), several servers set to V(drain) or V(maint) in one task, in one runtime API call and one wait
    for all of them. V(drain) with O(wait_up) warms them (each checked in drain until a check passed, taking no
    traffic); V(maint) with O(wait) retires them (each drains, and goes to maintenance once its sessions ended). The
    result has a row for each server, so a caller can tell which one did not come up or still has sessions.
  - The states are runtime states - a reload of HAProxy resets them to the configuration's unless it loads a
    server-state file, which the seedops.deploy.haproxy role sets up (saved before every reload and stop).
options:
  server:
    description:
      - The server's name in the backend (the seedops.deploy.haproxy role names servers after inventory hosts).
      - The same characters as O(backend) (letters, digits and C(-_.:)).
      - Required unless O(flips) or O(servers) is given.
    type: str
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
  wait:
    description:
      - With O(state=drain) or O(state=maint), wait until the server's current sessions reach zero.
      - With O(replaces), wait until the old server's sessions reach zero and put it in V(maint); V(false) leaves it
        in V(drain).
    type: bool
    default: true
  drain_timeout:
    description: Seconds to wait for the sessions to reach zero before failing.
    type: float
    default: 60
  wait_up:
    description:
      - With O(state=ready) or O(state=drain), wait until HAProxy's own health checks see the server operationally
        up (C(srv_op_state) 2 in C(show servers state)) - for example before the next host of a rolling patch run is
        drained, or before a flip to a server warmed in drain. Fails after O(up_timeout) seconds, naming the state
        HAProxy reports.
      - HAProxy counts a server that leaves maintenance as up at once, before any check ran (its check health starts
        at C(rise)). So with its checks enabled it also waits until its check health is above C(rise), where a check
        that passed puts it; a failing check takes it down. With C(fall 1) there is no such room, and up is enough.
      - With V(ready), a server in V(maint), or in V(drain) with no check passed yet, goes to (or stays in) V(drain)
        first, where HAProxy checks it without sending it traffic, and is set V(ready) once a check passed; so it
        takes no request before that. When none passes within O(up_timeout), the task fails and the server stays in
        V(drain).
      - A server whose health checks are disabled, or that has none, counts as up the same way (C(srv_op_state) 2).
      - Ignored with V(maint); check mode does not wait.
    type: bool
    default: false
  wait_if_down:
    description:
      - With O(state=ready), wait as O(wait_up) does only when HAProxy's enabled health checks see the server down
        when the task starts - for example when its checks failed while its service restarted. A server they see up
        is set ready at once.
      - A server in V(drain) that its checks see down stays there until a check passed, then is set V(ready); so a
        rolling deploy does not take the next server out while HAProxy still counts this one down.
      - Ignored with O(wait_up), which always waits, and with other states; check mode does not wait.
    type: bool
    default: false
  up_timeout:
    description: Seconds to wait for the server to come up with O(wait_up) (or O(wait_if_down)) before failing.
    type: float
    default: 60
  replaces:
    description:
      - The server that serves now and that O(server) replaces (a flip; see the description). O(state) must be
        V(ready) or left out, and O(checks) cannot be given. O(weight) is the new server's weight; without it, the
        new server takes the weight the old one has.
      - Fails, with the old server still serving and the new one in V(drain), when the new server's checks do not
        see it up within O(up_timeout). Fails, with the new server serving and the old one in V(drain), when the old
        one's sessions do not end within O(drain_timeout).
      - Unchanged when O(server) is V(ready) at that weight and O(replaces) in V(maint) already (with O(wait=false),
        in V(drain) or V(maint)).
    type: str
    version_added: 0.1.0
  flips:
    description:
      - Several flips in one task, each as O(replaces) makes one (see the description); instead of O(server),
        O(replaces), O(state), O(checks) and O(weight).
      - Every new server is brought to V(drain) at its weight and checked first; when one is not up within
        O(up_timeout), the task fails, every old server still serves and the new ones stay in V(drain). Then one call
        sets every new server V(ready) and every old one V(drain). With O(wait), the task waits until every old
        server's sessions ended (O(drain_timeout)) and puts them in V(maint); one whose sessions stay is left in
        V(drain) and named.
      - Unchanged when every flip is made already (as for O(replaces)); a flip made already is left as it is.
    type: list
    elements: dict
    suboptions:
      server:
        description: The new server, which takes the traffic.
        type: str
        required: true
      replaces:
        description: The server that serves now.
        type: str
        required: true
      weight:
        description: The new server's weight, 0-256; without it, the weight the old server has.
        type: int
    version_added: 0.1.0
  servers:
    description:
      - Several servers of the backend, set to O(state) together (see the description); instead of O(server). O(state)
        must be V(drain) or V(maint); O(replaces), O(flips), O(checks) and O(weight) cannot be given.
      - With V(drain) and O(wait_up), fails when a server is not up within O(up_timeout), naming it; every server
        stays in V(drain). With V(maint) and O(wait), each server not in maintenance drains and goes to V(maint)
        once its sessions ended; one whose sessions stay after O(drain_timeout) is left in V(drain), and the task
        fails naming it (the others are in V(maint)).
      - Unchanged when every server is in O(state) already.
    type: list
    elements: str
    version_added: 0.1.0
  poll_interval:
    description: Seconds between reads (session counts, or the operational state) while waiting.
    type: float
    default: 0.25
attributes:
  check_mode:
    support: full
  diff_mode:
    support: full
extends_documentation_fragment:
  - seedops.deploy.haproxy
  - seedops.deploy.attributes
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

- name: Back into rotation after a reboot, and wait until HAProxy's health checks see it up
  seedops.deploy.lb_member:
    backend: app
    server: "{{ inventory_hostname }}"
    state: ready
    wait_up: true
    up_timeout: 60
  delegate_to: "{{ groups['lb'][0] }}"

- name: Move this host's traffic to the new instance started beside the old one (port 8081), old one drained
  seedops.deploy.lb_member:
    backend: app
    server: "{{ inventory_hostname }}-8081"
    replaces: "{{ inventory_hostname }}-8080"
    up_timeout: 30
    drain_timeout: 30
  delegate_to: "{{ groups['lb'][0] }}"

- name: Move the traffic of a whole batch of hosts to their new instances in one call, old ones left draining
  seedops.deploy.lb_member:
    backend: app
    flips:
      - {server: app1-8081, replaces: app1-8080}
      - {server: app2-8081, replaces: app2-8080}
    wait: false
  delegate_to: lb1

- name: Bring the new servers of every host started ahead into drain, and wait until a check of each one passed
  seedops.deploy.lb_member:
    backend: app
    servers: [app1-8081, app2-8081, app3-8081]
    state: drain
    wait: false
    wait_up: true
    up_timeout: 30
  delegate_to: lb1

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
  returned: when O(server) is given
  type: str
  sample: drain
previous_state:
  description: The administrative state before.
  returned: when O(server) is given
  type: str
weight:
  description: The weight after the task.
  returned: when O(server) is given
  type: int
previous_weight:
  description: The weight before.
  returned: when O(server) is given
  type: int
sessions:
  description: The server's current sessions when the task ended.
  returned: when O(server) is given
  type: int
waited:
  description: Seconds spent waiting - for sessions to drain, or with O(wait_up) for the server to come up.
  returned: always
  type: float
op_state:
  description:
    - The server's operational state as HAProxy sees it (its health checks) when the task ended - V(up) (takes
      traffic when its administrative state allows), V(down), V(starting) (slow start) or V(stopping); from
      C(srv_op_state) 2, 0, 1, 3 of C(show servers state).
    - In check mode, the state before the task.
  returned: when O(server) is given
  type: str
  sample: up
checks:
  description: Whether the server's health checks are V(enabled) or V(disabled) after the task.
  returned: when O(server) is given
  type: str
  sample: enabled
previous_checks:
  description: The same, before.
  returned: when O(server) is given
  type: str
replaced:
  description:
    - With O(replaces), the replaced server - C(server), C(previous_state), C(state) (V(maint) once drained, V(drain)
      with O(wait=false)) and C(sessions) when the task ended.
  returned: when O(replaces) is given
  type: dict
  sample: {"server": "app1-8080", "previous_state": "ready", "state": "maint", "sessions": 0}
flipped_at:
  description: With O(replaces) or O(flips), when the new servers took the traffic (epoch seconds), or null when
    nothing moved.
  returned: when O(replaces) or O(flips) is given
  type: float
flips:
  description:
    - With O(flips), each flip as the task left it - C(server), C(state), C(previous_state), C(weight),
      C(previous_weight), C(op_state), C(checks), C(sessions), and C(replaced) as with O(replaces) - in the order given.
  returned: when O(flips) is given
  type: list
  elements: dict
  sample: [{"server": "app1-8081", "state": "ready", "previous_state": "drain", "weight": 1, "previous_weight": 1,
            "op_state": "up", "checks": "enabled", "sessions": 3,
            "replaced": {"server": "app1-8080", "previous_state": "ready", "state": "drain", "sessions": 1}}]
servers:
  description:
    - With O(servers), each server as the task left it - C(server), C(state), C(previous_state), C(weight),
      C(op_state), C(checks), C(sessions), and with O(wait_up) C(up) (whether HAProxy's checks saw it up) - in the
      order given; also when the task failed.
  returned: when O(servers) is given
  type: list
  elements: dict
  sample: [{"server": "app1-8081", "state": "drain", "previous_state": "maint", "weight": 1, "op_state": "up",
            "checks": "enabled", "sessions": 0, "up": true}]
"""

from ansible.module_utils.basic import AnsibleModule
from ansible.module_utils.common.text.converters import to_native

from ansible_collections.seedops.deploy.plugins.module_utils import _haproxy as hap
from ansible_collections.seedops.deploy.plugins.module_utils import _lb


def main():
    module = AnsibleModule(
        argument_spec=dict(
            hap.RUNTIME_API_SPEC,
            server=dict(type="str"),
            state=dict(type="str", choices=["ready", "drain", "maint"]),
            weight=dict(type="int"),
            checks=dict(type="str", choices=["enabled", "disabled"]),
            wait=dict(type="bool", default=True),
            drain_timeout=dict(type="float", default=60),
            wait_up=dict(type="bool", default=False),
            wait_if_down=dict(type="bool", default=False),
            up_timeout=dict(type="float", default=60),
            poll_interval=dict(type="float", default=0.25),
            replaces=dict(type="str"),
            flips=dict(type="list", elements="dict", options=dict(
                server=dict(type="str", required=True),
                replaces=dict(type="str", required=True),
                weight=dict(type="int"),
            )),
            servers=dict(type="list", elements="str"),
        ),
        required_one_of=[("server", "flips", "servers"), ("state", "weight", "checks", "replaces", "flips")],
        mutually_exclusive=[("flips", "server"), ("flips", "replaces"), ("flips", "state"), ("flips", "checks"),
                            ("flips", "weight"), ("servers", "server"), ("servers", "flips"), ("servers", "replaces"),
                            ("servers", "checks"), ("servers", "weight")],
        required_by={"servers": ("state",)},
        supports_check_mode=True,
    )
    try:
        result = _lb.Member(module.params, check_mode=module.check_mode, diff=module._diff).run()
    except _lb.LbError as exc:
        module.fail_json(msg=exc.msg, **exc.result)
    except hap.HAProxyError as exc:
        module.fail_json(msg=to_native(exc))
    module.exit_json(**result)


if __name__ == "__main__":
    main()
