# -*- coding: utf-8 -*-
# Copyright: seedops.deploy contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Controller half of seedops.deploy.release: records who deployed (controller host and user, and
the AWX/Tower job id when the run has one) before the module runs on the host."""

from __future__ import annotations

import getpass
import socket

from ansible.plugins.action import ActionBase


class ActionModule(ActionBase):
    TRANSFERS_FILES = False
    _supports_check_mode = True
    _supports_async = False

    def run(self, tmp=None, task_vars=None):
        task_vars = task_vars or {}
        result = super().run(tmp, task_vars)
        args = dict(self._task.args)
        who = dict(args.get("deployed_by") or {})
        who.setdefault("controller", socket.gethostname())
        try:
            who.setdefault("controller_user", getpass.getuser())
        except (KeyError, OSError):
            who.setdefault("controller_user", "unknown")
        job_id = task_vars.get("awx_job_id") or task_vars.get("tower_job_id")
        if job_id is not None:
            who.setdefault("job_id", str(job_id))
        args["deployed_by"] = who
        result.update(self._execute_module(module_name="seedops.deploy.release", module_args=args,
                                           task_vars=task_vars))
        return result
