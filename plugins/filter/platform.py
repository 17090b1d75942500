# -*- coding: utf-8 -*-
# Copyright: seedops.deploy contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Platform helpers: map Ansible's facts to Go-style platform names (GOOS/GOARCH)."""

from __future__ import annotations

from ansible.errors import AnsibleFilterError

# uname -m (ansible_facts['architecture']) -> GOARCH
_GOARCH = {
    "x86_64": "amd64",
    "amd64": "amd64",
    "aarch64": "arm64",
    "arm64": "arm64",
    "armv7l": "arm",
    "armv6l": "arm",
    "armhf": "arm",
    "i386": "386",
    "i686": "386",
    "ppc64le": "ppc64le",
    "s390x": "s390x",
    "riscv64": "riscv64",
}

# ansible_facts['system'] -> GOOS
_GOOS = {"linux": "linux", "freebsd": "freebsd", "openbsd": "openbsd", "netbsd": "netbsd", "darwin": "darwin"}


def goarch(architecture):
    """GOARCH for a machine architecture as uname -m (and ansible_facts['architecture']) name it."""
    if not isinstance(architecture, str) or not architecture:
        raise AnsibleFilterError(f"goarch: expected an architecture name such as 'x86_64', got {architecture!r}")
    try:
        return _GOARCH[architecture.lower()]
    except KeyError:
        known = ", ".join(sorted(_GOARCH))
        raise AnsibleFilterError(
            f"goarch: no Go architecture is known for {architecture!r}; known: {known}"
        ) from None


def goos(system):
    """GOOS for an operating system as ansible_facts['system'] names it (Linux -> linux)."""
    if not isinstance(system, str) or not system:
        raise AnsibleFilterError(f"goos: expected a system name such as 'Linux', got {system!r}")
    try:
        return _GOOS[system.lower()]
    except KeyError:
        raise AnsibleFilterError(
            f"goos: no Go operating system is known for {system!r}; known: {', '.join(sorted(_GOOS))}"
        ) from None


def platform(facts):
    """'GOOS/GOARCH' (for example 'linux/arm64') from a host's ansible_facts."""
    if not isinstance(facts, dict):
        raise AnsibleFilterError(f"platform: expected a host's ansible_facts (a dict), got {type(facts).__name__}")
    missing = [key for key in ("system", "architecture") if not facts.get(key)]
    if missing:
        raise AnsibleFilterError(
            f"platform: ansible_facts lacks {' and '.join(missing)}; gather facts first "
            "(gather_facts: true, or ansible.builtin.setup with gather_subset: min)"
        )
    return f"{goos(facts['system'])}/{goarch(facts['architecture'])}"


class FilterModule:
    """seedops.deploy platform filters."""

    def filters(self):
        return {"goarch": goarch, "goos": goos, "platform": platform}
