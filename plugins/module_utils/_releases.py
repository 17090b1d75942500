# -*- coding: utf-8 -*-
# Copyright: seedops.deploy contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Release layout, records, the atomic switch, rollback choice and pruning (private to seedops.deploy).

On the host, per application base directory::

    releases/<id>/        unpacked, never modified after staging
    releases/<id>.json    the record: id, digest, source, state, created, activated, seq, deployed_by,
                          activated_by, failed_by
    shared/               persistent paths linked into every release
    current -> releases/<id>
    .lock                 the deploy lock (see _lock.py)

Record states: ``staged`` (never live), ``active`` (what ``current`` points at), ``previous``
(was live and was left healthy: a rollback target), ``failed`` (rolled back from). Rollback picks
the ``previous`` release with the highest activation sequence number, never by directory times.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import tempfile
import time

RELEASE_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._+~-]{0,127}")  # whole ids only: used with fullmatch
STATES = ("staged", "active", "previous", "failed")
RECORD_SUFFIX = ".json"
# Optional record fields and the types they must have when present (None counts as absent).
RECORD_TYPES = {"digest": str, "source": str, "created": str, "activated": str, "seq": int}


class ReleaseError(Exception):
    """A release operation cannot go on; the message says what is wrong and what to do."""


def is_release_id(release_id):
    """Whether release_id is a valid id: 1-128 of letters, digits and . _ + ~ -, starting with a letter
    or digit, no '..', and not ending in .json (releases/<id>.json would look like another id's record)."""
    return (isinstance(release_id, str) and RELEASE_ID.fullmatch(release_id) is not None and ".." not in release_id
            and not release_id.lower().endswith(RECORD_SUFFIX))


def validate_release_id(release_id):
    if not is_release_id(release_id):
        raise ReleaseError(
            "release_id %r is not valid: use 1-128 letters, digits and . _ + ~ -, starting with a letter or digit, "
            "with no path separators, no '..' and not ending in .json" % (release_id,))
    return release_id


def now_iso():
    t = time.time()
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(t)) + ".%06dZ" % int((t % 1) * 1e6)


class Layout:
    def __init__(self, base):
        self.base = base
        self.releases = os.path.join(base, "releases")
        self.shared = os.path.join(base, "shared")
        self.current = os.path.join(base, "current")
        self.lock = os.path.join(base, ".lock")
        self.store = os.path.join(base, "store")
        # Start beside, then flip: the port of the instance (<service>@<port>) the load balancer sends traffic to.
        self.live_port = os.path.join(base, "live-port")

    def release_dir(self, release_id):
        return os.path.join(self.releases, release_id)

    def record_path(self, release_id):
        return os.path.join(self.releases, release_id + ".json")

    def ensure(self):
        for path in (self.base, self.releases, self.shared):
            if not os.path.isdir(path):
                os.makedirs(path, 0o755)


def live_port(layout, ports, active=()):
    """The port of the live instance of a service that runs beside itself on `ports`: the one in the layout's
    live-port file, else the first one in `active` (the ports whose instance runs), else the first port."""
    try:
        with open(layout.live_port) as handle:
            port = int(handle.read().strip())
    except (OSError, ValueError):
        port = None
    if port in ports:
        return port
    return next((p for p in ports if p in active), ports[0])


def fsync_dir(path):
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def write_text_atomic(path, text, mode=0o644):
    """Write `text` to `path` so that readers see the old file or the whole new one: a temp file in the same
    directory, fsynced, renamed over `path`, and the directory fsynced."""
    directory = os.path.dirname(path) or "."
    fd, tmp = tempfile.mkstemp(dir=directory, prefix=".tmp-")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, mode)
        os.rename(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
    fsync_dir(directory)


def write_json_atomic(path, doc):
    write_text_atomic(path, json.dumps(doc, indent=2, sort_keys=True) + "\n")


def check_record(record, release_id):
    """Why `record` (parsed from releases/<release_id>.json) cannot be trusted, or None when it can: a JSON
    object whose id is the file's, a valid id, a known state (or none) and fields of the expected types."""
    if not isinstance(record, dict):
        return "it holds a JSON %s, not an object" % type(record).__name__
    if not is_release_id(release_id):
        return "%r is not a valid release id" % release_id
    if record.get("id") != release_id:
        return "its id is %r, not %r as its file name says" % (record.get("id"), release_id)
    if record.get("state") is not None and record["state"] not in STATES:
        return "its state %r is none of %s" % (record["state"], ", ".join(STATES))
    for field, kind in RECORD_TYPES.items():
        value = record.get(field)
        if value is not None and (not isinstance(value, kind) or isinstance(value, bool)):
            return "its %s %r is not a %s" % (field, value, "number" if kind is int else "string")
    return None


def read_records(layout):
    """{id: record} for every record file (releases/<id>.json, a regular file). One that cannot be read
    or trusted (see check_record) comes back as {id, state: 'corrupt', error} so callers report it rather
    than trip over it; pruning never removes a release whose record is corrupt."""
    records = {}
    if not os.path.isdir(layout.releases):
        return records
    for name in os.listdir(layout.releases):
        path = os.path.join(layout.releases, name)
        if not name.endswith(RECORD_SUFFIX) or name.startswith(".") or not os.path.isfile(path):
            continue
        release_id = name[:-len(RECORD_SUFFIX)]
        try:
            with open(path, encoding="utf-8") as f:
                record = json.load(f)
            error = check_record(record, release_id)
        except (OSError, ValueError) as exc:
            error = "it cannot be read: %s" % exc
        if error is not None:
            record = {"id": release_id, "state": "corrupt", "error": error}
        record["exists"] = os.path.isdir(layout.release_dir(release_id))
        records[release_id] = record
    return records


def refuse_corrupt(record, doing):
    """ReleaseError when `record` is corrupt: what was about to be done to it, why, and what to do."""
    if record is not None and record.get("state") == "corrupt":
        raise ReleaseError(
            "cannot %s release %s: its record %s.json cannot be trusted (%s). Nothing was changed. Repair the record, "
            "or move releases/%s and its record away, and run again"
            % (doing, record["id"], record["id"], record.get("error") or "unreadable", record["id"]))


def corrupt_records(records):
    """{id: why} of the records read_records could not trust."""
    return dict((rid, r.get("error") or "unreadable") for rid, r in records.items() if r.get("state") == "corrupt")


def save_record(layout, record):
    doc = dict(record)
    doc.pop("exists", None)
    write_json_atomic(layout.record_path(record["id"]), doc)


def current_release(layout):
    """The id current points at, or None when there is no current link yet."""
    try:
        target = os.readlink(layout.current)
    except FileNotFoundError:
        return None
    except OSError:
        if os.path.exists(layout.current):
            raise ReleaseError(
                "%s exists and is not a symlink; move it away (it is not managed by seedops.deploy) and run again"
                % layout.current)
        raise
    return os.path.basename(os.path.normpath(target))


def switch_current(layout, release_id):
    """Point current at releases/<id> atomically: a temp symlink renamed over current, so the path
    never dangles and never points at a half release."""
    tmp = os.path.join(layout.base, ".current-%d-%d" % (os.getpid(), int(time.time() * 1e6)))
    os.symlink(os.path.join("releases", release_id), tmp)
    try:
        os.rename(tmp, layout.current)
    except BaseException:
        os.unlink(tmp)
        raise
    fsync_dir(layout.base)


def activate(layout, records, current, target, leaving_state="previous", by=None):
    """Make `target` live: its record becomes active with the next activation number, current is
    switched, and the release that was live becomes `leaving_state` (previous, or failed on a
    rollback; a failed release stays failed). `by` (who switched: controller, users, AWX job) goes
    into the records as activated_by (and failed_by), beside deployed_by, which says who staged the
    release. A corrupt record is never written over: a corrupt target is refused before anything
    changes, and a corrupt record of the release that was live is left as it is."""
    record = records[target]
    refuse_corrupt(record, "switch to")
    record.update(state="active", activated=now_iso(), seq=next_seq(records))
    if by:
        record["activated_by"] = by
    save_record(layout, record)
    switch_current(layout, target)
    if current and current in records and current != target and records[current].get("state") != "corrupt":
        old = records[current]
        if leaving_state == "failed":
            old["failed"] = now_iso()
            if by:
                old["failed_by"] = by
        if leaving_state == "failed" or old.get("state") != "failed":
            old["state"] = leaving_state
        old["deactivated"] = now_iso()
        save_record(layout, old)


def next_seq(records):
    return 1 + max([int(r.get("seq") or 0) for r in records.values()] or [0])


def rollback_target(records, current):
    """The previous healthy release: state 'previous', still on disk, highest activation seq."""
    candidates = [r for r in records.values()
                  if r.get("state") == "previous" and r.get("exists", True) and r["id"] != current]
    if not candidates:
        return None
    return max(candidates, key=lambda r: (int(r.get("seq") or 0), r.get("activated") or ""))["id"]


def newest_first(records):
    """The records, the most recently staged first (by creation time, then id)."""
    return sorted(records.values(), key=lambda r: (r.get("created") or "", r["id"]), reverse=True)


def plan_prune(records, current, keep):
    """Ids whose directories and records pruning removes.

    Never the current release, nor the rollback target, nor a release whose record is corrupt (it may
    be the previous healthy release, whose record we cannot read). The `keep` newest releases that are
    not failed stay; failed releases do not count toward `keep` and stay only while they are among the
    `keep` newest overall (for a look at what went wrong). Records whose directory is gone go too.
    """
    if keep is None:
        return []
    ordered = newest_first(records)
    protected = {current, rollback_target(records, current)}
    healthy = [r["id"] for r in ordered if r.get("state") not in ("failed", "corrupt")]
    keep_ids = set(healthy[:keep]) | protected
    recent = {r["id"] for r in ordered[:keep]}
    remove = []
    for r in ordered:
        rid = r["id"]
        if rid in keep_ids or r.get("state") == "corrupt":
            continue
        if r.get("state") == "failed" and rid in recent and r.get("exists", True):
            continue
        remove.append(rid)
    return remove


def remove_release(layout, release_id):
    """Remove a release directory (renamed aside first, so it disappears at once) and its record."""
    path = layout.release_dir(release_id)
    if os.path.isdir(path):
        trash = os.path.join(layout.releases, ".trash-%s-%d" % (release_id, os.getpid()))
        os.rename(path, trash)
        shutil.rmtree(trash)
    try:
        os.unlink(layout.record_path(release_id))
    except FileNotFoundError:
        pass


def leftovers(layout):
    """Staging and trash directories left by an interrupted run (only a lock holder makes them)."""
    if not os.path.isdir(layout.releases):
        return []
    return sorted(os.path.join(layout.releases, n) for n in os.listdir(layout.releases)
                  if n.startswith((".staging-", ".trash-")))


def link_shared(layout, release_root, shared_paths):
    """Replace each shared path in the release with a symlink to shared/<path> (a directory,
    created when missing). Paths are relative and may not leave the release."""
    for rel in shared_paths:
        parts = [p for p in rel.split("/") if p not in ("", ".")]
        if not parts or ".." in parts or rel.startswith("/"):
            raise ReleaseError("shared path %r must be relative, inside the release, without '..'" % rel)
        target = os.path.join(layout.shared, *parts)
        if not os.path.isdir(target):
            os.makedirs(target, 0o755)
        inside = os.path.join(release_root, *parts)
        parent = os.path.dirname(inside)
        for i in range(1, len(parts)):
            if os.path.islink(os.path.join(release_root, *parts[:i])):
                raise ReleaseError("shared path %r goes through a symlink in the release" % rel)
        if not os.path.isdir(parent):
            os.makedirs(parent, 0o755)
        if os.path.islink(inside) or os.path.isfile(inside):
            os.unlink(inside)
        elif os.path.isdir(inside):
            shutil.rmtree(inside)
        depth = len(parts) - 1
        relative_target = os.path.join(*([".."] * (depth + 2) + ["shared"] + parts))
        os.symlink(relative_target, inside)
