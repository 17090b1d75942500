#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: seedops.deploy contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
module: lb_servers
short_description: Make the servers of a running HAProxy backend match a list, through the runtime API, without a reload
version_added: 0.1.0
author: Seedops Maintainers (@seedops-maintainers)
description:
  - Compares a backend's servers in the running HAProxy (C(show servers state)) with O(servers) and changes the
    difference through the runtime API (the admin stats socket), so that no reload closes a client's connection and
    every other server keeps its state (drained, in maintenance, a canary's weight).
  - A server that joins is added in maintenance (C(add server)) with its health checks on. HAProxy sends it nothing,
    and runs its checks only once it leaves maintenance - set ready after a deploy's health gate
    (M(seedops.deploy.lb_member) with C(state=ready) and C(wait_up), which waits in drain for a check that passed), which is
    how the seedops.deploy.deploy playbook brings in a host that has no release yet or that returns with one.
  - A server that leaves (with O(prune)) is drained, waits until its sessions end (O(drain_timeout)), goes to
    maintenance, which closes HAProxy's idle connections to it, and is deleted (C(del server)).
  - A server whose address or port changed is moved (C(set server addr)).
  - The configuration file on disk is not touched; the seedops.deploy.haproxy role writes it to match, so that a
    later reload (which loads the server states saved before it) keeps the same servers.
  - Runs on the load balancer, usually with C(delegate_to). Check mode and diff mode.
options:
  servers:
    description:
      - Every server the backend should have, in order. The names follow the same rules as O(backend).
    type: list
    elements: dict
    required: true
    suboptions:
      name:
        description: The server's name in the backend (the seedops.deploy.haproxy role names servers after inventory hosts).
        type: str
        required: true
      address:
        description: Its IP address or host name.
        type: str
        required: true
      port:
        description: Its port.
        type: int
        required: true
      weight:
        description: Its weight when it joins (0-256). A server already in the backend keeps the weight it has.
        type: int
        default: 1
      host:
        description:
          - The host the server stands for. Servers named after it (C(<host>) or C(<host>-<suffix>)) are its servers.
          - When a host's servers would change names (one server becomes two for start beside, then flip, or back),
            the task changes nothing and returns the host in RV(renamed); a reload of the configuration does that
            change, since the runtime API would take the host out of rotation.
        type: str
  prune:
    description: Remove the backend's servers that O(servers) does not list. Without it, servers only join.
    type: bool
    default: true
  check:
    description: Health checks for a server that joins (C(check)); the backend's C(option httpchk) applies.
    type: bool
    default: true
  check_interval:
    description: The joining server's check interval (C(inter)), as HAProxy writes times (V(1s), V(500ms)).
    type: str
    default: 2s
  check_rise:
    description: Checks in a row that bring the server up (C(rise)).
    type: int
    default: 2
  check_fall:
    description: Checks in a row that bring it down (C(fall)).
    type: int
    default: 3
  drain_timeout:
    description:
      - Seconds a leaving server's sessions may take to end. When they do not, the task fails and the server stays,
        drained, in the backend.
    type: float
    default: 60
  poll_interval:
    description: Seconds between two looks at a draining server's sessions.
    type: float
    default: 0.25
notes:
  - Needs HAProxy 2.5 or later (dynamic servers, C(add server) and C(del server) on the runtime API without
    experimental mode). Debian 12 ships 2.6.
  - Servers that joined take the options given here, not the backend's C(default-server) line, which HAProxy does
    not apply to servers added at runtime.
extends_documentation_fragment:
  - seedops.deploy.haproxy
  - seedops.deploy.attributes
  - ansible.builtin.action_common_attributes
attributes:
  check_mode:
    support: full
    details: Reads the backend and returns what would join, leave and move; sends no change.
  diff_mode:
    support: full
    details: The server list before and after, one C(name address:port) line each.
seealso:
  - module: seedops.deploy.lb_member
  - module: seedops.deploy.lb_info
"""

EXAMPLES = r"""
- name: The backend serves exactly the app group's hosts (new ones join in maintenance)
  seedops.deploy.lb_servers:
    backend: app
    servers: >-
      {{ groups['app'] | map('extract', hostvars) | map(attribute='inventory_hostname')
         | map('community.general.dict_kv', 'name') | list }}
  become: true

- name: Add one server, take none away
  seedops.deploy.lb_servers:
    backend: app
    prune: false
    servers:
      - {name: app4, address: 10.0.0.14, port: 8080, weight: 100}
  become: true
"""

RETURN = r"""
joined:
  description: The servers added (in maintenance until set ready), in the order of O(servers).
  returned: always
  type: list
  elements: str
  sample: [app4, app5]
left:
  description: The servers drained and deleted.
  returned: always
  type: list
  elements: str
  sample: [app3]
renamed:
  description: The hosts whose servers would change names; when there are any, nothing was changed.
  returned: always
  type: list
  elements: str
moved:
  description: The servers whose address or port was changed.
  returned: always
  type: list
  elements: str
previous:
  description: The backend's servers before the task.
  returned: always
  type: list
  elements: str
servers:
  description: The backend's servers after the task (in check mode, what they would be).
  returned: always
  type: list
  elements: str
"""

from ansible.module_utils.basic import AnsibleModule
from ansible.module_utils.common.text.converters import to_native

from ansible_collections.seedops.deploy.plugins.module_utils import _haproxy as hap
from ansible_collections.seedops.deploy.plugins.module_utils import _servers


def main():
    module = AnsibleModule(
        argument_spec=dict(
            hap.RUNTIME_API_SPEC,
            servers=dict(type="list", elements="dict", required=True, options=dict(
                name=dict(type="str", required=True),
                address=dict(type="str", required=True),
                port=dict(type="int", required=True),
                weight=dict(type="int", default=1),
                host=dict(type="str"),
            )),
            prune=dict(type="bool", default=True),
            check=dict(type="bool", default=True),
            check_interval=dict(type="str", default="2s"),
            check_rise=dict(type="int", default=2),
            check_fall=dict(type="int", default=3),
            drain_timeout=dict(type="float", default=60),
            poll_interval=dict(type="float", default=0.25),
        ),
        supports_check_mode=True,
    )
    try:
        result = _servers.Servers(module.params, check_mode=module.check_mode, diff=module._diff).run()
    except _servers.ServersError as exc:
        module.fail_json(msg=exc.msg, **exc.result)
    except hap.HAProxyError as exc:
        module.fail_json(msg=to_native(exc))
    module.exit_json(**result)


if __name__ == "__main__":
    main()
