# -*- coding: utf-8 -*-
# Copyright: seedops.deploy contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Reading a finished task's result on the controller (private to seedops.deploy)."""

from __future__ import annotations


def failed_message(result):
    """Why a task failed: a loop's first failed item's own message (Ansible's own says only "One or more items
    failed"), else the task's, else None."""
    result = result if isinstance(result, dict) else {}
    items = [item for item in result.get("results") or [] if isinstance(item, dict) and item.get("failed")]
    return next((item["msg"] for item in items if item.get("msg")), None) or result.get("msg") or None
