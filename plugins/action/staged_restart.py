# -*- coding: utf-8 -*-
# Copyright: seedops.deploy contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Controller half of seedops.deploy.staged_restart: when the task switches to a release (release_id), records who
switched (controller host and user, the AWX/Tower job id and user) before the module runs on the host."""

from __future__ import annotations

from ansible_collections.seedops.deploy.plugins.plugin_utils._controller import ModuleAction, deployed_by


class ActionModule(ModuleAction):
    MODULE = "seedops.deploy.staged_restart"

    def run_module(self, args, task_vars, result):
        if args.get("release_id") is not None:
            args["deployed_by"] = deployed_by(args.get("deployed_by"), task_vars)
        return super().run_module(args, task_vars, result)
