# -*- coding: utf-8 -*-
# Copyright: seedops.deploy contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Safe unpacking of release archives (private to seedops.deploy).

Every member is checked before it is written, and everything is written into an empty staging
directory that the caller removes whole on any error, so a rejected archive never reaches a
release directory. Checks: no absolute paths, no ``..``, no writing through a symlink, symlink and
hard-link targets resolved inside the tree (following chains of links in the archive itself), no
device or fifo nodes, no setuid/setgid bits unless allowed, no world-writable modes, limits on
unpacked size and member count (counted on the bytes actually decompressed, not only on headers).
Files are created with O_EXCL|O_NOFOLLOW, so nothing already on disk is ever followed or overwritten.

A link that was safe when it was added can be made unsafe by a later member (``x -> d/..``, then
``d -> .``), so after the last member every symlink is resolved again in the finished tree, strictly
(``..`` only after a directory that exists), both in the writer's model and on disk. On any error
the symlinks written so far are removed, so nothing in the staging directory leads outside it.

Hostile archives cannot make the unpacker hang or exhaust memory: link resolution is memoised and
bounded (40 links per path, as the kernel, and a total number of steps per archive); names, link
targets and extended tar headers are read with small bounds; every decompressed byte, including
members that are skipped, counts against the size limit. Corrupt or unsupported archives end in an
ArchiveError that says what is wrong.

The source is read once: a tar stream is hashed while it is unpacked.
"""

from __future__ import annotations

import gzip
import hashlib
import os
import stat
import tarfile
import zipfile
import zlib

try:
    import bz2
except ImportError:  # pragma: no cover - a Python built without bz2
    bz2 = None
try:
    import lzma
except ImportError:  # pragma: no cover - a Python built without lzma
    lzma = None

CHUNK = 1024 * 1024
MAX_LINK_DEPTH = 40  # links nested in one another while resolving one path
MAX_LINK_FOLLOWS = 40  # links followed in all while resolving one path (the kernel's MAXSYMLINKS)
MAX_RESOLVE_STEPS = 1 << 23  # path components walked while resolving links, for the whole archive
MAX_NAME = 4096  # bytes in a member name or link target (PATH_MAX)
MAX_EXTENDED_HEADER = 1 << 20  # bytes in one pax extended header
MAX_EXTENDED_TOTAL = 64 << 20  # bytes in all extended headers (pax, GNU long name/link) of a tar archive
MAX_EXTENDED_CHAIN = 8  # extended headers before one tar member
ENTRY_ALLOWANCE = 2048  # decompressed bytes per tar entry not counted against max_bytes: its headers and padding
MAX_TRAILER = 16 << 20  # decompressed bytes after a tar archive's end-of-archive marker
MAX_MTIME = 253402300799  # 9999-12-31T23:59:59Z

FORMATS = ("tar", "zip", "file")

LEAVES = "leaves the release"
LOOPS = "loops, or goes through more than %d symlinks" % MAX_LINK_FOLLOWS

# Errors that reading (decompressing) a member or a header can raise; writing errors stay OSError.
_READ_ERRORS = (EOFError, OSError, ValueError, zlib.error, zipfile.BadZipFile, zipfile.LargeZipFile, tarfile.TarError,
                NotImplementedError, RuntimeError) + ((lzma.LZMAError,) if lzma else ())

_ZIP_METHODS = dict([(zipfile.ZIP_STORED, "stored"), (zipfile.ZIP_DEFLATED, "deflate")]
                    + ([(zipfile.ZIP_BZIP2, "bzip2")] if bz2 else []) + ([(zipfile.ZIP_LZMA, "lzma")] if lzma else []))


class ArchiveError(Exception):
    """An archive (or one of its members) is unsafe or unreadable; the message says which and why."""


class Limits:
    def __init__(self, max_bytes=4 << 30, max_members=100000, allow_setuid=False):
        self.max_bytes = max_bytes
        self.max_members = max_members
        self.allow_setuid = allow_setuid


def _compression(head):
    if head[:2] == b"\x1f\x8b":
        return "gz"
    if head[:6] == b"\xfd7zXZ\x00":
        return "xz"
    if head[:3] == b"BZh":
        return "bz2"
    return None


def detect_format(path):
    """'tar' (plain or gzip/xz/bzip2-compressed), 'zip' or 'file', from the first bytes."""
    with open(path, "rb") as f:
        head = f.read(512)
    if head[:4] in (b"PK\x03\x04", b"PK\x05\x06"):
        return "zip"
    if _compression(head):
        return "tar"
    if len(head) >= 262 and head[257:262] == b"ustar":
        return "tar"
    return "file"


def _byte_length(text):
    return len(text.encode("utf-8", "surrogatepass"))


def split_member_path(name, strip_components=0):
    """Normalised path components of a member name, or None when stripping leaves nothing.

    Raises ArchiveError for absolute paths, '..' components, NUL bytes and names longer than MAX_NAME bytes.
    """
    if "\x00" in name:
        raise ArchiveError("member %r: NUL byte in its name" % name)
    if _byte_length(name) > MAX_NAME:
        raise ArchiveError("member %r...: its name is %d bytes long, more than %d" % (name[:64], _byte_length(name), MAX_NAME))
    if name.startswith("/") or (len(name) > 1 and name[1] == ":" and name[0].isalpha()):
        raise ArchiveError("member %r: absolute path" % name)
    parts = [p for p in name.replace("\\", "/").split("/") if p not in ("", ".")]
    if ".." in parts:
        raise ArchiveError("member %r: '..' in its path" % name)
    parts = parts[strip_components:]
    return tuple(parts) if parts else None


# -- symlink resolution --------------------------------------------------------------------------

class _Unresolvable(Exception):
    """A path that does not resolve inside the tree; the message says why."""


class _OverBudget(Exception):
    """Link resolution took more steps than MAX_RESOLVE_STEPS for the whole archive."""


class _Budget:
    def __init__(self, steps):
        self.limit = steps
        self.left = steps

    def step(self, cost=1):
        self.left -= cost
        if self.left < 0:
            raise _OverBudget()


class _Node:
    """One path of a tree: kind 'dir', 'file' or 'link' (with its target), its parent and children."""

    __slots__ = ("kind", "target", "parent", "parts", "children", "path")

    def __init__(self, kind, parent, parts, target=None, path=None):
        self.kind = kind
        self.target = target
        self.parent = parent
        self.parts = parts
        self.children = {}
        self.path = path


class Tree:
    """The tree being built, as the writer made it: to check each new member against what came
    before it, and to resolve links without touching the disk."""

    def __init__(self):
        self.root = _Node("dir", None, ())
        self.nodes = {(): self.root}
        self.links = {}  # path tuple -> target, in the order they were added

    def kind(self, parts):
        node = self.nodes.get(parts)
        return node.kind if node is not None else None

    def add(self, parts, kind, target=None):
        parent = self.nodes[parts[:-1]]
        node = _Node(kind, parent, parts, target)
        parent.children[parts[-1]] = node
        self.nodes[parts] = node
        if kind == "link":
            self.links[parts] = target

    def remove(self, parts):
        node = self.nodes.pop(parts)
        del node.parent.children[parts[-1]]
        self.links.pop(parts, None)

    @staticmethod
    def child(node, name):
        return node.children.get(name)

    def check_parents(self, parts, name):
        for i in range(1, len(parts)):
            prefix = parts[:i]
            kind = self.kind(prefix)
            if kind == "link":
                raise ArchiveError("member %r: its path goes through the symlink %r" % (name, "/".join(prefix)))
            if kind == "file":
                raise ArchiveError("member %r: its parent %r is a file" % (name, "/".join(prefix)))

    def check_new(self, parts, name, kind):
        self.check_parents(parts, name)
        existing = self.kind(parts)
        if existing in ("link", "file"):
            raise ArchiveError("member %r: appears twice in the archive" % name)
        if existing == "dir" and kind != "dir":
            raise ArchiveError("member %r: replaces a directory of the same name" % name)


class _DiskTree:
    """The same view of the files under root, read from the disk (lstat, readlink: nothing is followed)."""

    def __init__(self, root):
        self.root = _Node("dir", None, (), path=root.rstrip("/") or "/")

    @staticmethod
    def child(node, name):
        if name in node.children:
            return node.children[name]
        path = node.path + "/" + name
        try:
            st = os.lstat(path)
        except (FileNotFoundError, NotADirectoryError):
            found = None
        else:
            if stat.S_ISLNK(st.st_mode):
                found = _Node("link", node, node.parts + (name,), os.readlink(path), path)
            else:
                found = _Node("dir" if stat.S_ISDIR(st.st_mode) else "file", node, node.parts + (name,), path=path)
        node.children[name] = found
        return found


class _Resolver:
    """Resolves paths under the root of a tree (Tree or _DiskTree) through its symlinks, like the kernel.

    While the archive is being read (strict=False) a missing component may be a directory still to
    come, so '..' after it is allowed; once the tree is complete (strict=True) '..' is allowed only
    after an existing directory, as the kernel does - a missing path that the caller creates later (a
    shared link) can then never turn a link around. Components after a missing one are kept as they
    are (a dangling link that stays inside is fine).

    Each link is resolved once (memoised with the number of links it follows); loops, more than
    MAX_LINK_FOLLOWS links for one path and paths leaving the root raise _Unresolvable; every
    component walked takes a step from the shared budget. A step costs the same at any depth.
    """

    def __init__(self, tree, strict, budget):
        self.tree = tree
        self.strict = strict
        self.budget = budget
        self.memo = {}  # link node -> (node, missing components after it, links followed)
        self.active = set()

    def resolve(self, parts, follow_last=True):
        """(resolved parts, kind) of a path, kind None when it does not exist; raises _Unresolvable."""
        node, missing, follows = self._walk(self.tree.root, (), parts, follow_last, 0)
        if missing:
            return node.parts + missing, None
        return node.parts, node.kind

    def _walk(self, node, missing, components, follow_last, depth):
        missing = list(missing)
        follows = 0
        last = len(components) - 1
        for i, part in enumerate(components):
            self.budget.step()
            if part in ("", "."):
                continue
            if part == "..":
                if missing:
                    if self.strict:
                        raise _Unresolvable("uses '..' after %r, which is not a directory in the archive" % (
                            "/".join(node.parts + tuple(missing))))
                    missing.pop()
                elif node.kind != "dir":
                    raise _Unresolvable("uses '..' after %r, which is a file" % "/".join(node.parts))
                elif node.parent is None:
                    raise _Unresolvable(LEAVES)
                else:
                    node = node.parent
                continue
            if missing or node.kind != "dir":
                missing.append(part)
                continue
            child = self.tree.child(node, part)
            if child is None:
                missing.append(part)
            elif child.kind == "link" and (follow_last or i < last):
                node, more, count = self._follow(child, depth)
                missing = list(more)
                self.budget.step(len(missing))
                follows += count
                if follows > MAX_LINK_FOLLOWS:
                    raise _Unresolvable(LOOPS)
            else:
                node = child
        return node, tuple(missing), follows

    def _follow(self, link, depth):
        done = self.memo.get(link)
        if done is not None:
            return done
        if link in self.active or depth >= MAX_LINK_DEPTH:
            raise _Unresolvable(LOOPS)
        if link.target.startswith("/"):
            raise _Unresolvable("goes through the link %r to the absolute path %r" % ("/".join(link.parts), link.target))
        self.active.add(link)
        try:
            node, missing, follows = self._walk(link.parent, (), link.target.split("/"), True, depth + 1)
        finally:
            self.active.discard(link)
        done = (node, missing, follows + 1)
        self.memo[link] = done
        return done


def check_mode(mode, name, limits):
    if mode & (stat.S_ISUID | stat.S_ISGID) and not limits.allow_setuid:
        raise ArchiveError("member %r: has the setuid or setgid bit (allow_setuid is off)" % name)
    return mode & (0o7777 if limits.allow_setuid else 0o1777)


def member_mode(mode):
    """A mode from an archive: never writable by others (group write is kept)."""
    return mode & ~stat.S_IWOTH


# -- reading -------------------------------------------------------------------------------------

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


class _TarStream:
    """The decompressed tar stream as tarfile reads it: forward only, counting every byte, and
    remembering the last read (to tell a real end-of-archive marker from a truncated or corrupt header).
    Decompression errors become ArchiveError."""

    def __init__(self, fileobj):
        self._f = fileobj
        self.pos = 0
        self.last = (0, b"")
        self.extended = 0  # bytes of extended headers so far (counted by _TarInfo)
        self.chain = 0  # extended headers in a row before the member being read

    def _read(self, size):
        try:
            return self._f.read(size)
        except ArchiveError:
            raise
        except _READ_ERRORS as exc:
            raise ArchiveError("corrupt or truncated tar archive (at byte %d of its contents): %s" % (
                self.pos, exc or type(exc).__name__))

    def read(self, size=-1):
        data = self._read(size)
        self.last = (self.pos, data)
        self.pos += len(data)
        return data

    def seek(self, pos, whence=0):
        if whence != 0 or pos < self.pos:
            raise ArchiveError("tar archive: unexpected seek to %r (whence %r) at byte %d" % (pos, whence, self.pos))
        while self.pos < pos:
            data = self._read(min(CHUNK, pos - self.pos))
            if not data:
                break
            self.pos += len(data)
        return self.pos

    def tell(self):
        return self.pos

    def seekable(self):
        return False

    def readable(self):
        return True


_TAR_SPARSE = tarfile.GNUTYPE_SPARSE
_TAR_LONG_RECORDS = (tarfile.GNUTYPE_LONGNAME, tarfile.GNUTYPE_LONGLINK)
_TAR_EXTENDED = {
    tarfile.GNUTYPE_LONGNAME: "GNU long name record",
    tarfile.GNUTYPE_LONGLINK: "GNU long link record",
    tarfile.XHDTYPE: "pax extended header",
    tarfile.XGLTYPE: "pax global header",
    tarfile.SOLARIS_XHDTYPE: "Solaris extended header",
}


class _TarInfo(tarfile.TarInfo):
    """tarfile's header parsing, bounded: tarfile reads a GNU long name record or a pax header into
    memory whole, whatever size its header claims, follows any number of them in a row, and reads
    GNU sparse maps of any length. Here they are refused first (sparse files are not supported)."""

    def _proc_member(self, tarfile):  # the name tarfile's own method gives it; the module is not used here
        if self.type == _TAR_SPARSE:
            self._sparse(self)
        what = _TAR_EXTENDED.get(self.type)
        if what is None:
            return super()._proc_member(tarfile)
        limit = MAX_NAME + 1 if self.type in _TAR_LONG_RECORDS else MAX_EXTENDED_HEADER
        if self.size > limit:
            raise ArchiveError("%s of %d bytes (at byte %d of the tar stream): more than %d" % (
                what, self.size, self.offset, limit))
        stream = tarfile.fileobj  # the _TarStream
        stream.extended += self.size
        if stream.extended > MAX_EXTENDED_TOTAL:
            raise ArchiveError("extended tar headers of more than %d bytes in all (at byte %d of the tar stream)" % (
                MAX_EXTENDED_TOTAL, self.offset))
        if stream.chain >= MAX_EXTENDED_CHAIN:
            raise ArchiveError("more than %d extended headers in a row (at byte %d of the tar stream)" % (
                MAX_EXTENDED_CHAIN, self.offset))
        stream.chain += 1
        try:
            return super()._proc_member(tarfile)
        finally:
            stream.chain -= 1

    def _sparse(self, member, *_args):
        raise ArchiveError("member %r: sparse file (GNU tar --sparse), not supported; make the archive without "
                           "--sparse" % member.name)

    _proc_gnusparse_00 = _proc_gnusparse_01 = _proc_gnusparse_10 = _sparse


# -- writing -------------------------------------------------------------------------------------

class _Writer:
    """Creates members under root (an empty directory), counting bytes and members."""

    def __init__(self, root, limits):
        self.root = root
        self.limits = limits
        self.tree = Tree()
        self.link_names = {}  # path tuple -> member name
        self.budget = _Budget(MAX_RESOLVE_STEPS)
        self.bytes = 0
        self.members = 0
        self.entries = 0
        self.dir_modes = {}

    def _path(self, parts):
        return os.path.join(self.root, *parts)

    def entry(self, name):
        """Counts every entry of the archive, also those that are skipped."""
        self.entries += 1
        if self.entries > self.limits.max_members:
            raise ArchiveError("archive has more than %d members (max_members); refused at %r" % (
                self.limits.max_members, name))

    def _count(self, name):
        self.members += 1
        if self.members > self.limits.max_members:
            raise ArchiveError("archive has more than %d members (max_members); refused at %r" % (
                self.limits.max_members, name))

    def too_big(self, name, what=""):
        return ArchiveError("archive unpacks to more than %d bytes (max size)%s; refused at %r" % (
            self.limits.max_bytes, what, name))

    def check_stream(self, name, end):
        """end: where this entry's data ends in the decompressed tar stream. Everything before it -
        the data of members written or skipped, extended headers - counts against max_bytes, less
        ENTRY_ALLOWANCE per entry for its header and padding."""
        if end - ENTRY_ALLOWANCE * self.entries > self.limits.max_bytes:
            raise self.too_big(name, ", counting the members it skips and its extended headers")

    def _ensure_parents(self, parts):
        for i in range(1, len(parts)):
            prefix = parts[:i]
            if self.tree.kind(prefix) is None:
                os.mkdir(self._path(prefix), 0o755)
                self.tree.add(prefix, "dir")

    def _over_budget(self, name):
        return ArchiveError("member %r: resolving the archive's symlinks takes more than %d steps in all "
                            "(MAX_RESOLVE_STEPS); refused" % (name, self.budget.limit))

    def _resolve(self, parts, name):
        """Resolve in the tree as it is so far (missing paths may still come)."""
        try:
            return _Resolver(self.tree, False, self.budget).resolve(parts)
        except _OverBudget:
            raise self._over_budget(name)

    def add_dir(self, parts, name, mode):
        self._count(name)
        self.tree.check_new(parts, name, "dir")
        mode = check_mode(mode, name, self.limits)
        self._ensure_parents(parts)
        if self.tree.kind(parts) is None:
            os.mkdir(self._path(parts), 0o700)
            self.tree.add(parts, "dir")
        self.dir_modes[parts] = mode

    def add_file(self, parts, name, mode, source, size_hint, mtime=None):
        self._count(name)
        self.tree.check_new(parts, name, "file")
        mode = check_mode(mode, name, self.limits)
        if mtime is not None and not 0 <= mtime <= MAX_MTIME:
            raise ArchiveError("member %r: modification time %r is out of range (0 to %d, 9999-12-31)" % (
                name, mtime, MAX_MTIME))
        if self.bytes + max(size_hint, 0) > self.limits.max_bytes:
            raise self.too_big(name)
        self._ensure_parents(parts)
        path = self._path(parts)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
        self.tree.add(parts, "file")
        with os.fdopen(fd, "wb") as out:
            while True:
                try:
                    chunk = source.read(CHUNK)
                except ArchiveError:
                    raise
                except _READ_ERRORS as exc:
                    raise ArchiveError("member %r: corrupt or unreadable data: %s" % (name, exc or type(exc).__name__))
                if not chunk:
                    break
                self.bytes += len(chunk)
                if self.bytes > self.limits.max_bytes:
                    raise self.too_big(name)
                out.write(chunk)
            os.fchmod(out.fileno(), mode)
            if mtime is not None:
                out.flush()
                os.utime(out.fileno(), (mtime, mtime))

    def add_symlink(self, parts, name, target):
        self._count(name)
        self.tree.check_new(parts, name, "symlink")
        if not target or "\x00" in target:
            raise ArchiveError("member %r: empty or invalid symlink target" % name)
        if _byte_length(target) > MAX_NAME:
            raise ArchiveError("member %r: symlink target of %d bytes, more than %d" % (name, _byte_length(target), MAX_NAME))
        if target.startswith("/"):
            raise ArchiveError("member %r: symlink to the absolute path %r" % (name, target))
        self._ensure_parents(parts)
        self.tree.add(parts, "link", target)
        try:
            self._resolve(parts, name)
        except _Unresolvable as exc:
            self.tree.remove(parts)
            raise ArchiveError("member %r: symlink target %r %s" % (name, target, exc))
        except ArchiveError:
            self.tree.remove(parts)
            raise
        self.link_names[parts] = name
        os.symlink(target, self._path(parts))

    def add_hardlink(self, parts, name, target_parts, target_name):
        self._count(name)
        self.tree.check_new(parts, name, "hardlink")
        if target_parts is None:
            raise ArchiveError("member %r: hard link to %r, which is outside the release" % (name, target_name))
        try:
            real, kind = self._resolve(target_parts, name)
        except _Unresolvable as exc:
            raise ArchiveError("member %r: hard link to %r, which %s" % (name, target_name, exc))
        if kind != "file":
            raise ArchiveError("member %r: hard link to %r, which is not a file unpacked before it" % (
                name, target_name))
        # A hard link to a symlink links the file the symlink leads to: a symlink moved elsewhere could lead anywhere.
        self._ensure_parents(parts)
        os.link(self._path(real), self._path(parts), follow_symlinks=False)
        self.tree.add(parts, "file")

    def check_links(self):
        """After the last member: every symlink resolved again in the finished tree, strictly, in the
        model and on disk - a link added later can change where an earlier one leads."""
        for where, tree in (("", self.tree), (" on disk", _DiskTree(self.root))):
            resolver = _Resolver(tree, True, self.budget)
            for parts, target in self.tree.links.items():
                name = self.link_names.get(parts, "/".join(parts))
                try:
                    resolver.resolve(parts)
                except _Unresolvable as exc:
                    raise ArchiveError("member %r: symlink target %r %s%s, once the whole archive is unpacked" % (
                        name, target, exc, where))
                except _OverBudget:
                    raise self._over_budget(name)

    def discard_links(self):
        """On failure: remove every symlink written, so nothing in the staging directory leads outside it."""
        for parts in self.tree.links:
            path = self._path(parts)
            if os.path.islink(path):
                os.unlink(path)

    def finish(self):
        self.check_links()
        # Directory modes last (deepest first), so a read-only directory does not block its children.
        for parts in sorted(self.dir_modes, key=len, reverse=True):
            os.chmod(self._path(parts), self.dir_modes[parts])


# -- formats -------------------------------------------------------------------------------------

def _decompressor(compression, raw):
    try:
        if compression == "gz":
            return gzip.GzipFile(fileobj=raw, mode="rb")
        if compression == "xz" and lzma:
            return lzma.LZMAFile(raw)
        if compression == "bz2" and bz2:
            return bz2.BZ2File(raw)
    except _READ_ERRORS as exc:
        raise ArchiveError("not a readable %s stream: %s" % (compression, exc))
    if compression:
        raise ArchiveError("%s-compressed tar archive, but this Python has no %s module" % (
            compression, {"xz": "lzma"}.get(compression, compression)))
    return raw


def _unpack_tar(src, writer, strip_components, algorithm):
    with open(src, "rb") as raw:
        compression = _compression(raw.read(6))
        raw.seek(0)
        reader = _HashingReader(raw, algorithm)
        decompressed = _decompressor(compression, reader)
        stream = _TarStream(decompressed)
        try:
            tar = tarfile.TarFile(fileobj=stream, mode="r", tarinfo=_TarInfo)
        except ArchiveError:
            raise
        except tarfile.TarError as exc:
            raise ArchiveError("not a readable tar archive: %s" % exc)
        try:
            for member in tar:
                _tar_member(tar, member, writer, strip_components)
        except ArchiveError:
            raise
        except (tarfile.TarError, EOFError, zlib.error, ValueError) as exc:
            raise ArchiveError("corrupt or truncated tar archive: %s" % (exc or type(exc).__name__))
        finally:
            tar.close()
        _check_tar_end(tar, stream)
        if decompressed is not reader:
            _drain_trailer(stream)
        reader.drain()
        return reader.hash.hexdigest(), reader.count


def _check_tar_end(tar, stream):
    """tarfile ends quietly at a truncated or invalid header: only a zero block is a real end."""
    pos, block = stream.last
    if pos == tar.offset and len(block) == tarfile.BLOCKSIZE and block.count(b"\0") == tarfile.BLOCKSIZE:
        return
    if pos == tar.offset and len(block) < tarfile.BLOCKSIZE:
        raise ArchiveError("truncated tar archive: it ends at byte %d of its contents without an end-of-archive marker"
                           % (pos + len(block)))
    raise ArchiveError("corrupt tar archive: invalid header at byte %d of its contents" % tar.offset)


def _drain_trailer(stream):
    """Decompress what follows the end-of-archive marker (padding), so that the compressed stream's
    own check (CRC, end marker) is verified; a bounded amount."""
    rest = 0
    while True:
        data = stream.read(CHUNK)
        if not data:
            return
        rest += len(data)
        if rest > MAX_TRAILER:
            raise ArchiveError("tar archive: more than %d bytes of data after its end-of-archive marker" % MAX_TRAILER)


def _tar_member(tar, member, writer, strip_components):
    name = member.name
    writer.entry(name)
    if member.isdev() or member.isfifo():
        raise ArchiveError("member %r: device or fifo node" % name)
    if not (member.isdir() or member.issym() or member.islnk() or member.isreg()):
        raise ArchiveError("member %r: unsupported type %r" % (name, member.type))
    if member.size < 0:
        raise ArchiveError("member %r: negative size %d in its header" % (name, member.size))
    writer.check_stream(name, member.offset_data + (member.size if member.isreg() else 0))
    parts = split_member_path(name, strip_components)
    if parts is None:
        return
    if member.isdir():
        writer.add_dir(parts, name, member_mode(member.mode))
    elif member.issym():
        writer.add_symlink(parts, name, member.linkname)
    elif member.islnk():
        try:
            target_parts = split_member_path(member.linkname, strip_components)
        except ArchiveError:
            target_parts = None
        writer.add_hardlink(parts, name, target_parts, member.linkname)
    else:
        writer.add_file(parts, name, member_mode(member.mode), tar.extractfile(member), member.size, member.mtime)


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


def _check_zip_member(info, limits, strip_components):
    """Everything the central directory tells about a member, checked before anything is written."""
    name = info.filename
    kind, mode = _zip_kind(info)
    split_member_path(name, strip_components)
    if kind == "special":
        raise ArchiveError("member %r: device, fifo or socket node" % name)
    if info.flag_bits & 0x1:
        raise ArchiveError("member %r: encrypted; encrypted zip archives are not supported" % name)
    if info.compress_type not in _ZIP_METHODS:
        raise ArchiveError("member %r: compression method %d is not supported (only %s)" % (
            name, info.compress_type, ", ".join(sorted(_ZIP_METHODS.values()))))
    if kind == "symlink" and info.file_size > MAX_NAME:
        raise ArchiveError("member %r: symlink target of %d bytes, more than %d" % (name, info.file_size, MAX_NAME))
    check_mode(mode & 0o7777, name, limits)


def _unpack_zip(src, writer, strip_components, algorithm):
    limits = writer.limits
    digest = hashlib.new(algorithm)
    size = 0
    with open(src, "rb") as f:
        for chunk in iter(lambda: f.read(CHUNK), b""):
            digest.update(chunk)
            size += len(chunk)
    try:
        archive = zipfile.ZipFile(src)
    except _READ_ERRORS as exc:
        raise ArchiveError("not a readable zip archive: %s" % (exc or type(exc).__name__))
    with archive:
        infos = archive.infolist()
        # The central directory lists every member up front: check them all before writing any.
        if len(infos) > limits.max_members:
            raise ArchiveError("archive has %d members, more than max_members (%d)" % (len(infos), limits.max_members))
        declared = 0
        for info in infos:
            _check_zip_member(info, limits, strip_components)
            declared += info.file_size
        if declared > limits.max_bytes:
            raise ArchiveError("archive declares %d bytes unpacked, more than the max size (%d)" % (
                declared, limits.max_bytes))
        for info in infos:
            _zip_member(archive, info, writer, strip_components)
    return digest.hexdigest(), size


def _zip_member(archive, info, writer, strip_components):
    name = info.filename
    kind, mode = _zip_kind(info)
    parts = split_member_path(name, strip_components)
    if parts is None:
        return
    if kind == "dir":
        writer.add_dir(parts, name, member_mode((mode & 0o7777) or 0o755))
        return
    try:
        source = archive.open(info)
    except _READ_ERRORS as exc:
        raise ArchiveError("member %r: cannot be read: %s" % (name, exc or type(exc).__name__))
    with source:
        if kind == "symlink":
            try:
                body = source.read(MAX_NAME + 1)
            except _READ_ERRORS as exc:
                raise ArchiveError("member %r: corrupt or unreadable data: %s" % (name, exc or type(exc).__name__))
            if len(body) > MAX_NAME:
                raise ArchiveError("member %r: symlink target of more than %d bytes" % (name, MAX_NAME))
            writer.add_symlink(parts, name, body.decode("utf-8", "surrogateescape"))
        else:
            writer.add_file(parts, name, member_mode((mode & 0o7777) or 0o644), source, info.file_size)


def _unpack_file(src, writer, file_name, file_mode, algorithm):
    parts = None if "/" in file_name or "\\" in file_name else split_member_path(file_name)
    if parts is None or len(parts) != 1:
        raise ArchiveError("file_name %r must be a plain file name, without directories" % file_name)
    with open(src, "rb") as raw:
        reader = _HashingReader(raw, algorithm)
        writer.add_file(parts, file_name, file_mode, reader, os.fstat(raw.fileno()).st_size)
    return reader.hash.hexdigest(), reader.count


def unpack(src, root, fmt="auto", limits=None, strip_components=0, file_name=None, file_mode=0o755,
           algorithm="sha256"):
    """Unpack src into root (an existing, empty directory).

    Returns a dict: format, digest (hex of the source file), source_bytes, members, bytes.
    Raises ArchiveError for anything unsafe or unreadable; the caller removes root then (the
    symlinks written so far are already gone, so nothing under root leads outside it).
    """
    limits = limits or Limits()
    if fmt == "auto":
        fmt = detect_format(src)
    if fmt not in FORMATS:
        raise ArchiveError("unknown format %r; use one of auto, %s" % (fmt, ", ".join(FORMATS)))
    writer = _Writer(root, limits)
    try:
        if fmt == "tar":
            digest, source_bytes = _unpack_tar(src, writer, strip_components, algorithm)
        elif fmt == "zip":
            digest, source_bytes = _unpack_zip(src, writer, strip_components, algorithm)
        else:
            digest, source_bytes = _unpack_file(src, writer, file_name or os.path.basename(src), file_mode, algorithm)
        writer.finish()
    except BaseException:
        writer.discard_links()
        raise
    return {"format": fmt, "digest": digest, "source_bytes": source_bytes, "members": writer.members,
            "bytes": writer.bytes}
