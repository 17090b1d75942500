"""Unit tests for the preflight filters: listeners and busy_ports read from `ss -Hlntup` output."""

import pytest
from ansible.errors import AnsibleFilterError

from ansible_collections.seedops.deploy.plugins.filter import preflight as plugin

SS = """\
udp   UNCONN 0      0          127.0.0.1:323        0.0.0.0:*    users:(("chronyd",pid=410,fd=5))
tcp   LISTEN 0      4096         0.0.0.0:22         0.0.0.0:*    users:(("sshd",pid=120,fd=3))
tcp   LISTEN 0      4096            [::]:22            [::]:*    users:(("sshd",pid=120,fd=4))
tcp   LISTEN 0      4096               *:8080              *:*    users:(("seedops-app",pid=900,fd=3))
tcp   LISTEN 0      511          0.0.0.0:80         0.0.0.0:*    users:(("nginx",pid=77,fd=6),("nginx",pid=78,fd=6))
tcp   LISTEN 0      10        127.0.0.1%lo:9000      0.0.0.0:*
tcp LISTEN 0      4096            *:8081        *:* uid:999 ino:2644780 sk:f cgroup:/docker/272f/system.slice/seedops-app.service v6only:0 <->
tcp LISTEN 0      4096            *:8082        *:* uid:998 ino:2644781 sk:f cgroup:/system.slice/other.service v6only:0 <->
"""


def test_listeners_reads_protocol_address_port_and_processes():
    found = plugin.listeners(SS)
    assert len(found) == 8
    assert found[0] == {"proto": "udp", "address": "127.0.0.1", "port": 323, "processes": [("chronyd", 410)], "unit": "",
                        "container": ""}
    assert found[2]["address"] == "[::]" and found[2]["port"] == 22
    assert found[4]["processes"] == [("nginx", 77), ("nginx", 78)]
    assert found[5] == {"proto": "tcp", "address": "127.0.0.1%lo", "port": 9000, "processes": [], "unit": "",
                        "container": ""}
    assert found[6]["unit"] == "seedops-app.service" and found[6]["processes"] == []


def test_free_ports_give_no_messages():
    assert not plugin.busy_ports(SS, [8443, "53/udp", {"port": 323}])


def test_a_taken_port_names_its_owner_once_per_address():
    assert plugin.busy_ports(SS, [22]) == ["port 22/tcp is in use by sshd (pid 120) on 0.0.0.0; sshd (pid 120) on [::]"]
    assert plugin.busy_ports(SS, ["323/udp"]) == ["port 323/udp is in use by chronyd (pid 410) on 127.0.0.1"]


def test_an_allowed_owner_leaves_the_port_free_and_others_still_count():
    assert not plugin.busy_ports(SS, [{"port": 8080, "allow": ["seedops-app"]}])
    assert plugin.busy_ports(SS, [{"port": 80, "allow": "haproxy"}]) == [
        "port 80/tcp is in use by nginx (pid 77), nginx (pid 78) on 0.0.0.0; allowed owners: haproxy"]
    assert plugin.busy_ports(SS, [9000]) == ["port 9000/tcp is in use by an unknown process on 127.0.0.1%lo"]


def test_the_owning_systemd_unit_counts_when_process_names_are_hidden():
    assert not plugin.busy_ports(SS, [{"port": 8081, "allow": ["seedops-app"]}, {"port": 8082, "allow": ["other.service"]}])
    assert plugin.busy_ports(SS, [{"port": 8082, "allow": ["seedops-app"]}]) == [
        "port 8082/tcp is in use by a process of other.service on *; allowed owners: seedops-app"]


A, B, C = ("a" * 64, "b" * 64, "c" * 64)
# Containers on the host's network (app_service_runtime: container): the engine's cgroups, /docker/<id> with the
# cgroupfs driver, docker-<id>.scope with systemd's; a unit of a host that is itself a container is not one.
SS_CONTAINERS = f"""\
tcp LISTEN 0      4096            *:8080        *:* uid:999 ino:1 sk:1 cgroup:/docker/{A} v6only:0 <->
tcp LISTEN 0      4096            *:8081        *:* uid:999 ino:2 sk:2 cgroup:/system.slice/docker-{B}.scope v6only:0 <->
tcp LISTEN 0      4096            *:9090        *:* uid:999 ino:3 sk:3 cgroup:/docker/{C} v6only:0 <->
tcp LISTEN 0      4096            *:7070        *:* uid:999 ino:4 sk:4 cgroup:/docker/{A}/system.slice/x.service <->
"""
DOCKER_PS = f"{A} seedops-app\n{B} seedops-app-8081\n{C} metrics\n"


def test_a_container_of_an_allowed_service_holds_its_own_port():
    found = plugin.listeners(SS_CONTAINERS)
    assert [f["container"] for f in found] == [A, B, C, ""] and found[3]["unit"] == "x.service"
    allow = ["seedops-app"]
    assert not plugin.busy_ports(SS_CONTAINERS, [{"port": 8080, "allow": allow}, {"port": 8081, "allow": allow}],
                                 DOCKER_PS)
    assert plugin.busy_ports(SS_CONTAINERS, [{"port": 9090, "allow": allow}], DOCKER_PS) == [
        "port 9090/tcp is in use by a process of container metrics on *; allowed owners: seedops-app"]
    # Without the engine's list the container cannot be named: the port is taken by someone unknown.
    assert plugin.busy_ports(SS_CONTAINERS, [{"port": 8080, "allow": allow}]) == [
        f"port 8080/tcp is in use by a process of container {A[:12]} on *; allowed owners: seedops-app"]
    with pytest.raises(AnsibleFilterError, match="containers must be the text of docker ps"):
        plugin.busy_ports(SS_CONTAINERS, [8080], ["seedops-app"])


@pytest.mark.parametrize("bad", [0, 70000, "http", {"port": None}, {"port": 80, "proto": "sctp"}])
def test_bad_port_specs_fail_naming_the_spec(bad):
    with pytest.raises(AnsibleFilterError) as err:
        plugin.busy_ports(SS, [bad])
    assert repr(bad) in str(err.value) or "sctp" in str(err.value)


def test_listeners_rejects_what_is_not_text():
    with pytest.raises(AnsibleFilterError):
        plugin.listeners(None)
