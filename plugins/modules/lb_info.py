#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: seedops.deploy contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
module: lb_info
short_description: Read every server's rotation state in a HAProxy backend, through the runtime API
version_added: 0.1.0
author: Seedops Maintainers (@seedops-maintainers)
description:
  - Asks HAProxy's runtime API (the admin stats socket) for every server of a backend - administrative state
    (V(ready), V(drain), V(maint)), operational state as HAProxy's health checks see it (V(up), V(down), ...),
    weight and whether its checks are on - in one round trip. Changes nothing.
  - Runs on the load balancer, usually with C(delegate_to) and C(run_once). The deploy playbooks read it in their
    plan (to put back hosts a dead run left drained) and at the end (what is really in rotation), and
    C(playbooks/status.yml) prints it.
extends_documentation_fragment:
  - seedops.deploy.haproxy
  - seedops.deploy.attributes
  - ansible.builtin.action_common_attributes
attributes:
  check_mode:
    support: full
    details: It only reads, the same in check mode.
  diff_mode:
    support: none
seealso:
  - module: seedops.deploy.lb_member
"""

EXAMPLES = r"""
- name: Which servers take traffic right now
  seedops.deploy.lb_info:
    backend: app
  delegate_to: "{{ groups['lb'][0] }}"
  run_once: true
  become: true
  register: lb
"""

RETURN = r"""
servers:
  description: Every server of the backend by name.
  returned: always
  type: dict
  sample:
    app1: {admin: ready, op: up, weight: 1, initial_weight: 1, checks: enabled, address: 172.18.0.4, in_rotation: true}
    app2: {admin: drain, op: up, weight: 1, initial_weight: 1, checks: enabled, address: 172.18.0.5, in_rotation: false}
in_rotation:
  description: The servers that take new traffic - administratively ready, up for HAProxy's checks, weight above 0.
  returned: always
  type: list
  elements: str
"""

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.seedops.deploy.plugins.module_utils import _haproxy as hap
from ansible_collections.seedops.deploy.plugins.module_utils import _rotation


def main():
    module = AnsibleModule(
        argument_spec=dict(hap.RUNTIME_API_SPEC),
        supports_check_mode=True,
    )
    try:
        servers = _rotation.read_backend(module.params["socket"], module.params["backend"])
    except hap.HAProxyError as exc:
        module.fail_json(msg=str(exc))
    module.exit_json(changed=False, servers=servers, in_rotation=[name for name, s in servers.items() if s["in_rotation"]])


if __name__ == "__main__":
    main()
