# -*- coding: utf-8 -*-
# Copyright: seedops.deploy contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Controller half of seedops.deploy.fleet_lock: says who is deploying (controller host and user, the
AWX/Tower job id and the user who launched the job) in the lease's holder before the module runs on the
lock host."""

from __future__ import annotations

import os
import socket

from ansible.errors import AnsibleActionFail
from ansible.module_utils.common.validation import check_type_dict

from ansible_collections.seedops.deploy.plugins.plugin_utils._controller import ModuleAction, controller_user, deployed_by


def lock_holder(given, task_vars, hostname=socket.gethostname, user=controller_user, environ=None):
    """The holder option with the controller's host and user, the job id (AWX/Tower variables, else the job's
    environment) and the user who launched an AWX/Tower job added; what the task gives wins. `given` may be a
    dict or its string form (k=v or JSON), as the module's dict option takes it."""
    if isinstance(given, str):
        try:
            given = check_type_dict(given)
        except TypeError as exc:
            raise AnsibleActionFail("holder must be a dict: %s" % exc)
    return deployed_by(given, task_vars, hostname, user, environ=os.environ if environ is None else environ)


class ActionModule(ModuleAction):
    MODULE = "seedops.deploy.fleet_lock"

    def run_module(self, args, task_vars, result):
        if args.get("state") in (None, "held"):
            args["holder"] = lock_holder(args.get("holder"), task_vars)
        return super().run_module(args, task_vars, result)
