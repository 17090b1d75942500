# -*- coding: utf-8 -*-
# Copyright: seedops.deploy contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The deploy lock of one base directory (private to seedops.deploy).

An flock on ``<base>/.lock`` plus a record in that file (owner, pid, host, start time), so a
waiting deploy can say who holds it. The kernel drops an flock when its holder dies; a record
found on a lock that could be taken at once was therefore left by a holder that is gone, and is
taken over with a warning. ``held_by`` tells who holds it without taking it (release_info).
"""

from __future__ import annotations

import fcntl
import json
import os
import socket
import time


UNREADABLE = {"owner": "unreadable lock record"}


class LockTimeout(Exception):
    """The lock stayed held for the whole wait; the message names the holder."""


def describe(holder):
    if not holder:
        return "an unknown holder (no record in the lock file)"
    return "%s (pid %s on %s, since %s)" % (
        holder.get("owner", "?"), holder.get("pid", "?"), holder.get("host", "?"), holder.get("started", "?"))


def read_record(fd):
    """The holder's record in the open lock file fd, None when it is empty."""
    try:
        os.lseek(fd, 0, os.SEEK_SET)
        data = os.read(fd, 65536)
        if not data.strip():
            return None
        record = json.loads(data.decode("utf-8"))
    except (OSError, ValueError):
        record = None
    return record if isinstance(record, dict) else dict(UNREADABLE)


def held_by(path):
    """The record of whoever holds the lock at path right now, else None. Probes with a shared,
    non-blocking flock, so it never waits and never writes; a held lock with an empty record is
    reported as held by an unknown owner."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
    except OSError:
        return None
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
        except BlockingIOError:
            return read_record(fd) or {"owner": "unknown"}
        fcntl.flock(fd, fcntl.LOCK_UN)
        return None
    finally:
        os.close(fd)


class DeployLock:
    """The lock at path for owner (a name for the record), waiting up to timeout seconds; a
    context manager. After acquire: waited (seconds), took_over (a gone holder's record, or None)."""

    poll = 0.05  # seconds between two tries
    fd = None
    waited = 0.0
    took_over = None

    def __init__(self, path, owner, timeout=60.0):
        self.path = path
        self.owner = owner
        self.timeout = timeout

    def acquire(self):
        self.fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC, 0o644)
        start = time.monotonic()
        while True:
            try:
                fcntl.flock(self.fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() - start >= self.timeout:
                    holder = read_record(self.fd)
                    os.close(self.fd)
                    self.fd = None
                    raise LockTimeout(
                        "the deploy lock %s is held by %s; waited %.0f s (lock_timeout). Wait for that deploy to "
                        "finish, or stop it, and run again" % (self.path, describe(holder), self.timeout))
                time.sleep(self.poll)
        self.waited = time.monotonic() - start
        self.took_over = read_record(self.fd)
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
