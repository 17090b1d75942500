"""Unit tests for the lab tool's pure logic (no Docker needed)."""

import os
import socket
import stat
import subprocess

import pytest
import yaml

import lab


def test_plan_default_fleet_ports():
    hosts = lab.plan_hosts("seedops-lab", 3, 42200)
    assert [(h.name, h.group) for h in hosts] == [
        ("lb1", "lb"), ("repo1", "repo"), ("app1", "app"), ("app2", "app"), ("app3", "app")]
    ports = {h.name: h.ports for h in hosts}
    assert ports["lb1"] == {"22/tcp": 42201, "80/tcp": 42280}
    assert ports["repo1"] == {"22/tcp": 42202, "80/tcp": 42281, "5000/tcp": 42282}
    assert ports["app3"] == {"22/tcp": 42213}
    assert hosts[2].container == "seedops-lab-app1"
    every_port = [p for h in lab.plan_hosts("x", lab.MAX_APPS, 42200) for p in h.ports.values()]
    assert len(every_port) == len(set(every_port)), "no two hosts may share a published port"


def test_arm64_hosts_join_the_app_group_on_ports_of_their_own():
    hosts = lab.plan_hosts("seedops-lab", 3, 42200, arm64=1)
    assert [(h.name, h.group, h.arch) for h in hosts[2:]] == [
        ("app1", "app", "amd64"), ("app2", "app", "amd64"), ("app3", "app", "amd64"), ("arm1", "app", "arm64")]
    assert hosts[-1].ports == {"22/tcp": 42251} and hosts[-1].container == "seedops-lab-arm1"
    every_port = [p for h in lab.plan_hosts("x", lab.MAX_APPS, 42200, lab.MAX_ARM64) for p in h.ports.values()]
    assert len(every_port) == len(set(every_port)), "no two hosts may share a published port"
    with pytest.raises(lab.LabError, match="--arm64 must be between 0 and"):
        lab.plan_hosts("x", 3, 42200, arm64=lab.MAX_ARM64 + 1)
    # An arm64 host is another container than an amd64 one of the same name would be; amd64 hashes stay as they were.
    arm = hosts[-1]
    assert lab.spec_hash(arm, "sha256:a", "net") != lab.spec_hash(
        lab.HostSpec(arm.name, arm.group, arm.container, arm.ports), "sha256:a", "net")


def test_an_emulated_host_is_marked_in_the_inventory(tmp_path):
    hosts = lab.plan_hosts("seedops-lab", 1, 42200, arm64=1)
    inv = lab.render_inventory("seedops-lab", hosts, {h.name: "10.0.0.9" for h in hosts}, str(tmp_path))
    app = inv["all"]["children"]["app"]["hosts"]
    assert app["arm1"] == {"ansible_port": 42251, "seedops_lab_address": "10.0.0.9", "seedops_lab_emulated": True}
    assert "seedops_lab_emulated" not in app["app1"]


BAD_SIZES = [(0, 42200, "--apps"), (lab.MAX_APPS + 1, 42200, "--apps"), (3, 80, "--base-port"), (3, 65500, "--base-port")]


@pytest.mark.parametrize("apps,base,fragment", BAD_SIZES)
def test_plan_rejects_bad_sizes(apps, base, fragment):
    with pytest.raises(lab.LabError) as err:
        lab.plan_hosts("x", apps, base)
    assert fragment in str(err.value) and err.value.status == 2


@pytest.mark.parametrize("name", ["", "-lead", "has space", "a/b", "x" * 41, "dot.ted"])
def test_bad_lab_names(name):
    with pytest.raises(lab.LabError, match="lab name"):
        lab.validate_name(name)


def test_spec_hash_tracks_what_a_container_is_made_from():
    host = lab.plan_hosts("x", 1, 42200)[2]
    same = lab.spec_hash(host, "sha256:a", "net")
    assert same == lab.spec_hash(host, "sha256:a", "net")
    moved = lab.plan_hosts("x", 1, 43000)[2]
    assert lab.spec_hash(moved, "sha256:a", "net") != same
    assert lab.spec_hash(host, "sha256:b", "net") != same


ONE_LINE = """\
# a comment
deb [arch=amd64 signed-by=/usr/share/keyrings/x.gpg] http://mirror.example/debian bookworm main contrib
deb-src http://mirror.example/debian bookworm main
deb http://security.example/debian-security bookworm-security main
"""

DEB822 = """\
Types: deb
URIs: http://deb822.example/debian/
Suites: bookworm bookworm-updates
Components: main

Types: deb
URIs: http://deb822.example/debian-security
Suites: bookworm-security
Components: main
"""


def test_parse_one_line_sources():
    entries = lab.parse_apt_sources({"/etc/apt/sources.list": ONE_LINE})
    assert entries[0] == {"uri": "http://mirror.example/debian", "suites": ["bookworm"], "components": ["main", "contrib"]}
    assert len(entries) == 2  # deb-src skipped


def test_parse_deb822_sources_and_pick_the_archive():
    entries = lab.parse_apt_sources({"/etc/apt/sources.list.d/debian.sources": DEB822})
    assert entries[0]["uri"] == "http://deb822.example/debian"
    assert entries[0]["suites"] == ["bookworm", "bookworm-updates"]
    assert lab.pick_debian_mirror(entries) == "http://deb822.example/debian"


def test_disabled_and_source_only_stanzas_are_skipped():
    text = "Types: deb\nURIs: http://off.example/debian\nSuites: bookworm\nEnabled: no\n\n" \
           "Types: deb-src\nURIs: http://src.example/debian\nSuites: bookworm\n"
    assert lab.parse_apt_sources({"x.sources": text}) == []


def test_pick_mirror_falls_back_to_a_debian_archive_of_another_suite():
    text = "deb http://m.example/debian-security trixie-security main\ndeb http://m.example/debian trixie main\n"
    entries = lab.parse_apt_sources({"s.list": text})
    assert lab.pick_debian_mirror(entries) == "http://m.example/debian"


def test_pick_mirror_none_when_nothing_is_debian():
    entries = lab.parse_apt_sources({"s.list": "deb http://archive.ubuntu.example/ubuntu jammy main\n"})
    assert lab.pick_debian_mirror(entries) is None


def test_render_inventory_has_the_example_groups_and_real_ssh_settings(tmp_path):
    hosts = lab.plan_hosts("seedops-lab", 2, 42200)
    addresses = {h.name: f"10.0.0.{i}" for i, h in enumerate(hosts, 1)}
    inv = lab.render_inventory("seedops-lab", hosts, addresses, str(tmp_path))
    children = inv["all"]["children"]
    assert set(children) == {"app", "lb", "repo"}
    assert list(children["app"]["hosts"]) == ["app1", "app2"]
    assert children["lb"]["hosts"]["lb1"] == {"ansible_port": 42201, "seedops_lab_address": "10.0.0.1",
                                              "seedops_lab_http_port": 42280}
    common = inv["all"]["vars"]["ansible_ssh_common_args"]
    assert f"UserKnownHostsFile={tmp_path}/known_hosts" in common and "StrictHostKeyChecking=yes" in common
    assert yaml.safe_load(yaml.safe_dump(inv)) == inv


def test_known_hosts_and_ssh_config_name_each_port(tmp_path):
    hosts = lab.plan_hosts("l", 1, 42200)
    keys = {h.name: f"ssh-ed25519 KEY{h.name}" for h in hosts}
    known = lab.render_known_hosts(hosts, keys)
    assert "[127.0.0.1]:42211 ssh-ed25519 KEYapp1\n" in known
    assert known.count("\n") == 3
    config = lab.render_ssh_config(hosts, str(tmp_path))
    assert "Host app1\n  HostName 127.0.0.1\n  Port 42211\n" in config


def test_write_atomic_replaces_and_leaves_no_temp(tmp_path):
    target = tmp_path / "f"
    lab.write_atomic(str(target), "one", 0o600)
    lab.write_atomic(str(target), b"two", 0o640)
    assert target.read_bytes() == b"two"
    assert stat.S_IMODE(target.stat().st_mode) == 0o640
    assert os.listdir(tmp_path) == ["f"]


def test_write_atomic_failure_keeps_old_file_and_cleans_up(tmp_path):
    target = tmp_path / "f"
    target.write_text("old")
    with pytest.raises(TypeError):
        lab.write_atomic(str(target), 12345)  # not str or bytes: fails mid-write
    assert target.read_text() == "old"
    assert os.listdir(tmp_path) == ["f"]


def test_port_is_free_sees_a_listener():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        port = s.getsockname()[1]
        assert not lab.port_is_free(port)
    assert lab.port_is_free(port)


def test_keypair_is_openssh_ed25519(tmp_path):
    private, public = lab.generate_keypair()
    assert private.startswith(b"-----BEGIN OPENSSH PRIVATE KEY-----")
    assert public.startswith(b"ssh-ed25519 ")
    key = tmp_path / "k"
    key.write_bytes(private)
    key.chmod(0o600)
    derived = subprocess.run(["ssh-keygen", "-y", "-f", str(key)], capture_output=True, text=True, check=True)
    assert derived.stdout.split()[:2] == public.decode().split()[:2]


def test_context_digest_changes_with_content_and_base(tmp_path):
    (tmp_path / "Dockerfile").write_text("FROM x\n")
    first = lab.context_digest(str(tmp_path), "sha256:base")
    assert first == lab.context_digest(str(tmp_path), "sha256:base")
    assert first != lab.context_digest(str(tmp_path), "sha256:other")
    assert first != lab.context_digest(str(tmp_path), "sha256:base", {"PACKAGES": "systemd"})
    (tmp_path / "Dockerfile").write_text("FROM y\n")
    assert first != lab.context_digest(str(tmp_path), "sha256:base")


def test_unknown_command_is_one_clear_message(capsys):
    with pytest.raises(SystemExit) as exc:
        lab.main(["launch"])
    assert exc.value.code == 2
    err = capsys.readouterr().err
    assert "invalid choice: 'launch'" in err and "up" in err


def test_explicit_docker_host_that_does_not_answer(monkeypatch, capsys, tmp_path):
    monkeypatch.setenv("DOCKER_HOST", f"unix://{tmp_path}/no.sock")
    monkeypatch.setenv("SEEDOPS_LAB_STATE", str(tmp_path / "state"))
    assert lab.main(["--name", "unit-nodocker", "up"]) == 1
    err = capsys.readouterr().err
    assert "no Docker engine answers at DOCKER_HOST=unix://" in err
    assert not (tmp_path / "state").exists(), "a failed up must leave nothing behind"


def test_the_labs_ports_are_added_to_the_kernels_reserved_ports_without_losing_any(tmp_path):
    assert lab.merge_port_ranges("", 42200, 42299) == "42200-42299"
    assert lab.merge_port_ranges("8080,42250-42400\n", 42200, 42299) == "8080,42200-42400"
    assert lab.merge_port_ranges("43200-43299", 42200, 42299) == "42200-42299,43200-43299"
    assert lab.merge_port_ranges("42300", 42200, 42299) == "42200-42300"
    reserved = tmp_path / "ip_local_reserved_ports"
    reserved.write_text("8080\n")
    assert lab.reserve_ports(42200, 42299, str(reserved)) and reserved.read_text() == "8080,42200-42299"
    assert not lab.reserve_ports(42200, 42299, str(tmp_path / "missing" / "file"))


CID = "54f304d76a2a6ecbbbb5f9383eaeadbd7d20f50a3bf6a4accd2bbb55d2fc29ee"


@pytest.mark.parametrize("proc_cgroup, wanted", [
    # cgroup v1 with the cpu controller in a hierarchy of its own (this machine), systemd's scopes in others
    (f"9:name=systemd:/docker/{CID}/init.scope\n2:cpuacct:/docker/{CID}\n1:cpu:/docker/{CID}\n"
     f"0::/docker/{CID}/init.scope\n", "/sys/fs/cgroup/cpu/docker/cpu.shares"),
    # cgroup v1 with cpu and cpuacct mounted together
    (f"4:cpu,cpuacct:/docker/{CID}\n0::/\n", "/sys/fs/cgroup/cpu,cpuacct/docker/cpu.shares"),
    # cgroup v2 alone: the container's systemd moved itself into init.scope below the container's cgroup
    (f"0::/docker/{CID}/init.scope\n", "/sys/fs/cgroup/docker/cpu.weight"),
    # an engine with another cgroup parent
    (f"0::/ci/lab/{CID}\n", "/sys/fs/cgroup/ci/lab/cpu.weight"),
    # the container's cgroup right below the root, or none naming it: nothing to weigh
    (f"1:cpu:/{CID}\n", None),
    ("1:cpu:/\n0::/\n", None),
])
def test_the_cpu_weight_file_of_the_engines_container_group(proc_cgroup, wanted):
    assert lab.cgroup_cpu_file(proc_cgroup, CID) == wanted


def test_a_labs_port_span_covers_every_port_it_publishes_at_its_largest():
    low, high = lab.port_span("seedops-lab", 42200)
    assert (low, high) == (42201, 42282)
    largest = lab.plan_hosts("seedops-lab", lab.MAX_APPS, 42200, lab.MAX_ARM64)
    assert all(low <= p <= high for h in largest for p in h.ports.values())
