#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: seedops.deploy contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
module: release_info
short_description: List the releases of an application on a host, with their states
version_added: 0.1.0
author: Seedops Maintainers (@seedops-maintainers)
description:
  - Reads the release records under O(path) (written by M(seedops.deploy.release)) and reports every release with
    its state, which one is live, which one a rollback would pick, and who holds the deploy lock - for a
    fleet-wide "what runs where" report.
  - Changes nothing; safe in check mode; takes no lock.
options:
  path:
    description: The application's base directory.
    type: path
    required: true
attributes:
  check_mode:
    support: full
    details: It only reads, the same in check mode; it takes no lock, so it answers while a deploy runs.
  diff_mode:
    support: none
    details: It changes nothing, so there is nothing to compare.
extends_documentation_fragment:
  - seedops.deploy.attributes
  - ansible.builtin.action_common_attributes
seealso:
  - module: seedops.deploy.release
"""

EXAMPLES = r"""
- name: What runs where
  seedops.deploy.release_info:
    path: /srv/app
  register: app_releases

- name: Show it
  ansible.builtin.debug:
    msg: "{{ inventory_hostname }}: {{ app_releases.current }} (rollback to {{ app_releases.rollback_target }})"
"""

RETURN = r"""
current:
  description: The live release, or null when nothing is live.
  returned: always
  type: str
  sample: "2.0.0"
rollback_target:
  description: The release a rollback would switch to, or null.
  returned: always
  type: str
  sample: "1.0.0"
releases:
  description: Every recorded release, newest first.
  returned: always
  type: list
  elements: dict
  contains:
    id:
      description: Release id.
      type: str
    state:
      description: staged, active, previous, failed (or corrupt when its record cannot be read).
      type: str
    digest:
      description: The artifact's digest.
      type: str
    created:
      description: When it was staged (UTC).
      type: str
    activated:
      description: When it last went live (UTC), or null.
      type: str
    exists:
      description: Whether its directory is on disk.
      type: bool
    current:
      description: Whether it is live.
      type: bool
  sample:
    - {id: "2.0.0", state: active, digest: "sha256:...", created: "2026-11-27T12:00:00.000000Z", exists: true}
lock:
  description: The deploy lock's record when a deploy holds it right now, else null.
  returned: always
  type: dict
exists:
  description: Whether O(path) holds a release layout at all.
  returned: always
  type: bool
platform:
  description:
    - The host's operating system and machine as C(uname) names them - the same values as the C(system) and
      C(architecture) facts, so C(seedops.deploy.platform) turns them into V(linux/amd64) without gathering facts.
  returned: always
  type: dict
  sample: {"system": "Linux", "architecture": "x86_64"}
"""

from ansible.module_utils.basic import AnsibleModule
from ansible.module_utils.common.text.converters import to_native

from ansible_collections.seedops.deploy.plugins.module_utils import _release
from ansible_collections.seedops.deploy.plugins.module_utils import _releases


def main():
    module = AnsibleModule(argument_spec=dict(path=dict(type="path", required=True)), supports_check_mode=True)
    try:
        report = _release.host_releases(module.params["path"])
    except (_releases.ReleaseError, OSError) as exc:
        module.fail_json(msg=to_native(exc))
    module.exit_json(changed=False, **report)


if __name__ == "__main__":
    main()
