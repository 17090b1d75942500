#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: seedops.deploy contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
module: image_pull
short_description: Pull an image index's manifest for this host's platform into Docker by digest, and check what landed
version_added: 0.1.0
author: Seedops Maintainers (@seedops-maintainers)
description:
  - Reads the image index O(digest) (as M(seedops.deploy.image_info) resolved it once for the fleet) and the manifest
    of this host's platform, both by digest with every body checked, then has the Docker engine pull exactly that
    manifest by its digest (the engine checks every layer against it) and checks that the image it stored is the
    config the manifest names - Docker's image id is the config's digest.
  - Unchanged when the engine holds that image already by this reference (C(<registry host>/<repository>@<manifest
    digest>), what the service's container runs); nothing is pulled then. An engine that holds the same image under
    another name only (another registry address, a tag) pulls it by this reference, which fetches the manifest alone.
  - An index without this host's platform, a body whose digest is not the one asked for, or an image id that is not
    the manifest's config fail with a message that says which; an image that did not match is removed again.
  - The engine must trust the registry's certificate (C(/etc/docker/certs.d/<host:port>/ca.crt), the
    C(docker_registry_ca_certs) setting of the C(seedops.deploy.docker) role); O(ca_path) is for this module's own
    reads of the index and manifest.
options:
  digest:
    description: The image index's digest, V(sha256:<64 hex digits>).
    type: str
    required: true
  platform:
    description: The platform to pull, for example V(linux/arm64). Defaults to this host's (C(uname -m)).
    type: str
  keep:
    description:
      - The images of this repository that the host still needs, as references C(<registry host>/<repository>@sha256:...)
        (the C(image) each kept release's record names; see M(seedops.deploy.release)).
      - When given, after the pull every other image of this repository that the engine holds is removed, if it was
        pulled by digest (it has no tag) and no container, running or stopped, was made from it. The image just pulled
        is always kept. An image with a tag was pulled or tagged by someone else and is never removed.
      - Leave it out to remove nothing.
    type: list
    elements: str
extends_documentation_fragment:
  - seedops.deploy.registry
  - seedops.deploy.attributes
  - ansible.builtin.action_common_attributes
attributes:
  check_mode:
    support: full
    details: Reads the index, the manifest and the engine's images; pulls nothing. C(changed) says whether it would pull.
  diff_mode:
    support: none
requirements:
  - The Docker engine and its Python SDK (C(python3-docker)) on the host, as the C(seedops.deploy.docker) role installs them.
seealso:
  - module: seedops.deploy.image_info
  - module: seedops.deploy.image
"""

EXAMPLES = r"""
- name: Pull the release the plan resolved, for this host's platform
  seedops.deploy.image_pull:
    registry: https://repo1.example.com:5000
    repository: seedops-app
    digest: "{{ deploy_image.digest }}"
    username: deploy
    password: "{{ registry_deploy_password }}"
    ca_path: /etc/docker/certs.d/repo1.example.com:5000/ca.crt
  become: true
"""

RETURN = r"""
platform:
  description: The platform pulled.
  returned: always
  type: str
  sample: linux/amd64
manifest:
  description: The platform's manifest digest, which the engine pulled by.
  returned: always
  type: str
image_id:
  description: The engine's image id, equal to the manifest's config digest.
  returned: always
  type: str
reference:
  description: What the engine pulled, C(<registry host>/<repository>@<manifest digest>).
  returned: always
  type: str
removed:
  description: The ids of the images of this repository that O(keep) removed (in check mode, would remove).
  returned: always
  type: list
  elements: str
"""

import os

from ansible.module_utils.basic import AnsibleModule, missing_required_lib
from ansible.module_utils.common.text.converters import to_native

from ansible_collections.seedops.deploy.plugins.module_utils import _oci

try:
    import docker
    from docker import errors as docker_errors
    HAS_DOCKER = True
except ImportError:
    docker = docker_errors = None
    HAS_DOCKER = False

# uname -m -> the OCI architecture.
MACHINES = {"x86_64": "amd64", "aarch64": "arm64", "armv7l": "arm", "i686": "386", "ppc64le": "ppc64le",
            "s390x": "s390x", "riscv64": "riscv64"}


def host_platform():
    machine = os.uname().machine
    if machine not in MACHINES:
        raise _oci.ImageError("this host's machine %r has no OCI architecture known here; give platform" % machine)
    return "linux/" + MACHINES[machine]


def local_image(client, image_id):
    try:
        return client.images.get(image_id)
    except docker_errors.ImageNotFound:
        return None


def main():
    module = AnsibleModule(
        argument_spec=dict(
            digest=dict(type="str", required=True),
            platform=dict(type="str"),
            keep=dict(type="list", elements="str"),
            **_oci.REGISTRY_SPEC
        ),
        supports_check_mode=True,
        required_together=[("username", "password")],
    )
    if not HAS_DOCKER:
        module.fail_json(msg=missing_required_lib("docker (python3-docker)"))
    p = module.params
    try:
        if not _oci.DIGEST.match(p["digest"]):
            raise _oci.ImageError("digest %r is not sha256:<64 hex digits>: resolve the tag first "
                                  "(seedops.deploy.image_info) and pull by its digest" % p["digest"])
        platform = _oci.platform_name(_oci.parse_platform(p["platform"] or host_platform()))
        registry = _oci.registry_from(p)
        index = _oci.read_index(registry, p["digest"])
    except _oci.ImageError as exc:
        module.fail_json(msg=to_native(exc))
    entry = index["platforms"].get(platform)
    if entry is None:
        module.fail_json(msg=_oci.lacking("index %s" % p["digest"], [platform], index["platforms"]))
    result = {"platform": platform, "manifest": entry["digest"], "image_id": entry["config"],
              "reference": registry.reference(entry["digest"]), "changed": False, "removed": []}
    try:
        client = docker.from_env()
        # The image id alone is not enough: docker run --pull never finds the image by the reference the release
        # names, which the engine records in RepoDigests when it pulls by it.
        held = local_image(client, entry["config"])
        if held is None or result["reference"] not in (held.attrs.get("RepoDigests") or []):
            result["changed"] = True
            if not module.check_mode:
                pull(module, client, result, entry)
        if p["keep"] is not None:
            prune(module, client, result, p["keep"])
    except docker_errors.DockerException as exc:
        module.fail_json(msg="cannot reach the Docker engine: %s" % to_native(exc), **result)
    module.exit_json(**result)


def pull(module, client, result, entry):
    """Has the engine pull the platform's manifest by digest; removes and refuses an image that is not its config."""
    p = module.params
    name = result["reference"].split("@", 1)[0]
    auth = {"username": p["username"], "password": p["password"]} if p["username"] else None
    try:
        image = client.images.pull(name, tag=entry["digest"], auth_config=auth)
    except docker_errors.APIError as exc:
        hint = ""
        if "certificate" in to_native(exc).lower():
            hint = " (the engine does not trust the registry's certificate: put its CA at /etc/docker/certs.d/%s/ca.crt)" % (
                result["reference"].split("/", 1)[0])
        module.fail_json(msg="the Docker engine could not pull %s: %s%s" % (result["reference"], to_native(exc), hint),
                         **result)
    if image.id != entry["config"]:
        try:
            client.images.remove(image.id, force=True)
        except docker_errors.APIError:
            pass
        module.fail_json(msg="the engine stored %s for %s, not the manifest's config %s: removed, refused"
                         % (image.id, result["reference"], entry["config"]), **result)


def prune(module, client, result, keep):
    """Removes the repository's images pulled by digest that neither keep nor any container names (result's removed).
    An image the engine will not remove (a container made from it meanwhile) is left, with a warning."""
    in_use = {c.attrs.get("Image") for c in client.containers.list(all=True)}
    images = [i.attrs for i in client.images.list()]
    doomed = _oci.unkept_images(images, result["reference"].split("@", 1)[0], list(keep) + [result["reference"]], in_use)
    for image_id in doomed:
        if not module.check_mode:
            try:
                client.images.remove(image_id)
            except docker_errors.APIError as exc:
                module.warn("left image %s in the engine: %s" % (image_id, to_native(exc)))
                continue
        result["removed"].append(image_id)
    result["changed"] = result["changed"] or bool(result["removed"])


if __name__ == "__main__":
    main()
