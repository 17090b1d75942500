# -*- coding: utf-8 -*-
# Copyright: seedops.deploy contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Controller-side code shared by the collection's action plugins (private to seedops.deploy)."""

from __future__ import annotations

from ansible.plugins.action import ActionBase


class ModuleAction(ActionBase):
    """An action plugin that prepares its module's arguments on the controller, then runs the
    module on the host.

    Subclasses set MODULE (the module's FQCN) and override run_module(args, task_vars, result);
    `args` is a copy of the task's arguments, free to change. The default runs the module with
    them unchanged. Check mode is supported and async is not (the ActionBase defaults).
    """

    MODULE = None

    def run(self, tmp=None, task_vars=None):
        task_vars = task_vars or {}
        result = super().run(tmp, task_vars)
        return self.run_module(dict(self._task.args), task_vars, result)

    def run_module(self, args, task_vars, result):
        result.update(self.execute(args, task_vars))
        return result

    def execute(self, args, task_vars):
        """Run MODULE on the host with `args`; its result."""
        return self._execute_module(module_name=self.MODULE, module_args=args, task_vars=task_vars)
