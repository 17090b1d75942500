# -*- coding: utf-8 -*-
# Copyright: seedops.deploy contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Filters of the build stage: the packages of one build, as its build record lists them, and the check that
every host of a deploy can run the build (the dev/prod consistency check of the deploy's plan)."""

from __future__ import annotations

import posixpath

from ansible.errors import AnsibleFilterError


def package_entries(results):
    """One entry per platform - platform, file, sha256, size - from the registered results of a
    seedops.deploy.package task looped over the platforms, sorted by platform."""
    if not isinstance(results, list):
        raise AnsibleFilterError("package_entries: expected the results list of a looped seedops.deploy.package task")
    entries = []
    for result in results:
        if not isinstance(result, dict) or not all(key in result for key in ("item", "dest", "sha256", "size")):
            raise AnsibleFilterError("package_entries: each result needs item (the platform), dest, sha256 and size; "
                                     "register a seedops.deploy.package task looped over the platforms")
        entries.append({"platform": result["item"], "file": posixpath.basename(result["dest"]),
                        "sha256": result["sha256"], "size": result["size"]})
    return sorted(entries, key=lambda entry: entry["platform"])


def _version(text):
    """'2.36' -> (2, 36); None when it is not dotted numbers."""
    try:
        return tuple(int(part) for part in str(text).split("."))
    except ValueError:
        return None


def _needs(needs):
    if needs is None:
        needs = {}
    if not isinstance(needs, dict):
        raise AnsibleFilterError("build_fit: needs must be a mapping (a build record's requires, with deploy_requires "
                                 "over it), got %s" % type(needs).__name__)
    unknown = sorted(set(needs) - {"platforms", "libc", "java", "env"})
    if unknown:
        raise AnsibleFilterError("build_fit: unknown needs %s; known: platforms, libc, java, env" % ", ".join(unknown))
    libc = needs.get("libc") or None
    if libc is not None and (not isinstance(libc, dict) or not libc.get("family") or _version(libc.get("min")) is None):
        raise AnsibleFilterError("build_fit: needs.libc must be {family: glibc, min: '2.36'}, got %r" % (libc,))
    java = needs.get("java") or None
    if java is not None and not str(java).isdigit():
        raise AnsibleFilterError("build_fit: needs.java must be a JDK major version such as 17, got %r" % (java,))
    env = needs.get("env") or []
    if not isinstance(env, list) or not all(isinstance(key, str) and key for key in env):
        raise AnsibleFilterError("build_fit: needs.env must be a list of environment variable names, got %r" % (env,))
    platforms = needs.get("platforms") or []
    if not isinstance(platforms, list):
        raise AnsibleFilterError("build_fit: needs.platforms must be a list such as ['linux/amd64'], got %r"
                                 % (platforms,))
    return {"platforms": list(platforms), "libc": libc, "java": int(java) if java else None, "env": list(env)}


def build_fit(hosts, needs):
    """Whether each host can run the build: its platform has a package, its C library is the family and at least
    the version a cgo build needs, its Java is at least the major version a jar needs, and its service environment
    has every key the service expects.

    `hosts` lists one mapping per host - host, platform ('linux/amd64'), libc ({family, version}), java (major
    version, or None when there is none), env_keys (the names in the service's environment file, or None when it
    was not read) - and `needs` what the build needs (see _needs). Returns {needs, rows, problems, table}: one row
    per host (host, platform, libc, java, env, ok, problems), every problem as '<host>: <what>', and the rows as a
    text table."""
    needs = _needs(needs)
    if not isinstance(hosts, list) or not all(isinstance(h, dict) and h.get("host") for h in hosts):
        raise AnsibleFilterError("build_fit: hosts must be a list of mappings with a 'host' key")
    rows, problems = [], []
    for entry in hosts:
        found = []
        platform = entry.get("platform") or ""
        if needs["platforms"] and platform not in needs["platforms"]:
            found.append("no build for %s (built: %s)" % (platform or "an unknown platform", ", ".join(needs["platforms"])))
        libc = entry.get("libc") or {}
        libc_text = ("%s %s" % (libc.get("family"), libc.get("version") or "")).strip() if libc.get("family") else "-"
        if needs["libc"]:
            want = needs["libc"]
            have = _version(libc.get("version"))
            if libc.get("family") != want["family"] or have is None or have < _version(want["min"]):
                has = libc_text if libc_text != "-" else "no known C library"
                found.append("needs %s %s or later, has %s" % (want["family"], want["min"], has))
        java = entry.get("java")
        if needs["java"] and (java is None or int(java) < needs["java"]):
            found.append("needs Java %d or later, has %s" % (needs["java"], "Java %s" % java if java else "no java"))
        keys = entry.get("env_keys")
        missing = [key for key in needs["env"] if keys is None or key not in keys]
        if missing:
            found.append("its service environment lacks %s" % ", ".join(missing) if keys is not None else
                         "its service environment file could not be read (needs %s)" % ", ".join(missing))
        env_text = ("%d of %d keys" % (len(needs["env"]) - len(missing), len(needs["env"]))) if needs["env"] else "-"
        rows.append({"host": entry["host"], "platform": platform or "-", "libc": libc_text,
                     "java": str(java) if java else "-", "env": env_text, "ok": not found, "problems": found})
        problems.extend("%s: %s" % (entry["host"], problem) for problem in found)
    return {"needs": needs, "rows": rows, "problems": problems, "table": _fit_table(needs, rows)}


def _fit_table(needs, rows):
    wanted = "needs: %s; libc %s; java %s; env %s" % (
        ", ".join(needs["platforms"]) or "any platform",
        "%s >= %s" % (needs["libc"]["family"], needs["libc"]["min"]) if needs["libc"] else "any",
        ">= %d" % needs["java"] if needs["java"] else "-",
        ", ".join(needs["env"]) or "-")
    header = ("host", "platform", "libc", "java", "env", "fit")
    lines = [header] + [(r["host"], r["platform"], r["libc"], r["java"], r["env"],
                         "ok" if r["ok"] else "NO: " + "; ".join(r["problems"])) for r in rows]
    widths = [max(len(line[i]) for line in lines) for i in range(len(header) - 1)]
    text = [wanted]
    for line in lines:
        text.append("  ".join(cell.ljust(width) for cell, width in zip(line, widths)) + "  " + line[-1])
    return "\n".join(text)


class FilterModule:
    """seedops.deploy build filters."""

    def filters(self):
        return {"package_entries": package_entries, "build_fit": build_fit}
