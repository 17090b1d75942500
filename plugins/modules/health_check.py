#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: seedops.deploy contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
module: health_check
short_description: Wait until a service is healthy - N consecutive HTTP or TCP successes within a deadline
version_added: 0.1.0
author: Seedops Maintainers (@seedops-maintainers)
description:
  - Probes a service over HTTP (expected status codes, optional body regex) or TCP until O(successes) probes in a
    row succeed, or fails when O(timeout) seconds pass first, with the last responses it saw.
  - "Runs wherever the task runs - on the service's host (C(http://127.0.0.1:PORT/healthz)), on the load balancer
    (C(delegate_to)), or on the controller (C(delegate_to: localhost))."
  - Changes nothing, so it runs in check mode too.
attributes:
  check_mode:
    support: full
    details: It only reads, so it probes in check mode too.
  diff_mode:
    support: none
extends_documentation_fragment:
  - seedops.deploy.attributes
  - ansible.builtin.action_common_attributes
  - seedops.deploy.health
seealso:
  - module: seedops.deploy.staged_restart
  - module: ansible.builtin.uri
  - module: ansible.builtin.wait_for
"""

EXAMPLES = r"""
- name: Wait for the service on the host itself
  seedops.deploy.health_check:
    url: http://127.0.0.1:8080/healthz
    successes: 3
    interval: 0.5
    timeout: 30

- name: Check it the way the load balancer sees it
  seedops.deploy.health_check:
    url: "http://{{ ansible_facts['default_ipv4']['address'] }}:8080/version"
    body_regex: '"version": *"2\.0\.0"'
  delegate_to: "{{ groups['lb'][0] }}"

- name: A TCP service
  seedops.deploy.health_check:
    port: 5432
"""

RETURN = r"""
healthy:
  description: Whether the service passed.
  returned: always
  type: bool
attempts:
  description: Probes made.
  returned: always
  type: int
consecutive:
  description: Successful probes in a row at the end (O(successes) when it passed).
  returned: always
  type: int
elapsed:
  description: Seconds from the first probe until it passed or gave up.
  returned: always
  type: float
responses:
  description: The last probes - status or error, body excerpt, milliseconds, and the offset in seconds.
  returned: always
  type: list
  elements: dict
"""

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.seedops.deploy.plugins.module_utils import _health


def main():
    module = AnsibleModule(argument_spec=_health.ARGUMENT_SPEC, required_one_of=_health.REQUIRED_ONE_OF, supports_check_mode=True)
    report, problem = _health.check(module.params)
    if problem:
        module.fail_json(msg=problem, changed=False, **report)
    module.exit_json(changed=False, **report)


if __name__ == "__main__":
    main()
