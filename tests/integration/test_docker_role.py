"""The docker role on a lab host: the engine from Debian's packages with daemon.json from variables, a container
run from a locally imported image, the docker group and the Python SDK; reruns and check mode change nothing; bad input
fails clearly and changes nothing, a daemon.json dockerd refuses is rolled back. Then the engine, trusting the lab
registry's CA through the role, pulls the sample service's image by digest (seedops.deploy.image_pull) and runs it."""

import json

import pytest

from conftest import REGISTRY_USERS, copy_to, flat, push_image, refused, run_module, run_playbook, sh

pytestmark = pytest.mark.lab

HOST = "app3"
PLAYBOOK = "tests/integration/playbooks/docker.yml"
IMAGE = "seedops-docker-test:1.0.0"
CONTAINER = "seedops-docker-test"
DAEMON_JSON = {
    "live-restore": True,
    "log-driver": "json-file",
    "log-opts": {"compress": "true", "max-file": "2", "max-size": "5m"},
    "registry-mirrors": ["http://repo1.invalid:5000"],
    "storage-driver": "vfs",
}


def play(lab, *args):
    return run_playbook(PLAYBOOK, lab.inventory, "-e", f"target_hosts={HOST}", *args)


def daemon_json_state(lab):
    """The file's checksum, the engine's state and the files beside daemon.json."""
    return sh(lab, HOST, "sha256sum /etc/docker/daemon.json; systemctl is-active docker; ls /etc/docker")


@pytest.fixture(scope="module")
def docker(lab):
    result, recap = play(lab)
    assert result.returncode == 0 and recap[HOST]["failed"] == 0, result.stdout[-4000:]
    return result


def test_converged_host_reruns_and_checks_without_changes(lab, docker):
    result, recap = play(lab)
    assert result.returncode == 0 and recap[HOST]["changed"] == 0, result.stdout[-3000:]
    check, recap = play(lab, "--check", "--diff")
    assert check.returncode == 0 and recap[HOST]["changed"] == 0, check.stdout[-3000:]


def test_daemon_json_is_written_and_in_effect(lab, docker):
    assert json.loads(sh(lab, HOST, "cat /etc/docker/daemon.json")) == DAEMON_JSON
    assert sh(lab, HOST, "stat -c '%a %U' /etc/docker/daemon.json") == "644 root"
    info = json.loads(sh(lab, HOST, "sudo docker info --format '{{json .}}'"))
    assert info["Driver"] == "vfs"
    assert info["LoggingDriver"] == "json-file"
    assert info["LiveRestoreEnabled"] is True
    assert info["RegistryConfig"]["Mirrors"] == ["http://repo1.invalid:5000/"]
    assert sh(lab, HOST, "systemctl is-enabled docker; systemctl is-active docker") == "enabled\nactive"


def test_user_in_docker_group_and_python_sdk(lab, docker):
    assert "docker" in sh(lab, HOST, "id -nG debian").split()
    # A new SSH login has the group: the engine answers without sudo.
    assert sh(lab, HOST, "docker version --format '{{.Server.Version}}'").startswith("20.10")
    assert sh(lab, HOST, "python3 -c 'import docker; print(docker.from_env().version()[\"Version\"])'").startswith("20.10")


def test_runs_a_locally_imported_image(lab, docker, app_packages):
    # The sample service's package is a tree with one static binary: a rootfs good enough to import.
    copy_to(lab, HOST, app_packages["1.0.0"], "/var/tmp/seedops-docker-test.tar.gz", mode="0644")
    sh(lab, HOST, f"docker rm -f {CONTAINER} >/dev/null 2>&1; docker rmi -f {IMAGE} >/dev/null 2>&1; "
                  f"docker import /var/tmp/seedops-docker-test.tar.gz {IMAGE}")
    assert sh(lab, HOST, f"docker run --rm {IMAGE} /bin/seedops-app -version") == "1.0.0 linux/amd64"
    # A long-running container on the engine's bridge network, its port published on the host, with the log
    # options of daemon.json.
    try:
        sh(lab, HOST, f"docker run -d --name {CONTAINER} -p 127.0.0.1:18080:8080 {IMAGE} /bin/seedops-app")
        body = sh(lab, HOST, "for i in $(seq 50); do python3 -c \"import urllib.request as u; "
                             "print(u.urlopen('http://127.0.0.1:18080/version', timeout=2).read().decode())\" "
                             "2>/dev/null && exit 0; sleep 0.2; done; exit 1")
        assert json.loads(body)["version"] == "1.0.0"
        log_config = json.loads(sh(lab, HOST, f"docker inspect --format '{{{{json .HostConfig.LogConfig}}}}' {CONTAINER}"))
        assert log_config == {"Type": "json-file", "Config": {"compress": "true", "max-file": "2", "max-size": "5m"}}
    finally:
        lab.ssh(HOST, f"docker rm -f {CONTAINER}; docker rmi {IMAGE}; rm -f /var/tmp/seedops-docker-test.tar.gz")


def test_unsupported_os_family_fails_first(lab, docker):
    before = daemon_json_state(lab)
    refused(*play(lab, "-e", "docker_test_os_family=Gentoo", "-e", '{"docker_daemon_extra": {"debug": true}}'), HOST,
            "the docker role does not support the OS family Gentoo", "supported: Debian, RedHat")
    assert daemon_json_state(lab) == before


def test_bad_settings_fail_clearly_and_change_nothing(lab, docker):
    before = daemon_json_state(lab)
    refused(*play(lab, "-e", '{"docker_daemon_extra": ["live-restore"]}'), HOST, "docker_daemon_extra", "dict")
    refused(*play(lab, "-e", '{"docker_users": ["debian", "no-such-user"], "docker_log_max_size": "5 MB"}'), HOST,
            "docker_users: no such user on the host: no-such-user", "docker_log_max_size must be a number")
    assert daemon_json_state(lab) == before


def test_option_dockerd_refuses_is_rolled_back(lab, docker):
    before = daemon_json_state(lab)
    result, recap = play(lab, "-e", '{"docker_daemon_extra": {"live-restore": true, "no-such-option": 1}}')
    assert result.returncode != 0 and recap[HOST]["failed"] == 1
    out = flat(result)
    assert "dockerd refused the new /etc/docker/daemon.json" in out and "no-such-option" in out
    assert "The previous daemon.json was put back and the engine runs with it again" in out
    # Same file as before, engine up, no backup left behind.
    assert daemon_json_state(lab) == before
    assert json.loads(sh(lab, HOST, "sudo docker info --format '{{json .}}'"))["Driver"] == "vfs"


def test_the_engine_pulls_the_hosts_platform_by_digest_from_the_lab_registry_and_runs_it(
        lab, docker, registry, image_packages):
    pushed = push_image(lab, registry, image_packages)
    assert pushed["_status"] in ("CHANGED", "SUCCESS"), pushed
    amd64 = next(m for m in pushed["manifests"] if m["platform"] == "linux/amd64")
    with open(registry["ca"], encoding="utf-8") as f:
        trust = json.dumps({"docker_registry_ca_certs": {registry["host"]: f.read()}})
    result, recap = play(lab, "-e", trust)
    assert result.returncode == 0 and recap[HOST]["failed"] == 0, result.stdout[-3000:]
    ca_path = f"/etc/docker/certs.d/{registry['host']}/ca.crt"
    args = {"registry": registry["inside"], "repository": "seedops-app", "digest": pushed["digest"], "username": "ci",
            "password": REGISTRY_USERS[0]["password"], "ca_path": ca_path}
    sh(lab, HOST, f"sudo docker rmi -f {amd64['config']} >/dev/null 2>&1 || true")
    try:
        pulled = run_module(lab, HOST, "seedops.deploy.image_pull", args)
        assert pulled["_status"] == "CHANGED", pulled
        want = ("linux/amd64", amd64["digest"], amd64["config"])
        assert (pulled["platform"], pulled["manifest"], pulled["image_id"]) == want
        # What the engine holds: the config the manifest names, pulled by the manifest's digest; and it runs.
        inspect = json.loads(sh(lab, HOST, f"sudo docker image inspect {amd64['config']}"))[0]
        assert inspect["Id"] == amd64["config"] and inspect["Architecture"] == "amd64"
        assert f"{registry['host']}/seedops-app@{amd64['digest']}" in inspect["RepoDigests"]
        assert sh(lab, HOST, f"sudo docker run --rm {amd64['config']} -version") == "2.0.0 linux/amd64"
        again = run_module(lab, HOST, "seedops.deploy.image_pull", args)
        assert again["_status"] == "SUCCESS" and again["image_id"] == amd64["config"], again
        wrong = run_module(lab, HOST, "seedops.deploy.image_pull", dict(args, password="not-the-password"))
        assert wrong["_status"] == "FAILED!" and "refused user 'ci' (HTTP 401)" in wrong["msg"], wrong
        by_tag = run_module(lab, HOST, "seedops.deploy.image_pull", dict(args, digest="2.0.0"))
        assert by_tag["_status"] == "FAILED!" and "resolve the tag first" in by_tag["msg"], by_tag
    finally:
        lab.ssh(HOST, f"sudo docker rmi -f {amd64['config']}")
