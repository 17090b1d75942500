# -*- coding: utf-8 -*-
# Copyright: seedops.deploy contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The fleet-wide deploy lock, held as a lease (private to seedops.deploy; module fleet_lock).

One JSON file on one host - the lock host - holds the lease: the run that holds it, who is behind that
run, and when the lease expires. Every time is that host's clock (epoch seconds, with ISO strings beside
them for people), so no two controllers' clocks are ever compared. A lease nobody renews expires: a run
whose controller died stops blocking the fleet after its ttl.

Every change is a read-modify-write under an flock on the sibling ``<path>.lock`` file (0600), and the
lease file is replaced atomically (temp file in the same directory, fsync, rename, 0600), so two runs
racing on the lock host cannot both win and a reader never sees half a record. Reading alone (state
query, check mode) takes no flock and writes nothing: the rename makes every read whole.
"""

from __future__ import annotations

import errno
import fcntl
import json
import math
import os
import stat
import time

from ansible_collections.seedops.deploy.plugins.module_utils._releases import fsync_dir, write_text_atomic

MODE = 0o600
DIR_MODE = 0o700
POLL = 1.0            # seconds between two looks at a lease held by another run, while waiting
MUTEX_TIMEOUT = 30.0  # seconds to get the flock of the read-modify-write (held for milliseconds)
MAX_RECORD = 1 << 20
DESCRIBED = ("user", "controller", "controller_user", "job_id", "playbook", "version")
# Recorded for the controller, not for people: the run's process there (the action plugin's controller_process).
UNSHOWN = ("controller_process",)
WHAT_TO_DO = ("Wait for that run to finish and run again, or let this run wait for it (deploy_lock_wait=SECONDS, option "
              "wait); if that run is dead, take the lock over with deploy_lock_break=true (option take_over)")


class LeaseError(Exception):
    """The lease cannot be taken or changed; the message says why and what to do. `result` holds
    what is known about the lock (returned with the failure)."""

    def __init__(self, msg, result=None):
        super().__init__(msg)
        self.result = result or {}


class LeaseBusy(LeaseError):
    """Another run holds a live lease (for the whole wait)."""


class CorruptLease(LeaseError):
    """The lock file is not a lease record; `reason` says what it is instead."""

    def __init__(self, path, reason):
        super().__init__(
            "the fleet deploy lock file %s is %s, not a lease record this module wrote; nothing was changed. Look at "
            "it (something else wrote it), then remove it, or take the lock over: deploy_lock_break=true (option "
            "take_over)" % (path, reason))
        self.reason = reason


def iso(epoch):
    """UTC ISO 8601 of an epoch time, to the second."""
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(epoch))


def duration(seconds):
    """A length of time for people: 42 s, 4 min 12 s, 3 h 5 min, 2 d 1 h."""
    s = int(round(max(seconds, 0)))
    if s < 60:
        return "%d s" % s
    m, s = divmod(s, 60)
    if m < 60:
        return "%d min %d s" % (m, s)
    h, m = divmod(m, 60)
    if h < 24:
        return "%d h %d min" % (h, m)
    d, h = divmod(h, 24)
    return "%d d %d h" % (d, h)


def who(holder):
    """The holder's details in one line: user, controller, job, playbook, version, then anything else."""
    holder = holder if isinstance(holder, dict) else {}
    parts = []
    user = holder.get("user") or holder.get("controller_user")
    if user:
        parts.append("user %s" % user)
    if holder.get("controller"):
        as_user = holder.get("controller_user")
        parts.append("controller %s%s" % (holder["controller"], " as %s" % as_user if as_user and as_user != user else ""))
    for key, label in (("job_id", "job"), ("playbook", "playbook"), ("version", "version")):
        if holder.get(key) not in (None, ""):
            parts.append("%s %s" % (label, holder[key]))
    parts.extend("%s %s" % (key, holder[key]) for key in sorted(holder) if key not in DESCRIBED + UNSHOWN)
    return ", ".join(parts) if parts else "no details recorded"


def describe(record, now):
    """A lease for people: run, who, since when (ISO and how long ago), when it expires."""
    age = now - record["since"]
    text = "run %s (%s), since %s (%s)" % (
        record.get("run_id"), who(record.get("holder")), iso(record["since"]),
        "%s ago" % duration(age) if age >= 0 else "%s from now - has the lock host's clock gone back?" % duration(-age))
    left = record["expires"] - now
    if left >= 0:
        return text + ", expires in %s" % duration(left)
    return text + ", expired %s ago" % duration(-left)


def is_number(value):
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def parse(data):
    """The lease in `data` (bytes), or the reason it is none: (record, None) or (None, reason)."""
    try:
        record = json.loads(data.decode("utf-8"))
    except (UnicodeDecodeError, ValueError):
        return None, "not JSON" if data.strip() else "empty"
    if not isinstance(record, dict):
        return None, "a JSON %s, not an object" % type(record).__name__
    if not isinstance(record.get("run_id"), str) or not all(is_number(record.get(k)) for k in ("since", "expires")):
        return None, "a JSON object without a run_id, since and expires"
    return record, None


def summary(record):
    """What a lease record keeps of an earlier holder (not that holder's own history)."""
    keep = ("run_id", "holder", "since", "since_iso", "renewed", "renewed_iso", "expires", "expires_iso", "ttl")
    return dict((key, record[key]) for key in keep if key in record)


class Lease:
    """The lease at `path`. `clock` is the lock host's wall clock (epoch seconds); `monotonic` and `sleep`
    time the wait; all three are injectable for tests. In check mode nothing is written or created.
    After a call: `warnings` (for module.warn), `before` and `after` (the records, for the diff)."""

    def __init__(self, path, check_mode=False, clock=time.time, monotonic=time.monotonic, sleep=time.sleep, poll=None):
        self.path = path
        self.mutex = path + ".lock"
        self.check_mode = check_mode
        self.clock = clock
        self.monotonic = monotonic
        self.sleep = sleep
        self.poll = POLL if poll is None else poll
        self.warnings = []
        self.before = None
        self.after = None

    # -- reading -------------------------------------------------------------------------------------

    def read(self):
        """The lease record at path, None when there is no file; CorruptLease when it is something else."""
        try:
            fd = os.open(self.path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC)
        except FileNotFoundError:
            return None
        except OSError as exc:
            if exc.errno == errno.ELOOP:
                raise CorruptLease(self.path, "a symlink")
            raise
        try:
            if not stat.S_ISREG(os.fstat(fd).st_mode):
                raise CorruptLease(self.path, "not a regular file")
            chunks, size = [], 0
            while size <= MAX_RECORD:
                chunk = os.read(fd, 65536)
                if not chunk:
                    break
                chunks.append(chunk)
                size += len(chunk)
        finally:
            os.close(fd)
        if size > MAX_RECORD:
            raise CorruptLease(self.path, "larger than %d bytes" % MAX_RECORD)
        record, reason = parse(b"".join(chunks))
        if reason:
            raise CorruptLease(self.path, reason)
        return record

    def view(self, record, now):
        """The result fields of a lease record: held (whether it is live), its run, holder and times."""
        live = record is not None and now <= record["expires"]
        shown = record if live else {}
        return {
            "held": live,
            "run_id": shown.get("run_id"),
            "holder": shown.get("holder"),
            "since": shown.get("since"),
            "since_iso": shown.get("since_iso"),
            "expires": shown.get("expires"),
            "expires_iso": shown.get("expires_iso"),
            "expires_in": round(record["expires"] - now, 3) if live else None,
        }

    # -- the flock of a read-modify-write ------------------------------------------------------------

    def ensure_dir(self):
        """Create the missing parent directories, 0700."""
        missing = []
        directory = os.path.dirname(os.path.abspath(self.path))
        while not os.path.isdir(directory):
            missing.append(directory)
            directory = os.path.dirname(directory)
        for directory in reversed(missing):
            try:
                os.mkdir(directory, DIR_MODE)
            except FileExistsError:
                pass

    def lock(self):
        """Open and flock the mutex file (0600); its descriptor. Closing it unlocks."""
        fd = os.open(self.mutex, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC, MODE)
        try:
            st = os.fstat(fd)
            if not stat.S_ISREG(st.st_mode):
                raise LeaseError("%s is not a regular file; remove it (it is only the lock of %s)" % (self.mutex, self.path))
            if stat.S_IMODE(st.st_mode) != MODE and st.st_uid == os.geteuid():
                os.fchmod(fd, MODE)
            deadline = time.monotonic() + MUTEX_TIMEOUT
            while True:
                try:
                    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                    return fd
                except BlockingIOError:
                    if time.monotonic() >= deadline:
                        raise LeaseError(
                            "could not lock %s within %d s: a process keeps it locked, where a fleet_lock task holds it "
                            "for milliseconds. Find it (fuser -v %s) and stop it" % (self.mutex, MUTEX_TIMEOUT, self.mutex))
                    time.sleep(0.01)
        except BaseException:
            os.close(fd)
            raise

    def guarded(self, step):
        """step(), under the flock unless in check mode (which only reads)."""
        if self.check_mode:
            return step()
        self.ensure_dir()
        fd = self.lock()
        try:
            return step()
        finally:
            os.close(fd)

    def write(self, record):
        self.after = record
        if not self.check_mode:
            write_text_atomic(self.path, json.dumps(record, indent=2, sort_keys=True) + "\n", mode=MODE)

    # -- the three states ----------------------------------------------------------------------------

    def query(self):
        """Who holds the lock right now; reads only."""
        now = self.clock()
        record = self.read()
        self.before = self.after = record
        result = self.view(record, now)
        result.update(changed=False, action="none", previous=record, taken_over_from=None, expired_from=None)
        return result

    def acquire(self, run_id, holder=None, ttl=300.0, wait=0.0, take_over=False):
        """Take the lease for run_id, or renew it when run_id holds it. Another run's live lease makes it wait
        up to `wait` seconds for that lease to be released or to expire, then fail with LeaseBusy naming the
        holder - unless take_over, which takes it from that run at once."""
        if not math.isfinite(ttl) or ttl <= 0:
            raise LeaseError("ttl must be more than 0 seconds, not %s" % ttl)
        if math.isnan(wait) or wait < 0:
            raise LeaseError("wait must be 0 seconds or more, not %s" % wait)
        holder = dict(holder or {})
        start = self.monotonic()
        while True:
            result, busy, now = self.guarded(lambda: self._acquire_once(run_id, holder, ttl, take_over))
            waited = round(self.monotonic() - start, 3)
            if result is not None:
                result["waited"] = waited
                return result
            remaining = start + wait - self.monotonic()
            if remaining <= 0:
                fields = self.view(busy, now)
                fields.update(previous=busy, waited=waited, taken_over_from=None, expired_from=None)
                raise LeaseBusy("the fleet deploy lock %s is held by %s%s. %s" % (
                    self.path, describe(busy, now), "; waited %s" % duration(waited) if wait else "", WHAT_TO_DO), fields)
            self.sleep(min(self.poll, remaining))

    def _acquire_once(self, run_id, holder, ttl, take_over):
        """(result, None, now) when run_id now holds the lease (written), else (None, live record of another run, now)."""
        now = self.clock()
        taken_over_from = expired_from = None
        try:
            previous = self.read()
        except CorruptLease as exc:
            if not take_over:
                raise
            previous, taken_over_from = None, {"unreadable": exc.reason}
            self.warnings.append("took over the fleet deploy lock %s, whose file was %s" % (self.path, exc.reason))
        self.before = previous
        record = {"run_id": run_id, "holder": holder, "ttl": ttl, "since": now}
        if previous is None:
            action = "taken_over" if taken_over_from else "acquired"
        elif previous["run_id"] == run_id:
            action = "renewed"
            record["since"] = previous["since"]
            if isinstance(previous.get("holder"), dict):
                record["holder"] = dict(previous["holder"])  # details given only when it was taken stay
                record["holder"].update(holder)
            for key in ("taken_over_from", "expired_from"):
                if previous.get(key) is not None:
                    record[key] = previous[key]
            if now > previous["expires"]:
                self.warnings.append("the lease of run %s on %s had expired %s ago and nobody took it; renewed" % (
                    run_id, self.path, duration(now - previous["expires"])))
        elif now > previous["expires"]:
            action = "acquired"
            expired_from = summary(previous)
            self.warnings.append("took the fleet deploy lock %s over from an expired lease: %s" % (self.path, describe(previous, now)))
        elif take_over:
            action = "taken_over"
            taken_over_from = summary(previous)
            self.warnings.append("took the fleet deploy lock %s over from a live lease (take_over): %s" % (
                self.path, describe(previous, now)))
        else:
            return None, previous, now
        if taken_over_from is not None:
            record["taken_over_from"] = taken_over_from
        if expired_from is not None:
            record["expired_from"] = expired_from
        record.update(renewed=now, expires=now + ttl)
        for key in ("since", "renewed", "expires"):
            record[key] = round(record[key], 3)
            record[key + "_iso"] = iso(record[key])
        self.write(record)
        result = self.view(record, now)
        result.update(changed=True, action=action, taken_over_from=taken_over_from, expired_from=expired_from,
                      previous=previous)
        return result, None, now

    def release(self, run_id):
        """Give the lease up when run_id holds it (expired or not: nobody took it); otherwise change nothing.
        With no lease file there is nothing to release, and nothing (no directory, no flock file) is made."""
        if not os.path.lexists(self.path):
            return self._release_once(run_id)
        return self.guarded(lambda: self._release_once(run_id))

    def _release_once(self, run_id):
        now = self.clock()
        previous = self.read()
        self.before = self.after = previous
        if previous is not None and previous["run_id"] == run_id:
            self.after = None
            if not self.check_mode:
                os.unlink(self.path)
                fsync_dir(os.path.dirname(self.path) or ".")
            result = self.view(None, now)
            result.update(changed=True, action="released")
        else:
            result = self.view(previous, now)
            result.update(changed=False, action="none")
            if result["held"]:
                self.warnings.append("the fleet deploy lock %s is held by %s, not by run %s; left alone" % (
                    self.path, describe(previous, now), run_id))
        result.update(previous=previous, taken_over_from=None, expired_from=None)
        return result

    def run(self, state, run_id=None, holder=None, ttl=300.0, wait=0.0, take_over=False):
        """The module's operation: state held, released or query."""
        if state == "query":
            result = self.query()
        elif state == "released":
            result = self.release(run_id)
        else:
            result = self.acquire(run_id, holder, ttl, wait, take_over)
        result.setdefault("waited", 0.0)
        return result
