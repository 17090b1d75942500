# -*- coding: utf-8 -*-
# Copyright: seedops.deploy contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Reproducible release packages (private to seedops.deploy): the logic of seedops.deploy.package.

A directory becomes a .tar.gz whose bytes depend only on the names, contents, modes and link targets
of what is in it: members in name order, one fixed time, owner 0:0 without names, modes from one rule
(0755 for directories and executables, 0644 for other files), and a gzip header
without a time or a file name. The package and the checksum list beside it are written to a temporary
file in the same directory and renamed into place, so a reader sees the old file or the new one, never
a part; a package whose bytes would not change is left alone."""

from __future__ import annotations

import gzip
import hashlib
import os
import re
import stat
import tarfile
import tempfile

from ansible_collections.seedops.deploy.plugins.module_utils._digest import file_digest
from ansible_collections.seedops.deploy.plugins.module_utils._releases import fsync_dir, write_text_atomic

# sha256sum's line: the digest, two spaces (or space and '*' for binary mode), the name.
SUMS_LINE = re.compile(r"^([0-9a-f]{64}) [ *](.+)$")


class PackageError(Exception):
    """What was wrong with the input, in words a user can act on."""


def members(src):
    """Every path under `src`, relative to it, in name order, each directory followed by what it holds (as
    GNU tar --sort=name lists them). Refuses what a package must not hold: devices, sockets, fifos, and
    symbolic links that point outside the tree."""
    if not os.path.isdir(src):
        raise PackageError("src %s is not a directory: give the directory whose contents go into the package" % src)
    found = []

    def walk(rel_dir):
        for name in sorted(os.listdir(os.path.join(src, rel_dir))):
            rel = os.path.join(rel_dir, name) if rel_dir else name
            full = os.path.join(src, rel)
            info = os.lstat(full)
            if stat.S_ISLNK(info.st_mode):
                target = os.readlink(full)
                resolved = os.path.normpath(os.path.join(rel_dir, target))
                if os.path.isabs(target) or resolved == ".." or resolved.startswith(".." + os.sep):
                    raise PackageError("%s is a symbolic link to %s, outside the package: make it relative and "
                                       "inside %s, or copy the file in" % (full, target, src))
            elif not (stat.S_ISREG(info.st_mode) or stat.S_ISDIR(info.st_mode)):
                raise PackageError("%s is neither a file, a directory nor a symbolic link: a package holds only those"
                                   % full)
            found.append(rel)
            if stat.S_ISDIR(info.st_mode):
                walk(rel)

    walk("")
    if not found:
        raise PackageError("src %s is empty: nothing to package" % src)
    return found


def _tarinfo(src, rel, mtime):
    full = os.path.join(src, rel)
    info = os.lstat(full)
    member = tarfile.TarInfo(rel)
    member.mtime = mtime
    member.uid = member.gid = 0
    member.uname = member.gname = ""
    # Modes from one rule, not from the build's umask: directories and files the owner may execute 0755, other
    # files 0644, links 0777. No setuid, setgid or sticky bit comes from the build tree.
    if stat.S_ISLNK(info.st_mode):
        member.type = tarfile.SYMTYPE
        member.linkname = os.readlink(full)
        member.mode = 0o777
    elif stat.S_ISDIR(info.st_mode):
        member.type = tarfile.DIRTYPE
        member.mode = 0o755
    else:
        member.size = info.st_size
        member.mode = 0o755 if info.st_mode & stat.S_IXUSR else 0o644
    return member


def write_tar_gz(src, handle, mtime=0):
    """Write the package of `src` to the binary file object `handle`."""
    with gzip.GzipFile(filename="", mode="wb", fileobj=handle, compresslevel=9, mtime=0) as zipped:
        with tarfile.open(fileobj=zipped, mode="w", format=tarfile.GNU_FORMAT) as tar:
            for rel in members(src):
                member = _tarinfo(src, rel, mtime)
                if member.isreg():
                    with open(os.path.join(src, rel), "rb") as data:
                        tar.addfile(member, data)
                else:
                    tar.addfile(member)


def _replace(dest, write):
    """Write a new `dest`'s bytes with `write(handle)` into a temporary file beside it (fsynced, mode 0644) and
    return its path, for the caller to rename into place or drop."""
    directory = os.path.dirname(os.path.abspath(dest))
    fd, tmp = tempfile.mkstemp(prefix=".%s." % os.path.basename(dest), suffix=".tmp", dir=directory)
    try:
        with os.fdopen(fd, "wb") as handle:
            write(handle)
            handle.flush()
            os.fsync(handle.fileno())
        os.chmod(tmp, 0o644)
        return tmp
    except BaseException:
        os.unlink(tmp)
        raise


class HashingSink:
    """A binary sink that hashes and counts what is written, and passes it on to `handle` (when given)."""

    def __init__(self, handle=None):
        self.handle = handle
        self.digest = hashlib.sha256()
        self.size = 0

    def write(self, data):
        self.digest.update(data)
        self.size += len(data)
        if self.handle is not None:
            self.handle.write(data)
        return len(data)

    def flush(self):
        if self.handle is not None:
            self.handle.flush()

    def sha256(self):
        """What was written so far, as sha256:<hex>."""
        return "sha256:" + self.digest.hexdigest()


def pack(src, dest, mtime=0, check_mode=False):
    """Package `src` into `dest` (in check mode only hashed, never written). Returns (changed, sha256, size)."""
    sink = HashingSink()
    tmp = None
    if check_mode:
        write_tar_gz(src, sink, mtime)
    else:
        def write(handle):
            sink.handle = handle
            write_tar_gz(src, sink, mtime)

        tmp = _replace(dest, write)
    digest = sink.digest.hexdigest()
    unchanged = os.path.isfile(dest) and file_digest(dest) == digest
    if tmp is not None:
        if unchanged:
            os.unlink(tmp)
        else:
            os.replace(tmp, dest)
            fsync_dir(os.path.dirname(os.path.abspath(dest)))
    return not unchanged, digest, sink.size


def read_sums(path):
    """{name: sha256} from a sha256sum-style list; missing file -> {}."""
    if not os.path.exists(path):
        return {}
    sums = {}
    with open(path, encoding="utf-8") as handle:
        for number, line in enumerate(handle, 1):
            line = line.rstrip("\n")
            if not line.strip():
                continue
            match = SUMS_LINE.match(line)
            if not match:
                raise PackageError("%s line %d is not '<sha256>  <name>': %r; fix or remove the file" % (path, number, line))
            sums[match.group(2)] = match.group(1)
    return sums


def sums_text(sums):
    return "".join("%s  %s\n" % (sums[name], name) for name in sorted(sums))


def record_sum(path, name, digest, check_mode=False):
    """Put `name`'s line into the checksum list at `path` (kept sorted by name). Returns whether it changed."""
    if "/" in name or "\n" in name or not name:
        raise PackageError("a checksum list names files beside it: %r is not a plain file name" % name)
    sums = read_sums(path)
    if sums.get(name) == digest:
        return False
    sums[name] = digest
    if not check_mode:
        write_text_atomic(path, sums_text(sums))
    return True
