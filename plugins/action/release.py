# -*- coding: utf-8 -*-
# Copyright: seedops.deploy contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Controller half of seedops.deploy.release: records who deployed (controller host and user, and
the AWX/Tower job id when the run has one) before the module runs on the host."""

from __future__ import annotations

from ansible_collections.seedops.deploy.plugins.plugin_utils._controller import ModuleAction, deployed_by


class ActionModule(ModuleAction):
    MODULE = "seedops.deploy.release"

    def run_module(self, args, task_vars, result):
        args["deployed_by"] = deployed_by(args.get("deployed_by"), task_vars)
        return super().run_module(args, task_vars, result)
