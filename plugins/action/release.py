# -*- coding: utf-8 -*-
# Copyright: seedops.deploy contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Controller half of seedops.deploy.release: records who deployed (controller host and user, and
the AWX/Tower job id when the run has one) before the module runs on the host."""

from __future__ import annotations

import getpass
import socket

from ansible_collections.seedops.deploy.plugins.plugin_utils._controller import ModuleAction


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


class ActionModule(ModuleAction):
    MODULE = "seedops.deploy.release"

    def run_module(self, args, task_vars, result):
        args["deployed_by"] = deployed_by(args.get("deployed_by"), task_vars)
        return super().run_module(args, task_vars, result)
