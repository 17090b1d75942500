# -*- coding: utf-8 -*-
# Copyright: seedops.deploy contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Controller half of seedops.deploy.fleet_lock: says who is deploying (controller host and user, the
AWX/Tower job id and the user who launched the job, and the run's own process on the controller) in the lease's holder
before the module runs on the lock host; and, of a lease another run holds, whether that run's process on this
controller has ended."""

from __future__ import annotations

import os
import socket

from ansible.errors import AnsibleActionFail
from ansible.module_utils.common.validation import check_type_dict

from ansible_collections.seedops.deploy.plugins.plugin_utils._controller import (
    ModuleAction, controller_process, controller_user, deployed_by, process_ended)

# The holder's key for the run's process on the controller (plugin_utils/_controller.py's controller_process).
PROCESS = "controller_process"
ENDED = ("That run has ended: its controller process (pid %s on this controller) is gone and will not renew the lease."
         " Unless a task it started still runs on a host (a module there runs to its own timeout), breaking the lock is"
         " safe now.")


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
            process = controller_process()
            if process is not None:
                args["holder"].setdefault(PROCESS, process)
        result = super().run_module(args, task_vars, result)
        return holder_ended(result, args.get("run_id"))


def holder_ended(result, run_id, ended=process_ended):
    """The module's result with holder_ended: of a live lease another run holds, whether that run's process on this
    controller has ended (None when this controller cannot tell). A run refused by a lease whose run has ended is told
    so, and what to do."""
    holder = result.get("holder")
    if not result.get("held") or result.get("run_id") in (None, run_id) or not isinstance(holder, dict):
        return result
    result["holder_ended"] = ended(holder.get(PROCESS))
    if result["holder_ended"] and result.get("failed") and result.get("msg"):
        result["msg"] = "%s. %s" % (result["msg"].rstrip(". "), ENDED % holder[PROCESS].split(" ")[2])
    return result
