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
options:
  url:
    description: HTTP(S) URL to GET. Give this or O(port).
    type: str
  status_code:
    description: Status codes that count as healthy.
    type: list
    elements: int
    default: [200]
  body_regex:
    description: A regular expression the response body must match to count as healthy.
    type: str
  headers:
    description: Extra request headers.
    type: dict
    default: {}
  validate_certs:
    description: Verify TLS certificates.
    type: bool
    default: true
  host:
    description: Host for a TCP check (with O(port)).
    type: str
    default: 127.0.0.1
  port:
    description: TCP port to connect to (a TCP check; ignored when O(url) is given).
    type: int
  successes:
    description: Consecutive successful probes needed.
    type: int
    default: 3
  interval:
    description: Seconds between probes.
    type: float
    default: 0.5
  timeout:
    description: Seconds to wait in all before failing.
    type: float
    default: 60
  request_timeout:
    description: Seconds to wait for one probe.
    type: float
    default: 5
attributes:
  check_mode:
    support: full
    details: It only reads, so it probes in check mode too.
  diff_mode:
    support: none
  platform:
    support: full
    platforms: posix
extends_documentation_fragment:
  - ansible.builtin.action_common_attributes
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
elapsed:
  description: Seconds spent.
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
    module = AnsibleModule(
        argument_spec=_health.ARGUMENT_SPEC,
        required_one_of=[("url", "port")],
        supports_check_mode=True,
    )
    p = module.params
    if p["successes"] < 1:
        module.fail_json(msg="successes must be 1 or more")
    report = _health.wait_healthy(_health.probe_from(p), p["successes"], p["interval"], p["timeout"])
    if not report["healthy"]:
        module.fail_json(msg="%s is not healthy: %d of %d consecutive successes after %.1f s (%d probes); last: %s"
                         % (_health.target(p), report["consecutive"], p["successes"], report["elapsed"], report["attempts"],
                            _health.describe(report)), changed=False, **report)
    module.exit_json(changed=False, **report)


if __name__ == "__main__":
    main()
