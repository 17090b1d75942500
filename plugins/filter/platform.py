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


def _go_name(filter_name, table, value, expected, noun):
    """The Go name of `value` in `table`, or a filter error naming what is known."""
    if not isinstance(value, str) or not value:
        raise AnsibleFilterError(f"{filter_name}: expected {expected}, got {value!r}")
    try:
        return table[value.lower()]
    except KeyError:
        raise AnsibleFilterError(
            f"{filter_name}: no Go {noun} is known for {value!r}; known: {', '.join(sorted(table))}"
        ) from None


def goarch(architecture):
    """GOARCH for a machine architecture as uname -m (and ansible_facts['architecture']) name it."""
    return _go_name("goarch", _GOARCH, architecture, "an architecture name such as 'x86_64'", "architecture")


def goos(system):
    """GOOS for an operating system as ansible_facts['system'] names it (Linux -> linux)."""
    return _go_name("goos", _GOOS, system, "a system name such as 'Linux'", "operating system")


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
