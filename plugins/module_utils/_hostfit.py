# -*- coding: utf-8 -*-
# Copyright: seedops.deploy contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""What a host has to run a build (private to seedops.deploy): its C library, its Java major version and the names
in the service's environment file. seedops.deploy.release_info reports them; the deploy's plan compares them with
what the build needs (the build_fit filter)."""

from __future__ import annotations

import glob
import os
import re

# systemd's EnvironmentFile=: KEY=value lines; blank lines and lines starting with # or ; are comments.
ENV_LINE = re.compile(r"^\s*(?:export\s+)?([A-Za-z_][A-Za-z0-9_]*)\s*=")
# java -version (on stderr): openjdk version "17.0.9" 2023-10-17 / java version "1.8.0_392"
JAVA_VERSION = re.compile(r'version "(\d+)(?:\.(\d+))?[^"]*"')


def libc(confstr=os.confstr, musl_loaders=None):
    """{family, version} of the host's C library: glibc with its version, musl (version unknown), or None."""
    try:
        text = confstr("CS_GNU_LIBC_VERSION")
    except (ValueError, OSError):
        text = None
    if text and len(text.split()) == 2:
        family, version = text.split()
        return {"family": family, "version": version}
    loaders = glob.glob("/lib/ld-musl-*.so.1") if musl_loaders is None else musl_loaders
    return {"family": "musl", "version": None} if loaders else None


def java_major(output):
    """The major version in the output of `java -version`: 17 for '17.0.9', 8 for '1.8.0_392'; None if none."""
    match = JAVA_VERSION.search(output or "")
    if not match:
        return None
    major = int(match.group(1))
    return int(match.group(2)) if major == 1 and match.group(2) else major


def read_java(run_command, java):
    """The major version of the `java` command (its path, or None when it is not installed)."""
    if not java:
        return None
    rc, out, err = run_command([java, "-version"])
    return java_major((err or "") + (out or "")) if rc == 0 else None


def env_keys(path):
    """The sorted names set in an environment file - never the values; None when it cannot be read."""
    try:
        with open(path, encoding="utf-8", errors="replace") as handle:
            lines = handle.read().splitlines()
    except OSError:
        return None
    keys = set()
    for line in lines:
        stripped = line.strip()
        if not stripped or stripped[0] in "#;":
            continue
        match = ENV_LINE.match(line)
        if match:
            keys.add(match.group(1))
    return sorted(keys)
