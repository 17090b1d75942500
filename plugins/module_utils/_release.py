# -*- coding: utf-8 -*-
# Copyright: seedops.deploy contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The operations behind the release and release_info modules (private to seedops.deploy).

``Releaser`` stages, activates, rolls back and prunes the releases of one base directory under its
deploy lock; it takes the module's parameters as a plain dict and reports through ``result``,
``diff`` and ``warnings``, so it runs (and is tested) without an AnsibleModule. ``host_releases``
is what release_info reports. The layout, records and switch themselves are in ``_releases``.
"""

from __future__ import annotations

import getpass
import grp
import os
import pwd
import re
import shutil
import time

from ansible.module_utils.common.text.converters import to_native

from ansible_collections.seedops.deploy.plugins.module_utils import _archive
from ansible_collections.seedops.deploy.plugins.module_utils import _digest
from ansible_collections.seedops.deploy.plugins.module_utils import _lock
from ansible_collections.seedops.deploy.plugins.module_utils import _releases as rel

# What a release operation raises for a refusal the user can act on (the module fails with its message).
ERRORS = (rel.ReleaseError, _archive.ArchiveError, _lock.LockTimeout)

_UNSET = object()

# A container release (option image): the image the engine runs, by digest - <registry host[:port]>/<repository>@sha256:...
IMAGE_REFERENCE = re.compile(r"^[A-Za-z0-9.-]+(:[0-9]+)?(/[a-z0-9]+([._-][a-z0-9]+)*)+@sha256:[0-9a-f]{64}$")
# The file of a container release that names its image, as systemd's EnvironmentFile= reads it (the app_service
# role's unit for app_service_runtime: container).
IMAGE_FILE = "image.env"


def parse_digest(value):
    """(algorithm, hex) of a digest option, (None, None) when it is not given."""
    if value is None:
        return None, None
    try:
        return _digest.parse_checksum(value)
    except _digest.DigestError as exc:
        raise rel.ReleaseError("digest: %s" % exc)


def parse_mode(value, name):
    """An octal mode option ('0755', '755' or an int) as an int."""
    if isinstance(value, int):
        return value
    try:
        return int(str(value), 8)
    except ValueError:
        raise rel.ReleaseError("%s %r is not an octal mode such as '0755'" % (name, value))


def check_digest(src, algorithm, expected, got):
    """Refuse an artifact whose digest (hex, got) is not the expected one (when one is expected)."""
    if expected and got != expected:
        raise rel.ReleaseError(
            "artifact %s does not match its digest: expected %s:%s, got %s:%s. Nothing was staged; fetch "
            "the artifact again" % (src, algorithm, expected, algorithm, got))


def _ids(owner, group):
    """uid and gid for lchown (-1: unchanged): names looked up on this host, digits taken as they are."""
    uid = gid = -1
    try:
        if owner:
            uid = int(owner) if owner.isdigit() else pwd.getpwnam(owner).pw_uid
        if group:
            gid = int(group) if group.isdigit() else grp.getgrnam(group).gr_gid
    except KeyError as exc:
        raise rel.ReleaseError("owner or group does not exist on this host: %s" % to_native(exc))
    return uid, gid


def chown_tree(root, owner=None, group=None):
    """Give every file under root (root included, links not followed) to owner and group."""
    if not owner and not group:
        return
    uid, gid = _ids(owner, group)
    for dirpath, dirnames, filenames in os.walk(root):
        os.lchown(dirpath, uid, gid)
        for name in dirnames + filenames:
            os.lchown(os.path.join(dirpath, name), uid, gid)


def with_remote_user(given):
    """Who deployed (the task's deployed_by) with the user the module runs for on this host."""
    who = dict(given or {})
    who.setdefault("remote_user", os.environ.get("SUDO_USER") or getpass.getuser())
    return who


# The release module's defaults for what a switch to a staged release does not use (staged_restart's switch).
SWITCH_DEFAULTS = dict(
    state="active", src=None, digest=None, store=None, format="auto", strip_components=0, file_name=None,
    file_mode="0755", shared=[], owner=None, group=None, mode="0755", rollback_to=None, max_size_mb=4096,
    max_members=100000, allow_setuid=False, image=None,
)


class Releaser:
    """One run of the release module over ``params`` (the module's options, defaults filled in). A params key
    the module does not have, ``leaving_state`` (previous or failed), says what the release that was live becomes
    when state=active switches away from it (staged_restart's switch for a rollback marks it failed)."""

    @classmethod
    def switcher(cls, path, release_id, keep=None, deployed_by=None, lock_timeout=60, leaving_state="previous",
                 check_mode=False):
        """A Releaser that only switches current to the staged release_id (and prunes to keep): it refuses to stage."""
        params = dict(SWITCH_DEFAULTS, path=path, release_id=release_id, keep=keep, deployed_by=deployed_by or {},
                      lock_timeout=lock_timeout, leaving_state=leaving_state)
        return cls(params, check_mode=check_mode)

    def __init__(self, params, check_mode=False):
        self.p = params
        self.layout = rel.Layout(params["path"])
        self.check = check_mode
        self.result = {"changed": False, "staged": False, "switched": False, "pruned": [], "lock_wait": 0.0}
        self.diff = {"before": {}, "after": {}}
        self.warnings = []

    def _note(self, key, after, before=_UNSET):
        """Record a change in the result and the diff."""
        self.result["changed"] = True
        if before is not _UNSET:
            self.diff["before"][key] = before
        self.diff["after"][key] = after

    # -- staging -------------------------------------------------------------------------------

    def source(self):
        """The artifact to stage: (path, algorithm, expected hex or None)."""
        algorithm, hexdigest = parse_digest(self.p["digest"])
        src = self.p["src"]
        if src is None and hexdigest:
            if algorithm != "sha256":
                raise rel.ReleaseError("the store is addressed by sha256; give src for a %s digest" % algorithm)
            src = os.path.join(self.p["store"] or self.layout.store, "sha256", hexdigest)
        if src is None and "leaving_state" in self.p:
            raise rel.ReleaseError("release %s is not staged under %s: stage it first (seedops.deploy.release "
                                   "state=staged, the deploy's stage step); nothing was switched"
                                   % (self.p["release_id"], self.layout.releases))
        if src is None:
            raise rel.ReleaseError("release %s is not staged yet: give src (the artifact on the host) or digest "
                                   "(an artifact in the store)" % self.p["release_id"])
        if not os.path.isfile(src):
            raise rel.ReleaseError("the artifact %s does not exist on this host (or is not a file); transfer it first, "
                                   "for example with seedops.deploy.artifact" % src)
        return src, algorithm or "sha256", hexdigest

    def stage(self, release_id, records):
        """The record of release_id, staged by this run when it is not on disk yet."""
        existing = records.get(release_id)
        if existing is not None and existing.get("exists"):
            rel.refuse_corrupt(existing, "stage")
            self.refuse_other_artifact(release_id, existing)
            return existing
        if self.check:
            # The artifact may not be on the host yet: in check mode an earlier transfer only said it would be.
            self._note("staged", release_id)
            return {"id": release_id, "state": "staged", "source": self.p["src"]}
        if self.p.get("image"):
            src, algorithm = self.p["image"], "sha256"
            self._note("staged", release_id)
            info = self.into_place(release_id, self.write_image_file)
        else:
            src, algorithm, expected = self.source()
            self._note("staged", release_id)
            info = self.unpack_into_place(release_id, src, algorithm, expected)
            self.result["unpack"] = info
        record = self.new_record(release_id, src, algorithm, info, existing)
        self.save_new(record)
        self.result["staged"] = True
        return record

    def write_image_file(self, staging):
        """Fill a container release's staging directory: IMAGE_FILE names the image, which the engine holds already.
        The info new_record takes (format image, nothing unpacked, the index's digest)."""
        self.finish_tree(staging)
        # Written after the tree's owner is set, so it stays the module's (root's): the unit reads it as root.
        path = os.path.join(staging, IMAGE_FILE)
        with open(path, "w") as f:
            f.write("SEEDOPS_IMAGE=%s\n" % self.p["image"])
            f.flush()
            os.fsync(f.fileno())
        os.chmod(path, 0o644)
        return {"format": "image", "digest": parse_digest(self.p["digest"])[1], "bytes": 0, "source_bytes": 0,
                "members": 1}

    def refuse_other_artifact(self, release_id, existing):
        """A staged release id names one artifact: refuse a different one under the same id."""
        if not (self.p["digest"] or self.p["src"]):
            return
        src_digest = self.expected_digest_of_source()
        if src_digest and existing.get("digest") and src_digest != existing["digest"]:
            raise rel.ReleaseError(
                "release %s is already staged with %s, and the artifact given now is %s. A release id names "
                "one artifact: use a new release_id, or remove the old release first"
                % (release_id, existing["digest"], src_digest))

    def expected_digest_of_source(self):
        algorithm, hexdigest = parse_digest(self.p["digest"])
        if hexdigest:
            return "%s:%s" % (algorithm, hexdigest)
        src = self.p["src"]
        if src and os.path.isfile(src):
            return "sha256:" + _digest.file_digest(src)
        return None

    def unpack_into_place(self, release_id, src, algorithm, expected):
        """Unpack into a private staging directory, check it, then rename it to releases/<id>."""
        def fill(staging):
            info = self.unpack(release_id, src, staging, algorithm)
            check_digest(src, algorithm, expected, info["digest"])
            self.finish_tree(staging)
            return info

        return self.into_place(release_id, fill)

    def into_place(self, release_id, fill):
        """fill(staging directory) -> info, then the directory renamed to releases/<id>. Anything that goes wrong
        removes the staging directory: nothing half-staged stays."""
        staging = os.path.join(self.layout.releases, ".staging-%s-%d" % (release_id, os.getpid()))
        os.mkdir(staging, 0o700)
        try:
            info = fill(staging)
            self.move_into_releases(staging, release_id)
        except BaseException:
            shutil.rmtree(staging, ignore_errors=True)
            raise
        return info

    def unpack(self, release_id, src, staging, algorithm):
        """_archive.unpack with this run's limits; its info gains the seconds it took."""
        started = time.monotonic()
        limits = _archive.Limits(self.p["max_size_mb"] << 20, self.p["max_members"], self.p["allow_setuid"])
        try:
            info = _archive.unpack(src, staging, self.p["format"], limits, self.p["strip_components"],
                                   self.p["file_name"], parse_mode(self.p["file_mode"], "file_mode"), algorithm)
        except _archive.ArchiveError as exc:
            raise rel.ReleaseError("refused to stage %s from %s: %s. Nothing was staged."
                                   % (release_id, src, to_native(exc)))
        info["seconds"] = round(time.monotonic() - started, 3)
        return info

    def finish_tree(self, staging):
        """Shared links, owner and group, and the top directory's mode."""
        rel.link_shared(self.layout, staging, self.p["shared"])
        chown_tree(staging, self.p["owner"], self.p["group"])
        os.chmod(staging, parse_mode(self.p["mode"], "mode"))

    def move_into_releases(self, staging, release_id):
        final = self.layout.release_dir(release_id)
        if os.path.lexists(final):
            raise rel.ReleaseError(
                "%s exists but has no record; it was not staged by seedops.deploy. Move it away, or use another "
                "release_id" % final)
        os.rename(staging, final)

    def new_record(self, release_id, src, algorithm, info, existing):
        """The record of a release just staged; a release that had failed before stays failed. A container release's
        also names its image."""
        record = {
            "id": release_id,
            "digest": "%s:%s" % (algorithm, info["digest"]),
            "source": src,
            "format": info["format"],
            "state": "failed" if existing is not None and existing.get("state") == "failed" else "staged",
            "created": rel.now_iso(),
            "activated": None,
            "seq": None,
            "size": info["bytes"],
            "source_size": info["source_bytes"],
            "members": info["members"],
            "deployed_by": self.deployed_by(),
        }
        if info["format"] == "image":
            record["image"] = src
        return record

    def save_new(self, record):
        rel.save_record(self.layout, record)
        record["exists"] = True
        rel.fsync_dir(self.layout.releases)

    def deployed_by(self):
        return with_remote_user(self.p["deployed_by"])

    # -- switching -----------------------------------------------------------------------------

    def activate(self, release_id, records, current):
        if current == release_id:
            return
        self._note("current", release_id, current)
        if not self.check:
            self.switch(records, current, release_id, leaving_state=self.p.get("leaving_state") or "previous")

    def switch(self, records, current, target, leaving_state):
        rel.activate(self.layout, records, current, target, leaving_state, by=self.deployed_by())
        self.result["switched"] = True

    def roll_back(self, release_id, records, current):
        """Roll release_id (default: the live one) back; returns the id rolled back."""
        leaving = release_id or current
        if leaving is None:
            raise rel.ReleaseError("nothing is live under %s, so there is nothing to roll back" % self.layout.base)
        if leaving != current:
            self.mark_failed(leaving, records)
            return leaving
        target = self.rollback_target(records, current)
        self._note("current", target, current)
        if not self.check:
            self.switch(records, current, target, leaving_state="failed")
        self.result["rolled_back_to"] = target
        return leaving

    def mark_failed(self, release_id, records):
        """A release that is not live (already rolled back, or never live): make sure it is marked failed."""
        record = records.get(release_id)
        if record is None:
            raise rel.ReleaseError("release %s has no record under %s" % (release_id, self.layout.releases))
        if record.get("state") == "failed":
            return
        rel.refuse_corrupt(record, "mark as failed")
        self._note("%s state" % release_id, "failed", record.get("state"))
        if not self.check:
            record["state"] = "failed"
            record["failed"] = rel.now_iso()
            record["failed_by"] = self.deployed_by()
            rel.save_record(self.layout, record)

    def rollback_target(self, records, current):
        """rollback_to, or the previous healthy release; checked to be staged and not the live one."""
        target = self.p["rollback_to"] or rel.rollback_target(records, current)
        if target is None:
            raise rel.ReleaseError(
                "cannot roll back %s: no previous healthy release is recorded under %s; give rollback_to, or deploy a "
                "known-good release" % (current, self.layout.releases))
        rel.validate_release_id(target)
        if target not in records or not records[target].get("exists"):
            raise rel.ReleaseError("cannot roll back to %s: it is not staged under %s" % (target, self.layout.releases))
        rel.refuse_corrupt(records[target], "roll back to")
        if target == current:
            raise rel.ReleaseError("rollback_to %s is the release being rolled back" % target)
        if current not in records:
            raise rel.ReleaseError("current points at %s, which has no record; give release_id and rollback_to "
                                   "explicitly" % current)
        return target

    # -- pruning -------------------------------------------------------------------------------

    def prune(self, records, current):
        keep = self.p["keep"]
        if keep is None:
            return
        remove = rel.plan_prune(records, current, keep)
        if not remove:
            return
        self.result["pruned"] = remove
        self._note("releases", sorted(set(records) - set(remove)), sorted(records))
        if self.check:
            return
        for release_id in remove:
            rel.remove_release(self.layout, release_id)

    # -- the whole run -------------------------------------------------------------------------

    def validate(self):
        """Refuse option values the argument spec cannot express, before anything is touched."""
        state, release_id = self.p["state"], self.p["release_id"]
        if release_id is not None:
            rel.validate_release_id(release_id)
        elif state != "rolled_back":
            raise rel.ReleaseError("release_id is required with state=%s" % state)
        if self.p["keep"] is not None and self.p["keep"] < 1:
            raise rel.ReleaseError("keep must be 1 or more (the live release is always kept), got %d" % self.p["keep"])
        if self.p["strip_components"] < 0:
            raise rel.ReleaseError("strip_components must be 0 or more")
        self.validate_image()

    def validate_image(self):
        image = self.p.get("image")
        if image is None:
            return
        if not IMAGE_REFERENCE.match(image):
            raise rel.ReleaseError(
                "image must be what the engine holds, by digest: <registry host[:port]>/<repository>@sha256:<64 hex "
                "digits> (seedops.deploy.image_pull returns it as reference), got %r. Nothing was staged" % image)
        if self.p["src"] is not None:
            raise rel.ReleaseError("give image (a container release) or src (an artifact to unpack), not both")
        algorithm, hexdigest = parse_digest(self.p["digest"])
        if not hexdigest or algorithm != "sha256":
            raise rel.ReleaseError("a container release needs digest: the image index's digest (sha256:<hex>), which "
                                   "names the release for every platform; got %r" % self.p["digest"])

    def run(self):
        self.validate()
        if self.check:
            # Check mode only reads; it takes no lock (taking it writes the holder's record).
            return self.run_unlocked(self.p["state"], self.p["release_id"])
        self.layout.ensure()
        owner = "%s via seedops.deploy.release" % self.deployed_by().get("remote_user")
        lock = _lock.DeployLock(self.layout.lock, owner, self.p["lock_timeout"])
        with lock:
            self.result["lock_wait"] = round(lock.waited, 3)
            if lock.took_over:
                self.warnings.append("took over the deploy lock %s left by %s, which is gone"
                                     % (self.layout.lock, _lock.describe(lock.took_over)))
            return self.run_unlocked(self.p["state"], self.p["release_id"])

    def remove_leftovers(self):
        """Staging and trash directories of an interrupted run; only the lock holder may remove them."""
        for path in rel.leftovers(self.layout):
            shutil.rmtree(path, ignore_errors=True)
            self.warnings.append("removed %s, left by an interrupted run" % path)

    def run_unlocked(self, state, release_id):
        if not self.check:
            self.remove_leftovers()
        records = rel.read_records(self.layout)
        current = rel.current_release(self.layout)
        self.result["previous"] = current
        for corrupt_id, why in sorted(rel.corrupt_records(records).items()):
            self.warnings.append(
                "the record of release %s (%s) cannot be trusted: %s. That release is never pruned, switched to or "
                "chosen as a rollback target until the record is repaired or the release is moved away"
                % (corrupt_id, self.layout.record_path(corrupt_id), why))
        if state in ("staged", "active"):
            record = self.stage(release_id, records)
            records[release_id] = record
            if state == "active":
                self.activate(release_id, records, current)
        else:
            release_id = self.roll_back(release_id, records, current)
            record = records.get(release_id)
        now_current = self.diff["after"].get("current", current) if self.check else rel.current_release(self.layout)
        self.result["current"] = now_current
        self.prune(rel.read_records(self.layout) if not self.check else records, now_current)
        self.result["release_id"] = release_id
        if record is not None:
            self.report_release(release_id, record)
        return self.result

    def report_release(self, release_id, record):
        self.result["release_path"] = self.layout.release_dir(release_id)
        self.result["digest"] = record.get("digest")
        if not self.check and os.path.exists(self.layout.record_path(release_id)):
            record = rel.read_records(self.layout).get(release_id, record)
        clean = dict(record)
        clean.pop("exists", None)
        self.result["record"] = clean


def host_releases(path):
    """What release_info reports for the base directory path: every release newest first (each
    marked whether it is live), the live one, the rollback target, the lock holder, the platform."""
    layout = rel.Layout(path)
    records = rel.read_records(layout)
    current = rel.current_release(layout)
    releases = [dict(record, current=record["id"] == current) for record in rel.newest_first(records)]
    uname = os.uname()
    return {
        "exists": os.path.isdir(layout.releases),
        "current": current,
        "rollback_target": rel.rollback_target(records, current),
        "releases": releases,
        "lock": _lock.held_by(layout.lock),
        "platform": {"system": uname.sysname, "architecture": uname.machine},
    }
