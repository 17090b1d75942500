#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: seedops.deploy contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
module: release
short_description: Stage, activate, roll back and prune application releases on a host
version_added: 0.1.0
author: Seedops Maintainers (@seedops-maintainers)
description:
  - Turns a verified artifact into an installed release under O(path) and makes it live with an atomic switch of
    the C(current) symlink; keeps a record of every release (C(releases/<id>.json)) and rolls back by those records.
  - "O(state=staged): unpacks a C(.tar), C(.tar.gz), C(.tar.xz), C(.tar.bz2), C(.zip) or a single file into a
    staging directory next to C(releases/), links the O(shared) paths, sets owner and mode, then renames it to
    C(releases/<id>). Nothing live changes. Unchanged when that id is already staged with the same digest; the same
    id with a different digest is an error, never an overwrite."
  - "O(state=active): stages first when needed, then switches C(current) to the release by renaming a temporary
    symlink over it: the path never dangles and never points at a half release. The release that was live becomes
    C(previous), a rollback target."
  - "O(state=rolled_back): the release O(release_id) is rolled back: when it is live, C(current) switches to the
    previous healthy release (or O(rollback_to)) and O(release_id) is marked C(failed). Rerunning changes nothing.
    Without O(release_id), whatever is live is rolled back."
  - O(keep) prunes after the operation. It never removes the live release, the rollback target, or a release
    being staged; failed releases do not count toward O(keep).
  - Every operation holds the deploy lock of O(path) (C(.lock), an flock with a record of its holder). A second
    run waits up to O(lock_timeout) seconds, then fails naming the holder. A lock left by a holder that is gone is
    taken over with a warning.
  - Archives are checked member by member before anything is written, in Python, not by C(tar) - absolute paths,
    C(..), writing through symlinks, symlink and hard-link targets that leave the release (following chains of
    links), device and fifo nodes, setuid/setgid bits and size and member-count limits are all refused; a
    refused archive leaves nothing behind.
  - The source is read once - its digest is computed while it is unpacked.
options:
  path:
    description: The application's base directory (created when missing).
    type: path
    required: true
  release_id:
    description:
      - The release, for example a version or a run id. 1-128 letters, digits and C(. _ + ~ -), starting with a
        letter or digit. Required for O(state=staged) and O(state=active).
    type: str
  state:
    description: What to do with the release.
    type: str
    choices: [staged, active, rolled_back]
    default: active
  src:
    description:
      - The artifact on the host to stage. A plain path, or left out when O(digest) names an artifact in the
        store (C(<store>/sha256/<hex>), as written by M(seedops.deploy.artifact)).
    type: path
  digest:
    description:
      - Expected digest of the artifact, V(sha256:<hex>). Checked while unpacking; a mismatch stages nothing.
      - Without O(src), the artifact is taken from O(store).
    type: str
  store:
    description: The content-addressed store to find O(digest) in. Defaults to C(<path>/store).
    type: path
  format:
    description: Archive format; V(auto) looks at the file's first bytes. V(tar) covers gzip, xz and bzip2.
    type: str
    choices: [auto, tar, zip, file]
    default: auto
  strip_components:
    description: Leading path components to drop from every member, like C(tar --strip-components).
    type: int
    default: 0
  file_name:
    description: For O(format=file), the file's name inside the release. Defaults to the source's base name.
    type: str
  file_mode:
    description: For O(format=file), the file's mode.
    type: raw
    default: '0755'
  shared:
    description:
      - Paths inside the release replaced by symlinks to C(<path>/shared/<path>) (directories, created when
        missing), for logs and data that outlive releases.
    type: list
    elements: str
    default: []
  owner:
    description: Owner of every file in the release (default - the user the module runs as).
    type: str
  group:
    description: Group of every file in the release.
    type: str
  mode:
    description: Mode of the release's top directory.
    type: raw
    default: '0755'
  keep:
    description: After the operation, keep this many releases that are not failed (see the description).
    type: int
  rollback_to:
    description: For O(state=rolled_back), the release to switch to instead of the previous healthy one.
    type: str
  lock_timeout:
    description: Seconds to wait for the deploy lock of O(path).
    type: int
    default: 60
  max_size_mb:
    description: Refuse archives that unpack to more than this many MiB.
    type: int
    default: 4096
  max_members:
    description: Refuse archives with more members than this.
    type: int
    default: 100000
  allow_setuid:
    description: Allow setuid and setgid bits in the archive.
    type: bool
    default: false
  deployed_by:
    description:
      - Who deployed, recorded with the release. The action plugin fills in the controller host, the controller
        user and the AWX/Tower job id (C(awx_job_id) or C(tower_job_id)); the module adds the remote user.
    type: dict
    default: {}
attributes:
  check_mode:
    support: full
    details: Check mode reads only; it takes no lock.
  diff_mode:
    support: full
  action:
    support: full
    details: The action plugin records the controller host, user and AWX/Tower job id in O(deployed_by).
  platform:
    support: full
    platforms: posix
  async:
    support: none
  bypass_host_loop:
    support: none
extends_documentation_fragment:
  - ansible.builtin.action_common_attributes
  - ansible.builtin.action_common_attributes.flow
notes:
  - Files are owned by the user the module runs as unless O(owner)/O(group) are given; owners stored in the
    archive are not applied.
  - Directories in C(releases/) without a record (from another tool) are left alone.
seealso:
  - module: seedops.deploy.release_info
"""

EXAMPLES = r"""
- name: Stage the new release everywhere (nothing live changes)
  seedops.deploy.release:
    path: /srv/app
    release_id: "{{ deploy_release_id }}"
    src: /srv/app/store/sha256/{{ deploy_digest }}
    digest: "sha256:{{ deploy_digest }}"
    strip_components: 0
    shared: [logs]
    owner: app
    group: app
    state: staged

- name: Switch to it
  seedops.deploy.release:
    path: /srv/app
    release_id: "{{ deploy_release_id }}"
    state: active
    keep: 5

- name: Roll the new release back (to the previous healthy one)
  seedops.deploy.release:
    path: /srv/app
    release_id: "{{ deploy_release_id }}"
    state: rolled_back
"""

RETURN = r"""
release_id:
  description: The release operated on (for O(state=rolled_back), the one rolled back).
  returned: always
  type: str
  sample: "2.0.0"
current:
  description: The live release after the operation.
  returned: always
  type: str
  sample: "2.0.0"
previous:
  description: The release that was live before the operation.
  returned: always
  type: str
  sample: "1.0.0"
release_path:
  description: The release's directory.
  returned: when a release is named
  type: str
  sample: /srv/app/releases/2.0.0
digest:
  description: The artifact's digest.
  returned: when a release is named
  type: str
  sample: "sha256:9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08"
staged:
  description: Whether this run unpacked the release.
  returned: always
  type: bool
switched:
  description: Whether this run switched C(current).
  returned: always
  type: bool
pruned:
  description: Releases removed by O(keep).
  returned: always
  type: list
  elements: str
record:
  description: The release's record after the operation.
  returned: when a release is named
  type: dict
lock_wait:
  description: Seconds spent waiting for the deploy lock.
  returned: always
  type: float
unpack:
  description: What staging unpacked - format, members, bytes, source_bytes, seconds.
  returned: when staged
  type: dict
"""

import getpass
import os
import shutil
import time
import traceback

from ansible.module_utils.basic import AnsibleModule
from ansible.module_utils.common.text.converters import to_native

from ansible_collections.seedops.deploy.plugins.module_utils import _archive
from ansible_collections.seedops.deploy.plugins.module_utils import _digest
from ansible_collections.seedops.deploy.plugins.module_utils import _lock
from ansible_collections.seedops.deploy.plugins.module_utils import _releases as rel


def parse_digest(value):
    if value is None:
        return None, None
    try:
        return _digest.parse_checksum(value)
    except _digest.DigestError as exc:
        raise rel.ReleaseError("digest: %s" % exc)


def parse_mode(module, value, name):
    if isinstance(value, int):
        return value
    try:
        return int(str(value), 8)
    except ValueError:
        module.fail_json(msg="%s %r is not an octal mode such as '0755'" % (name, value))


class Releaser:
    def __init__(self, module):
        self.module = module
        self.p = module.params
        self.layout = rel.Layout(self.p["path"])
        self.check = module.check_mode
        self.result = {"changed": False, "staged": False, "switched": False, "pruned": [], "lock_wait": 0.0}
        self.diff = {"before": {}, "after": {}}
        self.warnings = []

    # -- staging -------------------------------------------------------------------------------

    def source(self):
        algorithm, hexdigest = parse_digest(self.p["digest"])
        src = self.p["src"]
        if src is None and hexdigest:
            if algorithm != "sha256":
                raise rel.ReleaseError("the store is addressed by sha256; give src for a %s digest" % algorithm)
            src = os.path.join(self.p["store"] or self.layout.store, "sha256", hexdigest)
        if src is None:
            raise rel.ReleaseError("release %s is not staged yet: give src (the artifact on the host) or digest "
                                   "(an artifact in the store)" % self.p["release_id"])
        if not os.path.isfile(src):
            raise rel.ReleaseError("the artifact %s does not exist on this host (or is not a file); transfer it first, "
                                   "for example with seedops.deploy.artifact" % src)
        return src, algorithm or "sha256", hexdigest

    def stage(self, release_id, records):
        existing = records.get(release_id)
        if existing is not None and existing.get("exists"):
            if self.p["digest"] or self.p["src"]:
                src_digest = self.expected_digest_of_source()
                if src_digest and existing.get("digest") and src_digest != existing["digest"]:
                    raise rel.ReleaseError(
                        "release %s is already staged with %s, and the artifact given now is %s. A release id names "
                        "one artifact: use a new release_id, or remove the old release first"
                        % (release_id, existing["digest"], src_digest))
            return existing
        if self.check:
            # The artifact may not be on the host yet: in check mode an earlier transfer only said it would be.
            self.result["changed"] = True
            self.diff["after"]["staged"] = release_id
            return {"id": release_id, "state": "staged", "source": self.p["src"]}
        src, algorithm, expected = self.source()
        self.result["changed"] = True
        self.diff["after"]["staged"] = release_id
        staging = os.path.join(self.layout.releases, ".staging-%s-%d" % (release_id, os.getpid()))
        os.mkdir(staging, 0o700)
        try:
            started = time.monotonic()
            limits = _archive.Limits(self.p["max_size_mb"] << 20, self.p["max_members"], self.p["allow_setuid"])
            try:
                info = _archive.unpack(src, staging, self.p["format"], limits, self.p["strip_components"],
                                       self.p["file_name"], parse_mode(self.module, self.p["file_mode"], "file_mode"),
                                       algorithm)
            except _archive.ArchiveError as exc:
                raise rel.ReleaseError("refused to stage %s from %s: %s. Nothing was staged."
                                       % (release_id, src, to_native(exc)))
            info["seconds"] = round(time.monotonic() - started, 3)
            if expected and info["digest"] != expected:
                raise rel.ReleaseError(
                    "artifact %s does not match its digest: expected %s:%s, got %s:%s. Nothing was staged; fetch "
                    "the artifact again" % (src, algorithm, expected, algorithm, info["digest"]))
            rel.link_shared(self.layout, staging, self.p["shared"])
            self.apply_ownership(staging)
            os.chmod(staging, parse_mode(self.module, self.p["mode"], "mode"))
            if os.path.lexists(self.layout.release_dir(release_id)):
                raise rel.ReleaseError(
                    "%s exists but has no record; it was not staged by seedops.deploy. Move it away, or use another "
                    "release_id" % self.layout.release_dir(release_id))
            os.rename(staging, self.layout.release_dir(release_id))
        except BaseException:
            shutil.rmtree(staging, ignore_errors=True)
            raise
        record = {
            "id": release_id,
            "digest": "%s:%s" % (algorithm, info["digest"]),
            "source": src,
            "format": info["format"],
            "state": "staged",
            "created": rel.now_iso(),
            "activated": None,
            "seq": None,
            "size": info["bytes"],
            "members": info["members"],
            "deployed_by": self.deployed_by(),
        }
        if existing is not None and existing.get("state") == "failed":
            record["state"] = "failed"
        rel.save_record(self.layout, record)
        record["exists"] = True
        rel.fsync_dir(self.layout.releases)
        self.result["staged"] = True
        self.result["unpack"] = info
        return record

    def expected_digest_of_source(self):
        algorithm, hexdigest = parse_digest(self.p["digest"])
        if hexdigest:
            return "%s:%s" % (algorithm, hexdigest)
        src = self.p["src"]
        if src and os.path.isfile(src):
            return "sha256:" + _digest.file_digest(src)
        return None

    def apply_ownership(self, root):
        owner, group = self.p["owner"], self.p["group"]
        if not owner and not group:
            return
        uid = gid = -1
        try:
            import grp
            import pwd
            if owner:
                uid = pwd.getpwnam(owner).pw_uid if not owner.isdigit() else int(owner)
            if group:
                gid = grp.getgrnam(group).gr_gid if not group.isdigit() else int(group)
        except KeyError as exc:
            raise rel.ReleaseError("owner or group does not exist on this host: %s" % to_native(exc))
        for dirpath, dirnames, filenames in os.walk(root):
            os.lchown(dirpath, uid, gid)
            for name in dirnames + filenames:
                os.lchown(os.path.join(dirpath, name), uid, gid)

    def deployed_by(self):
        who = dict(self.p["deployed_by"] or {})
        who.setdefault("remote_user", os.environ.get("SUDO_USER") or getpass.getuser())
        return who

    # -- switching -----------------------------------------------------------------------------

    def activate(self, release_id, records, current):
        if current == release_id:
            return
        self.result["changed"] = True
        self.diff["before"]["current"] = current
        self.diff["after"]["current"] = release_id
        if self.check:
            return
        self.switch(records, current, release_id, leaving_state="previous")

    def switch(self, records, current, target, leaving_state):
        rel.activate(self.layout, records, current, target, leaving_state)
        self.result["switched"] = True

    def roll_back(self, release_id, records, current):
        leaving = release_id or current
        if leaving is None:
            raise rel.ReleaseError("nothing is live under %s, so there is nothing to roll back" % self.layout.base)
        if leaving != current:
            # Already rolled back (or never live): make sure it is marked failed, nothing else.
            record = records.get(leaving)
            if record is None:
                raise rel.ReleaseError("release %s has no record under %s" % (leaving, self.layout.releases))
            if record.get("state") != "failed":
                self.result["changed"] = True
                self.diff["before"]["%s state" % leaving] = record.get("state")
                self.diff["after"]["%s state" % leaving] = "failed"
                if not self.check:
                    record["state"] = "failed"
                    record["failed"] = rel.now_iso()
                    rel.save_record(self.layout, record)
            return leaving
        target = self.p["rollback_to"] or rel.rollback_target(records, current)
        if target is None:
            raise rel.ReleaseError(
                "cannot roll back %s: no previous healthy release is recorded under %s; give rollback_to, or deploy a "
                "known-good release" % (current, self.layout.releases))
        rel.validate_release_id(target)
        if target not in records or not records[target].get("exists"):
            raise rel.ReleaseError("cannot roll back to %s: it is not staged under %s" % (target, self.layout.releases))
        if target == current:
            raise rel.ReleaseError("rollback_to %s is the release being rolled back" % target)
        if current not in records:
            raise rel.ReleaseError("current points at %s, which has no record; give release_id and rollback_to "
                                   "explicitly" % current)
        self.result["changed"] = True
        self.diff["before"]["current"] = current
        self.diff["after"]["current"] = target
        if not self.check:
            self.switch(records, current, target, leaving_state="failed")
        self.result["rolled_back_to"] = target
        return leaving

    # -- pruning -------------------------------------------------------------------------------

    def prune(self, records, current):
        keep = self.p["keep"]
        if keep is None:
            return
        remove = rel.plan_prune(records, current, keep)
        if not remove:
            return
        self.result["changed"] = True
        self.result["pruned"] = remove
        self.diff["before"]["releases"] = sorted(records)
        self.diff["after"]["releases"] = sorted(set(records) - set(remove))
        if self.check:
            return
        for release_id in remove:
            rel.remove_release(self.layout, release_id)

    # -- the whole run -------------------------------------------------------------------------

    def run(self):
        state = self.p["state"]
        release_id = self.p["release_id"]
        if release_id is not None:
            rel.validate_release_id(release_id)
        elif state != "rolled_back":
            raise rel.ReleaseError("release_id is required with state=%s" % state)
        if self.p["keep"] is not None and self.p["keep"] < 1:
            raise rel.ReleaseError("keep must be 1 or more (the live release is always kept), got %d" % self.p["keep"])
        if self.p["strip_components"] < 0:
            raise rel.ReleaseError("strip_components must be 0 or more")
        if self.check:
            # Check mode only reads; it takes no lock (taking it writes the holder's record).
            return self.run_unlocked(state, release_id)
        self.layout.ensure()
        owner = "%s via seedops.deploy.release" % self.deployed_by().get("remote_user")
        lock = _lock.DeployLock(self.layout.lock, owner, self.p["lock_timeout"])
        with lock:
            self.result["lock_wait"] = round(lock.waited, 3)
            if lock.took_over:
                self.warnings.append("took over the deploy lock %s left by %s, which is gone"
                                     % (self.layout.lock, _lock.describe(lock.took_over)))
            return self.run_unlocked(state, release_id)

    def run_unlocked(self, state, release_id):
        if not self.check:
            for path in rel.leftovers(self.layout):
                shutil.rmtree(path, ignore_errors=True)
                self.warnings.append("removed %s, left by an interrupted run" % path)
        records = rel.read_records(self.layout)
        current = rel.current_release(self.layout)
        self.result["previous"] = current
        record = None
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
            self.result["release_path"] = self.layout.release_dir(release_id)
            self.result["digest"] = record.get("digest")
            if not self.check and os.path.exists(self.layout.record_path(release_id)):
                record = rel.read_records(self.layout).get(release_id, record)
            clean = dict(record)
            clean.pop("exists", None)
            self.result["record"] = clean
        return self.result


def main():
    module = AnsibleModule(
        argument_spec=dict(
            path=dict(type="path", required=True),
            release_id=dict(type="str"),
            state=dict(type="str", default="active", choices=["staged", "active", "rolled_back"]),
            src=dict(type="path"),
            digest=dict(type="str"),
            store=dict(type="path"),
            format=dict(type="str", default="auto", choices=["auto", "tar", "zip", "file"]),
            strip_components=dict(type="int", default=0),
            file_name=dict(type="str"),
            file_mode=dict(type="raw", default="0755"),
            shared=dict(type="list", elements="str", default=[]),
            owner=dict(type="str"),
            group=dict(type="str"),
            mode=dict(type="raw", default="0755"),
            keep=dict(type="int"),
            rollback_to=dict(type="str"),
            lock_timeout=dict(type="int", default=60),
            max_size_mb=dict(type="int", default=4096),
            max_members=dict(type="int", default=100000),
            allow_setuid=dict(type="bool", default=False),
            deployed_by=dict(type="dict", default={}),
        ),
        required_if=[("state", "staged", ("release_id",)), ("state", "active", ("release_id",))],
        supports_check_mode=True,
    )
    releaser = Releaser(module)
    try:
        result = releaser.run()
    except (rel.ReleaseError, _archive.ArchiveError, _lock.LockTimeout) as exc:
        module.fail_json(msg=to_native(exc), **releaser.result)
    except OSError as exc:
        module.fail_json(msg="release operation under %s failed: %s" % (module.params["path"], to_native(exc)),
                         exception=traceback.format_exc(), **releaser.result)
    for warning in releaser.warnings:
        module.warn(warning)
    if module._diff:
        result["diff"] = releaser.diff
    module.exit_json(**result)


if __name__ == "__main__":
    main()
