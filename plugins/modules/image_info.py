#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: seedops.deploy contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
module: image_info
short_description: Resolve an image tag to its digest and read every platform's manifest from a registry
version_added: 0.1.0
author: Seedops Maintainers (@seedops-maintainers)
description:
  - Reads the image index that O(reference) (a tag or a digest) names in O(repository), then each platform's
    manifest by its digest. Every body is hashed here; one whose digest is not the one asked for is refused.
  - A deploy resolves its tag once, in the plan, and hands the digest to every host, so a tag moved in the middle of a
    rollout does not change what the rest of the fleet gets.
  - Changes nothing.
options:
  reference:
    description: A tag, for example V(2.0.0), or a digest, V(sha256:<64 hex digits>).
    type: str
    required: true
  platforms:
    description: Fail unless the index has an image for each of these platforms (for example the fleet's).
    type: list
    elements: str
    default: []
extends_documentation_fragment:
  - seedops.deploy.registry
  - seedops.deploy.attributes
  - ansible.builtin.action_common_attributes
attributes:
  check_mode:
    support: full
    details: It only reads, the same in check mode.
  diff_mode:
    support: none
seealso:
  - module: seedops.deploy.image
"""

EXAMPLES = r"""
- name: Resolve the release's tag once, for the whole fleet
  seedops.deploy.image_info:
    registry: https://repo1.example.com:5000
    repository: seedops-app
    reference: "{{ deploy_version }}"
    username: deploy
    password: "{{ registry_deploy_password }}"
    ca_path: /etc/ssl/lab-ca.pem
    platforms: [linux/amd64, linux/arm64]
  delegate_to: localhost
  run_once: true
  register: deploy_image
"""

RETURN = r"""
digest:
  description: The index's digest (the body's own sha256).
  returned: always
  type: str
reference:
  description: The pull reference by digest, C(<registry host>/<repository>@<digest>).
  returned: always
  type: str
platforms:
  description: Per platform (V(linux/amd64), ...) its manifest's digest and size, its config's digest and its layers' digests.
  returned: always
  type: dict
"""

from ansible.module_utils.basic import AnsibleModule
from ansible.module_utils.common.text.converters import to_native

from ansible_collections.seedops.deploy.plugins.module_utils import _oci


def main():
    module = AnsibleModule(
        argument_spec=dict(
            reference=dict(type="str", required=True),
            platforms=dict(type="list", elements="str", default=[]),
            **_oci.REGISTRY_SPEC
        ),
        supports_check_mode=True,
        required_together=[("username", "password")],
    )
    p = module.params
    try:
        reference = p["reference"]
        if not _oci.DIGEST.match(reference):
            _oci.check_repository(p["repository"], reference)
        wanted = [_oci.platform_name(_oci.parse_platform(name)) for name in p["platforms"]]
        registry = _oci.registry_from(p)
        found = _oci.read_index(registry, reference)
    except _oci.ImageError as exc:
        module.fail_json(msg=to_native(exc))
    missing = [name for name in wanted if name not in found["platforms"]]
    if missing:
        module.fail_json(msg=_oci.lacking("%s:%s (%s)" % (p["repository"], reference, found["digest"]), missing,
                                          found["platforms"]), **found)
    module.exit_json(changed=False, reference=registry.reference(found["digest"]), **found)


if __name__ == "__main__":
    main()
