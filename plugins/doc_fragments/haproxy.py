# -*- coding: utf-8 -*-
# Copyright: seedops.deploy contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations


class ModuleDocFragment:
    """The options that reach HAProxy's runtime API: the backend and the admin socket (lb_member, lb_info,
    traffic_check). The argument spec that goes with it is _haproxy.RUNTIME_API_SPEC in module_utils."""

    DOCUMENTATION = r"""
options:
  backend:
    description:
      - The backend, for example V(app).
      - An HAProxy name - letters, digits and C(-_.:) only; any other character (C(;), a space, a line break) is
        refused before anything is sent, since the runtime API would read it as a further command or argument.
    type: str
    required: true
  socket:
    description: Path of HAProxy's admin socket (a stats socket at level admin).
    type: path
    default: /run/haproxy/admin.sock
"""
