# -*- coding: utf-8 -*-
# Copyright: seedops.deploy contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Controller-side code shared by the collection's action plugins (private to seedops.deploy)."""

from __future__ import annotations

import getpass
import os
import socket

from ansible.plugins.action import ActionBase

from ansible_collections.seedops.deploy.plugins.module_utils._service import start_ticks

# Where AWX/Tower puts the job id: the extra vars it passes to every job, then (for a task that reads it
# from the environment) the job's environment.
JOB_ID_VARS = ("awx_job_id", "tower_job_id")
JOB_ID_ENV = ("JOB_ID", "AWX_JOB_ID")
# The AWX/Tower user who launched the job.
LAUNCHED_BY_VARS = ("awx_user_name", "tower_user_name")


def report_dir(configured, environ):
    """Where the deploy_report callback writes: the configured directory; else, in an ansible-runner or AWX job,
    deploy-reports in the job's artifacts directory (AWX_ISOLATED_DATA_DIR, set by ansible-runner), which ansible-runner
    keeps after the run; else ./deploy-reports."""
    if configured:
        return configured
    artifacts = environ.get("AWX_ISOLATED_DATA_DIR")
    return os.path.join(artifacts, "deploy-reports") if artifacts else os.path.join(".", "deploy-reports")


PROC = "/proc"


def _read(path):
    try:
        with open(path, encoding="ascii", errors="replace") as f:
            return f.read().strip()
    except OSError:
        return None


def process_scope(proc=PROC):
    """What makes a pid mean one process: this boot of the kernel and this PID namespace (a container has its own).
    None where /proc does not say (not Linux)."""
    boot = _read(os.path.join(proc, "sys", "kernel", "random", "boot_id"))
    try:
        namespace = os.readlink(os.path.join(proc, "self", "ns", "pid"))
    except OSError:
        return None
    return (boot, namespace) if boot else None


def controller_process(proc=PROC, parent=os.getppid):
    """The run's own process on the controller - ansible-playbook, or ansible for an ad-hoc task: the parent of the
    worker process an action plugin runs in - as a token that names it and no other process, ever: the boot id, the
    PID namespace, the pid and the process's start time. None where /proc does not say."""
    pid = parent()
    scope = process_scope(proc)
    start = start_ticks(pid, proc)
    if pid <= 1 or scope is None or start is None:
        return None
    return " ".join((scope[0], scope[1], str(pid), str(start)))


def process_ended(token, proc=PROC):
    """Whether the process a controller_process token names has ended: True, False while it runs, None when this
    controller cannot tell - no token, or one taken on another machine, in another container or before a reboot."""
    parts = token.split(" ") if isinstance(token, str) else []
    if len(parts) != 4 or not parts[2].isdigit() or tuple(parts[:2]) != process_scope(proc):
        return None
    return str(start_ticks(parts[2], proc)) != parts[3]


def controller_user():
    try:
        return getpass.getuser()
    except (KeyError, OSError):
        return "unknown"


def deployed_by(given, task_vars, hostname=socket.gethostname, user=controller_user, environ=None):
    """`given` (who deployed, from the task) with the controller's host, user, job id and the user who launched an
    AWX/Tower job added; what the task gives itself wins. The job id comes from the AWX/Tower variables, else, when
    `environ` is given (os.environ), from the variables AWX sets in the job's environment."""
    who = dict(given or {})
    who.setdefault("controller", hostname())
    who.setdefault("controller_user", user())
    job_id = next((task_vars[name] for name in JOB_ID_VARS if task_vars.get(name)), None)
    if job_id is None and environ is not None:
        job_id = next((environ[name] for name in JOB_ID_ENV if environ.get(name)), None)
    if job_id is not None:
        who.setdefault("job_id", str(job_id))
    launched_by = next((task_vars[name] for name in LAUNCHED_BY_VARS if task_vars.get(name)), None)
    if launched_by is not None:
        who.setdefault("user", str(launched_by))
    return who


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
