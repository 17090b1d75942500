"""The firewall role on lb1: default deny with an allow list (seen from other lab hosts), idempotence and
check mode, a ruleset that locks SSH out reverting itself, bad input refused before anything changes, the
ruleset coming back from nftables.service, and removal."""

import json
import subprocess
import time

import pytest

from conftest import flat, refused, run_module, run_playbook, sh

pytestmark = pytest.mark.lab

HOST = "lb1"
PLAYBOOK = "tests/integration/playbooks/firewall.yml"
TABLE = "inet seedops_firewall"
KEPT = "/etc/nftables.d/seedops_firewall.nft"
OPEN_PORT, CLOSED_PORT = 8081, 9999


def reaches(lab, source, target, port):
    """Whether `source` can open a TCP connection to `target`:port over the lab network."""
    address = lab.host(target)["address"]
    probe = f"import socket; socket.create_connection(('{address}', {port}), timeout=2).close()"
    return lab.ssh(source, f"python3 -c \"{probe}\"").returncode == 0


def converge(lab, settings, *args):
    return run_playbook(PLAYBOOK, lab.inventory, "-e", f"target_hosts={HOST}", "-e", json.dumps(settings), *args)


def table(lab):
    return sh(lab, HOST, f"sudo nft list table {TABLE}", check=False)


def in_container(lab, command):
    """A command run as root in HOST's container, whatever its firewall does to SSH."""
    return subprocess.run(["docker", "exec", f"{lab.name}-{HOST}", "/bin/sh", "-c", command], capture_output=True,
                          text=True, stdin=subprocess.DEVNULL, timeout=120, check=False)


@pytest.fixture(scope="module")
def listeners(lab):
    """Two TCP listeners on lb1 (8081 to allow, 9999 to stay closed), started clean with no firewall."""
    result = converge(lab, {"firewall_state": "absent"})[0]
    assert result.returncode == 0, result.stdout[-3000:]
    for port in (OPEN_PORT, CLOSED_PORT):
        sh(lab, HOST, f"sudo systemctl stop fw-test-{port} 2>/dev/null; sudo systemd-run --unit fw-test-{port} "
                      f"python3 -m http.server --directory /var/empty {port}")
    deadline = time.monotonic() + 20
    while not (reaches(lab, "app1", HOST, OPEN_PORT) and reaches(lab, "app1", HOST, CLOSED_PORT)):
        assert time.monotonic() < deadline, "the test listeners did not come up"
        time.sleep(0.5)
    yield
    converge(lab, {"firewall_state": "absent"})
    lab.ssh(HOST, f"sudo systemctl stop fw-test-{OPEN_PORT} fw-test-{CLOSED_PORT}")


SETTINGS = {
    "firewall_allow": [
        {"port": 80, "comment": "http"},
        {"port": OPEN_PORT, "sources": ["{{ hostvars['app1'].seedops_lab_address }}"], "comment": "from app1 only"},
    ],
    "firewall_revert_timeout": 20,
    "firewall_reconnect_timeout": 8,
}


@pytest.fixture(scope="module")
def converged(lab, listeners):
    result, recap = converge(lab, SETTINGS)
    assert result.returncode == 0, result.stdout[-3000:]
    assert recap[HOST]["changed"] > 0
    return result


def test_default_deny_with_the_allow_list_seen_from_other_hosts(lab, converged):
    assert reaches(lab, "app1", HOST, OPEN_PORT)
    assert not reaches(lab, "app2", HOST, OPEN_PORT), "8081 is allowed from app1 only"
    assert not reaches(lab, "app1", HOST, CLOSED_PORT), "9999 is not in the allow list"
    rules = table(lab)
    app1 = lab.host("app1")["address"]
    assert "policy drop;" in rules
    # The SSH port inside the host (22), not the port published on the controller's side (ansible_port)
    assert 'tcp dport 22 accept comment "ssh (the connection Ansible uses)"' in rules
    assert f'ip saddr {app1} tcp dport {OPEN_PORT} accept comment "from app1 only"' in rules
    assert sh(lab, HOST, f"sudo stat -c '%a %U' {KEPT}") == "640 root"
    assert sh(lab, HOST, "systemctl list-timers --all --no-legend | grep -c seedops-firewall-revert || true") == "0"


def test_rerun_and_check_mode_change_nothing(lab, converged):
    before = table(lab)
    result, recap = converge(lab, SETTINGS)
    assert result.returncode == 0 and recap[HOST]["changed"] == 0, result.stdout[-3000:]
    result, recap = converge(lab, {**SETTINGS, "firewall_allow": [{"port": 80}]}, "--check", "--diff")
    assert result.returncode == 0 and recap[HOST]["changed"] == 1, result.stdout[-3000:]
    assert f"-    ip saddr {{ {lab.host('app1')['address']} }} tcp dport {OPEN_PORT}" in result.stdout  # the diff
    assert table(lab) == before
    result, recap = converge(lab, SETTINGS, "--check")
    assert result.returncode == 0 and recap[HOST]["changed"] == 0, result.stdout[-3000:]


def test_a_ruleset_that_locks_ssh_out_reverts_itself_and_the_next_task_gets_in(lab, converged):
    before, kept = table(lab), sh(lab, HOST, f"sudo sha256sum {KEPT}")
    started = time.monotonic()
    result, recap = converge(lab, {**SETTINGS, "firewall_custom_rules": ["tcp dport 22 drop"]})
    elapsed = time.monotonic() - started
    assert result.returncode != 0 and recap[HOST]["failed"] == 1 and recap[HOST]["unreachable"] == 0
    out = flat(result)
    assert "the new ruleset was not kept: Ansible could not open a new SSH connection to port 22 through it within 8 s" in out
    assert "It reverted itself after 20 s" in out and "the previous ruleset is loaded again" in out
    assert elapsed < 300, elapsed
    # The next connection gets in; the previous ruleset is loaded and kept as it was
    ping = run_module(lab, HOST, "ansible.builtin.ping", {"data": "pong"})
    assert ping["_status"] == "SUCCESS", ping
    assert table(lab) == before and "tcp dport 22 drop" not in table(lab)
    assert sh(lab, HOST, f"sudo sha256sum {KEPT}") == kept
    assert not reaches(lab, "app1", HOST, CLOSED_PORT)
    # and the role converges again from there
    result, recap = converge(lab, SETTINGS)
    assert result.returncode == 0, result.stdout[-3000:]


@pytest.mark.parametrize("settings, message", [
    ({"firewall_allow": [{"port": 70000}]}, "firewall_allow[0]: port 70000 is out of range: ports are 1-65535"),
    ({"firewall_allow": [{"port": 80, "sources": ["10.0.0.300"]}]}, "source '10.0.0.300' is not an IP address or network"),
    ({"firewall_custom_rules": ["tcp dport 22 acept"]}, "failed to validate"),
    ({"firewall_revert_timeout": 5, "firewall_reconnect_timeout": 10}, "must be above 0 and below firewall_revert_timeout"),
])
def test_bad_input_fails_clearly_and_changes_nothing(lab, converged, settings, message):
    before, kept = table(lab), sh(lab, HOST, f"sudo sha256sum {KEPT}")
    refused(*converge(lab, {**SETTINGS, **settings}), HOST, message)
    assert table(lab) == before
    assert sh(lab, HOST, f"sudo sha256sum {KEPT}") == kept


def test_nftables_service_loads_the_kept_ruleset_at_boot(lab, converged):
    before = table(lab)
    sh(lab, HOST, f"sudo nft delete table {TABLE}")
    assert reaches(lab, "app1", HOST, CLOSED_PORT)
    assert sh(lab, HOST, "systemctl is-enabled nftables") == "enabled"
    sh(lab, HOST, "sudo systemctl restart nftables")
    assert table(lab) == before
    assert not reaches(lab, "app1", HOST, CLOSED_PORT)


def test_absent_removes_the_table_and_its_files(lab, converged):
    result, recap = converge(lab, {"firewall_state": "absent"})
    assert result.returncode == 0 and recap[HOST]["changed"] > 0, result.stdout[-3000:]
    assert lab.ssh(HOST, f"sudo nft list table {TABLE}").returncode != 0
    assert lab.ssh(HOST, f"sudo test -e {KEPT}").returncode != 0
    assert reaches(lab, "app2", HOST, CLOSED_PORT)
    result, recap = converge(lab, {"firewall_state": "absent"})
    assert result.returncode == 0 and recap[HOST]["changed"] == 0


SSHD_PORT = 2222
SSHD_PORTS = "/etc/ssh/sshd_config.d/zz-firewall-test.conf"


def reload_sshd(lab, ports):
    """Reload sshd in HOST's container and wait until it listens on `ports` and the lab's SSH gets in again (a reload
    re-executes sshd, which resets connections arriving meanwhile)."""
    assert in_container(lab, "systemctl reload ssh").returncode == 0
    deadline = time.monotonic() + 15
    while True:
        listening = in_container(lab, "ss -Hltn").stdout.split()
        if all(f"0.0.0.0:{port}" in listening for port in ports) and lab.ssh(HOST, "true").returncode == 0:
            return
        assert time.monotonic() < deadline, f"sshd does not listen on {ports}, or the lab's SSH does not get in"
        time.sleep(0.2)


@pytest.fixture(scope="module")
def without_ssh(lab, tmp_path_factory):
    """Arguments that make Ansible reach HOST through docker exec (tests/integration/playbooks/connection_plugins): no
    SSH_CONNECTION, and no ruleset can cut that connection. An inventory of its own, so that the controller's tasks
    (delegate_to: localhost) keep the local connection."""
    path = tmp_path_factory.mktemp("lab_exec") / "inventory.yml"
    path.write_text(json.dumps({"all": {"hosts": {HOST: {"ansible_connection": "lab_exec",
                                                         "lab_exec_container": f"{lab.name}-{HOST}"}}}}))
    return ["-i", str(path)]


# Last in this file: their fixture leaves HOST without the role's table.
@pytest.fixture(scope="module")
def sshd_also_on_2222(lab, converged):
    """sshd listening on 22 and 2222; afterwards on 22 only again, without the role's table."""
    assert in_container(lab, f"printf 'Port 22\\nPort {SSHD_PORT}\\n' > {SSHD_PORTS}").returncode == 0
    reload_sshd(lab, [22, SSHD_PORT])
    yield
    # Through docker exec: a broken ruleset may have cut SSH off.
    in_container(lab, f"rm -f {SSHD_PORTS}; nft delete table {TABLE}; rm -f {KEPT}")
    reload_sshd(lab, [22])


def test_without_ssh_every_port_sshd_listens_on_stays_open(lab, sshd_also_on_2222, without_ssh):
    result, recap = converge(lab, {**SETTINGS, "firewall_allow": [{"port": 80}]}, *without_ssh)
    assert result.returncode == 0, result.stdout[-3000:]
    rules = in_container(lab, f"nft list table {TABLE}").stdout
    assert "dport { 22, 2222 } accept" in rules, rules
    assert str(lab.host(HOST)["ports"]["22/tcp"]) not in rules  # ansible_port means nothing without SSH
    assert reaches(lab, "app1", HOST, 22) and reaches(lab, "app1", HOST, SSHD_PORT)
    assert not reaches(lab, "app1", HOST, OPEN_PORT)
    assert sh(lab, HOST, "id -un") == "debian"  # the lab's SSH through the published port


def test_without_ssh_a_ruleset_that_locks_sshd_out_is_put_back_at_once(lab, sshd_also_on_2222, without_ssh):
    before, kept = in_container(lab, f"nft list table {TABLE}").stdout, in_container(lab, f"sha256sum {KEPT}").stdout
    # The connection in use (docker exec) survives any ruleset; the controller's check over port 22 does not.
    result, recap = converge(lab, {**SETTINGS, "firewall_custom_rules": ["tcp dport 22 drop"]}, *without_ssh)
    assert result.returncode != 0 and recap[HOST]["failed"] == 1, result.stdout[-3000:]
    out = flat(result)
    address = lab.host(HOST)["address"]
    assert (f"the new ruleset was not kept: Ansible does not reach {HOST} over SSH, and the controller could not reach "
            f"sshd at {address} port 22 through it within 8 s") in out, out[-3000:]
    assert "The role reverted it at" in out and "the previous ruleset is loaded again" in out
    assert in_container(lab, f"nft list table {TABLE}").stdout == before
    assert in_container(lab, f"sha256sum {KEPT}").stdout == kept
    assert reaches(lab, "app1", HOST, 22)
    assert in_container(lab, "systemctl list-timers --all --no-legend | grep -c seedops-firewall-revert").stdout.strip() == "0"
    assert sh(lab, HOST, "id -un") == "debian"
