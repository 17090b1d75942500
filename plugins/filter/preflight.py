# -*- coding: utf-8 -*-
# Copyright: seedops.deploy contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Preflight helpers: which of the ports a service needs are already taken, read from `ss` output."""

from __future__ import annotations

import re

from ansible.errors import AnsibleFilterError

_PROCESS = re.compile(r'\("(?P<name>[^"]*)",pid=(?P<pid>\d+)')
_UNIT = re.compile(r'\bcgroup:\S*/(?P<unit>[^/\s]+\.service)\b')
# A Docker container's cgroup: /docker/<id> (the cgroupfs driver) or .../docker-<id>.scope (the systemd driver).
_CONTAINER = re.compile(r'\bcgroup:\S*/docker[/-](?P<id>[0-9a-f]{64})(?:\.scope)?(?=\s|$)')


def _port_specs(wanted):
    """Normalise port specs: 8080, '8080', '53/udp' or {'port': 8080, 'proto': 'tcp', 'allow': ['app']}."""
    specs = []
    for item in wanted or []:
        spec = dict(item) if isinstance(item, dict) else {"port": item}
        port, proto = spec.get("port"), spec.get("proto", "tcp")
        if isinstance(port, str) and "/" in port:
            port, proto = port.split("/", 1)
        try:
            port = int(port)
        except (TypeError, ValueError):
            port = None
        if port is None or not 1 <= port <= 65535:
            raise AnsibleFilterError(f"busy_ports: {item!r} is not a port: give 1-65535, '53/udp' or {{'port': N, 'proto': 'tcp', 'allow': [NAMES]}}")
        if proto not in ("tcp", "udp"):
            raise AnsibleFilterError(f"busy_ports: protocol {proto!r} of {item!r} is not tcp or udp")
        allow = spec.get("allow") or []
        if isinstance(allow, str):
            allow = [allow]
        specs.append({"port": port, "proto": proto, "allow": [str(a) for a in allow]})
    return specs


def listeners(ss_output):
    """Parse `ss -Hlntupe` lines into [{'proto', 'address', 'port', 'processes': [(name, pid)], 'unit'}].

    Process names need root with CAP_SYS_PTRACE for other users' sockets (a container's root lacks it); the
    systemd unit comes from the socket's cgroup (`-e`), which is there either way."""
    if not isinstance(ss_output, str):
        raise AnsibleFilterError(f"listeners: expected the text of `ss -Hlntupe`, got {type(ss_output).__name__}")
    found = []
    for line in ss_output.splitlines():
        fields = line.split()
        if len(fields) < 5 or fields[0] not in ("tcp", "udp"):
            continue
        address, _sep, port = fields[4].rpartition(":")
        if not port.isdigit():
            continue
        processes = [(m["name"], int(m["pid"])) for m in _PROCESS.finditer(line)]
        unit = _UNIT.search(line)
        container = _CONTAINER.search(line)
        found.append({"proto": fields[0], "address": address, "port": int(port), "processes": processes,
                      "unit": unit["unit"] if unit else "", "container": container["id"] if container else ""})
    return found


def _containers(docker_ps):
    """`docker ps --no-trunc --format '{{.ID}} {{.Names}}'` -> {id: name}."""
    if not isinstance(docker_ps, str):
        raise AnsibleFilterError(f"busy_ports: containers must be the text of docker ps, got {type(docker_ps).__name__}")
    names = {}
    for line in docker_ps.splitlines():
        fields = line.split()
        if len(fields) == 2:
            names[fields[0]] = fields[1]
    return names


def _container_allowed(name, allow):
    """A container of an allowed service: its name, or <name>-<port> (app_service_runtime container, one per port)."""
    base, _sep, port = name.rpartition("-")
    return name in allow or (port.isdigit() and base in allow)


def busy_ports(ss_output, wanted, containers=""):
    """Messages for each wanted port that something listens on, unless its unit or every process is allowed, or it
    is a Docker container of an allowed service (`containers`: the text of `docker ps --no-trunc --format
    '{{.ID}} {{.Names}}'`; the container's processes are in the engine's cgroup, not in a unit's)."""
    problems = []
    taken = listeners(ss_output)
    names_of = _containers(containers)
    for spec in _port_specs(wanted):
        users = []
        for entry in taken:
            if entry["port"] != spec["port"] or entry["proto"] != spec["proto"]:
                continue
            names = [name for name, _pid in entry["processes"]]
            unit = entry["unit"]
            if unit and (unit in spec["allow"] or unit[:-len(".service")] in spec["allow"]):
                continue
            if names and all(name in spec["allow"] for name in names):
                continue
            container = names_of.get(entry["container"], "") if entry["container"] else ""
            if container and _container_allowed(container, spec["allow"]):
                continue
            described = ", ".join(f"{name} (pid {pid})" for name, pid in entry["processes"])
            if unit:
                described = f"{described} of {unit}" if described else f"a process of {unit}"
            elif entry["container"]:
                what = f"container {container}" if container else f"container {entry['container'][:12]}"
                described = f"{described} of {what}" if described else f"a process of {what}"
            described = described or "an unknown process"
            users.append(f"{described} on {entry['address']}")
        if users:
            allowed = f"; allowed owners: {', '.join(spec['allow'])}" if spec["allow"] else ""
            problems.append(f"port {spec['port']}/{spec['proto']} is in use by {'; '.join(sorted(set(users)))}{allowed}")
    return problems


class FilterModule:
    """Preflight filters."""

    def filters(self):
        return {"busy_ports": busy_ports, "listeners": listeners}
