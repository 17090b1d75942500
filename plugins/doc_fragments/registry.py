# -*- coding: utf-8 -*-
# Copyright: seedops.deploy contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""How a module reaches an image registry (plugins/module_utils/_oci.py), written once for image and image_info."""

from __future__ import annotations


class ModuleDocFragment:

    DOCUMENTATION = r"""
options:
  registry:
    description:
      - The registry's base URL, for example V(https://repo1.example.com:5000). It must speak the distribution HTTP
        API (C(/v2/)), as Debian's C(docker-registry) does.
    type: str
    required: true
  repository:
    description: The repository in the registry, for example V(seedops-app) or V(team/app).
    type: str
    required: true
  username:
    description: The registry user (basic auth). Without it, no credentials are sent.
    type: str
  password:
    description: The registry user's password.
    type: str
  ca_path:
    description: A PEM file of the CA that signed the registry's certificate, when the host does not trust it already.
    type: path
  validate_certs:
    description: Verify the registry's TLS certificate. Leave it on; give O(ca_path) for a private CA.
    type: bool
    default: true
  timeout:
    description: Seconds to wait for each answer of the registry.
    type: int
    default: 60
"""
