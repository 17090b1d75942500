#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: seedops.deploy contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
module: image
short_description: Make a multi-platform OCI image from release packages and push it to a registry
version_added: 0.1.0
author: Seedops Maintainers (@seedops-maintainers)
description:
  - Makes one image per release package - the package's files under O(prefix) on an empty base (C(scratch)), one
    layer, the image config with O(entrypoint), O(env), O(ports) and O(labels) - and an OCI image index whose
    entries are the per-platform manifests, then pushes blobs, manifests and the index to O(registry) and points
    O(tag) at the index. No container engine, emulation or base image is needed - a Go service cross-compiled per
    platform (M(seedops.deploy.package), the C(build) role) is packed as it is.
  - The same packages and options give the same bytes, so the same index digest; a rerun that finds O(tag)
    already at that digest uploads nothing and reports no change. Blobs the registry has already are not sent.
  - Every digest is computed here and checked against what the registry says it stored.
  - Runs where the packages are, usually the build host or the controller (C(delegate_to)).
options:
  packages:
    description: One release package (a tar, tar.gz, tar.xz or tar.bz2 file) per platform.
    type: list
    elements: dict
    required: true
    suboptions:
      platform:
        description: The platform the package's binaries are for, V(linux/amd64), V(linux/arm64) or V(linux/arm/v7).
        type: str
        required: true
      path:
        description: The package on the host the module runs on.
        type: path
        required: true
  tag:
    description: The tag to point at the index, for example the release's version.
    type: str
    required: true
  prefix:
    description: The directory in the image that holds the package's files.
    type: str
    default: app
  entrypoint:
    description: The command the container runs, for example V(["/app/bin/seedops-app"]).
    type: list
    elements: str
    required: true
  env:
    description: Environment variables of the image (not secrets - they are readable in the image config).
    type: dict
    default: {}
  ports:
    description: TCP ports the service listens on (the config's C(ExposedPorts)).
    type: list
    elements: int
    default: []
  labels:
    description: Labels of the image config.
    type: dict
    default: {}
  working_dir:
    description: The container's working directory. Defaults to O(prefix).
    type: str
  user:
    description: The user (name or uid[:gid]) the container runs as; a C(scratch) image has no user names, so give numbers.
    type: str
    default: '65534:65534'
  mtime:
    description: The time stamped on every file of the layers (seconds since the epoch); fixed, so builds repeat.
    type: int
    default: 0
extends_documentation_fragment:
  - seedops.deploy.registry
  - seedops.deploy.attributes
  - ansible.builtin.action_common_attributes
attributes:
  check_mode:
    support: full
    details: Builds the image on the host and reads the tag; pushes nothing; C(changed) says whether the tag would move.
  diff_mode:
    support: none
notes:
  - The index's media type is C(application/vnd.oci.image.index.v1+json); Docker 20.10 and later, podman and
    containerd pull it, each taking its own platform's manifest.
seealso:
  - module: seedops.deploy.image_info
  - module: seedops.deploy.package
"""

EXAMPLES = r"""
- name: Push the release as one image for amd64 and arm64
  seedops.deploy.image:
    registry: https://repo1.example.com:5000
    repository: seedops-app
    tag: "{{ build_version }}"
    username: ci
    password: "{{ registry_ci_password }}"
    ca_path: /etc/ssl/lab-ca.pem
    packages:
      - {platform: linux/amd64, path: "dist/2.0.0/seedops-app-2.0.0-linux-amd64.tar.gz"}
      - {platform: linux/arm64, path: "dist/2.0.0/seedops-app-2.0.0-linux-arm64.tar.gz"}
    entrypoint: [/app/bin/seedops-app]
    ports: [8080]
  delegate_to: localhost
"""

RETURN = r"""
digest:
  description: The index's digest; pull C(<registry host>/<repository>@<digest>) to get exactly this release.
  returned: always
  type: str
  sample: sha256:3f1e9d0c9a2b4f5e6d7c8b9a0f1e2d3c4b5a69788796a5b4c3d2e1f0a9b8c7d6
reference:
  description: The pull reference by digest, C(<registry host>/<repository>@<digest>).
  returned: always
  type: str
tag:
  description: The tag pushed.
  returned: always
  type: str
previous:
  description: The digest the tag named before, or null when it was new.
  returned: always
  type: str
manifests:
  description: Each platform's image - platform, manifest digest, layer digest and size, config digest.
  returned: always
  type: list
  elements: dict
uploaded:
  description: How many blobs were sent (blobs the registry had already are not).
  returned: always
  type: int
"""

import shutil
import tempfile

from ansible.module_utils.basic import AnsibleModule
from ansible.module_utils.common.text.converters import to_native

from ansible_collections.seedops.deploy.plugins.module_utils import _oci


def main():
    module = AnsibleModule(
        argument_spec=dict(
            packages=dict(type="list", elements="dict", required=True, options=dict(
                platform=dict(type="str", required=True),
                path=dict(type="path", required=True),
            )),
            tag=dict(type="str", required=True),
            prefix=dict(type="str", default="app"),
            entrypoint=dict(type="list", elements="str", required=True),
            env=dict(type="dict", default={}),
            ports=dict(type="list", elements="int", default=[]),
            labels=dict(type="dict", default={}),
            working_dir=dict(type="str"),
            user=dict(type="str", default="65534:65534"),
            mtime=dict(type="int", default=0),
            **_oci.REGISTRY_SPEC
        ),
        supports_check_mode=True,
        required_together=[("username", "password")],
    )
    p = module.params
    image = {"prefix": p["prefix"], "entrypoint": p["entrypoint"], "env": p["env"], "ports": p["ports"],
             "labels": p["labels"], "workdir": p["working_dir"] or "/" + p["prefix"].strip("/"), "user": p["user"],
             "mtime": p["mtime"]}
    work = tempfile.mkdtemp(prefix="seedops-image-", dir=module.tmpdir)
    try:
        registry = _oci.registry_from(p)
        result = _oci.build_and_push(registry, p["packages"], p["tag"], work, image, check_mode=module.check_mode)
    except _oci.ImageError as exc:
        module.fail_json(msg=to_native(exc))
    finally:
        shutil.rmtree(work, ignore_errors=True)
    result["reference"] = registry.reference(result["digest"])
    module.exit_json(**result)


if __name__ == "__main__":
    main()
