"""Unit tests for the firewall filters: allow rules to nft statements, and SSH_CONNECTION parsing."""

import pytest
from ansible.errors import AnsibleFilterError

from ansible_collections.seedops.deploy.plugins.filter import firewall as plugin


def test_rules_without_sources_accept_from_anywhere():
    assert plugin.firewall_rules([{"port": 80}, 443, {"port": "53", "proto": "udp", "comment": "dns"}]) == [
        'tcp dport 80 accept comment "tcp/80"',
        'tcp dport 443 accept comment "tcp/443"',
        'udp dport 53 accept comment "dns"',
    ]


def test_sources_split_by_family_and_single_addresses_lose_their_prefix():
    rules = plugin.firewall_rules([{"port": "8000-8100", "sources": ["10.0.0.0/8", "192.0.2.7", "2001:db8::/32", "::1"]}])
    assert rules == [
        'ip saddr { 10.0.0.0/8, 192.0.2.7 } tcp dport 8000-8100 accept comment "tcp/8000-8100"',
        'ip6 saddr { 2001:db8::/32, ::1 } tcp dport 8000-8100 accept comment "tcp/8000-8100"',
    ]
    assert plugin.firewall_rules([{"port": 22, "sources": "10.1.2.3/16"}]) == [
        'ip saddr { 10.1.0.0/16 } tcp dport 22 accept comment "tcp/22"']


def test_empty_input_gives_no_rules():
    assert plugin.firewall_rules(None) == [] and plugin.firewall_rules([]) == []


@pytest.mark.parametrize("rules, message", [
    ([{"port": 70000}], "firewall_allow[0]: port 70000 is out of range"),
    ([{"port": 0}], "port 0 is out of range"),
    ([80, {"port": "http"}], "firewall_allow[1]: port 'http' is not a port"),
    ([{"port": None}], "port None is not a port"),
    ([{"port": True}], "port True is not a port"),
    ([{"port": "9000-8000"}], "runs backwards"),
    ([{"port": 80, "proto": "sctp"}], "proto 'sctp' is not tcp or udp"),
    ([{"port": 80, "sources": ["10.0.0.300"]}], "source '10.0.0.300' is not an IP address or network"),
    ([{"port": 80, "sources": 5}], "sources must be a list"),
    ([{"port": 80, "from": "x"}], "unknown key(s) from"),
    ([{"port": 80, "comment": 'say "hi"'}], "without quotes or backslashes"),
    ({"port": 80}, "expected a list of rules"),
])
def test_bad_rules_fail_naming_the_rule_and_what_to_give(rules, message):
    with pytest.raises(AnsibleFilterError) as err:
        plugin.firewall_rules(rules)
    assert message in str(err.value)


def test_ssh_connection_is_parsed_or_empty():
    assert plugin.ssh_connection("172.18.0.1 51234 172.18.0.6 22") == {
        "client": "172.18.0.1", "client_port": 51234, "server": "172.18.0.6", "port": 22}
    assert plugin.ssh_connection("") == {} and plugin.ssh_connection(None) == {} and plugin.ssh_connection("a b c") == {}


def test_a_list_of_ports_is_one_set_sorted_once_each():
    assert plugin.firewall_rules([{"port": [2222, "22", 22], "comment": "ssh"}]) == ['tcp dport { 22, 2222 } accept comment "ssh"']
    assert plugin.firewall_rules([{"port": ["22"]}]) == ['tcp dport 22 accept comment "tcp/22"']
    assert plugin.firewall_rules([{"port": [443, "8000-8100"], "sources": ["10.0.0.0/8"]}]) == [
        'ip saddr { 10.0.0.0/8 } tcp dport { 443, 8000-8100 } accept comment "tcp/443,8000-8100"']


@pytest.mark.parametrize("port, message", [
    ([], "port [] names no port"),
    ([22, 70000], "port 70000 is out of range"),
    ([22, [2222]], "port [2222] is not a port"),
    ([22, {"port": 1}], "is not a port"),
])
def test_bad_port_lists_fail_naming_the_port(port, message):
    with pytest.raises(AnsibleFilterError) as err:
        plugin.firewall_rules([{"port": port}], "firewall_ssh_port")
    assert message in str(err.value) and "firewall_ssh_port[0]" in str(err.value)
