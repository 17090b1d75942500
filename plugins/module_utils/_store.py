# -*- coding: utf-8 -*-
# Copyright: seedops.deploy contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The content-addressed artifact store on a host, the logic of seedops.deploy.artifact
(private to seedops.deploy)::

    <store>/<algorithm>/<hex>                 a verified artifact
    <store>/<algorithm>/.partial-<hex>        the lock of that digest, and its download in progress
                                              (resumed by the next run)

Entries arrive verified - pulled over HTTP(S) and hashed while streaming, or moved in from a
file on the host (a pushed temp file or remote_src) - through a temp file, fsync and rename.
Pruning removes entries that no release record refers to.

Two runs that need the same digest take turns: whoever adds or replaces an entry holds an flock
on its ``.partial-<hex>`` from the first byte to the rename (``DigestLock``), so one partial file
never receives two downloads. An entry already in the store is checked before it is used: its
size against the artifact's size where one is known (the ``source_size`` of a release record
made from it, or the size of ``src``), and with ``verify_existing`` its digest. An entry that
fails is replaced by a fresh, verified copy under the same lock; until then it stays as it was.

``dest`` is written only through descriptors this module created (a new hard link, or a file
made by mkstemp), never by reopening a name in dest's directory, which its owner may control.

A new entry belongs to the owner and group of the store directory (root's, when the module runs
with become), whoever brought the bytes: a file the SSH login user pushed is copied into a file of
the module's own while it is hashed - that user may still hold it open - and never moved in. Its
mode is 0644 less the read bits the store directory does not pass on: group and others may read
an entry only where they may enter the store (0755 -> 0644, 0750 -> 0640, 0700 -> 0600).
"""

from __future__ import annotations

import fcntl
import hashlib
import os
import stat
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


def copy_to_fd(src, fd, hasher=None):
    """Copy src into the open, empty file fd (which stays open), flushed and fsynced; `hasher` sees every
    byte on the way. Never opens anything by a name but src."""
    with open(src, "rb") as fin:
        for chunk in iter(lambda: fin.read(CHUNK), b""):
            if hasher is not None:
                hasher.update(chunk)
            view = memoryview(chunk)
            while view:
                view = view[os.write(fd, view):]
    os.fsync(fd)


def entry_attributes(store):
    """(uid, gid, mode) of a new entry in `store`: the store directory's owner and group, and 0644 with
    the group's and others' read bit only where the directory lets them in (its x bit)."""
    st = os.stat(store)
    mode = 0o600
    if st.st_mode & stat.S_IXGRP:
        mode |= 0o040
    if st.st_mode & stat.S_IXOTH:
        mode |= 0o004
    return st.st_uid, st.st_gid, mode


def settle(path, attributes):
    """Give the file at path (not followed) the (uid, gid, mode) of `attributes`, through a descriptor.
    A user who may not give files away (not root) keeps them, with the store's group where it is a
    member of it: that user could write into the store anyway."""
    uid, gid, mode = attributes
    fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
    try:
        st = os.fstat(fd)
        if (st.st_uid, st.st_gid) != (uid, gid):
            try:
                os.fchown(fd, uid, gid)
            except PermissionError:
                try:
                    os.fchown(fd, -1, gid)
                except PermissionError:
                    pass
        os.fchmod(fd, mode)
    finally:
        os.close(fd)


def identity(st):
    return (st.st_dev, st.st_ino)


def version(st):
    """What tells one state of a file from another: the file, its size and its modification time."""
    return identity(st) + (st.st_size, st.st_mtime_ns)


def is_file_at(path, st):
    """Whether path (not followed) is the file of the stat result st."""
    try:
        return identity(os.lstat(path)) == identity(st)
    except FileNotFoundError:
        return False


def same_content(path, stored, algorithm, hexdigest):
    """Whether the file at path already is the stored artifact (the same file, or the same bytes)."""
    if not os.path.isfile(path):
        return False
    if os.path.samefile(path, stored):
        return True
    return os.path.getsize(path) == os.path.getsize(stored) and _digest.file_digest(path, algorithm) == hexdigest


def _link_fresh(stored, directory, prefix):
    """A new hard link to stored under an unused random name in directory, or None when the filesystem
    will not link it (another filesystem, links not allowed). A name someone else took is never used."""
    for _attempt in range(100):
        name = os.path.join(directory, "%s%s" % (prefix, os.urandom(8).hex()))
        try:
            os.link(stored, name)
            return name
        except FileExistsError:
            continue
        except OSError:
            return None
    raise ArtifactError("could not find a free temporary name in %s" % directory)


def link_or_copy(stored, dest):
    """Put the stored artifact at dest in one rename: a hard link when on the same filesystem, else a
    copy; a temp name in dest's directory until then.

    dest's directory may belong to another user, who can swap any name in it for a symlink at any
    time. So nothing there is opened by name: the hard link is made under a fresh name (link()
    never follows a symlink there), the copy is written through the descriptor mkstemp opened (a new
    file, O_EXCL and O_NOFOLLOW), and after the rename dest must be the file we made."""
    directory = os.path.dirname(dest) or "."
    prefix = ".%s.seedops-" % os.path.basename(dest)
    tmp = _link_fresh(stored, directory, prefix)
    if tmp is not None:
        made = os.stat(stored)
    else:
        fd, tmp = tempfile.mkstemp(dir=directory, prefix=prefix)
        try:
            made = os.fstat(fd)
            copy_to_fd(stored, fd)
            os.fchmod(fd, stat.S_IMODE(os.stat(stored).st_mode))
        except BaseException:
            if is_file_at(tmp, made):
                os.unlink(tmp)
            raise
        finally:
            os.close(fd)
    try:
        if not is_file_at(tmp, made):
            raise ArtifactError("the temporary file %s was replaced by someone else before it was renamed to dest; "
                                "nothing was written to dest. Make sure only its owner can write to %s"
                                % (tmp, directory))
        os.rename(tmp, dest)
    except BaseException:
        if is_file_at(tmp, made):
            os.unlink(tmp)
        raise
    if not is_file_at(dest, made):
        raise ArtifactError("dest %s was replaced by someone else right after it was written; make sure only its "
                            "owner can write to %s, and run again" % (dest, directory))
    _releases.fsync_dir(directory)


class DigestLock:
    """The lock of one digest in the store: an flock on <store>/<algorithm>/.partial-<hex>, the file a
    download of that digest goes into. A context manager; it waits as long as the holder needs.

    The holder may rename the file (into the store) or remove it; whoever gets the flock next checks
    that the file it holds still is the one at the path, and opens it again when not. On release an
    empty partial (nothing was downloaded into it) is removed; one with bytes stays to be resumed."""

    def __init__(self, directory, hexdigest):
        self.path = os.path.join(directory, ".partial-%s" % hexdigest)
        self.fd = None

    def __enter__(self):
        while True:
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX)
                if is_file_at(self.path, os.fstat(fd)):
                    self.fd = fd
                    return self
            except BaseException:
                os.close(fd)
                raise
            os.close(fd)

    def __exit__(self, *exc):
        try:
            own = os.fstat(self.fd)
            if own.st_size == 0 and is_file_at(self.path, own):
                os.unlink(self.path)
        finally:
            os.close(self.fd)
            self.fd = None
        return False


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
        self.result = {"changed": False, "bytes_transferred": 0, "resumed": False, "replaced": False, "pruned": [],
                       "source": self.describe_source()}
        self.suspect = None  # the stat of an entry found wanting
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
            stored = self.existing_entry(algorithm, hexdigest)
        if stored is None:
            if self.check:
                self.note_stored(self.entry_path(algorithm, hexdigest) if hexdigest else "(new entry)")
                self.finish(None, algorithm, hexdigest)
                return self.result
            stored, algorithm, hexdigest, fresh = self.fetch(algorithm or "sha256", hexdigest)
            if fresh:
                self.note_stored(stored)
        self.finish(stored, algorithm, hexdigest)
        return self.result

    def note_stored(self, after):
        """A new or replacing entry (in check mode: one that would be stored) in the result and the diff."""
        self.result["changed"] = True
        if self.result.get("corrupt"):
            self.result["replaced"] = True
            self.diff["before"]["store"] = "%s (not trusted: %s)" % (after, self.result["corrupt"])
        else:
            self.diff["before"]["store"] = None
        self.diff["after"]["store"] = after

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

    # -- an entry already in the store -----------------------------------------------------------

    def existing_entry(self, algorithm, hexdigest):
        """The entry's path when the store holds the digest and the entry passes its check, else None
        (the reason in result['corrupt']); ArtifactError when it is missing or failed and there is
        nothing to fetch it from."""
        path = self.entry_path(algorithm, hexdigest)
        fetchable = self.p["url"] or self.p["src"]
        if not os.path.isfile(path):
            if not fetchable:
                self.result["missing"] = True
                raise ArtifactError("%s:%s is not in the store %s; give url or src to fetch it"
                                    % (algorithm, hexdigest, self.p["store"]))
            return None
        st = os.stat(path)
        problem = self.entry_problem(path, st, algorithm, hexdigest)
        if problem is None:
            return path
        self.result["corrupt"] = problem
        self.suspect = st
        if not fetchable:
            self.result["missing"] = True
            raise ArtifactError("the store entry %s cannot be trusted: %s. Nothing was changed; give url or src to "
                                "fetch the artifact again, and the entry is replaced by a verified copy" % (path, problem))
        return None

    def entry_problem(self, path, st, algorithm, hexdigest):
        """Why the entry at path (stat st) is not the artifact, or None. Its size is compared with the
        artifact's size in the release records made from it; with verify_existing, or when src (the
        artifact to store) has another size, it is hashed."""
        for size, where in self.recorded_sizes(algorithm, hexdigest):
            if st.st_size != size:
                return "it holds %d bytes, but %s says the artifact has %d" % (st.st_size, where, size)
        src = self.p["src"]
        rehash = self.p.get("verify_existing") or (src and os.path.isfile(src) and os.path.getsize(src) != st.st_size)
        if rehash:
            actual = _digest.file_digest(path, algorithm)
            if actual != hexdigest:
                return "its content hashes to %s:%s" % (algorithm, actual)
        return None

    def recorded_sizes(self, algorithm, hexdigest):
        """[(size, 'the record of release <id>')] for the release records made from this digest."""
        releases = self.p["releases_path"] or default_releases_path(self.p["store"])
        layout = _releases.Layout(os.path.dirname(os.path.normpath(releases)))
        layout.releases = releases
        digest = "%s:%s" % (algorithm, hexdigest)
        return [(record["source_size"], "the record of release %s" % release_id)
                for release_id, record in sorted(_releases.read_records(layout).items())
                if record.get("digest") == digest and isinstance(record.get("source_size"), int)
                and not isinstance(record.get("source_size"), bool)]

    def stored_meanwhile(self, final, algorithm, hexdigest):
        """Under the digest's lock: whether the run we waited for stored (or replaced) the entry, so that
        it passes its check now. The entry this run found wanting is not checked again."""
        if not os.path.isfile(final):
            return False
        st = os.stat(final)
        seen = self.suspect
        if seen is not None and version(st) == version(seen):
            return False
        problem = self.entry_problem(final, st, algorithm, hexdigest)
        if problem is None:
            return True
        self.result["corrupt"] = problem
        self.suspect = st
        return False

    # -- getting the bytes ----------------------------------------------------------------------

    def fetch(self, algorithm, hexdigest):
        """Get the bytes into a temp file in the store, check them, rename them into place; returns
        (path, algorithm, hex, whether this run stored it). With a known digest all of it happens under
        the digest's lock; an unverified download has a temp name of its own and needs none."""
        directory = os.path.join(self.p["store"], algorithm)
        os.makedirs(directory, 0o755, exist_ok=True)  # another run may be making it right now
        if hexdigest is None:
            return self.bring_in(directory, algorithm, None, None) + (True,)
        with DigestLock(directory, hexdigest) as lock:
            final = self.entry_path(algorithm, hexdigest)
            if self.stored_meanwhile(final, algorithm, hexdigest):
                return final, algorithm, hexdigest, False
            return self.bring_in(directory, algorithm, hexdigest, lock.path) + (True,)

    def bring_in(self, directory, algorithm, hexdigest, partial):
        if self.p["url"]:
            partial, actual = self.pull(directory, algorithm, hexdigest, partial)
        else:
            partial, actual = self.copy_in(directory, algorithm)
        if hexdigest and actual != hexdigest:
            remove(partial)
            raise ArtifactError(
                "checksum mismatch for %s: expected %s:%s, got %s:%s. Nothing was stored; check the artifact and its "
                "checksum at the source" % (self.result["source"], algorithm, hexdigest, algorithm, actual))
        final = self.entry_path(algorithm, actual)
        try:
            settle(partial, entry_attributes(self.p["store"]))
        except BaseException:
            remove(partial)
            raise
        os.rename(partial, final)
        _releases.fsync_dir(directory)
        return final, algorithm, actual

    def pull(self, directory, algorithm, hexdigest, partial):
        """Download url. With a known digest the partial file is the digest's lock file, held by this
        run, and keeps its name across runs, so a later run resumes it; an unverified download gets a
        temp name and never survives a failure."""
        if hexdigest is None:
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
        """A file on the host (a pushed temp file or remote_src): hash it while copying it into a
        temp file in the store. A pushed temp file of our own user on the same filesystem is hashed
        and renamed instead; one the SSH login user pushed (the module runs with become) is copied,
        since that user may still have it open and could change the bytes after they were hashed."""
        src = self.p["src"]
        if not os.path.isfile(src):
            raise ArtifactError("src %s does not exist on this host (or is not a file)" % src)
        fd, tmp = tempfile.mkstemp(dir=directory, prefix=".partial-")
        try:
            pushed = os.stat(src)
            if (not self.p["remote_src"] and pushed.st_dev == os.stat(directory).st_dev
                    and pushed.st_uid == os.geteuid()):
                # A temp file the action plugin pushed as this very user: hash it once and move it.
                digest = _digest.file_digest(src, algorithm)
                os.rename(src, tmp)
            else:
                hasher = hashlib.new(algorithm)
                copy_to_fd(src, fd, hasher)
                digest = hasher.hexdigest()
        except BaseException:
            remove(tmp)
            raise
        finally:
            os.close(fd)
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
