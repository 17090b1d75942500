# -*- coding: utf-8 -*-
# Copyright: seedops.deploy contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The options of a health check (plugins/module_utils/_health.py ARGUMENT_SPEC), written once.

seedops.deploy.health documents them as a module's own options (health_check);
seedops.deploy.health.suboptions documents them under one dict option `health` (staged_restart)."""

from __future__ import annotations

import textwrap

# The options, at the indentation of top-level options; O(...) references are made relative to where
# they end up.
_OPTIONS = r"""
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


class ModuleDocFragment:

    DOCUMENTATION = "options:\n" + textwrap.indent(_OPTIONS.strip("\n"), "  ") + "\n"

    SUBOPTIONS = r"""
options:
  health:
    description:
      - The health check - HTTP (O(health.url)) or TCP (O(health.port)); N consecutive successes within a deadline,
        as M(seedops.deploy.health_check) does it.
    type: dict
    required: true
    suboptions:
""" + textwrap.indent(_OPTIONS.strip("\n").replace("O(", "O(health."), " " * 6) + "\n"
