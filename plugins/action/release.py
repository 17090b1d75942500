# -*- coding: utf-8 -*-
# Copyright: seedops.deploy contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Controller half of seedops.deploy.release: records who deployed (controller host and user, and
the AWX/Tower job id when the run has one) before the module runs on the host."""

from __future__ import annotations

import getpass
import socket

from ansible.plugins.action import ActionBase


def controller_user():
    try:
        return getpass.getuser()
    except (KeyError, OSError):
        return "unknown"


def deployed_by(given, task_vars, hostname=socket.gethostname, user=controller_user):
    """The deployed_by option with the controller's host, user and job id added; what the task
    gives itself wins."""
    who = dict(given or {})
    who.setdefault("controller", hostname())
    who.setdefault("controller_user", user())
    job_id = task_vars.get("awx_job_id") or task_vars.get("tower_job_id")
    if job_id is not None:
        who.setdefault("job_id", str(job_id))
    return who


class ActionModule(ActionBase):
    """Check mode is supported and async is not: the ActionBase defaults."""

    def run(self, tmp=None, task_vars=None):
        task_vars = task_vars or {}
        result = super().run(tmp, task_vars)
        args = dict(self._task.args)
        args["deployed_by"] = deployed_by(args.get("deployed_by"), task_vars)
        result.update(self._execute_module(module_name="seedops.deploy.release", module_args=args,
                                           task_vars=task_vars))
        return result
