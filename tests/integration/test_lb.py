"""HAProxy (role) in front of the sample service on every app host, and lb_member's drain,
maint, ready, weight and flip (replaces) through the runtime API, with traffic through the lb's 127.0.0.1 port."""

import json
import threading
import time
import urllib.request

import pytest

from conftest import copy_to, load_client, run_module, run_playbook, sh

pytestmark = pytest.mark.lab

APPS = ["app1", "app2", "app3"]
BASE = "/srv/seedops-app"
HEALTH = {"url": "http://127.0.0.1:8080/healthz", "successes": 2, "interval": 0.3, "timeout": 30}


def get(port, path="/", timeout=10):
    with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=timeout) as r:
        return r.status, r.read().decode()


def hosts_answering(port, n=30):
    seen = set()
    for _i in range(n):
        status, body = get(port)
        assert status == 200
        seen.add(body.split("host=")[1].strip())
    return seen


def member(lab, check=False, **args):
    return run_module(lab, "lb1", "seedops.deploy.lb_member", {"backend": "app", **args}, check=check)


def checks_enabled(lab, server):
    """Whether HAProxy on lb1 runs the server's health checks (srv_check_state bit 0x04, CHK_ST_ENABLED)."""
    state = sh(lab, "lb1", "echo 'show servers state app' | sudo python3 -c \"import socket,sys; s=socket.socket(socket.AF_UNIX); "
                           "s.connect('/run/haproxy/admin.sock'); s.sendall(sys.stdin.read().encode()); "
                           "print(s.makefile().read())\"")
    row = next(line.split() for line in state.splitlines() if f" {server} " in line)
    return bool(int(row[13]) & 0x04)


@pytest.fixture(scope="module")
def fleet(lab, app_packages):
    result, recap = run_playbook("tests/integration/playbooks/app_service.yml", lab.inventory, "-e", "target_hosts=app")
    assert result.returncode == 0, result.stdout[-3000:]
    for host in APPS:
        copy_to(lab, host, app_packages["2.0.0"], "/var/tmp/app-2.0.0.tar.gz")
        r = run_module(lab, host, "seedops.deploy.release",
                       {"path": BASE, "release_id": "2.0.0", "src": "/var/tmp/app-2.0.0.tar.gz", "state": "active"})
        assert r["_status"] in ("SUCCESS", "CHANGED"), r
        r = run_module(lab, host, "seedops.deploy.staged_restart",
                       {"service": "seedops-app", "path": BASE, "health": HEALTH})
        assert r.get("healthy"), r
    result, recap = run_playbook("tests/integration/playbooks/lb.yml", lab.inventory)
    assert result.returncode == 0 and recap["lb1"]["failed"] == 0, result.stdout[-3000:]
    port = lab.host("lb1")["ports"]["80/tcp"]
    for host in APPS:  # the health checks bring every server up within a few seconds
        member(lab, server=host, state="ready")
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline and hosts_answering(port, 12) != set(APPS):
        time.sleep(0.5)
    yield port
    for host in APPS:
        member(lab, server=host, state="ready", weight=100)


def test_the_role_balances_over_every_app_host_and_is_idempotent(lab, fleet):
    assert hosts_answering(fleet) == set(APPS)
    result, recap = run_playbook("tests/integration/playbooks/lb.yml", lab.inventory)
    assert result.returncode == 0 and recap["lb1"]["changed"] == 0, result.stdout[-2000:]
    cfg = sh(lab, "lb1", "cat /etc/haproxy/haproxy.cfg")
    for host in APPS:
        assert f"server {host} {lab.host(host)['address']}:8080 check" in cfg


def test_drain_waits_for_in_flight_requests_then_takes_no_new_ones(lab, fleet):
    # Slow requests in flight on every server (round robin spreads them).
    results = []
    threads = [threading.Thread(target=lambda: results.append(get(fleet, "/?delay=8s", timeout=30)))
               for _i in range(6)]
    for t in threads:
        t.start()
    r = member(lab, server="app1", state="drain", drain_timeout=30)
    for t in threads:
        t.join(15)
    assert r["changed"] and r["state"] == "drain" and r["sessions"] == 0, r
    assert r["waited"] > 0, "it waited for app1's slow requests"
    assert len(results) == 6 and all(status == 200 for status, _body in results), "no in-flight request failed"
    assert "app1" not in hosts_answering(fleet, 12)
    assert not member(lab, server="app1", state="drain")["changed"]
    check = member(lab, check=True, server="app1", state="ready")
    assert check["changed"] and check["previous_state"] == "drain" and check["state"] == "ready"
    assert "app1" not in hosts_answering(fleet, 6), "check mode changed nothing"
    m = member(lab, server="app1", state="maint")
    assert m["state"] == "maint" and m["previous_state"] == "drain"
    assert "app1" not in hosts_answering(fleet, 6)
    back = member(lab, server="app1", state="ready")
    assert back["changed"] and back["state"] == "ready"
    assert hosts_answering(fleet) == set(APPS)


def test_weight_for_a_canary_share(lab, fleet):
    r = member(lab, server="app1", weight=0)
    assert r["changed"] and r["weight"] == 0 and r["previous_weight"] == 100
    assert "app1" not in hosts_answering(fleet, 12)
    assert not member(lab, server="app1", weight=0)["changed"]
    assert member(lab, server="app1", weight=100)["weight"] == 100
    assert hosts_answering(fleet) == set(APPS)


def test_health_checks_off_and_on(lab, fleet):
    check = member(lab, check=True, server="app2", checks="disabled")
    assert check["changed"] and check["checks"] == "disabled" and check["previous_checks"] == "enabled"
    assert checks_enabled(lab, "app2"), "check mode left the checks on"
    off = member(lab, server="app2", checks="disabled")
    assert off["changed"] and off["checks"] == "disabled" and off["state"] == "ready"
    assert not checks_enabled(lab, "app2")
    assert not member(lab, server="app2", checks="disabled")["changed"]
    on = member(lab, server="app2", checks="enabled")
    assert on["changed"] and on["checks"] == "enabled"
    assert checks_enabled(lab, "app2")
    assert hosts_answering(fleet) == set(APPS)


def test_unknown_server_and_bad_socket_are_clear_errors(lab, fleet):
    r = member(lab, server="app9", state="drain")
    assert r["_status"] == "FAILED!" and "no server app9 in backend app (it has: app1, app2, app3)" in r["msg"]
    r = member(lab, server="app1", state="drain", socket="/run/haproxy/nope.sock")
    assert r["_status"] == "FAILED!" and "cannot talk to HAProxy's runtime API at /run/haproxy/nope.sock" in r["msg"]


BESIDE = "seedops-app-beside"


def pids_answering(port, n=45):
    """{host: {pids}} of the app processes that answered n requests through the lb (with the load client's requests
    beside them, round robin sends any one of these to a given server of three with a chance of about 1/3: one server
    missing from 45 happens about 3 times in 100 million)."""
    seen = {}
    for _i in range(n):
        doc = json.loads(get(port, "/version")[1])
        seen.setdefault(doc["hostname"], set()).add(doc["pid"])
    return seen


def start_beside(lab, host, port):
    """The release the host serves, started a second time on `port` (a transient unit; its settings given inline,
    as the environment file names the first instance's port). Returns its pid once it answers its health check."""
    sh(lab, host, f"sudo systemctl stop {BESIDE} 2>/dev/null; sudo systemctl reset-failed {BESIDE} 2>/dev/null; "
                  f"sudo systemd-run --unit {BESIDE} --uid seedops-app --gid seedops-app --working-directory {BASE}/current "
                  f"--setenv PORT={port} --setenv LOG_LEVEL=info --setenv DRAIN_DELAY=300ms --setenv SHUTDOWN_TIMEOUT=100ms "
                  f"{BASE}/current/bin/seedops-app", check=False)
    probe = (f"python3 -c \"import json,urllib.request as u; "
             f"print(json.load(u.urlopen('http://127.0.0.1:{port}/version', timeout=2))['pid'])\"")
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        out = lab.ssh(host, probe)
        if out.returncode == 0 and out.stdout.strip().isdigit():
            return int(out.stdout)
        time.sleep(0.3)
    raise AssertionError(f"the second instance on {host}:{port} never answered: " + sh(lab, host, f"sudo journalctl -u {BESIDE} -n 20 --no-pager", check=False))


def test_a_flip_moves_a_host_to_a_second_instance_and_back_under_load_failing_no_request(lab, fleet):
    beside = '{"haproxy_beside_ports": [8080, 8081]}'
    try:
        result, recap = run_playbook("tests/integration/playbooks/lb.yml", lab.inventory, "-e", beside)
        assert result.returncode == 0 and recap["lb1"]["failed"] == 0, result.stdout[-3000:]
        cfg = [line.strip() for line in sh(lab, "lb1", "cat /etc/haproxy/haproxy.cfg").splitlines()]
        for host in APPS:
            address = lab.host(host)["address"]
            assert f"server {host}-8080 {address}:8080 check weight 100" in cfg
            assert f"server {host}-8081 {address}:8081 check weight 100 disabled" in cfg
        first = pids_answering(fleet)
        assert set(first) == set(APPS) and all(len(pids) == 1 for pids in first.values()), first
        # The lab's firewall (when a test applied it) lets the load balancer reach 8081 too (tests/lab/group_vars).
        if "seedops_firewall" in sh(lab, "app1", "sudo nft list tables 2>/dev/null || true"):
            fw, _recap = run_playbook("tests/integration/playbooks/firewall.yml", lab.inventory, "-e", "target_hosts=app1")
            assert fw.returncode == 0, fw.stdout[-3000:]
        second = start_beside(lab, "app1", 8081)
        runs = {}

        def flips():
            # To the second instance, with requests (1 in 10 slow, 1 s) in flight on the first; then back, and the
            # second instance stopped once the flip back drained it.
            runs["to"] = member(lab, server="app1-8081", replaces="app1-8080", up_timeout=30, drain_timeout=30)
            runs["seen"] = pids_answering(fleet)
            runs["back"] = member(lab, server="app1-8080", replaces="app1-8081", up_timeout=30, drain_timeout=30)
            sh(lab, "app1", f"sudo systemctl stop {BESIDE}")

        _none, load = load_client().Load(f"http://127.0.0.1:{fleet}/", 60, 0.1, "1s", 15).around(flips)
        assert load["all"]["failed"] == 0, load["errors"]
        assert load["during"]["slow_sent"] > 0, load["during"]
        to, back = runs["to"], runs["back"]
        assert to["changed"] and (to["previous_state"], to["state"], to["op_state"]) == ("maint", "ready", "up"), to
        assert to["replaced"] == {"server": "app1-8080", "previous_state": "ready", "state": "maint", "sessions": 0}, to
        assert to["flipped_at"] and back["flipped_at"] > to["flipped_at"]
        assert runs["seen"]["app1"] == {second}, "after the flip, app1's traffic goes to the second instance only"
        assert back["replaced"]["state"] == "maint" and back["state"] == "ready", back
        assert pids_answering(fleet)["app1"] == first["app1"], "back on the first instance"
        again = member(lab, server="app1-8080", replaces="app1-8081")
        assert again["_status"] == "SUCCESS" and not again["changed"], again
    finally:
        sh(lab, "app1", f"sudo systemctl stop {BESIDE} 2>/dev/null; true", check=False)
        result, recap = run_playbook("tests/integration/playbooks/lb.yml", lab.inventory)
        assert result.returncode == 0, result.stdout[-3000:]
    # One server per host again, each in rotation.
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline and hosts_answering(fleet, 12) != set(APPS):
        time.sleep(0.5)
    assert hosts_answering(fleet) == set(APPS)
