# -*- coding: utf-8 -*-
# Copyright: seedops.deploy contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Checksums: parsing ``algorithm:hex`` and SHA256SUMS-style files, and hashing files
(private to seedops.deploy)."""

from __future__ import annotations

import hashlib
import os

CHUNK = 1024 * 1024
HEX_LENGTHS = {"sha256": 64, "sha384": 96, "sha512": 128}
ALGORITHM_BY_LENGTH = {v: k for k, v in HEX_LENGTHS.items()}


class DigestError(Exception):
    """A checksum that cannot be used; the message says what was expected."""


def _is_hex(text):
    return bool(text) and all(c in "0123456789abcdef" for c in text)


def parse_checksum(value):
    """'sha256:<hex>' (or sha384/sha512) -> (algorithm, lowercase hex)."""
    if not isinstance(value, str):
        raise DigestError("checksum must be a string such as sha256:<64 hex digits>, got %r" % (value,))
    algorithm, sep, hexdigest = value.strip().partition(":")
    algorithm = algorithm.lower()
    hexdigest = hexdigest.lower()
    if not sep:
        raise DigestError("checksum %r has no algorithm: write it as sha256:<hex> (or sha384:, sha512:)" % value)
    if algorithm not in HEX_LENGTHS:
        raise DigestError("checksum %r uses the unknown algorithm %r; use one of %s"
                          % (value, algorithm, ", ".join(sorted(HEX_LENGTHS))))
    if len(hexdigest) != HEX_LENGTHS[algorithm] or not _is_hex(hexdigest):
        raise DigestError("checksum %r is malformed: %s takes %d hex digits" % (value, algorithm, HEX_LENGTHS[algorithm]))
    return algorithm, hexdigest


def parse_sums(text, name):
    """The (algorithm, hex) for file `name` in a SHA256SUMS-style text.

    Lines are '<hex>  <name>' (text mode) or '<hex> *<name>' (binary mode); a name may carry a
    leading './' or a directory, and matches on its base name. The algorithm follows from the hex
    length. Raises DigestError when the name is missing, listed twice with different digests, or
    the line is malformed.
    """
    found = set()
    names = []
    for number, line in enumerate(text.splitlines(), 1):
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        parts = line.split(None, 1)
        if len(parts) != 2:
            continue
        hexdigest, entry = parts[0].lower(), parts[1].strip()
        if entry.startswith("*"):
            entry = entry[1:]
        entry_name = os.path.basename(entry)
        names.append(entry_name)
        if entry_name != name:
            continue
        if len(hexdigest) not in ALGORITHM_BY_LENGTH or not _is_hex(hexdigest):
            raise DigestError("checksum line %d for %s is malformed: %r" % (number, name, line))
        found.add((ALGORITHM_BY_LENGTH[len(hexdigest)], hexdigest))
    if not found:
        listed = ", ".join(names[:10]) + (" ..." if len(names) > 10 else "")
        raise DigestError("%s is not listed in the checksum file (it lists: %s)" % (name, listed or "nothing"))
    if len(found) > 1:
        raise DigestError("%s is listed with different checksums in the checksum file" % name)
    return found.pop()


def file_digest(path, algorithm="sha256"):
    h = hashlib.new(algorithm)
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(CHUNK), b""):
            h.update(chunk)
    return h.hexdigest()
