# -*- coding: utf-8 -*-
# Copyright: seedops.deploy contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The deploy lock of one base directory (private to seedops.deploy).

An flock on ``<base>/.lock`` plus a record in that file (owner, pid, host, start time), so a
waiting deploy can say who holds it. The kernel drops an flock when its holder dies; a record
found on a lock that could be taken at once was therefore left by a holder that is gone, and is
taken over with a warning. ``held_by`` tells who holds it without taking it (release_info).

The lock file is 0600: flock works on any descriptor, even a read-only one, so a lock file others
may open is a lock others may hold (and block deploys and automatic rollbacks with). A lock file
found with another mode, another owner or more than one link is replaced by a fresh 0600 one, by
its holder and before anything is written to it; the holder's record is all the file holds. That
also leaves a descriptor someone opened on the old file powerless. Whoever gets the flock checks
that the file it holds still is the one at the path, and starts over when it is not.
"""

from __future__ import annotations

import fcntl
import json
import os
import socket
import stat
import tempfile
import time


UNREADABLE = {"owner": "unreadable lock record"}
MODE = 0o600


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


def same_file(fd, path):
    """Whether the open file fd is the file at path (not a file that was renamed over it or removed)."""
    try:
        st = os.lstat(path)
    except FileNotFoundError:
        return False
    own = os.fstat(fd)
    return (st.st_dev, st.st_ino) == (own.st_dev, own.st_ino)


def trusted(fd, path):
    """Whether the lock file open as fd is one only its rightful users can open: a regular file with one
    link, mode 0600, owned by us (or, when we are root, by root or the owner of its directory)."""
    st = os.fstat(fd)
    if not stat.S_ISREG(st.st_mode) or st.st_nlink != 1 or stat.S_IMODE(st.st_mode) != MODE:
        return False
    owners = {os.geteuid()}
    if os.geteuid() == 0:
        owners.add(os.stat(os.path.dirname(path) or ".").st_uid)
    return st.st_uid in owners


class DeployLock:
    """The lock at path for owner (a name for the record), waiting up to timeout seconds; a
    context manager. After acquire: waited (seconds blocked behind another holder: 0.0 when the lock was
    free at once), took_over (a gone holder's record, or None)."""

    poll = 0.05  # seconds between two tries
    fd = None
    waited = 0.0
    took_over = None

    def __init__(self, path, owner, timeout=60.0):
        self.path = path
        self.owner = owner
        self.timeout = timeout

    def acquire(self):
        start = time.monotonic()
        blocked = False
        while True:
            self.fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC, MODE)
            blocked = self._wait(start) or blocked
            if same_file(self.fd, self.path):
                break
            # The holder we waited for replaced (or removed) the file: the lock is the file at the path now.
            os.close(self.fd)
            self.fd = None
        # Only time spent behind a holder counts: opening and checking the file is not waiting, and on a busy
        # host it alone can take a millisecond.
        self.waited = time.monotonic() - start if blocked else 0.0
        self.took_over = read_record(self.fd)
        if not trusted(self.fd, self.path):
            self._replace()
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

    def _wait(self, start):
        """Take the flock on self.fd, polling until timeout seconds after start; whether another held it."""
        blocked = False
        while True:
            try:
                fcntl.flock(self.fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                return blocked
            except BlockingIOError:
                blocked = True
                if time.monotonic() - start >= self.timeout:
                    holder = read_record(self.fd)
                    os.close(self.fd)
                    self.fd = None
                    raise LockTimeout(
                        "the deploy lock %s is held by %s; waited %.0f s (lock_timeout). Wait for that deploy to "
                        "finish, or stop it, and run again" % (self.path, describe(holder), self.timeout))
                time.sleep(self.poll)

    def _replace(self):
        """Put a fresh 0600 lock file, locked by us, in place of the one we hold (see the module's doc)."""
        directory = os.path.dirname(self.path) or "."
        try:
            fd, tmp = tempfile.mkstemp(dir=directory, prefix=".lock-")  # 0600, O_EXCL, O_NOFOLLOW
        except OSError:
            # No right to create files beside it: at least close it to others when it is ours alone.
            st = os.fstat(self.fd)
            if st.st_uid == os.geteuid() and st.st_nlink == 1:
                os.fchmod(self.fd, MODE)
            return
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            os.rename(tmp, self.path)
        except BaseException:
            os.close(fd)
            if os.path.lexists(tmp):
                os.unlink(tmp)
            raise
        dir_fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY)
        try:
            os.fsync(dir_fd)
        finally:
            os.close(dir_fd)
        os.close(self.fd)  # waiters on the old file get it, see it is no longer the lock, and start over
        self.fd = fd

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
