# -*- coding: utf-8 -*-
# Copyright: seedops.deploy contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Test-only callback: SIGKILL the controller - ansible-playbook and its whole process group - at a chosen point of a
run, the way a dead controller (an OOM kill, a lost CI runner) leaves the fleet. Used by tests/integration only.

SEEDOPS_KILL_AT names the point: `<module>[:<arg>=<value>]@<host>[/start[+<seconds>]]` - when <module>
(short name, e.g. lb_member) finishes ok for <host> with that module argument, or, with /start, when it starts
(optionally <seconds> later, while it runs). ansible-playbook must lead its own process group (start it with
start_new_session), or the callback refuses to kill anything."""

from __future__ import annotations

import os
import re
import signal
import threading
import time

from ansible.plugins.callback import CallbackBase

DOCUMENTATION = r"""
name: kill_at
type: aggregate
short_description: Kill the controller at a chosen point (tests only)
description: SIGKILLs ansible-playbook's process group at the point named by E(SEEDOPS_KILL_AT).
"""

POINT = re.compile(r"^(?P<module>[\w.]+)(?::(?P<arg>\w+)=(?P<value>[^@]*))?@(?P<host>[\w.-]+)"
                   r"(?P<start>/start(?:\+(?P<delay>[\d.]+))?)?$")


class CallbackModule(CallbackBase):
    CALLBACK_VERSION = 2.0
    CALLBACK_TYPE = "aggregate"
    CALLBACK_NAME = "kill_at"
    CALLBACK_NEEDS_ENABLED = True

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        spec = os.environ.get("SEEDOPS_KILL_AT", "")
        self.point = POINT.match(spec) if spec else None
        if spec and not self.point:
            raise ValueError("SEEDOPS_KILL_AT=%r is not <module>[:<arg>=<value>]@<host>[/start[+<s>]]" % spec)

    def matches(self, task, host, result=None):
        """The point's module on its host, with its argument as the module was invoked (templated)."""
        point = self.point
        if not point or host.get_name() != point["host"]:
            return False
        action = (getattr(task, "resolved_action", None) or task.action or "").rsplit(".", 1)[-1]
        if action != point["module"]:
            return False
        if not point["arg"]:
            return True
        invocations = [(result or {}).get("invocation")] + [r.get("invocation") for r in (result or {}).get("results", [])]
        return any(str((i or {}).get("module_args", {}).get(point["arg"])) == point["value"] for i in invocations)

    @staticmethod
    def kill():
        if os.getpgrp() != os.getpid():
            raise RuntimeError("kill_at: ansible-playbook does not lead its process group; refusing to kill it")
        os.killpg(os.getpgrp(), signal.SIGKILL)

    def v2_runner_on_start(self, host, task):
        if self.point and self.point["start"] and self.matches(task, host):
            delay = float(self.point["delay"] or 0)
            threading.Thread(target=lambda: (time.sleep(delay), self.kill()), daemon=True).start()

    def v2_runner_on_ok(self, result):
        if self.point and not self.point["start"] and self.matches(result._task, result._host, result._result):
            self.kill()
