#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: seedops.deploy contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
module: package
short_description: Pack a directory into a reproducible .tar.gz and record its SHA-256 in a checksum list
version_added: 0.1.0
author: Seedops Maintainers (@seedops-maintainers)
description:
  - Packs the contents of O(src) into the .tar.gz O(dest) so that the same contents always give the same bytes -
    members in name order, one fixed time (O(mtime)), owner and group 0 without names, modes from one rule (0755 for
    directories and for files the owner may execute, 0644 for other files; never setuid), and a gzip header without a
    time or a file name. The build's umask and file times do not change the bytes.
  - Writes the package to a temporary file beside O(dest) and renames it into place, so a reader never sees a part of
    it; when the new bytes equal those already at O(dest), leaves the file alone and reports no change.
  - With O(sums), puts the package's line (C(<sha256>  <file name>), as C(sha256sum) writes it) into that checksum
    list, kept sorted by name and replaced whole the same way. Other lines stay.
  - Refuses devices, sockets, fifos and symbolic links that point outside O(src).
  - The build role (M(seedops.deploy.build) role, C(playbooks/build.yml)) uses it for each platform's package.
options:
  src:
    description: The directory whose contents go into the package (its own name does not).
    type: path
    required: true
  dest:
    description: The package to write, for example C(/srv/dist/app-1.2.0-linux-arm64.tar.gz). Its directory must exist.
    type: path
    required: true
  sums:
    description:
      - A checksum list in the same directory as O(dest) (usually C(SHA256SUMS)) to record the package's SHA-256 in.
    type: path
  mtime:
    description: The time stamped on every member, in seconds since the epoch (for example the source commit's time).
    type: int
    default: 0
attributes:
  check_mode:
    support: full
    details: In check mode the package is built in memory to tell whether it would change; nothing is written.
  diff_mode:
    support: none
extends_documentation_fragment:
  - seedops.deploy.attributes
  - ansible.builtin.action_common_attributes
seealso:
  - module: seedops.deploy.release
  - module: seedops.deploy.artifact
"""

EXAMPLES = r"""
- name: Package the linux/arm64 build and record it in SHA256SUMS
  seedops.deploy.package:
    src: /var/tmp/build/app-1.2.0-linux-arm64
    dest: /srv/dist/1.2.0/app-1.2.0-linux-arm64.tar.gz
    sums: /srv/dist/1.2.0/SHA256SUMS
"""

RETURN = r"""
dest:
  description: The package.
  returned: always
  type: str
sha256:
  description: The package's SHA-256, hex.
  returned: always
  type: str
size:
  description: The package's size in bytes.
  returned: always
  type: int
sums_changed:
  description: Whether the checksum list changed.
  returned: when O(sums) is given
  type: bool
"""

import os

from ansible.module_utils.basic import AnsibleModule
from ansible.module_utils.common.text.converters import to_native

from ansible_collections.seedops.deploy.plugins.module_utils import _package


def main():
    module = AnsibleModule(
        argument_spec=dict(
            src=dict(type="path", required=True),
            dest=dict(type="path", required=True),
            sums=dict(type="path"),
            mtime=dict(type="int", default=0),
        ),
        supports_check_mode=True,
    )
    src, dest, sums = module.params["src"], module.params["dest"], module.params["sums"]
    if not dest.endswith(".tar.gz"):
        module.fail_json(msg="dest %s must end in .tar.gz: the package is a gzip-compressed tar archive" % dest)
    if not os.path.isdir(os.path.dirname(os.path.abspath(dest))):
        module.fail_json(msg="the directory of dest %s does not exist: create it first" % dest)
    if sums and os.path.dirname(os.path.abspath(sums)) != os.path.dirname(os.path.abspath(dest)):
        module.fail_json(msg="sums %s must be in the directory of dest %s: a checksum list names the files beside it"
                         % (sums, dest))
    if module.params["mtime"] < 0:
        module.fail_json(msg="mtime must be 0 or more seconds since the epoch, got %d" % module.params["mtime"])
    result = {"dest": dest}
    try:
        changed, digest, size = _package.pack(src, dest, module.params["mtime"], check_mode=module.check_mode)
        result.update(changed=changed, sha256=digest, size=size)
        if sums:
            result["sums_changed"] = _package.record_sum(sums, os.path.basename(dest), digest, check_mode=module.check_mode)
            result["changed"] = changed or result["sums_changed"]
    except _package.PackageError as exc:
        module.fail_json(msg=to_native(exc), **result)
    except OSError as exc:
        module.fail_json(msg="packaging %s into %s failed: %s" % (src, dest, to_native(exc)), **result)
    module.exit_json(**result)


if __name__ == "__main__":
    main()
