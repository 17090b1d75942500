# -*- coding: utf-8 -*-
# Copyright: seedops.deploy contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The deploy lock of one base directory (private to seedops.deploy).

An flock on ``<base>/.lock`` plus a record in that file (owner, pid, host, start time), so a
waiting deploy can say who holds it. The kernel drops an flock when its holder dies; a record
found on a lock that could be taken at once was therefore left by a holder that is gone, and is
taken over with a warning.
"""

from __future__ import annotations

import fcntl
import json
import os
import socket
import time


class LockTimeout(Exception):
    """The lock stayed held for the whole wait; the message names the holder."""


def describe(holder):
    if not holder:
        return "an unknown holder (no record in the lock file)"
    return "%s (pid %s on %s, since %s)" % (
        holder.get("owner", "?"), holder.get("pid", "?"), holder.get("host", "?"), holder.get("started", "?"))


class DeployLock:
    def __init__(self, path, owner, timeout=60.0, poll=0.05):
        self.path = path
        self.owner = owner
        self.timeout = timeout
        self.poll = poll
        self.fd = None
        self.waited = 0.0
        self.took_over = None  # the record of a gone holder, when one was found

    def _read(self):
        try:
            os.lseek(self.fd, 0, os.SEEK_SET)
            data = os.read(self.fd, 65536)
            return json.loads(data.decode("utf-8")) if data.strip() else None
        except (OSError, ValueError):
            return {"owner": "unreadable lock record"}

    def acquire(self):
        self.fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC, 0o644)
        start = time.monotonic()
        while True:
            try:
                fcntl.flock(self.fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() - start >= self.timeout:
                    holder = self._read()
                    os.close(self.fd)
                    self.fd = None
                    raise LockTimeout(
                        "the deploy lock %s is held by %s; waited %.0f s (lock_timeout). Wait for that deploy to "
                        "finish, or stop it, and run again" % (self.path, describe(holder), self.timeout))
                time.sleep(self.poll)
        self.waited = time.monotonic() - start
        self.took_over = self._read()
        record = {
            "owner": self.owner,
            "pid": os.getpid(),
            "host": socket.gethostname(),
            "started": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        }
        os.ftruncate(self.fd, 0)
        os.lseek(self.fd, 0, os.SEEK_SET)
        os.write(self.fd, (json.dumps(record) + "\n").encode("utf-8"))
        os.fsync(self.fd)
        return self

    def release(self):
        if self.fd is None:
            return
        try:
            os.ftruncate(self.fd, 0)
            fcntl.flock(self.fd, fcntl.LOCK_UN)
        finally:
            os.close(self.fd)
            self.fd = None

    def __enter__(self):
        return self.acquire()

    def __exit__(self, *exc):
        self.release()
        return False
