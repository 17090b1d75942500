# -*- coding: utf-8 -*-
# Copyright: seedops.deploy contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The options of a health check (plugins/module_utils/_health.py ARGUMENT_SPEC), written once.

seedops.deploy.health documents them as a module's own options (health_check);
seedops.deploy.health.suboptions documents them under one dict option `health` (staged_restart)."""

from __future__ import annotations

import textwrap


class ModuleDocFragment:

    # The options as a module's own (health_check). Kept a plain literal: ansible-test's yamllint reads it as it is.
    DOCUMENTATION = r"""
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
    description: Seconds to wait for health in all before giving up.
    type: float
    default: 60
  request_timeout:
    description: Seconds to wait for one probe.
    type: float
    default: 5
"""


def _as_suboptions(documentation, description, required):
    """The same options nested under one dict option `health`, their O(...) references made relative to it."""
    options = documentation.split("options:\n", 1)[1].replace("O(", "O(health.")
    return r"""
options:
  health:
    description:
%s
    type: dict
    required: %s
    suboptions:
""" % (textwrap.indent(description.strip(), " " * 6), "true" if required else "false") + textwrap.indent(options, " " * 4)


# seedops.deploy.health.suboptions (staged_restart), made from DOCUMENTATION so the options are written once.
ModuleDocFragment.SUBOPTIONS = _as_suboptions(ModuleDocFragment.DOCUMENTATION, """
- The health check - HTTP (O(health.url)) or TCP (O(health.port)); N consecutive successes within a deadline,
  as M(seedops.deploy.health_check) does it.
""", required=True)

# seedops.deploy.health.probe (release_info): the same options for one probe, taken once, without waiting.
ModuleDocFragment.PROBE = _as_suboptions(ModuleDocFragment.DOCUMENTATION, """
- Probe the service's health once (HTTP with O(health.url) or TCP with O(health.port)) and report it as
  RV(service.healthy); O(health.successes), O(health.interval) and O(health.timeout) are not used - it never waits.
- Only with O(service).
""", required=False)
