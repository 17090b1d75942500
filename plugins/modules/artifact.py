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
    HTTP 5xx and 429) and resume of an interrupted download with HTTP Range, also across runs.
  - Push - the action plugin computes the controller file's digest once per run (shared by all hosts), asks
    each host whether its store already holds it, and only then transfers the bytes (streamed from disk).
  - A plain C(http://) URL or a push without any checksum is refused unless O(allow_unverified=true).
  - O(keep) removes store entries that no release record (C(<store>/../releases/*.json)) refers to, beyond the
    newest O(keep).
options:
  store:
    description: The content-addressed store, for example C(/srv/app/store).
    type: path
    required: true
  url:
    description: Pull the artifact from this HTTP(S) URL. Mutually exclusive with O(src).
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
        file name of O(url). Fetched with the same credentials and settings as O(url).
    type: str
  allow_unverified:
    description: Accept a plain C(http://) URL or a push without a checksum. The digest is still computed and returned.
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
  headers:
    description: Extra HTTP request headers.
    type: dict
    default: {}
  url_username:
    description: User name for HTTP basic authentication.
    type: str
  url_password:
    description: Password for HTTP basic authentication.
    type: str
  force_basic_auth:
    description: Send the basic authentication header with the first request instead of waiting for a 401.
    type: bool
    default: true
  bearer_token:
    description: Send C(Authorization) with this bearer token.
    type: str
  client_cert:
    description: PEM client certificate for TLS client authentication.
    type: path
  client_key:
    description: PEM private key for O(client_cert), when not in the same file.
    type: path
  validate_certs:
    description: Verify the server's TLS certificate.
    type: bool
    default: true
  use_proxy:
    description: Use the proxies named by the environment (C(https_proxy), C(http_proxy), C(no_proxy)).
    type: bool
    default: true
  timeout:
    description: Seconds to wait for a connection and for each read.
    type: int
    default: 30
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
    description: Where the release records are (C(*.json)) for O(keep). Defaults to C(<store>/../releases).
    type: path
attributes:
  check_mode:
    support: full
  diff_mode:
    support: full
  action:
    support: full
    details: The action plugin pushes O(src) from the controller.
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
  - Pull needs nothing on the host beyond Python; it uses C(ansible.module_utils.urls).
  - An interrupted download is kept as C(<store>/<algorithm>/.partial-<hex>) (only when the digest is known) and
    resumed by the next run; it is never visible as a store entry.
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
  description: Where the artifact came from - the URL without credentials, or the controller or host path.
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
  description: Set when neither O(url) nor O(src) was given and the store does not hold O(checksum) (the task fails).
  returned: on that failure
  type: bool
pruned:
  description: Store entries removed by O(keep).
  returned: always
  type: list
  elements: str
"""

import hashlib
import json
import os
import shutil
import tempfile
import time
import traceback

from ansible.module_utils.basic import AnsibleModule
from ansible.module_utils.common.text.converters import to_native

from ansible_collections.seedops.deploy.plugins.module_utils import _digest
from ansible_collections.seedops.deploy.plugins.module_utils import _fetch
from ansible_collections.seedops.deploy.plugins.module_utils import _releases


class ArtifactError(Exception):
    pass


def store_entries(store):
    """[(algorithm, hex, path, mtime)] of every complete entry in the store."""
    entries = []
    for algorithm in sorted(_digest.HEX_LENGTHS):
        directory = os.path.join(store, algorithm)
        if not os.path.isdir(directory):
            continue
        for name in os.listdir(directory):
            if name.startswith("."):
                continue
            path = os.path.join(directory, name)
            entries.append((algorithm, name, path, os.lstat(path).st_mtime))
    return entries


def referenced_digests(releases_path):
    digests = set()
    if not os.path.isdir(releases_path):
        return digests
    for name in os.listdir(releases_path):
        if name.endswith(".json") and not name.startswith("."):
            try:
                with open(os.path.join(releases_path, name)) as f:
                    digest = json.load(f).get("digest")
            except (OSError, ValueError):
                continue
            if digest:
                digests.add(digest)
    return digests


def plan_store_prune(entries, referenced, keep, protect=()):
    """Paths to remove: entries no release refers to, beyond the `keep` newest of them; a
    protected entry (the one just used) counts toward `keep` and is never removed."""
    unreferenced = [e for e in entries if "%s:%s" % (e[0], e[1]) not in referenced]
    unreferenced.sort(key=lambda e: (e[3], e[2]), reverse=True)
    kept = set(e[2] for e in unreferenced[:keep]) | set(protect)
    return [e[2] for e in unreferenced if e[2] not in kept]


class Artifact:
    def __init__(self, module):
        self.module = module
        self.p = module.params
        self.check = module.check_mode
        self.started = time.monotonic()
        self.result = {"changed": False, "bytes_transferred": 0, "resumed": False, "pruned": [],
                       "source": self.describe_source()}
        self.diff = {"before": {}, "after": {}}

    def describe_source(self):
        if self.p["url"]:
            return _fetch.safe_url(self.p["url"])
        if self.p["src"]:
            return self.p["src"]
        return "store"

    def fetcher(self):
        p = self.p
        return _fetch.Fetcher(headers=p["headers"], url_username=p["url_username"], url_password=p["url_password"],
                              force_basic_auth=p["force_basic_auth"], bearer_token=p["bearer_token"],
                              validate_certs=p["validate_certs"], use_proxy=p["use_proxy"], timeout=p["timeout"],
                              client_cert=p["client_cert"], client_key=p["client_key"], retries=p["retries"],
                              retry_delay=p["retry_delay"])

    def expected(self):
        """(algorithm, hex) or (None, None) when unverified."""
        p = self.p
        if p["checksum"]:
            try:
                return _digest.parse_checksum(p["checksum"])
            except _digest.DigestError as exc:
                raise ArtifactError(str(exc))
        if p["checksum_url"]:
            if not p["url"]:
                raise ArtifactError("checksum_url needs url: it lists the artifact by the file name of url")
            name = _fetch.url_file_name(p["url"])
            text = self.fetcher().get_text(p["checksum_url"])
            try:
                return _digest.parse_sums(text, name)
            except _digest.DigestError as exc:
                raise ArtifactError("%s: %s" % (_fetch.safe_url(p["checksum_url"]), exc))
        if p["url"] and p["url"].lower().startswith("http://") and not p["allow_unverified"]:
            raise ArtifactError("refusing to download %s over plain http:// without a checksum: give checksum or "
                                "checksum_url, or set allow_unverified: true" % _fetch.safe_url(p["url"]))
        if p["src"] and not p["allow_unverified"]:
            raise ArtifactError("refusing to store %s without a checksum: give checksum, or set allow_unverified: "
                                "true" % p["src"])
        if not p["url"] and not p["src"]:
            raise ArtifactError("give url, src, or (to use what the store holds) checksum")
        return None, None

    def entry_path(self, algorithm, hexdigest):
        return os.path.join(self.p["store"], algorithm, hexdigest)

    def run(self):
        algorithm, hexdigest = self.expected()
        stored = None
        if hexdigest:
            path = self.entry_path(algorithm, hexdigest)
            if os.path.isfile(path):
                stored = path
            elif not self.p["url"] and not self.p["src"]:
                self.result["missing"] = True
                raise ArtifactError("%s:%s is not in the store %s; give url or src to fetch it"
                                    % (algorithm, hexdigest, self.p["store"]))
        if stored is None:
            self.result["changed"] = True
            self.diff["before"]["store"] = None
            if self.check:
                self.diff["after"]["store"] = self.entry_path(algorithm, hexdigest) if hexdigest else "(new entry)"
                self.finish(None, algorithm, hexdigest, None)
                return self.result
            stored, algorithm, hexdigest = self.fetch(algorithm or "sha256", hexdigest)
            self.diff["after"]["store"] = stored
        self.finish(stored, algorithm, hexdigest, os.path.getsize(stored))
        return self.result

    def finish(self, stored, algorithm, hexdigest, size):
        if stored:
            self.result.update(path=stored, digest="%s:%s" % (algorithm, hexdigest), size=size)
            if self.p["dest"]:
                self.place(stored, hexdigest, algorithm)
        elif self.p["dest"]:
            self.result["dest"] = self.p["dest"]
        if self.p["keep"] is not None:
            self.prune(stored)
        elapsed = time.monotonic() - self.started
        self.result["elapsed"] = round(elapsed, 3)
        self.result["throughput"] = round(self.result["bytes_transferred"] / elapsed, 1) if elapsed > 0 else 0.0

    # -- getting the bytes ----------------------------------------------------------------------

    def fetch(self, algorithm, hexdigest):
        directory = os.path.join(self.p["store"], algorithm)
        if not os.path.isdir(directory):
            os.makedirs(directory, 0o755)
        if self.p["url"]:
            partial = os.path.join(directory, ".partial-%s" % hexdigest) if hexdigest else None
            if partial is None:
                fd, partial = tempfile.mkstemp(dir=directory, prefix=".partial-unverified-")
                os.close(fd)
            try:
                info = self.fetcher().download(self.p["url"], partial, algorithm, resume=self.p["resume"]
                                               and hexdigest is not None)
            except _fetch.FetchError:
                if hexdigest is None or not os.path.exists(partial) or os.path.getsize(partial) == 0:
                    self.remove(partial)
                raise
            except BaseException:
                if hexdigest is None:
                    self.remove(partial)
                raise
            self.result["bytes_transferred"] = info["bytes_transferred"]
            self.result["resumed"] = info["resumed"]
            actual = info["hexdigest"]
        else:
            partial, actual = self.copy_in(directory, algorithm)
        if hexdigest and actual != hexdigest:
            self.remove(partial)
            raise ArtifactError(
                "checksum mismatch for %s: expected %s:%s, got %s:%s. Nothing was stored; check the artifact and its "
                "checksum at the source" % (self.result["source"], algorithm, hexdigest, algorithm, actual))
        final = self.entry_path(algorithm, actual)
        os.chmod(partial, 0o644)
        os.rename(partial, final)
        _releases.fsync_dir(directory)
        return final, algorithm, actual

    def copy_in(self, directory, algorithm):
        """A file on the host (a pushed temp file or remote_src): hash it while moving it into the
        store; renamed when on the same filesystem, else copied."""
        src = self.p["src"]
        if not os.path.isfile(src):
            raise ArtifactError("src %s does not exist on this host (or is not a file)" % src)
        fd, tmp = tempfile.mkstemp(dir=directory, prefix=".partial-")
        os.close(fd)
        try:
            if not self.p["remote_src"] and os.stat(src).st_dev == os.stat(directory).st_dev:
                # A temp file the action plugin pushed: it is ours, so hash it once and move it.
                digest = _digest.file_digest(src, algorithm)
                os.rename(src, tmp)
            else:
                hasher = hashlib.new(algorithm)
                with open(src, "rb") as fin, open(tmp, "wb") as fout:
                    for chunk in iter(lambda: fin.read(1024 * 1024), b""):
                        hasher.update(chunk)
                        fout.write(chunk)
                    fout.flush()
                    os.fsync(fout.fileno())
                digest = hasher.hexdigest()
        except BaseException:
            self.remove(tmp)
            raise
        return tmp, digest

    @staticmethod
    def remove(path):
        if path and os.path.exists(path):
            os.unlink(path)

    # -- dest and housekeeping -------------------------------------------------------------------

    def place(self, stored, hexdigest, algorithm):
        dest = self.p["dest"]
        self.result["dest"] = dest
        directory = os.path.dirname(dest) or "."
        if not os.path.isdir(directory):
            raise ArtifactError("the directory of dest, %s, does not exist; create it first" % directory)
        up_to_date = False
        if os.path.isfile(dest):
            if os.path.samefile(dest, stored):
                up_to_date = True
            elif os.path.getsize(dest) == os.path.getsize(stored) and \
                    _digest.file_digest(dest, algorithm) == hexdigest:
                up_to_date = True
        if not up_to_date:
            self.result["changed"] = True
            self.diff["before"]["dest"] = dest if os.path.exists(dest) else None
            self.diff["after"]["dest"] = "%s (%s:%s)" % (dest, algorithm, hexdigest)
            if not self.check:
                fd, tmp = tempfile.mkstemp(dir=directory, prefix=".%s.seedops-" % os.path.basename(dest))
                os.close(fd)
                os.unlink(tmp)
                try:
                    try:
                        os.link(stored, tmp)
                    except OSError:
                        with open(stored, "rb") as fin, open(tmp, "wb") as fout:
                            shutil.copyfileobj(fin, fout, 1024 * 1024)
                            fout.flush()
                            os.fsync(fout.fileno())
                    os.rename(tmp, dest)
                except BaseException:
                    self.remove(tmp)
                    raise
                _releases.fsync_dir(directory)
        if os.path.exists(dest) or self.check:
            file_args = self.module.load_file_common_arguments(dict(path=dest, owner=self.p["owner"],
                                                                    group=self.p["group"], mode=self.p["mode"]))
            if os.path.exists(dest):
                self.result["changed"] = self.module.set_fs_attributes_if_different(
                    file_args, self.result["changed"])

    def prune(self, stored):
        store = self.p["store"]
        releases = self.p["releases_path"] or os.path.join(os.path.dirname(os.path.normpath(store)), "releases")
        remove = plan_store_prune(store_entries(store), referenced_digests(releases), self.p["keep"],
                                  protect=(stored,) if stored else ())
        if not remove:
            return
        self.result["changed"] = True
        self.result["pruned"] = remove
        self.diff["before"]["pruned"] = remove
        if not self.check:
            for path in remove:
                self.remove(path)


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
            headers=dict(type="dict", default={}),
            url_username=dict(type="str"),
            url_password=dict(type="str", no_log=True),
            force_basic_auth=dict(type="bool", default=True),
            bearer_token=dict(type="str", no_log=True),
            client_cert=dict(type="path"),
            client_key=dict(type="path"),
            validate_certs=dict(type="bool", default=True),
            use_proxy=dict(type="bool", default=True),
            timeout=dict(type="int", default=30),
            retries=dict(type="int", default=3),
            retry_delay=dict(type="float", default=1.0),
            resume=dict(type="bool", default=True),
            keep=dict(type="int"),
            releases_path=dict(type="path"),
        ),
        mutually_exclusive=[("url", "src"), ("checksum", "checksum_url"), ("url_password", "bearer_token")],
        supports_check_mode=True,
    )
    if module.params["keep"] is not None and module.params["keep"] < 0:
        module.fail_json(msg="keep must be 0 or more, got %d" % module.params["keep"])
    artifact = Artifact(module)
    try:
        result = artifact.run()
    except (ArtifactError, _fetch.FetchError) as exc:
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
