#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: seedops.deploy contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
module: artifact
short_description: Put one exact, verified artifact into a host's content-addressed store
version_added: 0.1.0
author: Seedops Maintainers (@seedops-maintainers)
description:
  - Gets an artifact onto the host - pulled from an HTTP(S) repository (O(url)) or pushed from the controller
    (O(src)) - and stores it as C(<store>/<algorithm>/<hex digest>). The digest is computed while the bytes
    stream in; the file is written once and never read back to verify it.
  - The store entry is written to a temporary file in the same directory, flushed, fsynced and renamed into place.
    A checksum mismatch leaves nothing in the store or at O(dest). When the store already holds the digest,
    nothing is transferred and the task is unchanged.
  - Pull - extra headers, basic auth or a bearer token, client certificates, proxies from the environment, TLS
    verification, timeouts, retries with exponential backoff on transient errors (connection errors, timeouts,
    HTTP 5xx and 429) and resume of an interrupted download with HTTP Range, also across runs. Redirects are
    followed by the module itself, so that credentials never leave the scheme, host and port of O(url).
  - Push - the action plugin computes the controller file's digest once per run (shared by all hosts), asks
    each host whether its store already holds it, and only then transfers the bytes (streamed from disk).
  - A plain C(http://) URL or a push without any checksum is refused unless O(allow_unverified=true); so is a plain
    C(http://) URL checked against a plain C(http://) O(checksum_url).
  - O(keep) removes store entries that no release record (C(<store>/../releases/*.json)) refers to, beyond the
    newest O(keep).
options:
  store:
    description: The content-addressed store, for example C(/srv/app/store).
    type: path
    required: true
  url:
    description:
      - Pull the artifact from this HTTP(S) URL. Mutually exclusive with O(src).
      - Redirects (301, 302, 303, 307, 308, relative ones too) are followed, at most 10 of them. Credentials go only
        to the scheme, host and port of O(url); a redirect from C(https://) to C(http://) is refused.
      - A password in the URL (C(https://user:password@host/...)) is sent as basic authentication. It, and the values
        of query parameters that carry credentials (C(token=), C(private_token=), C(access_token=), C(sig=),
        C(X-Amz-Signature=), C(X-Amz-Credential=), C(X-Amz-Security-Token=), C(api_key=), ...), are shown as
        C(********) in the module's messages and results, and masked in its returned invocation.
      - Ansible's records of the task arguments outside the module's result (the host's syslog entry of the
        invocation, which hides only a URL password, the playbook or variables that AWX keeps, C(display_args_to_stdout))
        still show the URL as given. Prefer O(url_username) and O(url_password), O(bearer_token) or O(headers),
        which are C(no_log).
    type: str
  src:
    description:
      - Push this file from the controller (found like M(ansible.builtin.copy) finds files), or, with
        O(remote_src=true), take this file already on the host.
      - Mutually exclusive with O(url). With neither O(url) nor O(src) the artifact must already be in the store.
    type: path
  remote_src:
    description: O(src) is a path on the host, not on the controller.
    type: bool
    default: false
  checksum:
    description: Expected digest, V(sha256:<hex>), V(sha384:<hex>) or V(sha512:<hex>).
    type: str
  checksum_url:
    description:
      - URL of a C(SHA256SUMS)-style file (C(<hex>  name) or C(<hex> *name) lines) listing the artifact by the
        file name of O(url). Fetched with the same credentials and settings as O(url), and shown like O(url).
      - When O(url) is plain C(http://), O(checksum_url) must be C(https://) - a list fetched without TLS could be
        altered along with the artifact - unless O(allow_unverified=true). Or give the digest inline with O(checksum).
    type: str
  allow_unverified:
    description:
      - Accept a plain C(http://) URL or a push without a checksum, or a plain C(http://) O(checksum_url) for a plain
        C(http://) O(url). The digest is still computed (and checked against O(checksum_url) when given) and returned.
    type: bool
    default: false
  dest:
    description:
      - Also place the verified file at this path - a hard link to the store entry when on the same filesystem
        (then O(owner), O(group) and O(mode) apply to the store entry too), else a copy renamed into place.
      - Its directory must exist.
    type: path
  owner:
    description: Owner of O(dest).
    type: str
  group:
    description: Group of O(dest).
    type: str
  mode:
    description: Mode of O(dest).
    type: raw
  retries:
    description: Retries after a transient error (each resumes where the bytes stopped).
    type: int
    default: 3
  retry_delay:
    description: Seconds before the first retry; doubled for each further one.
    type: float
    default: 1.0
  resume:
    description: Continue an interrupted download with HTTP Range when the server supports it.
    type: bool
    default: true
  keep:
    description:
      - Store housekeeping - after storing, remove entries that no release record refers to, except the
        O(keep) newest. Release records are read from O(releases_path).
    type: int
  releases_path:
    description:
      - Where the release records are (C(*.json)), for O(keep) and for the size check of an entry already in the
        store. Defaults to C(<store>/../releases).
    type: path
  verify_existing:
    description:
      - Hash an entry the store already holds before using it, and replace it by a fresh, verified copy from O(url)
        or O(src) when its digest is not O(checksum).
      - Without it an existing entry is checked by its size only - against the artifact's size in the release
        records made from it, and it is hashed when O(src) has another size than the entry.
      - An entry that fails is left as it is until a verified copy replaces it; with neither O(url) nor O(src) the
        task fails, naming the entry and what is wrong with it.
    type: bool
    default: false
attributes:
  check_mode:
    support: full
  diff_mode:
    support: full
  action:
    support: full
    details: The action plugin pushes O(src) from the controller.
extends_documentation_fragment:
  - seedops.deploy.attributes
  - seedops.deploy.attributes.action
  - ansible.builtin.action_common_attributes
  - ansible.builtin.action_common_attributes.flow
  - seedops.deploy.url
notes:
  - Pull needs nothing on the host beyond Python; it uses C(ansible.module_utils.urls).
  - An interrupted download is kept as C(<store>/<algorithm>/.partial-<hex>) (only when the digest is known) and
    resumed by the next run; it is never visible as a store entry.
  - Runs that store the same digest at the same time take turns - an flock on its C(.partial-<hex>) is held from the
    first byte to the rename - and a run that waited uses the entry the other one stored.
seealso:
  - module: seedops.deploy.release
  - module: ansible.builtin.get_url
"""

EXAMPLES = r"""
- name: Pull the release package, verified against the repository's SHA256SUMS
  seedops.deploy.artifact:
    url: https://repo.example.com/app/2.0.0/app-2.0.0-linux-amd64.tar.gz
    checksum_url: https://repo.example.com/app/2.0.0/SHA256SUMS
    url_username: deploy
    url_password: "{{ vault_repo_password }}"
    store: /srv/app/store
  register: app_artifact

- name: Push a build from the controller (digest computed once for all hosts)
  seedops.deploy.artifact:
    src: dist/app-2.0.0-linux-amd64.tar.gz
    checksum: "sha256:{{ app_sha256 }}"
    store: /srv/app/store
    keep: 5

- name: Place a verified jar where the service expects it
  seedops.deploy.artifact:
    url: https://repo.example.com/app.jar
    checksum: sha256:9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08
    store: /srv/app/store
    dest: /opt/app/app.jar
    owner: app
    group: app
    mode: "0640"
"""

RETURN = r"""
path:
  description: The store entry.
  returned: success
  type: str
  sample: /srv/app/store/sha256/9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08
digest:
  description: The artifact's digest.
  returned: success
  type: str
  sample: sha256:9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08
size:
  description: The artifact's size in bytes.
  returned: success
  type: int
bytes_transferred:
  description: Bytes that travelled in this run (0 when the store already held the artifact).
  returned: always
  type: int
elapsed:
  description: Seconds spent.
  returned: always
  type: float
throughput:
  description: Bytes per second transferred in this run.
  returned: always
  type: float
source:
  description:
    - Where the artifact came from - the URL (the password and credential-like query values replaced by C(********)),
      or the controller or host path.
  returned: always
  type: str
resumed:
  description: Whether the download continued an interrupted one.
  returned: always
  type: bool
dest:
  description: O(dest), when given.
  returned: when O(dest) is given
  type: str
missing:
  description:
    - Set when neither O(url) nor O(src) was given and the store does not hold O(checksum), or holds an entry that
      failed its check (the task fails).
  returned: on that failure
  type: bool
replaced:
  description: Whether an entry the store held failed its check (see O(verify_existing)) and was replaced (in check mode, would be).
  returned: always
  type: bool
corrupt:
  description: What was wrong with the entry the store held, when it failed its check.
  returned: when an entry failed its check
  type: str
  sample: "it holds 1000 bytes, but the record of release 1.0 says the artifact has 3084107"
pruned:
  description: Store entries removed by O(keep).
  returned: always
  type: list
  elements: str
"""

import traceback

from ansible.module_utils.basic import AnsibleModule
from ansible.module_utils.common.text.converters import to_native

from ansible_collections.seedops.deploy.plugins.module_utils import _fetch
from ansible_collections.seedops.deploy.plugins.module_utils import _store


def main():
    module = AnsibleModule(
        argument_spec=dict(
            store=dict(type="path", required=True),
            url=dict(type="str"),
            src=dict(type="path"),
            remote_src=dict(type="bool", default=False),
            checksum=dict(type="str"),
            checksum_url=dict(type="str"),
            allow_unverified=dict(type="bool", default=False),
            dest=dict(type="path"),
            owner=dict(type="str"),
            group=dict(type="str"),
            mode=dict(type="raw"),
            retries=dict(type="int", default=3),
            retry_delay=dict(type="float", default=1.0),
            resume=dict(type="bool", default=True),
            keep=dict(type="int"),
            releases_path=dict(type="path"),
            verify_existing=dict(type="bool", default=False),
            **_fetch.url_argument_spec()
        ),
        mutually_exclusive=[("url", "src"), ("checksum", "checksum_url"), ("url_password", "bearer_token")],
        supports_check_mode=True,
    )

    def file_attributes(changed):
        return module.set_fs_attributes_if_different(module.load_file_common_arguments(module.params), changed)

    # What the URLs carry in user:password@ and in credential-like query values (token=, X-Amz-Signature=, ...)
    # is masked by Ansible everywhere in the output, the invocation included; messages show URLs through safe_url.
    for url in (module.params["url"], module.params["checksum_url"]):
        module.no_log_values.update(_fetch.url_secrets(url))

    artifact = _store.Artifact(module.params, module.check_mode, file_attributes)
    problem = _fetch.checksum_source_problem(module.params["url"], module.params["checksum_url"],
                                             module.params["allow_unverified"])
    if problem:
        module.fail_json(msg=problem, **artifact.result)
    try:
        result = artifact.run()
    except (_store.ArtifactError, _fetch.FetchError) as exc:
        module.fail_json(msg=to_native(exc), **artifact.result)
    except OSError as exc:
        module.fail_json(msg="storing %s in %s failed: %s" % (artifact.result["source"], module.params["store"],
                                                              to_native(exc)),
                         exception=traceback.format_exc(), **artifact.result)
    if module._diff:
        result["diff"] = artifact.diff
    module.exit_json(**result)


if __name__ == "__main__":
    main()
