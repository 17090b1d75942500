"""Lab commands on a second, small lab of its own: bad input, reshaping, leftovers, down."""

import json
import os
import socket

import docker
import pytest

from conftest import LABTEST_BASE_PORT, LABTEST_MOVED_BASE_PORT, lab_cmd

pytestmark = pytest.mark.lab

NAME = "seedops-labtest"
BASE = LABTEST_BASE_PORT


@pytest.fixture(scope="module")
def state_root(tmp_path_factory):
    return str(tmp_path_factory.mktemp("labstate"))


@pytest.fixture(scope="module")
def env(state_root):
    return {"SEEDOPS_LAB_STATE": state_root}


@pytest.fixture(scope="module", autouse=True)
def cleanup(env, docker_engine):  # pylint: disable=unused-argument
    yield
    lab_cmd("--name", NAME, "down", env=env)


def ours(client):
    return sorted(c.name for c in client.containers.list(all=True, filters={"label": f"io.seedops.lab={NAME}"}))


def has_network(client):
    return any(n.name == NAME for n in client.networks.list())


def test_a_taken_port_is_one_clear_message_and_nothing_is_created(env, state_root):
    client = docker.from_env()
    with socket.socket() as blocker:
        blocker.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        blocker.bind(("127.0.0.1", BASE + 11))  # app1's SSH port
        blocker.listen()
        result = lab_cmd("--name", NAME, "up", "--apps", "1", "--base-port", str(BASE), env=env)
    assert result.returncode == 2
    assert f"127.0.0.1:{BASE + 11} (for app1 22/tcp) is in use by another program" in result.stderr
    assert "--base-port" in result.stderr and "Nothing was changed" in result.stderr
    assert result.stderr.count("error:") == 1
    assert ours(client) == [] and not has_network(client)
    assert os.listdir(state_root) == []


def test_up_reshape_and_leftovers(env):
    client = docker.from_env()
    first = lab_cmd("--name", NAME, "up", "--apps", "1", "--base-port", str(BASE), env=env, check=True)
    assert "created app1" in first.stdout
    assert ours(client) == [f"{NAME}-app1", f"{NAME}-lb1", f"{NAME}-repo1"]

    grown = lab_cmd("--name", NAME, "up", "--apps", "2", "--base-port", str(BASE), env=env, check=True)
    assert "created app2" in grown.stdout and "created app1" not in grown.stdout
    inventory = open(os.path.join(env["SEEDOPS_LAB_STATE"], NAME, "inventory.yml")).read()
    assert "app2:" in inventory and f"ansible_port: {BASE + 12}" in inventory

    shrunk = lab_cmd("--name", NAME, "up", "--apps", "1", "--base-port", str(BASE), env=env, check=True)
    assert f"removed {NAME}-app2" in shrunk.stdout
    assert ours(client) == [f"{NAME}-app1", f"{NAME}-lb1", f"{NAME}-repo1"]

    # A stopped host (left by an earlier run or a crash) is started again, not recreated.
    app1 = client.containers.get(f"{NAME}-app1")
    app1.stop(timeout=5)
    again = lab_cmd("--name", NAME, "up", "--apps", "1", "--base-port", str(BASE), env=env, check=True)
    assert "started app1" in again.stdout
    assert client.containers.get(f"{NAME}-app1").id == app1.id

    # Moving the ports recreates the hosts on the new ports.
    moved = lab_cmd("--name", NAME, "up", "--apps", "1", "--base-port", str(LABTEST_MOVED_BASE_PORT), env=env, check=True)
    assert moved.stdout.count("recreating") == 3
    status = json.loads(lab_cmd("--name", NAME, "status", "--json", env=env, check=True).stdout)
    assert {r["host"]: r["ports"]["22/tcp"] for r in status["hosts"]} == {
        "lb1": LABTEST_MOVED_BASE_PORT + 1, "repo1": LABTEST_MOVED_BASE_PORT + 2, "app1": LABTEST_MOVED_BASE_PORT + 11}


def test_a_foreign_container_with_a_lab_name_is_left_alone(env):
    client = docker.from_env()
    lab_cmd("--name", NAME, "down", env=env, check=True)
    image = client.images.get("seedops-lab/host:latest")
    foreign = client.containers.create(image.id, name=f"{NAME}-lb1", command=["true"])
    try:
        result = lab_cmd("--name", NAME, "up", "--apps", "1", "--base-port", str(BASE), env=env)
        assert result.returncode == 2
        assert f"a container named {NAME}-lb1 exists and was not made by this lab" in result.stderr
        assert client.containers.get(foreign.id).status == "created"
    finally:
        foreign.remove(force=True)


def test_down_removes_everything_and_is_idempotent(env, state_root):
    client = docker.from_env()
    lab_cmd("--name", NAME, "up", "--apps", "1", "--base-port", str(BASE), env=env, check=True)
    down = lab_cmd("--name", NAME, "down", env=env, check=True)
    assert f"{NAME}-app1" in down.stdout and f"network {NAME}" in down.stdout
    assert ours(client) == [] and not has_network(client)
    assert os.listdir(state_root) == []
    again = lab_cmd("--name", NAME, "down", env=env, check=True)
    assert "nothing to remove" in again.stdout
    status = lab_cmd("--name", NAME, "status", env=env, check=True)
    assert "is not up" in status.stdout
