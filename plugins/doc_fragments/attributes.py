# -*- coding: utf-8 -*-
# Copyright: seedops.deploy contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations


class ModuleDocFragment:
    """Attributes every seedops.deploy module shares; each module adds check_mode and diff_mode with its details."""

    # Runs on POSIX hosts (the module's own platform details, if any, are kept).
    DOCUMENTATION = r"""
attributes:
  platform:
    support: full
    platforms: posix
"""

    # A module with an action plugin of the same name: the controller does part of the work, so it cannot run
    # asynchronously or once for all hosts.
    ACTION = r"""
attributes:
  action:
    support: full
  async:
    support: none
  bypass_host_loop:
    support: none
"""
