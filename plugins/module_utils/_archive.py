# -*- coding: utf-8 -*-
# Copyright: seedops.deploy contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Safe unpacking of release archives (private to seedops.deploy).

Every member is checked before it is written, and everything is written into an empty staging
directory that the caller removes whole on any error, so a rejected archive never reaches a
release directory. Checks: no absolute paths, no ``..``, no writing through a symlink, symlink and
hard-link targets resolved inside the tree (following chains of links in the archive itself), no
device or fifo nodes, no setuid/setgid bits unless allowed, limits on unpacked size and member
count (counted on the bytes actually written, not only on headers). Files are created with
O_EXCL|O_NOFOLLOW, so nothing already on disk is ever followed or overwritten.

The source is read once: a tar stream is hashed while it is unpacked.
"""

from __future__ import annotations

import gzip
import hashlib
import lzma
import os
import stat
import tarfile
import zipfile
import zlib

CHUNK = 1024 * 1024
MAX_LINK_DEPTH = 40

FORMATS = ("tar", "zip", "file")


class ArchiveError(Exception):
    """An archive (or one of its members) is unsafe or unreadable; the message says which and why."""


class Limits:
    def __init__(self, max_bytes=4 << 30, max_members=100000, allow_setuid=False):
        self.max_bytes = max_bytes
        self.max_members = max_members
        self.allow_setuid = allow_setuid


def detect_format(path):
    """'tar' (plain or gzip/xz/bzip2-compressed), 'zip' or 'file', from the first bytes."""
    with open(path, "rb") as f:
        head = f.read(512)
    if head[:4] in (b"PK\x03\x04", b"PK\x05\x06"):
        return "zip"
    if head[:2] == b"\x1f\x8b" or head[:6] == b"\xfd7zXZ\x00" or head[:3] == b"BZh":
        return "tar"
    if len(head) >= 262 and head[257:262] == b"ustar":
        return "tar"
    return "file"


def split_member_path(name, strip_components=0):
    """Normalised path components of a member name, or None when stripping leaves nothing.

    Raises ArchiveError for absolute paths, '..' components and NUL bytes.
    """
    if "\x00" in name:
        raise ArchiveError("member %r: NUL byte in its name" % name)
    if name.startswith("/") or (len(name) > 1 and name[1] == ":" and name[0].isalpha()):
        raise ArchiveError("member %r: absolute path" % name)
    parts = [p for p in name.replace("\\", "/").split("/") if p not in ("", ".")]
    if ".." in parts:
        raise ArchiveError("member %r: '..' in its path" % name)
    parts = parts[strip_components:]
    return tuple(parts) if parts else None


class Tree:
    """The tree being built: which paths are directories, files and symlinks, to check each new
    member against what came before it."""

    def __init__(self):
        self.dirs = set([()])
        self.files = set()
        self.links = {}  # path tuple -> target string

    def resolve(self, parts, follow_last=True, depth=0):
        """Resolve a path through the archive's own symlinks; None when it leaves the tree."""
        if depth > MAX_LINK_DEPTH:
            return None
        resolved = []
        for i, part in enumerate(parts):
            if part in ("", "."):
                continue
            if part == "..":
                if not resolved:
                    return None
                resolved.pop()
                continue
            resolved.append(part)
            here = tuple(resolved)
            is_last = i == len(parts) - 1
            if here in self.links and (follow_last or not is_last):
                target = self.links[here]
                if target.startswith("/"):
                    return None
                base = list(here[:-1])
                inner = self.resolve(tuple(base) + tuple(target.split("/")), True, depth + 1)
                if inner is None:
                    return None
                resolved = list(inner)
        return tuple(resolved)

    def check_parents(self, parts, name):
        for i in range(1, len(parts)):
            prefix = parts[:i]
            if prefix in self.links:
                raise ArchiveError("member %r: its path goes through the symlink %r" % (name, "/".join(prefix)))
            if prefix in self.files:
                raise ArchiveError("member %r: its parent %r is a file" % (name, "/".join(prefix)))

    def check_new(self, parts, name, kind):
        self.check_parents(parts, name)
        if parts in self.links or parts in self.files:
            raise ArchiveError("member %r: appears twice in the archive" % name)
        if parts in self.dirs and kind != "dir":
            raise ArchiveError("member %r: replaces a directory of the same name" % name)


def check_mode(mode, name, limits):
    if mode & (stat.S_ISUID | stat.S_ISGID) and not limits.allow_setuid:
        raise ArchiveError("member %r: has the setuid or setgid bit (allow_setuid is off)" % name)
    return mode & (0o7777 if limits.allow_setuid else 0o1777)


class _HashingReader:
    """File wrapper that hashes and counts everything read through it."""

    def __init__(self, fileobj, algorithm="sha256"):
        self._f = fileobj
        self.hash = hashlib.new(algorithm)
        self.count = 0

    def read(self, size=-1):
        data = self._f.read(size)
        self.hash.update(data)
        self.count += len(data)
        return data

    def drain(self):
        while True:
            data = self.read(CHUNK)
            if not data:
                return


class _Writer:
    """Creates members under root (an empty directory), counting bytes and members."""

    def __init__(self, root, limits):
        self.root = root
        self.limits = limits
        self.tree = Tree()
        self.bytes = 0
        self.members = 0
        self.dir_modes = {}

    def _path(self, parts):
        return os.path.join(self.root, *parts)

    def _count(self, name):
        self.members += 1
        if self.members > self.limits.max_members:
            raise ArchiveError("archive has more than %d members (max_members); refused at %r" % (
                self.limits.max_members, name))

    def _ensure_parents(self, parts):
        for i in range(1, len(parts)):
            prefix = parts[:i]
            if prefix not in self.tree.dirs:
                os.mkdir(self._path(prefix), 0o755)
                self.tree.dirs.add(prefix)

    def add_dir(self, parts, name, mode):
        self._count(name)
        self.tree.check_new(parts, name, "dir")
        mode = check_mode(mode, name, self.limits)
        self._ensure_parents(parts)
        if parts not in self.tree.dirs:
            os.mkdir(self._path(parts), 0o700)
            self.tree.dirs.add(parts)
        self.dir_modes[parts] = mode

    def add_file(self, parts, name, mode, source, size_hint, mtime=None):
        self._count(name)
        self.tree.check_new(parts, name, "file")
        mode = check_mode(mode, name, self.limits)
        if self.bytes + max(size_hint, 0) > self.limits.max_bytes:
            raise ArchiveError("archive unpacks to more than %d bytes (max size); refused at %r" % (
                self.limits.max_bytes, name))
        self._ensure_parents(parts)
        path = self._path(parts)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
        self.tree.files.add(parts)
        with os.fdopen(fd, "wb") as out:
            while True:
                chunk = source.read(CHUNK)
                if not chunk:
                    break
                self.bytes += len(chunk)
                if self.bytes > self.limits.max_bytes:
                    raise ArchiveError("archive unpacks to more than %d bytes (max size); refused at %r" % (
                        self.limits.max_bytes, name))
                out.write(chunk)
            os.fchmod(out.fileno(), mode)
        if mtime is not None:
            os.utime(path, (mtime, mtime))

    def add_symlink(self, parts, name, target):
        self._count(name)
        self.tree.check_new(parts, name, "symlink")
        if not target or "\x00" in target:
            raise ArchiveError("member %r: empty or invalid symlink target" % name)
        if target.startswith("/"):
            raise ArchiveError("member %r: symlink to the absolute path %r" % (name, target))
        self.tree.links[parts] = target
        if self.tree.resolve(parts) is None:
            del self.tree.links[parts]
            raise ArchiveError("member %r: symlink target %r leaves the release (or loops)" % (name, target))
        self._ensure_parents(parts)
        os.symlink(target, self._path(parts))

    def add_hardlink(self, parts, name, target_parts, target_name):
        self._count(name)
        self.tree.check_new(parts, name, "hardlink")
        if target_parts is None:
            raise ArchiveError("member %r: hard link to %r, which is outside the release" % (name, target_name))
        real = self.tree.resolve(target_parts)
        if real is None or real not in self.tree.files:
            raise ArchiveError("member %r: hard link to %r, which is not a file unpacked before it" % (
                name, target_name))
        self._ensure_parents(parts)
        os.link(self._path(real), self._path(parts), follow_symlinks=False)
        self.tree.files.add(parts)

    def finish(self):
        # Directory modes last (deepest first), so a read-only directory does not block its children.
        for parts in sorted(self.dir_modes, key=len, reverse=True):
            os.chmod(self._path(parts), self.dir_modes[parts])


def _unpack_tar(src, root, limits, strip_components, algorithm):
    with open(src, "rb") as raw:
        reader = _HashingReader(raw, algorithm)
        writer = _Writer(root, limits)
        try:
            tar = tarfile.open(fileobj=reader, mode="r|*")
        except tarfile.TarError as exc:
            raise ArchiveError("not a readable tar archive: %s" % exc)
        try:
            for member in tar:
                _tar_member(tar, member, writer, strip_components)
        except (tarfile.TarError, EOFError, zlib.error, lzma.LZMAError, gzip.BadGzipFile) as exc:
            raise ArchiveError("corrupt or truncated tar archive: %s" % (exc or type(exc).__name__))
        finally:
            tar.close()
        reader.drain()
        writer.finish()
        return writer, reader.hash.hexdigest(), reader.count


def _tar_member(tar, member, writer, strip_components):
    name = member.name
    parts = split_member_path(name, strip_components)
    if member.isdev() or member.isfifo():
        raise ArchiveError("member %r: device or fifo node" % name)
    if parts is None:
        return
    if member.isdir():
        writer.add_dir(parts, name, member.mode)
    elif member.issym():
        writer.add_symlink(parts, name, member.linkname)
    elif member.islnk():
        try:
            target_parts = split_member_path(member.linkname, strip_components)
        except ArchiveError:
            target_parts = None
        writer.add_hardlink(parts, name, target_parts, member.linkname)
    elif member.isreg():
        writer.add_file(parts, name, member.mode, tar.extractfile(member), member.size, member.mtime)
    else:
        raise ArchiveError("member %r: unsupported type %r" % (name, member.type))


def _zip_kind(info):
    mode = (info.external_attr >> 16) & 0xFFFF
    if info.create_system == 3 and mode:
        if stat.S_ISLNK(mode):
            return "symlink", mode
        if stat.S_ISDIR(mode) or info.filename.endswith("/"):
            return "dir", mode
        if stat.S_ISREG(mode) or stat.S_IFMT(mode) == 0:
            return "file", mode
        return "special", mode
    if info.filename.endswith("/"):
        return "dir", 0o755
    return "file", 0o644


def _unpack_zip(src, root, limits, strip_components, algorithm):
    digest = hashlib.new(algorithm)
    size = 0
    with open(src, "rb") as f:
        for chunk in iter(lambda: f.read(CHUNK), b""):
            digest.update(chunk)
            size += len(chunk)
    try:
        archive = zipfile.ZipFile(src)
    except (zipfile.BadZipFile, OSError) as exc:
        raise ArchiveError("not a readable zip archive: %s" % exc)
    with archive:
        infos = archive.infolist()
        # The central directory lists every member up front: check them all before writing any.
        if len(infos) > limits.max_members:
            raise ArchiveError("archive has %d members, more than max_members (%d)" % (len(infos), limits.max_members))
        declared = 0
        for info in infos:
            kind, mode = _zip_kind(info)
            split_member_path(info.filename, strip_components)
            if kind == "special":
                raise ArchiveError("member %r: device, fifo or socket node" % info.filename)
            check_mode(mode & 0o7777, info.filename, limits)
            declared += info.file_size
        if declared > limits.max_bytes:
            raise ArchiveError("archive declares %d bytes unpacked, more than the max size (%d)" % (
                declared, limits.max_bytes))
        writer = _Writer(root, limits)
        try:
            for info in infos:
                kind, mode = _zip_kind(info)
                parts = split_member_path(info.filename, strip_components)
                if parts is None:
                    continue
                if kind == "dir":
                    writer.add_dir(parts, info.filename, (mode & 0o7777) or 0o755)
                elif kind == "symlink":
                    target = archive.read(info)[:4096].decode("utf-8", "surrogateescape")
                    writer.add_symlink(parts, info.filename, target)
                else:
                    with archive.open(info) as source:
                        writer.add_file(parts, info.filename, (mode & 0o7777) or 0o644, source, info.file_size)
        except (zipfile.BadZipFile, zipfile.LargeZipFile) as exc:
            raise ArchiveError("corrupt zip archive: %s" % exc)
        writer.finish()
    return writer, digest.hexdigest(), size


def _unpack_file(src, root, limits, file_name, file_mode, algorithm):
    parts = None if "/" in file_name or "\\" in file_name else split_member_path(file_name)
    if parts is None or len(parts) != 1:
        raise ArchiveError("file_name %r must be a plain file name, without directories" % file_name)
    with open(src, "rb") as raw:
        reader = _HashingReader(raw, algorithm)
        writer = _Writer(root, limits)
        writer.add_file(parts, file_name, file_mode, reader, os.fstat(raw.fileno()).st_size)
    writer.finish()
    return writer, reader.hash.hexdigest(), reader.count


def unpack(src, root, fmt="auto", limits=None, strip_components=0, file_name=None, file_mode=0o755,
           algorithm="sha256"):
    """Unpack src into root (an existing, empty directory).

    Returns a dict: format, digest (hex of the source file), source_bytes, members, bytes.
    Raises ArchiveError for anything unsafe or unreadable; the caller removes root then.
    """
    limits = limits or Limits()
    if fmt == "auto":
        fmt = detect_format(src)
    if fmt == "tar":
        writer, digest, source_bytes = _unpack_tar(src, root, limits, strip_components, algorithm)
    elif fmt == "zip":
        writer, digest, source_bytes = _unpack_zip(src, root, limits, strip_components, algorithm)
    elif fmt == "file":
        writer, digest, source_bytes = _unpack_file(src, root, limits, file_name or os.path.basename(src),
                                                    file_mode, algorithm)
    else:
        raise ArchiveError("unknown format %r; use one of auto, %s" % (fmt, ", ".join(FORMATS)))
    return {"format": fmt, "digest": digest, "source_bytes": source_bytes, "members": writer.members,
            "bytes": writer.bytes}
