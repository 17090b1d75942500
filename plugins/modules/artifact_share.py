#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: seedops.deploy contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
module: artifact_share
short_description: Serve a verified artifact from this host's store to the next hosts of a deploy (peer fan-out)
version_added: 0.1.0
author: Seedops Maintainers (@seedops-maintainers)
description:
  - With O(state=serving), starts a small HTTP server on this host that answers C(GET /<hex>) with the store entry
    C(<store>/sha256/<hex>) of O(checksum) - and nothing else - on O(address) and O(port), detached from the task,
    until it is stopped or O(lifetime) seconds have passed. It returns the URL the next hosts fetch from.
  - With O(state=stopped), stops the server this module started on O(port) (the process named in its pid file under
    C(/run), checked by its command line; no other process is ever signalled).
  - Receivers fetch with M(seedops.deploy.artifact) and the same O(checksum), so every byte is verified while it
    streams; the share adds no trust. The deploy role uses it for C(deploy_fanout) - the origin sends the artifact
    to a few hosts, and each host that holds it serves the next ones, in waves that double.
  - The server has no authentication. Let only the fleet's hosts reach O(port) (the firewall role's
    C(firewall_allow)), and keep O(lifetime) short.
options:
  state:
    description: V(serving) or V(stopped).
    type: str
    choices: [serving, stopped]
    default: serving
  store:
    description: The artifact store (see M(seedops.deploy.artifact)); needed with O(state=serving).
    type: path
  checksum:
    description: The artifact to serve, as C(sha256:<hex>); needed with O(state=serving).
    type: str
  address:
    description: The address to listen on, the one the other hosts reach this host at; needed with O(state=serving).
    type: str
  port:
    description: The TCP port to listen on; one server per port.
    type: int
    default: 8099
  lifetime:
    description: Seconds after which the server stops by itself, whatever happens to the run that started it.
    type: float
    default: 600
extends_documentation_fragment:
  - seedops.deploy.attributes
  - ansible.builtin.action_common_attributes
attributes:
  check_mode:
    support: full
    details: Reports what it would start or stop, and starts or stops nothing.
  diff_mode:
    support: none
seealso:
  - module: seedops.deploy.artifact
"""

EXAMPLES = r"""
- name: Serve the staged artifact to the next wave
  seedops.deploy.artifact_share:
    store: /srv/app/store
    checksum: "sha256:{{ digest }}"
    address: "{{ ansible_host }}"
    port: 8099
    lifetime: 300
  become: true
  register: share

- name: Stop serving
  seedops.deploy.artifact_share:
    state: stopped
    port: 8099
  become: true
"""

RETURN = r"""
url:
  description: The URL the other hosts fetch the artifact from.
  returned: state is serving
  type: str
  sample: http://10.0.0.5:8099/9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08
pid:
  description: The server's process id (none in check mode when it would start one).
  returned: state is serving
  type: int
stopped:
  description: The process id of the server that was stopped, or none.
  returned: state is stopped
  type: int
"""

from ansible.module_utils.basic import AnsibleModule
from ansible.module_utils.common.text.converters import to_native

from ansible_collections.seedops.deploy.plugins.module_utils import _share


def main():
    module = AnsibleModule(
        argument_spec=dict(
            state=dict(type="str", choices=["serving", "stopped"], default="serving"),
            store=dict(type="path"),
            checksum=dict(type="str"),
            address=dict(type="str"),
            port=dict(type="int", default=8099),
            lifetime=dict(type="float", default=600),
        ),
        required_if=[("state", "serving", ("store", "checksum", "address"))],
        supports_check_mode=True,
    )
    p = module.params
    if not 0 < p["port"] < 65536 or p["lifetime"] <= 0:
        module.fail_json(msg="artifact_share: port must be from 1 to 65535 and lifetime above 0 seconds")
    try:
        module.exit_json(**_share.Share(p, check_mode=module.check_mode).run())
    except (_share.ShareError, OSError) as exc:
        module.fail_json(msg="artifact_share: %s" % to_native(exc))


if __name__ == "__main__":
    main()
