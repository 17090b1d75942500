# -*- coding: utf-8 -*-
# Copyright: seedops.deploy contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Firewall helpers: allow-list rules checked and turned into nftables statements."""

from __future__ import annotations

import ipaddress
import re

from ansible.errors import AnsibleFilterError

_COMMENT = re.compile(r'^[^"\\\n]{0,100}$')


def _one_port(value, where):
    """'22', 22 or '8000-8100' -> the nft form; anything else fails naming the rule."""
    text = str(value).strip() if value is not None and not isinstance(value, (bool, list, tuple, dict)) else ""
    parts = text.split("-", 1)
    if not all(p.isdigit() for p in parts):
        raise AnsibleFilterError(f"{where}: port {value!r} is not a port: give 1-65535 or a range like '8000-8100'")
    numbers = [int(p) for p in parts]
    if not all(1 <= n <= 65535 for n in numbers):
        raise AnsibleFilterError(f"{where}: port {value!r} is out of range: ports are 1-65535")
    if len(numbers) == 2 and numbers[0] > numbers[1]:
        raise AnsibleFilterError(f"{where}: port range {value!r} runs backwards: give the lower port first")
    return numbers


def _port(value, where):
    """A port, a range or a list of them -> the nft form: '22', '8000-8100' or '{ 22, 2222 }' (sorted, once each)."""
    if not isinstance(value, (list, tuple)):
        return "-".join(str(n) for n in _one_port(value, where))
    if not value:
        raise AnsibleFilterError(f"{where}: port [] names no port: give 1-65535, a range like '8000-8100', or a list of them")
    ports = sorted({tuple(_one_port(item, where)) for item in value})
    texts = ["-".join(str(n) for n in numbers) for numbers in ports]
    return texts[0] if len(texts) == 1 else "{ " + ", ".join(texts) + " }"


def _sources(value, where):
    if value in (None, "", []):
        return [], []
    if isinstance(value, str):
        value = [value]
    if not isinstance(value, (list, tuple)):
        raise AnsibleFilterError(f"{where}: sources must be a list of addresses or networks, got {value!r}")
    v4, v6 = [], []
    for item in value:
        try:
            network = ipaddress.ip_network(str(item).strip(), strict=False)
        except ValueError:
            raise AnsibleFilterError(
                f"{where}: source {item!r} is not an IP address or network (for example 10.0.0.0/8 or 2001:db8::/32)") from None
        text = str(network.network_address) if network.prefixlen == network.max_prefixlen else str(network)
        (v4 if network.version == 4 else v6).append(text)
    return sorted(set(v4)), sorted(set(v6))


def firewall_rules(rules, name="firewall_allow"):
    """Turn allow rules ({port, proto, sources, comment}) into nft statements for an inet input chain."""
    if rules in (None, ""):
        return []
    if not isinstance(rules, (list, tuple)):
        raise AnsibleFilterError(f"{name}: expected a list of rules, got {type(rules).__name__}")
    statements = []
    for index, rule in enumerate(rules):
        where = f"{name}[{index}]"
        if not isinstance(rule, dict):
            rule = {"port": rule}
        unknown = sorted(set(rule) - {"port", "proto", "sources", "comment"})
        if unknown:
            raise AnsibleFilterError(f"{where}: unknown key(s) {', '.join(unknown)}; a rule has port, proto, sources and comment")
        port = _port(rule.get("port"), where)
        proto = rule.get("proto") or "tcp"
        if proto not in ("tcp", "udp"):
            raise AnsibleFilterError(f"{where}: proto {proto!r} is not tcp or udp")
        v4, v6 = _sources(rule.get("sources"), where)
        comment = str(rule.get("comment") or f"{proto}/{port.strip('{ }').replace(', ', ',')}")
        if not _COMMENT.match(comment):
            raise AnsibleFilterError(f"{where}: comment {comment!r} must be at most 100 characters without quotes or backslashes")
        tail = f'{proto} dport {port} accept comment "{comment}"'
        if not v4 and not v6:
            statements.append(tail)
        for family, networks in (("ip", v4), ("ip6", v6)):
            if networks:
                statements.append(f"{family} saddr {{ {', '.join(networks)} }} {tail}")
    return statements


def ssh_connection(value):
    """Parse SSH_CONNECTION ('client_ip client_port server_ip server_port') into a dict; {} when absent."""
    fields = str(value or "").split()
    if len(fields) != 4 or not fields[1].isdigit() or not fields[3].isdigit():
        return {}
    return {"client": fields[0], "client_port": int(fields[1]), "server": fields[2], "port": int(fields[3])}


class FilterModule:
    """Firewall filters."""

    def filters(self):
        return {"firewall_rules": firewall_rules, "ssh_connection": ssh_connection}
