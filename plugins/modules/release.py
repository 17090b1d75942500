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
  image:
    description:
      - A container release instead of an artifact - the image the host's engine holds and the service runs, by
        digest, V(<registry host[:port]>/<repository>@sha256:<hex>), as M(seedops.deploy.image_pull) returns it.
      - The release directory then holds one file, C(image.env) (C(SEEDOPS_IMAGE=<image>), owned by the user the
        module runs as, mode 0644), which the C(seedops.deploy.app_service) role's unit for
        C(app_service_runtime=container) reads; its record's C(format) is V(image). O(digest) is required - the
        image index's digest, which names the release for every platform - and O(src) is not allowed.
    type: str
  deployed_by:
    description:
      - Who deployed, recorded with the release. The action plugin fills in the controller host, the controller
        user, the AWX/Tower job id (C(awx_job_id) or C(tower_job_id)) and the user who launched that job
        (C(user), from C(awx_user_name) or C(tower_user_name)); the module adds the remote user.
    type: dict
    default: {}
attributes:
  check_mode:
    support: full
    details: Check mode reads only; it takes no lock.
  diff_mode:
    support: full
    details: The diff shows the release staged, C(current) before and after, a state a rollback changes and the releases pruned.
  action:
    support: full
    details: The action plugin records the controller host and user, and the AWX/Tower job id and user, in O(deployed_by).
extends_documentation_fragment:
  - seedops.deploy.attributes
  - seedops.deploy.attributes.action
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
  description: Seconds spent blocked behind another holder of the deploy lock; V(0.0) when it was free.
  returned: always
  type: float
unpack:
  description: What staging unpacked - format, members, bytes, source_bytes, seconds.
  returned: when staged
  type: dict
"""

import traceback

from ansible.module_utils.basic import AnsibleModule
from ansible.module_utils.common.text.converters import to_native

from ansible_collections.seedops.deploy.plugins.module_utils import _release

ARGUMENT_SPEC = dict(
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
    image=dict(type="str"),
)


def main():
    module = AnsibleModule(argument_spec=ARGUMENT_SPEC, supports_check_mode=True,
                           required_if=[("state", "staged", ("release_id",)), ("state", "active", ("release_id",))])
    releaser = _release.Releaser(module.params, check_mode=module.check_mode)
    try:
        result = releaser.run()
    except _release.ERRORS as exc:
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
