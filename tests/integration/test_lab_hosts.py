"""The default lab: real Debian servers with systemd and sshd, reached over SSH on 127.0.0.1."""

import docker
import pytest

from conftest import lab_cmd

pytestmark = pytest.mark.lab


def test_every_host_answers_ansible_over_ssh(lab, ansible_adhoc):
    hosts = ansible_adhoc(inventory=lab.inventory, host_pattern="all", become=True)
    results = hosts.all.ping()
    assert sorted(results.contacted) == sorted(h["name"] for h in lab.hosts)
    for name, result in results.contacted.items():
        assert result["ping"] == "pong", name


def test_systemd_is_pid1_and_running_everywhere(lab, ansible_adhoc):
    hosts = ansible_adhoc(inventory=lab.inventory, host_pattern="all")
    pid1 = hosts.all.command("cat /proc/1/comm")
    state = hosts.all.command("systemctl is-system-running")
    for h in lab.hosts:
        assert pid1[h["name"]]["stdout"] == "systemd", h["name"]
        assert state[h["name"]]["stdout"] == "running", (h["name"], state[h["name"]])


def test_hosts_are_bare_debian_with_python_and_sudo(lab):
    result = lab.ssh("app1", ". /etc/os-release && echo $VERSION_CODENAME; python3 -c 'import sys; print(sys.version_info[0])';"
                             " sudo -n id -u; dpkg-query -W -f='${Status}\\n' nginx haproxy 2>&1 | grep -c 'install ok' || true")
    assert result.returncode == 0, result.stderr
    codename, python_major, uid, installed = result.stdout.split()
    assert (codename, python_major, uid) == ("bookworm", "3", "0")
    assert installed == "0", "a lab host must start bare: no nginx, no haproxy"


def test_each_host_has_its_own_ssh_host_key(lab):
    keys = set()
    for h in lab.hosts:
        r = lab.ssh(h["name"], "cat /etc/ssh/ssh_host_ed25519_key.pub")
        assert r.returncode == 0, r.stderr
        keys.add(r.stdout.split()[1])
    assert len(keys) == len(lab.hosts)


def test_ports_are_published_on_loopback_only(lab):
    client = docker.from_env()
    for h in lab.hosts:
        container = client.containers.get(h["container"])
        bindings = container.attrs["HostConfig"]["PortBindings"]
        assert bindings, h["name"]
        for inner, binds in bindings.items():
            for b in binds:
                assert b["HostIp"] == "127.0.0.1", (h["name"], inner, b)
        expected = ({"22/tcp"} | ({"80/tcp"} if h["group"] in ("lb", "repo") else set())
                    | ({"5000/tcp"} if h["group"] == "repo" else set()))
        assert set(bindings) == expected


def test_up_on_a_running_lab_changes_nothing(lab):
    client = docker.from_env()
    before = {h["name"]: client.containers.get(h["container"]).id for h in lab.hosts}
    result = lab_cmd("--name", lab.name, "up", check=True)
    for word in ("created", "recreating", "started", "removed", "building"):
        assert word not in result.stdout, result.stdout
    assert "is up" in result.stdout
    after = {h["name"]: client.containers.get(h["container"]).id for h in lab.hosts}
    assert before == after


def test_status_lists_hosts_addresses_and_ports(lab):
    import json

    result = lab_cmd("--name", lab.name, "status", "--json", check=True)
    doc = json.loads(result.stdout)
    rows = {r["host"]: r for r in doc["hosts"]}
    assert set(rows) == {h["name"] for h in lab.hosts}
    for h in lab.hosts:
        assert rows[h["name"]]["state"] == "running"
        assert rows[h["name"]]["address"] == h["address"]
        assert rows[h["name"]]["ports"] == h["ports"]
    text = lab_cmd("--name", lab.name, "status", check=True).stdout
    assert "lb1" in text and "80->" in text
