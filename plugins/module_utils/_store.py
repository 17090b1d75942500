# -*- coding: utf-8 -*-
# Copyright: seedops.deploy contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The content-addressed artifact store on a host, the logic of seedops.deploy.artifact
(private to seedops.deploy)::

    <store>/<algorithm>/<hex>                 a verified artifact
    <store>/<algorithm>/.partial-<hex>        a download in progress (resumed by the next run)

Entries arrive verified - pulled over HTTP(S) and hashed while streaming, or moved in from a
file on the host (a pushed temp file or remote_src) - through a temp file, fsync and rename.
Pruning removes entries that no release record refers to.
"""

from __future__ import annotations

import hashlib
import os
import tempfile
import time

from ansible_collections.seedops.deploy.plugins.module_utils import _digest
from ansible_collections.seedops.deploy.plugins.module_utils import _fetch
from ansible_collections.seedops.deploy.plugins.module_utils import _releases

CHUNK = 1024 * 1024


class ArtifactError(Exception):
    """The artifact cannot be stored; the message says what is wrong and what to do."""


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


def default_releases_path(store):
    """Where the release records of a store are when releases_path is not given: <store>/../releases."""
    return os.path.join(os.path.dirname(os.path.normpath(store)), "releases")


def referenced_digests(releases_path):
    """The digests ('sha256:<hex>') the release records in `releases_path` refer to.

    The records are read by _releases.read_records, the one reader of their format; a
    `releases_path` of another name than releases/ works too."""
    layout = _releases.Layout(os.path.dirname(os.path.normpath(releases_path)))
    layout.releases = releases_path
    digests = (record.get("digest") for record in _releases.read_records(layout).values())
    return set(digest for digest in digests if isinstance(digest, str) and digest)


def plan_store_prune(entries, referenced, keep, protect=()):
    """Paths to remove: entries no release refers to, beyond the `keep` newest of them; a
    protected entry (the one just used) counts toward `keep` and is never removed."""
    unreferenced = [e for e in entries if "%s:%s" % (e[0], e[1]) not in referenced]
    unreferenced.sort(key=lambda e: (e[3], e[2]), reverse=True)
    kept = set(e[2] for e in unreferenced[:keep]) | set(protect)
    return [e[2] for e in unreferenced if e[2] not in kept]


def remove(path):
    if path and os.path.exists(path):
        os.unlink(path)


def copy_synced(src, dest, hasher=None):
    """Copy src to the new file dest, flushed and fsynced; `hasher` sees every byte on the way."""
    with open(src, "rb") as fin, open(dest, "wb") as fout:
        for chunk in iter(lambda: fin.read(CHUNK), b""):
            if hasher is not None:
                hasher.update(chunk)
            fout.write(chunk)
        fout.flush()
        os.fsync(fout.fileno())


def same_content(path, stored, algorithm, hexdigest):
    """Whether the file at path already is the stored artifact (the same file, or the same bytes)."""
    if not os.path.isfile(path):
        return False
    if os.path.samefile(path, stored):
        return True
    return os.path.getsize(path) == os.path.getsize(stored) and _digest.file_digest(path, algorithm) == hexdigest


def link_or_copy(stored, dest):
    """Put the stored artifact at dest in one rename: a hard link when on the same filesystem,
    else a copy; a temp name in dest's directory until then."""
    directory = os.path.dirname(dest) or "."
    fd, tmp = tempfile.mkstemp(dir=directory, prefix=".%s.seedops-" % os.path.basename(dest))
    os.close(fd)
    os.unlink(tmp)
    try:
        try:
            os.link(stored, tmp)
        except OSError:
            copy_synced(stored, tmp)
        os.rename(tmp, dest)
    except BaseException:
        remove(tmp)
        raise
    _releases.fsync_dir(directory)


class Artifact:
    """One run of seedops.deploy.artifact.

    `params` are the module's parameters; `file_attributes(changed)` applies owner, group and
    mode to dest and returns the new `changed` (AnsibleModule.set_fs_attributes_if_different in
    the module). `result` and `diff` are complete also when run() raises.
    """

    def __init__(self, params, check_mode=False, file_attributes=None):
        self.p = params
        self.check = check_mode
        self.file_attributes = file_attributes
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

    def expected(self):
        """(algorithm, hex) or (None, None) when unverified."""
        p = self.p
        if p["keep"] is not None and p["keep"] < 0:
            raise ArtifactError("keep must be 0 or more, got %d" % p["keep"])
        if p["checksum"]:
            try:
                return _digest.parse_checksum(p["checksum"])
            except _digest.DigestError as exc:
                raise ArtifactError(str(exc))
        if p["checksum_url"]:
            if not p["url"]:
                raise ArtifactError("checksum_url needs url: it lists the artifact by the file name of url")
            name = _fetch.url_file_name(p["url"])
            text = _fetch.Fetcher.from_params(p).get_text(p["checksum_url"])
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
                self.finish(None, algorithm, hexdigest)
                return self.result
            stored, algorithm, hexdigest = self.fetch(algorithm or "sha256", hexdigest)
            self.diff["after"]["store"] = stored
        self.finish(stored, algorithm, hexdigest)
        return self.result

    def finish(self, stored, algorithm, hexdigest):
        if stored:
            self.result.update(path=stored, digest="%s:%s" % (algorithm, hexdigest), size=os.path.getsize(stored))
            if self.p["dest"]:
                self.place(stored, algorithm, hexdigest)
        elif self.p["dest"]:
            self.result["dest"] = self.p["dest"]
        if self.p["keep"] is not None:
            self.prune(stored)
        elapsed = time.monotonic() - self.started
        self.result["elapsed"] = round(elapsed, 3)
        self.result["throughput"] = round(self.result["bytes_transferred"] / elapsed, 1) if elapsed > 0 else 0.0

    # -- getting the bytes ----------------------------------------------------------------------

    def fetch(self, algorithm, hexdigest):
        """Get the bytes into a temp file in the store, check them, rename them into place."""
        directory = os.path.join(self.p["store"], algorithm)
        if not os.path.isdir(directory):
            os.makedirs(directory, 0o755)
        if self.p["url"]:
            partial, actual = self.pull(directory, algorithm, hexdigest)
        else:
            partial, actual = self.copy_in(directory, algorithm)
        if hexdigest and actual != hexdigest:
            remove(partial)
            raise ArtifactError(
                "checksum mismatch for %s: expected %s:%s, got %s:%s. Nothing was stored; check the artifact and its "
                "checksum at the source" % (self.result["source"], algorithm, hexdigest, algorithm, actual))
        final = self.entry_path(algorithm, actual)
        os.chmod(partial, 0o644)
        os.rename(partial, final)
        _releases.fsync_dir(directory)
        return final, algorithm, actual

    def pull(self, directory, algorithm, hexdigest):
        """Download url. With a known digest the partial file keeps its name across runs, so a
        later run resumes it; an unverified download gets a temp name and never survives a failure."""
        if hexdigest:
            partial = os.path.join(directory, ".partial-%s" % hexdigest)
        else:
            fd, partial = tempfile.mkstemp(dir=directory, prefix=".partial-unverified-")
            os.close(fd)
        try:
            info = _fetch.Fetcher.from_params(self.p).download(self.p["url"], partial, algorithm,
                                                               resume=self.p["resume"] and hexdigest is not None)
        except _fetch.FetchError:
            if hexdigest is None or not os.path.exists(partial) or os.path.getsize(partial) == 0:
                remove(partial)
            raise
        except BaseException:
            if hexdigest is None:
                remove(partial)
            raise
        self.result["bytes_transferred"] = info["bytes_transferred"]
        self.result["resumed"] = info["resumed"]
        return partial, info["hexdigest"]

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
                copy_synced(src, tmp, hasher)
                digest = hasher.hexdigest()
        except BaseException:
            remove(tmp)
            raise
        return tmp, digest

    # -- dest and housekeeping -------------------------------------------------------------------

    def place(self, stored, algorithm, hexdigest):
        dest = self.p["dest"]
        self.result["dest"] = dest
        directory = os.path.dirname(dest) or "."
        if not os.path.isdir(directory):
            raise ArtifactError("the directory of dest, %s, does not exist; create it first" % directory)
        if not same_content(dest, stored, algorithm, hexdigest):
            self.result["changed"] = True
            self.diff["before"]["dest"] = dest if os.path.exists(dest) else None
            self.diff["after"]["dest"] = "%s (%s:%s)" % (dest, algorithm, hexdigest)
            if not self.check:
                link_or_copy(stored, dest)
        if self.file_attributes is not None and os.path.exists(dest):
            self.result["changed"] = self.file_attributes(self.result["changed"])

    def prune(self, stored):
        store = self.p["store"]
        releases = self.p["releases_path"] or default_releases_path(store)
        doomed = plan_store_prune(store_entries(store), referenced_digests(releases), self.p["keep"],
                                  protect=(stored,) if stored else ())
        if not doomed:
            return
        self.result["changed"] = True
        self.result["pruned"] = doomed
        self.diff["before"]["pruned"] = doomed
        if not self.check:
            for path in doomed:
                remove(path)
