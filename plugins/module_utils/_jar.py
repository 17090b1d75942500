# -*- coding: utf-8 -*-
# Copyright: seedops.deploy contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""What a jar needs to run (private to seedops.deploy): the logic of seedops.deploy.jar_info.

The Java version comes from the class files themselves - the highest class file major version among the classes
every JVM loads (a multi-release jar's META-INF/versions/N/ classes are only loaded by Java N and later, so they do
not raise the floor) - and the main class from the manifest."""

from __future__ import annotations

import struct
import zipfile

MAGIC = 0xCAFEBABE
# Class file major version 45 is Java 1.1; from 49 (Java 5) on, Java N writes major N + 44.
FIRST_NUMBERED = 49


class JarError(Exception):
    """What was wrong with the jar, in words a user can act on."""


def java_for_major(major):
    """The Java major version that writes class files of `major`: 61 -> 17, 52 -> 8; 1 for anything before Java 5."""
    return major - 44 if major >= FIRST_NUMBERED else 1


def manifest_attributes(text):
    """A JAR manifest's main section as a dict (continuation lines start with one space)."""
    attrs, last = {}, None
    for line in text.replace("\r\n", "\n").replace("\r", "\n").split("\n"):
        if not line:
            if attrs:
                break  # the main section ends at the first blank line
            continue
        if line.startswith(" ") and last:
            attrs[last] += line[1:]
            continue
        name, sep, value = line.partition(":")
        if sep:
            last = name.strip()
            attrs[last] = value.strip()
    return attrs


def inspect(path):
    """{java, class_major, classes, main_class} of the jar at `path`; raises JarError."""
    try:
        jar = zipfile.ZipFile(path)
    except (OSError, zipfile.BadZipFile) as exc:
        raise JarError("%s is not a readable jar (a zip file): %s" % (path, exc)) from None
    with jar:
        highest, count = 0, 0
        for info in jar.infolist():
            if not info.filename.endswith(".class") or info.filename.startswith("META-INF/versions/"):
                continue
            with jar.open(info) as handle:
                head = handle.read(8)
            if len(head) < 8 or struct.unpack(">I", head[:4])[0] != MAGIC:
                raise JarError("%s in %s is not a class file (no 0xCAFEBABE): rebuild the jar" % (info.filename, path))
            highest = max(highest, struct.unpack(">H", head[6:8])[0])
            count += 1
        if not count:
            raise JarError("%s holds no class files outside META-INF/versions/: is it the application's jar?" % path)
        try:
            manifest = jar.read("META-INF/MANIFEST.MF").decode("utf-8", errors="replace")
        except KeyError:
            manifest = ""
    main_class = manifest_attributes(manifest).get("Main-Class") or None
    return {"java": java_for_major(highest), "class_major": highest, "classes": count, "main_class": main_class}
