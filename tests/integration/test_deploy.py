"""The main job on the lab: site.yml brings up v1, then rolling deploys, rollbacks and a live
reconfiguration of the sample service behind HAProxy, each under load from a real client on the
controller (tests/lab/load.py, against the lb's 127.0.0.1 port) that counts every request.

Each test brings the fleet to the state it starts from (fleet_at, log_level_at), doing nothing when the
fleet is there already, so any test passes alone (pytest tests/integration/test_deploy.py::NAME) and
in the full run."""

import base64
import contextlib
import copy
import datetime
import glob
import json
import os
import re
import shutil
import subprocess
import sys
import threading
import time

import pytest
import yaml

from conftest import (DEMO_SETTINGS, REGISTRY_USERS, REPO_ROOT, VENV_BIN, answering, flat, load_client,
                      more_tests_follow, push_image, run_demo, run_module, run_playbook, service_version, sh)

pytestmark = pytest.mark.lab

APPS = ["app1", "app2", "app3"]
BASE = "/srv/seedops-app"
RPS = 60
# The two good releases the tests deploy back and forth (see fleet_at and other).
RELEASES = ("1.0.0", "2.0.0")


@pytest.fixture(scope="module")
def demo(lab, demo_packages, tmp_path_factory):
    """A clean slate on the app hosts, then the README's main command (tests/lab/demo.py, which `make site` runs once
    the lab is up): site.yml (preflight, repo, app hosts, lb, deploy 1.0.0), then 2.0.0 rolling under load.
    The service's stop timeout is 100 ms, shorter than the 1 s slow requests: a restart that did not drain
    first would cut the requests in flight, so zero failed requests shows the drain at work."""
    for host in APPS:
        lab.ssh(host, f"sudo systemctl stop seedops-app 'seedops-app@*' 2>/dev/null; sudo rm -rf {BASE} /etc/seedops-app "
                      "/etc/systemd/system/seedops-app.service /etc/systemd/system/seedops-app@.service "
                      "/etc/systemd/system/*.wants/seedops-app@*.service; sudo systemctl daemon-reload")
    reports = tmp_path_factory.mktemp("reports")
    summary = tmp_path_factory.mktemp("demo") / "load.json"
    result = run_demo(lab.name, reports, summary)
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-2000:]
    port = lab.host("lb1")["ports"]["80/tcp"]
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and answering(port) != set(APPS):
        time.sleep(0.5)
    site_report, rolling_report = [json.load(open(path, encoding="utf-8"))
                                   for path in sorted(glob.glob(os.path.join(reports, "deploy-*.json")))]
    return {"port": port, "reports": reports, "out": result.stdout, "load": json.load(open(summary, encoding="utf-8")),
            "site_report": site_report, "rolling_report": rolling_report,
            "after": {h: live(lab, h) for h in APPS}, "answering": answering(port)}


def live(lab, host):
    """(current release, the running service's version and pid, its log level) read on the host."""
    current = lab.ssh(host, f"readlink {BASE}/current").stdout.strip().rsplit("/", 1)[-1]
    doc = service_version(lab, host)
    return current, doc.get("version"), doc.get("pid"), doc.get("log_level")


def other(version):
    """The other one of the two releases the tests go back and forth between."""
    return RELEASES[1 - RELEASES.index(version)]


def fleet_at(lab, version, previous=None, extra=()):
    """Bring every app host to `version` through deploy.yml unless it runs it already, and return it; with
    `previous`, also make that the release each host would roll back to (deploying `previous` first when it is not).
    `version` may be RELEASES: a test that only needs the fleet on one release, to deploy the other, takes it where
    the last test left it (the first of them is deployed when the fleet runs neither), so it needs no reset deploy.
    `extra`: more arguments for deploy.yml (the beside tests' settings)."""
    def read():
        infos = run_module(lab, "app", "seedops.deploy.release_info", {"path": BASE}, hosts=APPS)
        return {h: (infos[h].get("current"), infos[h].get("rollback_target")) for h in APPS}

    choices = version if isinstance(version, tuple) else (version,)

    def there(state):
        return next((v for v in choices if all(c == v and previous in (None, t) for c, t in state.values())), None)

    rotation = True
    if not extra:
        # A test that failed half-way may leave a server out of the backend or out of rotation: put it back (it
        # joins in maintenance) and let deploy.yml repair it, so that one failure does not fail every later test.
        servers = haproxy_servers(lab)
        if set(servers) != set(APPS):
            result, _recap = run_playbook("tests/integration/playbooks/lb.yml", lab.inventory)
            assert result.returncode == 0, result.stdout[-3000:]
        rotation = all(servers.get(h) == ("ready", "up", 100) for h in APPS)
    state = read()
    found = there(state)
    if found and rotation:
        return found
    version = found or choices[0]
    steps = [version]
    if previous is not None and any(c != previous for c, _t in state.values()):
        steps = [previous, version]
    for step in steps:
        result, _recap = run_playbook("playbooks/deploy.yml", lab.inventory, "-e", f"deploy_version={step}", *extra)
        assert result.returncode == 0, result.stdout[-3000:]
    state = read()
    assert there(state) == version, state
    return version


def log_level_at(lab, level):
    """Set the service's log level on every app host (reconfigure.yml) unless it has it already."""
    if {live(lab, h)[3] for h in APPS} != {level}:
        result, _recap = run_playbook("playbooks/reconfigure.yml", lab.inventory, "-e", f"seedops_demo_log_level={level}")
        assert result.returncode == 0, result.stdout[-3000:]


def record_state(lab, host, release):
    out = lab.ssh(host, f"sudo cat {BASE}/releases/{release}.json").stdout
    return json.loads(out)["state"] if out.strip() else None


def playbook_under_load(demo, lab, playbook, *args, env=None, during=None):
    """Run a playbook while the load client sends RPS requests/s (1 in 10 slow, 1 s) through the lb.
    `during()` may act while it runs. Returns (result, recap, load summary, report)."""
    load = load_client().Load(f"http://127.0.0.1:{demo['port']}/", RPS, 0.1, "1s", 15)
    before = set(glob.glob(os.path.join(demo["reports"], "deploy-*.json")))
    env = {"SEEDOPS_DEPLOY_REPORT_DIR": str(demo["reports"]), **(env or {})}

    def work():
        if during is None:
            return run_playbook(playbook, lab.inventory, *args, env=env)
        box = {}
        thread = threading.Thread(target=lambda: box.update(out=run_playbook(playbook, lab.inventory, *args, env=env)))
        thread.start()
        try:
            during()
        finally:
            thread.join(900)
        return box["out"]

    (result, recap), summary = load.around(work)
    new = sorted(set(glob.glob(os.path.join(demo["reports"], "deploy-*.json"))) - before)
    report = None
    if new:
        with open(new[-1], encoding="utf-8") as f:
            report = json.load(f)
    return result, recap, summary, report


def rows(report):
    return {row["host"]: row for row in report["hosts"]}


def haproxy_worker(lab):
    """The pid of HAProxy's worker on lb1: a reload replaces it, a runtime API change does not."""
    return lab.ssh("lb1", "pgrep -P $(systemctl show -p MainPID --value haproxy)").stdout.split()


def lb_state(lab, server):
    """(admin, op) of a server in HAProxy on lb1, read by lb_info."""
    servers = run_module(lab, "lb1", "seedops.deploy.lb_info", {"backend": "app"})["servers"]
    return servers[server]["admin"], servers[server]["op"]


LOCK = "/var/lib/seedops-deploy/locks/seedops-app-app.json"


def lock_record(lab):
    out = lab.ssh("lb1", f"sudo cat {LOCK} 2>/dev/null").stdout
    return json.loads(out) if out.strip() else None


def haproxy_servers(lab):
    """{server: (admin, op, weight)} of backend app, straight from HAProxy's runtime API on lb1 (no Ansible)."""
    out = lab.ssh("lb1", "sudo python3 -c \"import socket; s = socket.socket(socket.AF_UNIX); "
                         "s.connect('/run/haproxy/admin.sock'); s.sendall(b'show servers state app\\n'); "
                         "print(s.makefile().read())\"").stdout
    header, servers = None, {}
    for line in out.splitlines():
        if line.startswith("#"):
            header = line[1:].split()
        elif header and len(line.split()) >= len(header):
            row = dict(zip(header, line.split()))
            admin = "maint" if int(row["srv_admin_state"]) & 0x01 else "drain" if int(row["srv_admin_state"]) & 0x08 else "ready"
            servers[row["srv_name"]] = (admin, "up" if row["srv_op_state"] == "2" else "down", int(row["srv_uweight"]))
    return servers


# Where a dead controller leaves a rolling deploy of 3 hosts (batches app1, app2, app3), and what the rerun must do
# with app1. Each case deploys the other release than the fleet runs, so no case needs a reset deploy first. (A kill
# between batches, app1 done, is not a case of its own: a host already on the release is left "unchanged" in the
# scale-in test, and every case here has the rerun carry on with app2 and app3.) The switch and the restart are one
# staged_restart run, so "after the switch" is a run killed at the drain whose module then switched current and died
# before the restart (its SSH session hung up): the test makes that switch itself, with the release module.
KILLED = {
    "after the drain": ("lb_member:state=drain@app1", "switch", "switched"),
    "after the switch": ("lb_member:state=drain@app1", "finish", "finished"),
    "during the health gate": ("staged_restart@app1/start+2", None, None),
}


# -- start beside, then flip (deploy_beside_ports) ------------------------------------------------------------------

BESIDE = json.dumps({"seedops_demo_beside_ports": [8080, 8081]})


def instance(lab, host, port):
    """(unit state, enabled, version, pid) of the instance seedops-app@PORT on the host, read there."""
    state = lab.ssh(host, f"systemctl is-active seedops-app@{port}; systemctl is-enabled seedops-app@{port}").stdout.split()
    out = lab.ssh(host, "python3 -c \"import urllib.request as u; "
                        f"print(u.urlopen('http://127.0.0.1:{port}/version', timeout=5).read().decode())\"").stdout
    doc = json.loads(out) if out.strip() else {}
    return state[0], state[1] if len(state) > 1 else None, doc.get("version"), doc.get("pid")


def task_results(stdout, name):
    """The result lines (ok: [app1], skipping: [app2], ...) of the first task whose name contains name."""
    found = re.search(r"TASK \[[^]]*" + re.escape(name) + r"[^]]*\] \*+\n((?:\w+: \[[^]]+\].*\n)+)", stdout)
    assert found, f"no task {name!r} in the output"
    return found.group(1)


def stopped_at(lab, host, port):
    """When the instance seedops-app@PORT last stopped (epoch seconds), as systemd on the host recorded it."""
    out = lab.ssh(host, f"systemctl show -P InactiveEnterTimestamp --timestamp=us+utc seedops-app@{port}").stdout.strip()
    return datetime.datetime.strptime(out, "%a %Y-%m-%d %H:%M:%S.%f UTC").replace(tzinfo=datetime.timezone.utc).timestamp()


def live_port(lab, host):
    return int(lab.ssh(host, f"cat {BASE}/live-port").stdout.strip() or 0)


def servers(lab):
    """{server: (admin, op)} in HAProxy on lb1."""
    found = run_module(lab, "lb1", "seedops.deploy.lb_info", {"backend": "app"})["servers"]
    return {name: (s["admin"], s["op"]) for name, s in found.items()}


@pytest.fixture
def app1_disabled_at_boot(lab, demo):
    """app1's service disabled at boot (it keeps running) for one test, enabled again afterwards."""
    sh(lab, "app1", "sudo systemctl disable --quiet seedops-app")
    yield
    sh(lab, "app1", "sudo systemctl enable --quiet seedops-app")


@pytest.fixture(scope="module")
def beside(lab, demo):
    """The fleet on the release it runs (1.0.0 or 2.0.0, which this yields), moved to two instances per host
    (app_service_beside_ports, haproxy_beside_ports), and moved back to one at the end for the tests that follow (none
    when the run ends there: more_tests_follow)."""
    start = fleet_at(lab, RELEASES)
    result, _recap = run_playbook("tests/integration/playbooks/beside.yml", lab.inventory, "-e", BESIDE)
    assert result.returncode == 0, result.stdout[-4000:]
    yield start
    if not more_tests_follow():
        print("beside: the last test of this run on this lab; the fleet is left as it is")
        return
    result, _recap = run_playbook("tests/integration/playbooks/beside.yml", lab.inventory)
    assert result.returncode == 0, result.stdout[-4000:]
    for host in APPS:
        assert lab.ssh(host, "systemctl is-active seedops-app").stdout.strip() == "active"
        assert lab.ssh(host, f"test -e {BASE}/live-port || test -e /etc/systemd/system/seedops-app@.service").returncode != 0
    assert set(servers(lab)) == set(APPS)


# The tests, in the order they run. A test that needs the fleet on a given release comes where the one before left it
# there: the rollback while the fleet still runs the demo's 2.0.0 with 1.0.0 to go back to; the scale-in, which
# leaves app3 with one release only, after every test that needs a release to roll back to. The others deploy
# whichever release the fleet does not run (fleet_at(lab, RELEASES) and other()), the beside tests from the release
# the fixture found. So no test needs a reset deploy when the file runs whole.


def test_the_main_command_deploys_v1_then_v2_to_every_app_host_behind_the_lb(lab, demo):
    # site.yml's deploy: every host went from nothing to 1.0.0 (its report, written by the deploy_report callback).
    assert {r["host"]: (r["old"], r["result"], r["runs"]) for r in demo["site_report"]["hosts"]} == {
        h: (None, "switched", "1.0.0") for h in APPS}
    # Then the demo's rolling deploy: what the fleet ran right after it, read on the hosts by the fixture.
    for host, (current, version, pid, _level) in demo["after"].items():
        assert (current, version) == ("2.0.0", "2.0.0"), host
        assert pid
    assert demo["answering"] == set(APPS)
    assert "DEPLOY REPORT" in demo["out"] and "failed: 0 requests" in demo["out"]
    sums = lab.ssh("repo1", "cat /srv/artifacts/seedops-app/2.0.0/SHA256SUMS").stdout
    assert "seedops-app-2.0.0-linux-amd64.tar.gz" in sums


def test_rolling_deploy_v2_under_load_fails_no_request(lab, demo):
    # The demo's rolling deploy of 2.0.0 (the fixture ran it, with the load client's counts in demo["load"]).
    load, report = demo["load"], demo["rolling_report"]
    assert load["all"]["failed"] == 0, load["errors"]
    assert load["during"]["sent"] >= RPS * 5 and load["during"]["slow_sent"] > 0, load["during"]
    assert load["versions"].keys() == {"1.0.0", "2.0.0"}
    # One batch per host with serial [1, "34%", "100%"] on 3 hosts; the canary finished before batch 2 began.
    by_host = rows(report)
    # The plan's batches: inventory order, whatever order the hosts answered in.
    assert {h: r["batch"] for h, r in by_host.items()} == {"app1": 1, "app2": 2, "app3": 3}
    assert report["batches"] == [{"label": 1, "hosts": ["app1"]}, {"label": 2, "hosts": ["app2"]},
                                 {"label": 3, "hosts": ["app3"]}]
    assert all(r["result"] == "switched" and r["old"] == "1.0.0" and r["runs"] == "2.0.0" for r in by_host.values())
    ordered = sorted(by_host.values(), key=lambda r: r["batch"])
    for first, second in zip(ordered, ordered[1:]):
        assert first["phases"]["ready"]["end"] <= second["phases"]["drain"]["start"]
    assert "DEPLOY REPORT" in demo["out"] and "2.0.0 on app1, app2, app3" in demo["out"]
    # Who deployed, as the fleet lock recorded it on lb1.
    assert report["deployed_by"]["playbook"] == "deploy.yml" and report["deployed_by"]["version"] == "2.0.0"
    assert "deployed by: " in demo["out"]
    html_files = glob.glob(os.path.join(demo["reports"], "deploy-*.html"))
    assert len(html_files) == 2 and "<svg" in open(sorted(html_files)[-1], encoding="utf-8").read()


def test_the_built_collection_installs_offline_and_its_site_in_check_mode_changes_nothing_after_the_main_command(
        lab, demo, tmp_path):
    """The collection tarball, installed offline, runs site.yml in check mode with --diff on the fleet the main
    command just converged: every host is planned, and nothing would change. (Each role's tests prove its own real
    rerun changes nothing; this run on the whole fleet also reports any change that roles would make to each
    other.) The host-preparation roles are left out (prepare_roles empty): with the lab's settings they write
    nothing the other roles write, each one's own tests run it again and in check mode with changed=0
    (test_access, test_firewall, test_env_config), and on this fleet they would take more than half of the run."""
    build = subprocess.run(
        [os.path.join(VENV_BIN, "ansible-galaxy"), "collection", "build", REPO_ROOT, "--output-path", str(tmp_path)],
        capture_output=True, text=True, cwd=tmp_path, check=False,
    )
    assert build.returncode == 0, build.stderr
    (tarball,) = glob.glob(str(tmp_path / "seedops-deploy-*.tar.gz"))
    listing = subprocess.run(["tar", "tzf", tarball], capture_output=True, text=True, check=True).stdout.split()
    assert "playbooks/site.yml" in listing and "roles/preflight/meta/argument_specs.yml" in listing
    assert "plugins/callback/deploy_report.py" in listing and "playbooks/deploy.yml" in listing
    for ignored in (".lab", ".venv", "tests", "benchmarks", ".git"):
        assert not any(p == ignored or p.startswith(ignored + "/") for p in listing), ignored

    collections = tmp_path / "collections"
    # Run from a directory without ansible.cfg, with only the installed copy on the collections path.
    env = {k: v for k, v in os.environ.items() if k != "ANSIBLE_CONFIG"}
    env["ANSIBLE_COLLECTIONS_PATH"] = str(collections)
    install = subprocess.run(
        [os.path.join(VENV_BIN, "ansible-galaxy"), "collection", "install", "--offline", "-p", str(collections), tarball],
        capture_output=True, text=True, cwd=tmp_path, env=env, check=False,
    )
    assert install.returncode == 0, install.stdout + install.stderr
    assert (collections / "ansible_collections" / "seedops" / "deploy" / "MANIFEST.json").exists()

    doc = subprocess.run([os.path.join(VENV_BIN, "ansible-doc"), "-t", "filter", "-l", "seedops.deploy"],
                         capture_output=True, text=True, cwd=tmp_path, env=env, check=False)
    assert doc.returncode == 0, doc.stderr
    for name in ("seedops.deploy.goarch", "seedops.deploy.goos", "seedops.deploy.platform"):
        assert name in doc.stdout
    modules = subprocess.run([os.path.join(VENV_BIN, "ansible-doc"), "-l", "seedops.deploy"],
                             capture_output=True, text=True, cwd=tmp_path, env=env, check=False)
    assert modules.returncode == 0, modules.stderr
    role = subprocess.run([os.path.join(VENV_BIN, "ansible-doc"), "-t", "role", "seedops.deploy.preflight"],
                          capture_output=True, text=True, cwd=tmp_path, env=env, check=False)
    assert role.returncode == 0 and "preflight_min_disk_mb" in role.stdout, role.stderr

    # The main command's settings: the release it deployed last, and the demo's shutdown timeout.
    result, recap = run_playbook("seedops.deploy.site", lab.inventory, "--check", "--diff", "-e", "deploy_version=2.0.0",
                                 "-e", DEMO_SETTINGS, "-e", '{"prepare_roles": []}', cwd=str(tmp_path), env=env)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-2000:]
    assert {host: (r["failed"], r["changed"]) for host, r in recap.items()} == {h["name"]: (0, 0) for h in lab.hosts}


def test_rerunning_the_same_version_changes_nothing(lab, demo):
    start = fleet_at(lab, RELEASES)
    pids = {host: live(lab, host)[2] for host in APPS}
    # With fewer forks than hosts the plan says the stage would run in waves, and what to set.
    result, recap = run_playbook("playbooks/deploy.yml", lab.inventory, "-e", f"deploy_version={start}", "--forks", "2")
    assert result.returncode == 0, result.stdout[-3000:]
    assert {h: recap[h]["changed"] for h in APPS} == {h: 0 for h in APPS}
    assert ("WARNING: this run acts on 3 hosts with forks=2, so the plan, the stage and verify reach 2 hosts at a "
            "time, in 2 waves") in flat(result.stdout)
    assert {host: live(lab, host)[2] for host in APPS} == pids, "nothing was restarted"
    # The first host's read fetched the checksum list: no separate fetch.
    assert task_results(result.stdout, "Plan - fetch the checksum lists once") == "skipping: [app1]\n"


def test_check_mode_of_a_new_version_changes_nothing(lab, demo):
    start = fleet_at(lab, RELEASES)
    pids = {host: live(lab, host)[2] for host in APPS}
    result, recap = run_playbook("playbooks/deploy.yml", lab.inventory, "-e", "deploy_version=3.0.0",
                                 "--check", "--diff")
    assert result.returncode == 0, result.stdout[-3000:]
    assert all(recap[h]["changed"] > 0 for h in APPS), "check mode says what would change"
    # The report says what each host would do, not that the rollout stopped before it.
    assert ", check mode: nothing was changed)" in result.stdout
    assert result.stdout.count("would switch (check mode)") == len(APPS) and "not reached" not in result.stdout
    for host in APPS:
        assert live(lab, host)[:3] == (start, start, pids[host]), host
        assert lab.ssh(host, f"test -e {BASE}/releases/3.0.0").returncode != 0, "nothing was staged"
    assert answering(demo["port"]) == set(APPS), "nothing was drained"


def test_broken_v3_canary_is_rolled_back_and_the_rollout_stops(lab, demo):
    start = fleet_at(lab, RELEASES)
    pids = {host: live(lab, host)[2] for host in APPS}
    # Even with the free strategy configured, the activate play runs linear and stops at the failure.
    # The canary is the host named in deploy_canary_hosts, not the first in the inventory.
    result, recap, load, report = playbook_under_load(demo, lab, "playbooks/deploy.yml",
                                                      "-e", "deploy_version=3.0.0", "-e", '{"deploy_canary_hosts": ["app3"]}',
                                                      env={"ANSIBLE_STRATEGY": "free"})
    assert result.returncode != 0
    out = flat(result.stdout)
    assert "did not become healthy after restart" in out and "Rolled back: 3.0.0 marked failed" in out
    assert "The rollout stops here" in out
    assert load["all"]["failed"] == 0, load["errors"]
    by_host = rows(report)
    canary = "app3"
    assert [h for h, r in by_host.items() if r["batch"] == 1] == [canary]
    assert by_host[canary]["result"] == "rolled back" and by_host[canary]["runs"] == start
    assert record_state(lab, canary, "3.0.0") == "failed"
    for host in APPS:
        current, version, pid, _level = live(lab, host)
        assert (current, version) == (start, start), host
        if host != canary:
            assert pid == pids[host], f"{host} was not touched"
            assert by_host[host]["result"] == "not reached"
    assert answering(demo["port"]) == set(APPS), "the canary is back in rotation"


def test_rollback_brings_every_host_to_the_previous_version(lab, demo):
    fleet_at(lab, "2.0.0", previous="1.0.0")
    result, recap, load, report = playbook_under_load(demo, lab, "playbooks/rollback.yml")
    assert result.returncode == 0, result.stdout[-4000:]
    assert load["all"]["failed"] == 0, load["errors"]
    for host in APPS:
        current, version, _pid, _level = live(lab, host)
        assert (current, version) == ("1.0.0", "1.0.0"), host
        assert record_state(lab, host, "2.0.0") == "failed", "a rolled-back release is not a rollback target"
    assert {r["runs"] for r in report["hosts"]} == {"1.0.0"}
    again, recap = run_playbook("playbooks/rollback.yml", lab.inventory, "-e", "deploy_rollback_version=1.0.0")
    assert again.returncode == 0 and {h: recap[h]["changed"] for h in APPS} == {h: 0 for h in APPS}


def test_a_host_unreachable_in_the_second_batch_stops_the_rollout(lab, demo, docker_engine):
    start = fleet_at(lab, RELEASES)
    target = other(start)
    container = docker_engine.containers.get(f"{lab.name}-app2")

    def pause_app2_once_the_canary_switched():
        # One exec that returns the moment app1's current switches (polling by exec would lag under load), then
        # the pause lands while app1 restarts and waits for its health - well before batch 2 starts.
        r = docker_engine.containers.get(f"{lab.name}-app1").exec_run(
            ["sh", "-c", f"for i in $(seq 1 2400); do [ \"$(readlink {BASE}/current)\" = releases/{target} ] && exit 0; "
                         "sleep 0.05; done; exit 1"])
        if r.exit_code != 0:
            raise AssertionError("the canary never switched")
        container.pause()

    # A longer health gate (at least 8 x 0.3 s) gives the pause a wide window inside batch 1.
    slow_gate = {"url": "http://127.0.0.1:8080/healthz", "successes": 8, "interval": 0.3, "timeout": 30}
    try:
        result, recap, _load, report = playbook_under_load(
            demo, lab, "playbooks/deploy.yml", "-e", f"deploy_version={target}",
            "-e", json.dumps({"deploy_serial": [1, 2], "deploy_health": slow_gate}),
            during=pause_app2_once_the_canary_switched)
    finally:
        container.reload()
        if container.status == "paused":
            container.unpause()
    assert result.returncode != 0
    assert recap["app2"]["unreachable"] == 1, recap
    by_host = rows(report)
    assert (by_host["app1"]["result"], by_host["app1"]["runs"]) == ("switched", target)
    assert by_host["app2"]["result"] == "unreachable" and by_host["app2"]["runs"] == f"unknown (was {start})"
    assert "failed or became unreachable in this batch" in flat(result.stdout)
    # app3 was in the same batch as app2: it finished its switch; no host is half-switched.
    for host in APPS:
        current, version, _pid, _level = live(lab, host)
        assert current == version, f"{host}: current {current} but the service runs {version}"
    assert by_host["app3"]["runs"] == live(lab, "app3")[0]
    assert live(lab, "app2")[0] == start, "the unreachable host was not switched"
    # Undo the halted rollout: every host back to what the fleet ran before it.
    undo, _recap = run_playbook("playbooks/rollback.yml", lab.inventory)
    assert undo.returncode == 0, undo.stdout[-3000:]
    assert {live(lab, h)[:2] for h in APPS} == {(start, start)}


def test_a_drain_that_fails_stops_the_rollout_gives_the_lock_back_and_changes_nothing(lab, demo):
    """A load balancer that refuses the canary's drain (here: no such server) stops the run before the switch, and
    the fleet lock is given back at once, not left to expire."""
    start = fleet_at(lab, RELEASES)
    pids = {host: live(lab, host)[2] for host in APPS}
    result, _recap = run_playbook("playbooks/deploy.yml", lab.inventory, "-e", f"deploy_version={other(start)}",
                                  "-e", "deploy_lb_server=nosuch")
    assert result.returncode != 0
    out = flat(result)
    assert "app1: the drain of nosuch failed: HAProxy has no server nosuch in backend app" in out, out[-2000:]
    assert "app1 was not switched, and no load balancer drained it." in out
    assert lock_record(lab) is None, "the lock was given back"
    assert {host: live(lab, host)[:3:2] for host in APPS} == {host: (start, pids[host]) for host in APPS}


def test_reconfigure_changes_the_log_level_in_place(lab, demo):
    log_level_at(lab, "debug")
    before = {host: live(lab, host) for host in APPS}
    assert {b[3] for b in before.values()} == {"debug"}
    result, recap, load, _report = playbook_under_load(demo, lab, "playbooks/reconfigure.yml",
                                                       "-e", "seedops_demo_log_level=info")
    assert result.returncode == 0, result.stdout[-4000:]
    assert load["all"]["failed"] == 0, load["errors"]
    for host in APPS:
        _current, _version, pid, level = live(lab, host)
        assert (pid, level) == (before[host][2], "info"), f"{host}: same process, new log level"
        env = lab.ssh(host, "sudo stat -c '%a %U %G' /etc/seedops-app/env && sudo grep LOG_LEVEL /etc/seedops-app/env")
        assert env.stdout.split() == ["640", "root", "seedops-app", "LOG_LEVEL=\"info\""], env.stdout
    again, recap = run_playbook("playbooks/reconfigure.yml", lab.inventory, "-e", "seedops_demo_log_level=info")
    assert again.returncode == 0 and {h: recap[h]["changed"] for h in APPS} == {h: 0 for h in APPS}


def check_downs(lab):
    """{server: how often HAProxy's checks on lb1 took it from up to down (show stat's chkdown)}."""
    return {name: int(row["chkdown"] or 0) for name, row in stat(lab).items() if name in APPS}


def test_a_slow_starting_service_is_up_in_haproxy_again_before_the_next_batch_drains(lab, demo, tmp_path):
    """The service takes 3 s to become ready after it starts (STARTUP_DELAY), so HAProxy's checks (inter 1 s, fall 2)
    take each host down while it restarts. The deploy sets a host ready only once they see it up again (lb_member
    wait_if_down): when the next batch starts, before its drain, every other host is up in HAProxy (a before_activate
    hook reads them there), so no batch takes a second server out of a backend of three."""
    target = other(fleet_at(lab, RELEASES))
    seen = tmp_path / "seen.txt"
    hook = os.path.join(REPO_ROOT, "tests", "integration", "playbooks", "hooks", "others_up.yml")
    result, _recap = run_playbook("playbooks/reconfigure.yml", lab.inventory, "-e", "seedops_demo_startup_delay=3s")
    assert result.returncode == 0, result.stdout[-4000:]
    try:
        downs = check_downs(lab)
        result, _recap, load, _report = playbook_under_load(
            demo, lab, "playbooks/deploy.yml", "-e", f"deploy_version={target}",
            "-e", json.dumps({"deploy_hooks": {"before_activate": hook}, "seedops_test_seen": str(seen)}))
        assert result.returncode == 0, result.stdout[-4000:]
        assert load["all"]["failed"] == 0, load
        assert {h: n - downs[h] for h, n in check_downs(lab).items()} == {h: 1 for h in APPS}, \
            "HAProxy's checks took every host down once, while it restarted"
        lines = seen.read_text().splitlines()
        assert len(lines) == len({line.split(":")[0] for line in lines}) >= 2, lines
        for line in lines:
            assert all(pair.endswith("=up") for pair in line.split(": ", 1)[1].split()), lines
    finally:
        result, _recap = run_playbook("playbooks/reconfigure.yml", lab.inventory)
        assert result.returncode == 0, result.stdout[-4000:]


def test_together_switches_every_host_in_one_step_and_reports_the_skew(lab, demo):
    target = other(fleet_at(lab, RELEASES))
    result, recap, load, report = playbook_under_load(demo, lab, "playbooks/deploy.yml",
                                                      "-e", f"deploy_version={target}", "-e", "deploy_switch=together")
    assert result.returncode == 0, result.stdout[-4000:]
    assert {live(lab, h)[:2] for h in APPS} == {(target, target)}
    assert {r["batch"] for r in report["hosts"]} == {"all"}
    # The skew is the spread of the moments the new processes started, as each host's restart returned them.
    acted = [r["restart_times"]["acted"] for r in report["hosts"]]
    assert report["skew_s"] == round(max(acted) - min(acted), 3)
    assert f"version skew: {report['skew_s']:.3f} s" in result.stdout
    assert set(load["versions"]) == set(RELEASES), "the client met the old release, then the new one"


def test_together_takes_every_host_back_when_one_fails(lab, demo):
    start = fleet_at(lab, RELEASES)
    # A health check only app1 and app2 can pass: app3 fails its gate while the others succeed.
    health = {"url": "http://127.0.0.1:8080/version", "body_regex": '"hostname":"app[12]"', "successes": 2,
              "interval": 0.25, "timeout": 5}
    result, _recap = run_playbook("playbooks/deploy.yml", lab.inventory, "-e", f"deploy_version={other(start)}",
                                  "-e", "deploy_switch=together", "-e", json.dumps({"deploy_health": health}))
    assert result.returncode != 0
    out = flat(result.stdout)
    assert (f"app3 did not become healthy in {other(start)} (at the host, or in the load balancers' checks), so every "
            "host was switched back to the release it ran before") in out
    assert {live(lab, h)[:2] for h in APPS} == {(start, start)}
    for host in ("app1", "app2"):
        assert record_state(lab, host, other(start)) == "failed"


def test_scale_in_then_out_under_load_without_a_reload_and_without_knowing_the_version(lab, demo):
    """The fleet shrinks and grows under load. A fleet that runs two releases is refused first, naming them, before
    any change, when no version is given. scale_in.yml takes app3 out: drained, its service stopped and disabled,
    its release kept, its server deleted from the running HAProxy and from its configuration with no reload. app3 is
    then wiped back to a prepared host that never had a release, and put back in the backend by the haproxy role (as
    site.yml runs it): it joins in maintenance and takes no traffic. deploy.yml without deploy_version reads the one
    release the fleet runs and gives it to app3 alone, which takes traffic once healthy. 0 failed requests; app1 and
    app2 are never touched, and HAProxy never reloads."""
    start = fleet_at(lab, RELEASES)
    pids = {h: live(lab, h)[2] for h in ("app1", "app2")}
    worker = haproxy_worker(lab)
    # A mixed fleet: app3's live release link points at the other release (kept from an earlier deploy).
    assert lab.ssh("app3", f"sudo ln -sfn releases/{other(start)} {BASE}/current.mixed && sudo mv -T {BASE}/current.mixed "
                           f"{BASE}/current && test -d {BASE}/releases/{other(start)}").returncode == 0
    mixed, _recap = run_playbook("playbooks/deploy.yml", lab.inventory)
    lab.ssh("app3", f"sudo ln -sfn releases/{start} {BASE}/current.mixed && sudo mv -T {BASE}/current.mixed {BASE}/current")
    assert mixed.returncode != 0
    # The releases in the order the message gives them (sorted), whichever one the fleet started on.
    runs = "; ".join(f"{release} on {hosts}" for release, hosts in sorted({other(start): "app3", start: "app1, app2"}.items()))
    assert ("No deploy_version was given, so the plan follows the release the fleet runs, but the fleet runs more "
            f"than one release: {runs}. Give the version") in flat(mixed.stdout)
    assert {h: live(lab, h)[2] for h in ("app1", "app2")} == pids

    result, _recap, load, _report = playbook_under_load(demo, lab, "playbooks/scale_in.yml", "-e", "scale_in_hosts=app3")
    assert result.returncode == 0, result.stdout[-3000:]
    assert load["all"]["failed"] == 0, load["errors"]
    assert f"app3 left: its service is inactive, release {start} kept. lb1 serves from app1, app2 (2 servers in app)" in flat(
        result.stdout)
    assert set(haproxy_servers(lab)) == {"app1", "app2"}
    assert "server app3 " not in lab.ssh("lb1", "cat /etc/haproxy/haproxy.cfg").stdout
    assert haproxy_worker(lab) == worker, "the server left through the runtime API, with no reload"
    assert lab.ssh("app3", "systemctl is-active seedops-app; systemctl is-enabled seedops-app").stdout.split() == [
        "inactive", "disabled"]
    assert lab.ssh("app3", f"readlink {BASE}/current").stdout.strip() == f"releases/{start}"
    assert answering(demo["port"]) == {"app1", "app2"}

    # A new host: its unit installed and enabled (site.yml's app_service play), nothing under the base directory.
    lab.ssh("app3", f"sudo rm -rf {BASE} && sudo systemctl enable --quiet seedops-app")
    back, _recap = run_playbook("tests/integration/playbooks/lb.yml", lab.inventory)
    assert back.returncode == 0, back.stdout[-3000:]
    assert "lb1: joined app3 (in maintenance until a deploy brings them in behind its health gate); left nobody" in flat(
        back.stdout)
    assert haproxy_servers(lab)["app3"][0] == "maint" and haproxy_worker(lab) == worker
    # app3 is the canary and bakes: HAProxy counts a server that leaves maintenance as up before any check, so it
    # waits in drain for a check that passed before it takes the requests it is judged on.
    result, _recap, load, report = playbook_under_load(demo, lab, "playbooks/deploy.yml", "-e", "deploy_canary_bake=2")
    assert result.returncode == 0, result.stdout[-3000:]
    assert f"No deploy_version given: the fleet runs {start} (app1, app2); new hosts that get it: app3." in flat(
        result.stdout)
    assert re.search(r"canary pass: .* - into rotation on lb1 once a check of it passed \(waited in drain\): app3 [0-9.]+ s", flat(
        result.stdout)), flat(result.stdout)[-3000:]
    assert load["all"]["failed"] == 0, load["errors"]
    assert {h: (r["old"], r["runs"], r["result"]) for h, r in rows(report).items()} == {
        "app1": (start, start, "unchanged"), "app2": (start, start, "unchanged"), "app3": (None, start, "switched")}
    # The lock's holder named the release once the plan had read it from the fleet, and the report says so.
    assert (report["deployed_by"]["playbook"], report["deployed_by"]["version"]) == ("deploy.yml", start), report["deployed_by"]
    assert {h: live(lab, h)[2] for h in ("app1", "app2")} == pids, "the serving hosts were left alone"
    assert live(lab, "app3")[:2] == (start, start)
    assert haproxy_servers(lab)["app3"][:2] == ("ready", "up") and answering(demo["port"]) == set(APPS)
    assert haproxy_worker(lab) == worker


def test_a_host_left_drained_is_repaired_and_status_shows_the_fleet(lab, demo, app1_disabled_at_boot, tmp_path):
    start = fleet_at(lab, RELEASES)
    pids = {host: live(lab, host)[2] for host in APPS}
    # What a run killed after its drain leaves behind: app2 serves its release healthily but is drained in HAProxy;
    # app3 was left at weight 0. And someone disabled app1's service at boot: it runs, but would not after a reboot.
    drained = run_module(lab, "lb1", "seedops.deploy.lb_member", {"backend": "app", "server": "app2", "state": "drain"})
    assert drained["_status"] == "CHANGED", drained
    weightless = run_module(lab, "lb1", "seedops.deploy.lb_member", {"backend": "app", "server": "app3", "weight": 0})
    assert weightless["_status"] == "CHANGED", weightless
    status_file = tmp_path / "fleet.json"
    result, _recap = run_playbook("playbooks/status.yml", lab.inventory, "-e", f"deploy_status_file={status_file}")
    assert result.returncode == 0, result.stdout[-3000:]
    assert "OUT OF ROTATION" in result.stdout and f"fleet: {start} on app1, app2, app3" in result.stdout
    status = {row["host"]: row for row in json.loads(status_file.read_text())["hosts"]}
    assert {h: (r["release"], r["lb"]["admin"], r["lb"]["weight"], r["lb"]["in_rotation"], r["health"])
            for h, r in status.items()} == {"app1": (start, "ready", 100, True, "healthy, DISABLED AT BOOT"),
                                            "app2": (start, "drain", 100, False, "healthy"),
                                            "app3": (start, "ready", 0, False, "healthy")}
    # The last deploy as the host's release records tell it (which one depends on what ran before this test).
    last = status["app1"]["last"]
    assert last["release"] in RELEASES and last["result"] in ("went live", "failed"), last
    assert "@" in last["who"] and last["when"].startswith("20"), last

    result, recap, load, report = playbook_under_load(demo, lab, "playbooks/deploy.yml", "-e", f"deploy_version={start}")
    assert result.returncode == 0, result.stdout[-4000:]
    assert load["all"]["failed"] == 0, load["errors"]
    out = flat(result.stdout)
    assert f"app2: repair in batch 1 - runs {start} healthily but is in drain in the load balancer" in out
    assert f"app3: repair in batch 2 - runs {start} healthily but is at weight 0 in the load balancer" in out
    by_host = rows(report)
    assert {h: (r["action"], r["result"], r["rotation"]) for h, r in by_host.items()} == {
        "app1": ("unchanged", "unchanged", "ready/up"), "app2": ("repair", "repaired", "ready/up"),
        "app3": ("repair", "repaired", "ready/up")}
    assert "repaired: app2" in result.stdout and "repaired: app3" in result.stdout
    # The deploy leaves the boot setting to the app_service role, and says what it measured.
    warnings = [line for line in result.stdout.splitlines() if "WARNING" in line]
    assert warnings == ["WARNING: app1: seedops-app is disabled at boot, so it would not come back after a reboot; "
                        "enable it (systemctl enable seedops-app, or rerun the app_service role)"], warnings
    assert by_host["app1"]["not_at_boot"] == "disabled" and by_host["app2"]["not_at_boot"] is None
    assert lb_state(lab, "app2") == ("ready", "up")
    assert run_module(lab, "lb1", "seedops.deploy.lb_info", {"backend": "app"})["servers"]["app3"]["weight"] == 100
    assert {host: live(lab, host)[2] for host in APPS} == pids, "a repair restarts nothing"
    assert answering(demo["port"]) == set(APPS)


def test_a_dead_runs_lock_expires_and_a_live_one_is_taken_over_only_when_asked(lab, demo):
    start = fleet_at(lab, RELEASES)

    def hold(run_id, ttl):
        r = run_module(lab, "lb1", "seedops.deploy.fleet_lock",
                       {"path": LOCK, "run_id": run_id, "ttl": ttl, "holder": {"playbook": "deploy.yml", "version": "9"}})
        assert r["_status"] in ("CHANGED", "SUCCESS") and r["held"], r

    # A lease whose run died: it expires, and the next run takes it and says so.
    hold("dead-run", 1)
    time.sleep(1.5)
    result, _recap = run_playbook("playbooks/deploy.yml", lab.inventory, "-e", f"deploy_version={start}")
    assert result.returncode == 0, result.stdout[-3000:]
    assert "version 9" in result.stderr and "expired" in result.stderr, result.stderr[-2000:]
    assert lock_record(lab) is None
    # A live one: refused, then taken over with deploy_lock_break, which the output says.
    hold("live-run", 600)
    refused, _recap = run_playbook("playbooks/deploy.yml", lab.inventory, "-e", f"deploy_version={start}")
    assert refused.returncode != 0 and "is held by run live-run" in flat(refused.stdout)
    # The ansible command that took it has ended, and this controller can tell: the refusal says so.
    taker = lock_record(lab)["holder"]["controller_process"].split(" ")[2]
    assert (f"That run has ended: its controller process (pid {taker} on this controller) is gone and will not renew "
            "the lease." in flat(refused.stdout)), flat(refused.stdout)[-3000:]
    # Its report reads no host and says why it stopped.
    report = refused.stdout[refused.stdout.index("SEEDOPS.DEPLOY REPORT"):]
    assert "no host was read" in report and "old -> new" not in report, report
    assert re.search(r"stopped before it changed anything: .*is held by run live-run", report), report
    assert lock_record(lab)["run_id"] == "live-run", "a refused run leaves the holder's lock alone"
    # site.yml stops before it prepares or reconfigures anything, not at its deploy step.
    site, _recap = run_playbook("playbooks/site.yml", lab.inventory, "-e", f"deploy_version={start}")
    assert site.returncode != 0 and "is held by run live-run" in flat(site.stdout), site.stdout[-3000:]
    assert "PLAY [Preflight every host]" not in site.stdout and "PLAY [Set up the service" not in site.stdout
    assert lock_record(lab)["run_id"] == "live-run"
    # Once it can go on, site.yml holds the lock from after it prepared the hosts: killed in its load-balancer play
    # (after lb_servers on lb1), it leaves a lease of its own run, taken before that play. (Preparing runs preflight
    # alone here: the other roles have nothing to do on this fleet, and the lock is taken after them either way.)
    run_module(lab, "lb1", "seedops.deploy.fleet_lock", {"path": LOCK, "run_id": "live-run", "state": "released"})
    killed, _recap = run_playbook("playbooks/site.yml", lab.inventory, "-e", f"deploy_version={start}",
                                  "-e", '{"prepare_roles": []}', kill_at="lb_servers@lb1")
    assert killed.returncode == -9, (killed.returncode, killed.stdout[-2000:])
    assert "PLAY [Put the load balancer in front of the app hosts]" in killed.stdout and "PLAY [Plan" not in killed.stdout
    site_lease = lock_record(lab)
    assert site_lease and site_lease["holder"]["playbook"] == "site.yml", site_lease
    broken, _recap = run_playbook("playbooks/deploy.yml", lab.inventory, "-e", f"deploy_version={start}",
                                  "-e", "deploy_lock_break=true")
    assert broken.returncode == 0, broken.stdout[-3000:]
    assert site_lease["run_id"] in broken.stderr or site_lease["run_id"] in broken.stdout, broken.stderr[-2000:]
    assert lock_record(lab) is None


def test_one_deploy_at_a_time_the_second_fails_at_once_naming_the_holder_or_waits(lab, demo):
    start = fleet_at(lab, RELEASES)
    target = other(start)
    first = {}
    runner = threading.Thread(target=lambda: first.update(out=run_playbook(
        "playbooks/deploy.yml", lab.inventory, "-e", f"deploy_version={target}")))
    runner.start()
    try:
        deadline = time.monotonic() + 120
        while lock_record(lab) is None and time.monotonic() < deadline:
            time.sleep(0.2)
        holder = lock_record(lab)
        assert holder and holder["holder"]["playbook"] == "deploy.yml" and holder["holder"]["version"] == target, holder
        # The lease names the first run's ansible-playbook process, which runs.
        with open(f"/proc/{holder['holder']['controller_process'].split(' ')[2]}/cmdline", "rb") as f:
            assert b"ansible-playbook" in f.read()
        # A second deploy while the first holds the lock: refused at once, naming the holder; it changes nothing.
        second, recap = run_playbook("playbooks/deploy.yml", lab.inventory, "-e", f"deploy_version={start}")
        assert second.returncode != 0
        out = flat(second.stdout)
        assert f"the fleet deploy lock {LOCK} is held by run {holder['run_id']}" in out, out[-3000:]
        assert f"playbook deploy.yml, version {target}" in out and "deploy_lock_break=true" in out
        # That run still runs, so nothing more is said; the holder's process is recorded, not shown in the message.
        assert "That run has ended" not in out and f"playbook deploy.yml, version {target}), since" in out, out[-3000:]
        assert all(recap[h]["changed"] == 0 for h in APPS), recap
        # A third one that may wait goes on once the first is done (and finds nothing left to do).
        third, recap = run_playbook("playbooks/deploy.yml", lab.inventory, "-e", f"deploy_version={target}",
                                    "-e", "deploy_lock_wait=300")
    finally:
        runner.join(900)
    assert first["out"][0].returncode == 0, first["out"][0].stdout[-3000:]
    assert third.returncode == 0, third.stdout[-3000:]
    assert all(recap[h]["changed"] == 0 for h in APPS), recap
    assert {live(lab, h)[:2] for h in APPS} == {(target, target)}
    assert lock_record(lab) is None, "the last run gave the lock back"


# What AWX gives every job of the "Deploy" job template (awx_meta_vars; tower_* too), as extra vars and environment.
AWX_JOB = {"awx_job_id": 4242, "awx_user_name": "alice", "awx_job_template_name": "Deploy", "awx_job_launch_type": "manual",
           "tower_job_id": 4242, "tower_user_name": "alice", "tower_job_template_name": "Deploy"}


def awx_job(lab, root, ident, extravars, inventory=None, wait=True, image=None):
    """Run awx/project/deploy.yml the way AWX runs a job: ansible-runner with a private data directory of its own (the
    example project copied in, its ansible.cfg in force), the survey's defaults plus the answers in `extravars`, the
    job's variables and environment. With `image`, inside that execution environment, as AWX does: the job's
    inventory and the lab's known hosts in the data directory, the SSH key given to ssh-agent as a machine credential
    is, the collection the image's own. Without, the collection comes from the checkout's .venv/collections.
    Returns the ansible_runner Runner (or (thread, runner))."""
    import ansible_runner  # pylint: disable=import-outside-toplevel

    data = root / f"job-{ident}"
    shutil.copytree(os.path.join(REPO_ROOT, "awx", "project"), data / "project")
    with open(os.path.join(REPO_ROOT, "awx", "surveys", "deploy.json"), encoding="utf-8") as f:
        answers = {q["variable"]: q["default"] for q in json.load(f)["spec"]}
    kwargs = {"private_data_dir": str(data), "playbook": "deploy.yml",
              "extravars": {**answers, **AWX_JOB, "awx_job_id": ident, "tower_job_id": ident, **extravars},
              "ident": str(ident), "quiet": True}
    if image:
        with open(inventory or lab.inventory, encoding="utf-8") as f:
            hosts = yaml.safe_load(f)
        settings = hosts["all"]["vars"]
        settings.pop("ansible_ssh_private_key_file")
        # The key is ssh-agent's, which IdentitiesOnly would leave unused.
        settings["ansible_ssh_common_args"] = settings["ansible_ssh_common_args"].replace(
            os.path.join(lab.state_dir, "known_hosts"), "/runner/known_hosts").replace(" -o IdentitiesOnly=yes", "")
        assert "/runner/known_hosts" in settings["ansible_ssh_common_args"], settings
        shutil.copytree(os.path.join(REPO_ROOT, "tests", "lab", "group_vars"), data / "inventory" / "group_vars")
        (data / "inventory" / "hosts.yml").write_text(yaml.safe_dump(hosts))
        shutil.copy(os.path.join(lab.state_dir, "known_hosts"), data / "known_hosts")
        with open(os.path.join(lab.state_dir, "id_ed25519"), encoding="utf-8") as f:
            kwargs["ssh_key"] = f.read()
        # The lab's hosts are reached on 127.0.0.1: the job's container shares the machine's network.
        kwargs.update(process_isolation=True, process_isolation_executable="docker", container_image=image,
                      container_options=["--network=host"], envvars={"JOB_ID": str(ident)})
    else:
        kwargs.update(inventory=inventory or lab.inventory, envvars={
            "PATH": VENV_BIN + os.pathsep + os.environ["PATH"], "JOB_ID": str(ident),
            "ANSIBLE_CONFIG": str(data / "project" / "ansible.cfg"),
            "ANSIBLE_COLLECTIONS_PATH": os.path.join(REPO_ROOT, ".venv", "collections")})
    return ansible_runner.run(**kwargs) if wait else ansible_runner.run_async(**kwargs)


def job_stats(job):
    """What the job's set_stats left for the next node of an AWX workflow, as AWX reads it (the stats event)."""
    (stats,) = [e for e in job.events if e["event"] == "playbook_on_stats"]
    return stats["event_data"].get("artifact_data") or {}


def test_an_awx_job_in_the_execution_environment_deploys_under_load_and_leaves_its_report_and_stats(
        lab, demo, execution_environment, tmp_path):
    """The issue's "done when": a job with the deploy survey's answers, run by ansible-runner inside the collection's
    execution environment (the image ansible-builder made from awx/ee/execution-environment.yml)."""
    start = fleet_at(lab, RELEASES)
    target = other(start)
    load = load_client().Load(f"http://127.0.0.1:{demo['port']}/", RPS, 0.1, "1s", 15)
    # The survey's answers as AWX passes them: text and numbers, the batches as one text.
    answers = {"deploy_version": target, "deploy_serial": "1, 100%"}
    job, summary = load.around(lambda: awx_job(lab, tmp_path, 4242, answers, image=execution_environment))
    stdout = job.stdout.read()
    assert (job.status, job.rc) == ("successful", 0), stdout[-4000:]
    assert summary["all"]["failed"] == 0, summary["errors"]
    assert "DEPLOY REPORT (deploy.yml" in stdout, "the report's table is in the job's output: " + stdout[-2000:]
    # It ran inside the image: the job's command is the container engine's, with the image named.
    assert job.config.command[:2] == ["docker", "run"] and execution_environment in job.config.command, \
        job.config.command
    # The stats: what verify measured, and where the report is - in the job's artifacts directory, as the job's
    # container sees it (/runner is the private data directory).
    stats = job_stats(job)["seedops_deploy"]
    assert stats["release"] == target and stats["result"] == "complete", stats
    assert stats["runs"] == {target: APPS} and stats["hosts"] == APPS, stats
    assert stats["report"].startswith("/runner/artifacts/4242/deploy-reports/"), stats
    report_file = os.path.join(job.config.artifact_dir, os.path.relpath(stats["report"], "/runner/artifacts/4242"))
    with open(report_file, encoding="utf-8") as f:
        report = json.load(f)
    assert {r["host"]: (r["result"], r["batch"]) for r in report["hosts"]} == {
        "app1": ("switched", 1), "app2": ("switched", 2), "app3": ("switched", 2)}, "the survey's batches: 1, 100%"
    assert (report["deployed_by"]["job_id"], report["deployed_by"]["user"]) == ("4242", "alice")
    # The hosts' release records name the job that switched them, and the user who launched it (the release itself
    # was staged by an earlier run: deployed_by keeps that one).
    infos = run_module(lab, "app", "seedops.deploy.release_info", {"path": BASE}, hosts=APPS)
    for host in APPS:
        (record,) = [r for r in infos[host]["releases"] if r["id"] == target]
        assert (record["activated_by"]["job_id"], record["activated_by"]["user"]) == ("4242", "alice"), record
    assert {live(lab, h)[:2] for h in APPS} == {(target, target)}


def test_a_sliced_awx_deploy_job_is_refused_in_every_slice_before_any_change(lab, demo, tmp_path):
    """AWX job slicing: one job per slice, all at once, each with every Nth host by name (app1, app3, repo1 and app2,
    lb1 here), under a workflow job named after the job template. Each slice is refused before it changes anything."""
    start = fleet_at(lab, RELEASES)
    with open(lab.inventory, encoding="utf-8") as f:
        full = yaml.safe_load(f)
    names = sorted(h for group in full["all"]["children"].values() for h in (group.get("hosts") or {}))
    jobs = []
    for number in (1, 2):
        mine = set(names[number - 1::2])
        inventory = copy.deepcopy(full)
        for group in inventory["all"]["children"].values():
            group["hosts"] = {h: v for h, v in (group.get("hosts") or {}).items() if h in mine}
        folder = tmp_path / f"slice{number}"
        folder.mkdir()
        (folder / "inventory.yml").write_text(yaml.safe_dump(inventory))
        os.symlink(os.path.join(REPO_ROOT, "tests", "lab", "group_vars"), folder / "group_vars")
        sliced = {"deploy_version": other(start), "awx_workflow_job_id": 4300, "awx_workflow_job_name": "Deploy",
                  "tower_workflow_job_id": 4300, "tower_workflow_job_name": "Deploy"}
        jobs.append(awx_job(lab, tmp_path, 4300 + number, sliced, inventory=str(folder / "inventory.yml"), wait=False))
    for thread, _job in jobs:
        thread.join(600)
    for _thread, job in jobs:
        assert job.status == "failed", job.stdout.read()[-3000:]
        failed = [flat(e["event_data"]["res"].get("msg", "")) for e in job.events if e["event"] == "runner_on_failed"]
        assert failed and all(m.startswith('This job is one slice of the AWX job template "Deploy", which has job '
                                           "slicing on (workflow job 4300)") and "Nothing was changed." in m
                              for m in failed), failed
        assert not any(job.stats["changed"].values()), job.stats
    assert {live(lab, h)[:2] for h in APPS} == {(start, start)}
    assert {server: state[:2] for server, state in haproxy_servers(lab).items()} == {h: ("ready", "up") for h in APPS}
    assert lock_record(lab) is None, "no slice took the lock"


@pytest.mark.parametrize("point", list(KILLED))
def test_a_rerun_after_the_controller_was_killed_ends_with_every_host_on_the_release_and_in_rotation(lab, demo, point):
    kill_at, action, result_name = KILLED[point]
    target = other(fleet_at(lab, RELEASES))
    load = load_client().Load(f"http://127.0.0.1:{demo['port']}/", RPS, 0.1, "1s", 15)
    env = {"SEEDOPS_DEPLOY_REPORT_DIR": str(demo["reports"])}
    # The killed run's health gate is long (10 successes, 0.5 s apart), so +2 s lands inside it; its lease is short.
    slow = '{"deploy_health": {"url": "http://127.0.0.1:8080/healthz", "successes": 10, "interval": 0.5, "timeout": 60}}'
    runs = {}

    def work():
        runs["killed"] = run_playbook("playbooks/deploy.yml", lab.inventory, "-e", f"deploy_version={target}",
                                      "-e", slow, "-e", "deploy_lock_ttl=8", env=env, kill_at=kill_at)
        runs["left"] = haproxy_servers(lab)
        if point == "after the switch":
            run_module(lab, "app1", "seedops.deploy.release", {"path": BASE, "release_id": target, "state": "active"})
        # The rerun: waits out the dead run's lease (expired within seconds), then repairs and goes on.
        runs["rerun"] = run_playbook("playbooks/deploy.yml", lab.inventory, "-e", f"deploy_version={target}",
                                     "-e", "deploy_lock_wait=60", env=env)
        return runs["rerun"]

    (rerun, recap), summary = load.around(work)
    killed = runs["killed"][0]
    assert killed.returncode == -9, (killed.returncode, killed.stdout[-2000:], killed.stderr[-2000:])
    if point in ("after the drain", "after the switch"):
        assert runs["left"]["app1"][0] == "drain", runs["left"]
    assert rerun.returncode == 0, rerun.stdout[-4000:] + rerun.stderr[-2000:]
    assert "expired" in rerun.stderr, "the rerun took the dead run's lease once it expired: " + rerun.stderr[-1500:]
    assert summary["all"]["failed"] == 0, summary["errors"]
    with open(sorted(glob.glob(os.path.join(demo["reports"], "deploy-*.json")))[-1], encoding="utf-8") as f:
        report = rows(json.load(f))
    app1 = report["app1"]
    if action is None:
        # Killed inside staged_restart: app1 restarted already (left drained: repair) or not yet (finish).
        assert app1["action"] in ("repair", "finish"), app1
        assert app1["result"] == {"repair": "repaired", "finish": "finished"}[app1["action"]], app1
    else:
        assert (app1["action"], app1["result"]) == (action, result_name), app1
    if app1["result"] in ("repaired", "finished"):
        assert f"{app1['result']}: app1 - " in rerun.stdout, rerun.stdout[-3000:]
    assert {h: (r["runs"], r["rotation"]) for h, r in report.items()} == {h: (target, "ready/up") for h in APPS}
    assert {live(lab, h)[:2] for h in APPS} == {(target, target)}
    assert haproxy_servers(lab) == {h: ("ready", "up", 100) for h in APPS}
    assert lock_record(lab) is None


def test_a_haproxy_reload_in_the_middle_of_a_rollout_keeps_the_drained_server_drained(lab, demo):
    target = other(fleet_at(lab, RELEASES))
    slow = '{"deploy_health": {"url": "http://127.0.0.1:8080/healthz", "successes": 10, "interval": 0.5, "timeout": 60}}'
    seen = {}

    def reload_while_app1_is_drained():
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and haproxy_servers(lab).get("app1", ("",))[0] != "drain":
            time.sleep(0.2)
        seen["before"] = haproxy_servers(lab)
        seen["reload"] = lab.ssh("lb1", "sudo systemctl reload haproxy")
        seen["after"] = haproxy_servers(lab)

    result, _recap, load, report = playbook_under_load(demo, lab, "playbooks/deploy.yml", "-e", f"deploy_version={target}",
                                                       "-e", slow, during=reload_while_app1_is_drained)
    assert result.returncode == 0, result.stdout[-4000:]
    assert seen["before"]["app1"][0] == "drain" and seen["reload"].returncode == 0, seen
    assert seen["after"]["app1"][0] == "drain", f"the reload put app1 back into rotation mid-rollout: {seen}"
    assert load["all"]["failed"] == 0, load["errors"]
    assert {h: (r["runs"], r["rotation"]) for h, r in rows(report).items()} == {h: (target, "ready/up") for h in APPS}
    state = lab.ssh("lb1", "sudo cat /var/lib/haproxy/server-state").stdout
    assert state.startswith("1\n") and " app1 " in state, state


def test_a_release_that_fails_real_traffic_is_stopped_at_the_canary_and_a_good_one_passes(lab, demo):
    """4.0.0 answers /healthz 200 and every other request 500: the health gate lets it through, the canary's
    traffic does not; a smoke test that fails after the canary batch takes it back too. A good release passes the
    same analysis and its smoke tests, and every hook runs in order."""
    start = fleet_at(lab, RELEASES)
    good_release = other(start)
    pids = {host: live(lab, host)[2] for host in APPS}
    # Staged with the peer fan-out: no host holds 4.0.0, two seeds fetch it from the repository, app3 from a seed.
    package = "seedops-app-4.0.0-linux-amd64.tar.gz"
    with open(os.path.join(REPO_ROOT, "tests", "fixtures", "app", "dist", "4.0.0", "SHA256SUMS"), encoding="utf-8") as f:
        digest = next(line.split()[0] for line in f if line.split()[-1] == package)
    for host in APPS:
        lab.ssh(host, f"sudo rm -rf {BASE}/releases/4.0.0 {BASE}/store/sha256/{digest}")
    served_before = int(lab.ssh("repo1", "sudo cat /var/log/nginx/access.log | wc -l").stdout)
    result, _recap, load, report = playbook_under_load(demo, lab, "playbooks/deploy.yml", "-e", "deploy_version=4.0.0",
                                                       "-e", "deploy_canary_bake=20", "-e", "deploy_fanout=true")
    served = lab.ssh("repo1", f"sudo tail -n +{served_before + 1} /var/log/nginx/access.log").stdout.splitlines()
    assert len([line for line in served if f"GET /seedops-app/4.0.0/{package} " in line and '" 200 ' in line]) == 2, served
    assert {h: lab.ssh(h, f"sudo sha256sum {BASE}/store/sha256/{digest}").stdout.split()[:1] for h in APPS} == {
        h: [digest] for h in APPS}
    assert "wave 2: app3" in result.stdout and not any(
        lab.ssh(h, "ls /run/seedops-artifact-share-8099.pid").returncode == 0 for h in APPS), "every share server stopped"
    assert result.returncode != 0
    out = flat(result.stdout)
    assert "The canary app1 failed its judgement after" in out, out[-3000:]
    assert "app1: error ratio 100.0%" in out or "requests failed - its error ratio is above 1.0% with 99% confidence" in out
    canary = report["canary"]
    assert (canary["verdict"], canary["early"], canary["canary"]["servers"]) == ("fail", True, ["app1"]), canary
    assert canary["baseline"]["servers"] == ["app2", "app3"] and canary["baseline"]["errors"] == 0, canary
    seen = canary["servers"]["app1"]
    assert seen["requests"] >= 3 and seen["errors"] == seen["requests"], seen
    assert "canary: FAIL after" in result.stdout and "traffic app1 (canary)" in result.stdout
    by_host = rows(report)
    assert (by_host["app1"]["result"], by_host["app1"]["runs"]) == ("rolled back", start), by_host["app1"]
    assert {h: by_host[h]["result"] for h in ("app2", "app3")} == {"app2": "not reached", "app3": "not reached"}
    assert {live(lab, h)[:2] for h in APPS} == {(start, start)}
    assert {h: live(lab, h)[2] for h in ("app2", "app3")} == {h: pids[h] for h in ("app2", "app3")}
    assert record_state(lab, "app1", "4.0.0") == "failed"
    assert haproxy_servers(lab) == {h: ("ready", "up", 100) for h in APPS}
    # What the clients saw: only the canary's 500s, while it served; no 4.0.0 answer ever succeeded.
    assert set(load["errors"]) <= {"HTTP 500"} and "4.0.0" not in load["versions"], load["errors"]
    print("canary stopped 4.0.0: %d of %d requests failed" % (load["all"]["failed"], load["all"]["sent"]))
    assert lock_record(lab) is None

    # Smoke tests through the load balancer: one that fails after the canary batch takes it back too.
    hook = os.path.join(REPO_ROOT, "tests", "integration", "playbooks", "hooks", "record.yml")
    points = ("before_stage", "before_activate", "after_activate", "after_deploy", "on_failure")
    hooks = json.dumps({"deploy_hooks": {name: hook for name in points}})
    for host in APPS:
        lab.ssh(host, "sudo rm -f /var/tmp/seedops-hooks.log")
    never = json.dumps({"deploy_smoke_checks": [{"path": "/version", "json": {"version": "no-such-version"}}]})
    result, _recap = run_playbook("playbooks/deploy.yml", lab.inventory, "-e", "deploy_version=4.0.0", "-e", never,
                                  "-e", hooks)
    assert result.returncode != 0
    out = flat(result.stdout)
    assert "Smoke tests failed after batch 1: http://127.0.0.1:80/version: version is" in out, out[-3000:]
    assert 'not "no-such-version"' in out and f"app1 is back on {start}" in out
    assert {live(lab, h)[:2] for h in APPS} == {(start, start)}
    # The hooks that ran: every host before its stage; app1 before its batch, and on_failure when it stopped.
    logs = {h: lab.ssh(h, "cat /var/tmp/seedops-hooks.log").stdout.strip().split("\n") for h in APPS}
    assert logs == {"app1": ["before_stage 4.0.0", "before_activate 4.0.0", "on_failure 4.0.0"],
                    "app2": ["before_stage 4.0.0"], "app3": ["before_stage 4.0.0"]}, logs

    # A good release passes the same analysis in two traffic-weight steps (10%, then 50% of the traffic), each later
    # batch is judged too, its smoke tests pass, and every hook runs in order.
    for host in APPS:
        lab.ssh(host, "sudo rm -f /var/tmp/seedops-hooks.log")
    good = json.dumps({"deploy_smoke_checks": [{"path": "/healthz", "contains": "ok"}, {"path": "/", "status": 200}],
                       "deploy_canary_weights": [10, 50], "deploy_batch_bake": 3, "deploy_canary_min_requests": 10})
    result, _recap, load, report = playbook_under_load(demo, lab, "playbooks/deploy.yml", "-e",
                                                       f"deploy_version={good_release}", "-e", "deploy_canary_bake=6",
                                                       "-e", good, "-e", hooks)
    assert result.returncode == 0, result.stdout[-4000:]
    assert report["canary"]["verdict"] == "pass" and not report["canary"]["early"], report["canary"]
    steps = report["canary"]["steps"]
    # Two others at weight 100: 10% is weight 22 (9.9%), 50% is weight 200; the share served is what HAProxy counted.
    assert [(s["share"], s["weight"], s["verdict"]) for s in steps] == [(10.0, 22, "pass"), (50.0, 200, "pass")], steps
    assert 4 <= steps[0]["seen_share"] <= 18 and 38 <= steps[1]["seen_share"] <= 62, steps
    assert [(j["batch"], j["verdict"], j["hosts"]) for j in report["analysis"][1:]] == [
        (2, "pass", ["app2"]), (3, "pass", ["app3"])], report["analysis"]
    assert report["analysis"][1]["baseline"]["servers"] == ["app3"] and report["analysis"][2]["baseline"]["servers"] == []
    assert "step 10.0% (weight 22, expected 9.9%): pass" in result.stdout and "batch 3: PASS after" in result.stdout
    assert haproxy_servers(lab) == {h: ("ready", "up", 100) for h in APPS}, "the canary has its own weight back"
    assert load["all"]["failed"] == 0, load["errors"]
    assert {h: r["runs"] for h, r in rows(report).items()} == {h: good_release for h in APPS}
    for host in APPS:
        assert lab.ssh(host, "cat /var/tmp/seedops-hooks.log").stdout.split() == [
            step for point in ("before_stage", "before_activate", "after_activate", "after_deploy")
            for step in (point, good_release)]


def test_a_platform_without_a_build_fails_before_any_change(lab, demo):
    pids = {host: live(lab, host)[2] for host in APPS}
    result, _recap = run_playbook("playbooks/deploy.yml", lab.inventory, "-e", "deploy_version=1.0.0",
                                  "-e", '{"deploy_artifact_name": "seedops-app-1.0.0-plan9-mips.tar.gz"}')
    assert result.returncode != 0
    out = flat(result.stdout)
    assert "No build of seedops-app 1.0.0 for app1 (linux/amd64: seedops-app-1.0.0-plan9-mips.tar.gz)" in out
    assert "Nothing was changed" in out
    assert {host: live(lab, host)[2] for host in APPS} == pids


def test_a_host_that_cannot_run_the_build_stops_the_deploy_before_any_change_and_the_report_keeps_the_table(
        lab, demo, tmp_path):
    """The dev/prod consistency check: the build record that playbooks/build.yml publishes says what the build
    requires (here an environment key the lab's hosts lack); deploy_requires adds a Java the hosts do not have."""
    publish = "/srv/artifacts/seedops-app/9.9.3"
    record = f"{lab.host('repo1')['address']}/seedops-app/9.9.3/seedops-app-9.9.3.build.json"
    try:
        built, _recap = run_playbook("playbooks/build.yml", lab.inventory, "-e", "build_app=seedops-app",
                                     "-e", f"build_source={os.path.join(REPO_ROOT, 'tests', 'fixtures', 'app')}",
                                     "-e", "build_version=9.9.3", "-e", f"build_output_dir={tmp_path}",
                                     "-e", '{"build_requires_env": ["API_TOKEN", "SEEDOPS_DB_URL"]}',
                                     "-e", "build_publish_host=repo1", "-e", f"build_publish_dir={publish}")
        assert built.returncode == 0, built.stdout[-3000:]
        pids = {host: live(lab, host)[2] for host in APPS}
        reports = str(tmp_path / "reports")
        refused, _recap = run_playbook("playbooks/deploy.yml", lab.inventory, "-e", "deploy_version=9.9.3",
                                       "-e", f"deploy_build_record_url=http://{record}",
                                       "-e", '{"deploy_requires": {"java": 99}}', env={"SEEDOPS_DEPLOY_REPORT_DIR": reports})
        assert refused.returncode != 0
        out = flat(refused)
        assert "3 host(s) cannot run seedops-app 9.9.3:" in out and "Nothing was changed" in out
        for host in APPS:
            assert f"{host}: its service environment lacks SEEDOPS_DB_URL" in out
            assert f"{host}: needs Java 99 or later, has" in out
            assert lab.ssh(host, f"test -e {BASE}/releases/9.9.3").returncode != 0
        assert "needs: linux/amd64; libc any; java >= 99; env API_TOKEN, SEEDOPS_DB_URL" in out
        assert {host: live(lab, host)[2] for host in APPS} == pids
        with open(os.path.join(reports, "latest.json"), encoding="utf-8") as f:
            report = json.load(f)
        assert [(row["host"], row["ok"], row["env"]) for row in report["fit"]["rows"]] == [
            (host, False, "1 of 2 keys") for host in APPS]
        assert "the build cannot run on every host (nothing was changed):" in out

        # What the hosts have is enough once the requirement is only what they have: the plan goes on (check mode).
        fits, _recap = run_playbook("playbooks/deploy.yml", lab.inventory, "--check", "-e", "deploy_version=9.9.3",
                                    "-e", f"deploy_build_record_url=http://{record}",
                                    "-e", '{"deploy_requires": {"env": ["API_TOKEN"]}}')
        assert fits.returncode == 0, fits.stdout[-3000:]
        assert "fit: every host can run the build (needs: linux/amd64; libc any; java -; env API_TOKEN)" in flat(fits)
        assert {host: live(lab, host)[2] for host in APPS} == pids
    finally:
        lab.ssh("repo1", f"sudo rm -rf {publish}")


def test_a_version_missing_from_the_repository_fails_before_any_change(lab, demo):
    pids = {host: live(lab, host)[2] for host in APPS}
    result, _recap = run_playbook("playbooks/deploy.yml", lab.inventory, "-e", "deploy_version=9.9.9",
                                  env={"ANSIBLE_SHOW_CUSTOM_STATS": "1"})
    assert result.returncode != 0
    out = flat(result.stdout)
    assert "Cannot fetch the checksum list of seedops-app 9.9.9:" in out and "9.9.9/SHA256SUMS answered:" in out
    # The read's fetch failed, so the plan fetched the list again and reports that answer.
    assert "ok: [app1]" in task_results(result.stdout, "Plan - fetch the checksum lists once"), out[-3000:]
    assert "404" in out and "Nothing was changed" in out
    # The report says the run stopped before a plan: every host read, none given a release or called unchanged.
    table = flat(result.stdout.split("DEPLOY REPORT", 1)[-1].split("CUSTOM STATS:", 1)[0])
    assert table.count("no plan") == 3 and table.count("-> -") == 3 and "unchanged" not in table, table
    assert "stopped before a plan, so nothing was changed: Cannot fetch the checksum list of seedops-app 9.9.9" in table
    # An AWX workflow's failure path learns that the run stopped, and why (set_stats seedops_deploy), and nothing it
    # did not measure.
    stats = flat(result.stdout.split("CUSTOM STATS:", 1)[-1])
    assert "seedops_deploy" in stats and "result: stopped" in stats and "release: 9.9.9" in stats, stats
    assert "message: 'Cannot fetch the checksum list of seedops-app 9.9.9" in stats, stats
    assert "runs: {}" in stats and "unverified: - app1 - app2 - app3" in stats, stats
    assert {host: live(lab, host)[2] for host in APPS} == pids
    for host in APPS:
        assert lab.ssh(host, f"test -e {BASE}/releases/9.9.9").returncode != 0


def test_beside_a_rolling_deploy_flips_each_host_to_its_new_instance_and_a_broken_one_never_takes_traffic(
        lab, demo, beside):
    # Moved in: one instance per host on 8080, the unit's port not in the environment file, two servers per host.
    target = other(beside)
    before = {}
    for host in APPS:
        state, enabled, version, pid = instance(lab, host, 8080)
        assert (state, enabled, version, live_port(lab, host)) == ("active", "enabled", beside, 8080)
        assert lab.ssh(host, "systemctl is-active seedops-app").stdout.strip() == "inactive"
        assert "PORT=" not in lab.ssh(host, "sudo cat /etc/seedops-app/env").stdout
        before[host] = pid
    assert servers(lab) == {**{f"{h}-8080": ("ready", "up") for h in APPS}, **{f"{h}-8081": ("maint", "down") for h in APPS}}

    # The canary bakes: its old instance keeps running (off at boot) until the bake passed, then stops.
    result, _recap, load, report = playbook_under_load(demo, lab, "playbooks/deploy.yml",
                                                       "-e", f"deploy_version={target}", "-e", "deploy_canary_bake=3",
                                                       "-e", BESIDE)
    assert result.returncode == 0, result.stdout[-4000:]
    assert load["all"]["failed"] == 0, load
    # Every host's new instance starts, and passes the load balancer's checks, before the first batch flips.
    assert "app1: switch in batch 1 (start beside on 8081 ahead of the batches, then flip)" in flat(result.stdout)
    assert report["canary"]["verdict"] == "pass", report["canary"]
    # Each batch only flips: every old instance keeps running, its server draining, until the last batch flipped,
    # then all stop at once (retire.yml).
    kept = task_results(result.stdout, "Activate - stop the old instance, kept running")
    assert "changed" not in kept, result.stdout[-4000:]
    # The canary's batch, which bakes, runs activate.yml (above); the next ones, which nothing checks after their
    # flip, load only flip_batch.yml: app2 flips there, in one call on lb1 (the first flip after flip_batch.yml's
    # first step; flip.yml runs the same call for a batch that bakes).
    after = result.stdout.split("Flip batch - run the batch the plan made", 1)
    assert len(after) == 2, result.stdout[-4000:]
    batch = task_results(after[1], "Flip - move the batch's traffic to its new instances")
    assert re.search(r"changed: \[app2 -> lb1[^]]*\] => \(item=app2-8081 on lb1\)", batch), batch
    assert "skipping: [app1]" in task_results(result.stdout, "Flip one batch of hosts started ahead")
    retired = task_results(result.stdout, "Retire - stop the old instances")
    assert all(f"changed: [{host}" in retired for host in APPS), result.stdout[-4000:]
    last_flip = max(row["restart_times"]["flipped"] for row in report["hosts"])
    for host in APPS:
        assert stopped_at(lab, host, 8080) > last_flip, f"{host}'s old instance stopped before the last flip"
    for host in APPS:
        # The new release runs as a second process on the other port; the old one is stopped and off at boot.
        state, enabled, version, pid = instance(lab, host, 8081)
        assert (state, enabled, version, live_port(lab, host)) == ("active", "enabled", target, 8081)
        assert pid != before[host]
        assert instance(lab, host, 8080)[:2] == ("inactive", "disabled")
        assert live(lab, host)[0] == target
    assert servers(lab) == {**{f"{h}-8081": ("ready", "up") for h in APPS}, **{f"{h}-8080": ("maint", "down") for h in APPS}}
    for row in report["hosts"]:
        assert (row["result"], row["new"], row["port"], row["rotation"]) == ("switched", target, 8081, "ready/up :8081")
        assert row["phases"]["flip"]["end"] > row["phases"]["health"]["end"], "flipped once the new one was healthy"
        assert "drain" not in row["phases"], "no drain: the old instance served until the flip"

    # A release that fails its health gate never takes traffic: no host flips, and every old instance serves on.
    pids = {host: instance(lab, host, 8081)[3] for host in APPS}
    health = {"url": "http://127.0.0.1:8080/healthz", "successes": 2, "interval": 0.25, "timeout": 4}
    result, _recap, load, report = playbook_under_load(demo, lab, "playbooks/deploy.yml", "-e", "deploy_version=3.0.0",
                                                       "-e", BESIDE, "-e", json.dumps({"deploy_health": health}))
    assert result.returncode != 0
    assert load["all"]["failed"] == 0 and set(load["versions"]) == {target}, load
    out = flat(result.stdout)
    assert "app1, app2, app3 did not become healthy in 3.0.0 beside the live instance" in out, out[-3000:]
    assert "so no host flipped. app1: seedops-app@8080 did not become healthy" in out, out[-3000:]
    assert "Every host's old instance still serves it: the new ones were stopped and current switched back." in out
    for host in APPS:
        assert instance(lab, host, 8081)[::3] == ("active", pids[host])
        assert instance(lab, host, 8080)[0] == "inactive" and live_port(lab, host) == 8081
        assert live(lab, host)[0] == target and record_state(lab, host, "3.0.0") == "failed"
        assert servers(lab)[f"{host}-8080"][0] == "maint" and servers(lab)[f"{host}-8081"] == ("ready", "up")
        assert lab.ssh(host, f"readlink {BASE}/current").stdout.strip().endswith("/" + target)

    # A rollout that stops after its first batch went live (batch 2's after_activate hook fails): app1 keeps the
    # release it flipped to and its old instance stops once its requests ended; app2 flips back to its old instance,
    # which kept running; app3, started ahead of its batch, is taken back. Every host ends on one instance.
    hook = os.path.join(REPO_ROOT, "tests", "integration", "playbooks", "hooks", "fail_batch2.yml")
    result, _recap, load, report = playbook_under_load(
        demo, lab, "playbooks/deploy.yml", "-e", f"deploy_version={beside}", "-e", BESIDE,
        "-e", json.dumps({"deploy_hooks": {"after_activate": hook}}))
    assert result.returncode != 0
    assert load["all"]["failed"] == 0, load
    out = flat(result.stdout)
    assert f"The after_activate hook {hook} failed: batch 2 fails this test's after_activate hook." in out, out[-3000:]
    assert f"app3 had started {beside} beside its old instance and was taken back to it" in out, out[-3000:]
    retired = task_results(result.stdout, "Retire - stop the old instances")
    # Once, from the batch's host, on each host that flipped (item: the host).
    assert "(item=app1)" in retired and "item=app2" not in retired and "item=app3" not in retired, retired
    ends = {"app1": (8080, beside), "app2": (8081, target), "app3": (8081, target)}
    for host, (port, version) in ends.items():
        other_port = 8081 if port == 8080 else 8080
        assert (live_port(lab, host), instance(lab, host, port)[::2], live(lab, host)[0]) == (
            port, ("active", version), version), host
        assert instance(lab, host, other_port)[:2] == ("inactive", "disabled"), host
        assert servers(lab)[f"{host}-{port}"] == ("ready", "up") and servers(lab)[f"{host}-{other_port}"][0] == "maint"
    assert {h: r["result"] for h, r in rows(report).items()} == {
        "app1": "switched", "app2": "rolled back", "app3": "rolled back"}, report["hosts"]
    assert lock_record(lab) is None

    # A batch flips in one call per load balancer, all or none: batch 2 (app2 and app3, every host switching to
    # 4.0.0, no load) finds app3's new server down (batch 1's after_activate hook stopped its instance), so app2's
    # healthy new server takes no traffic either; both go back to their old instances, app1 keeps the release.
    hook = os.path.join(REPO_ROOT, "tests", "integration", "playbooks", "hooks", "stop_app3_new.yml")
    ports = {host: live_port(lab, host) for host in APPS}
    pids = {host: instance(lab, host, ports[host])[3] for host in APPS}
    idle = {host: 8080 if ports[host] == 8081 else 8081 for host in APPS}
    reports = os.path.join(str(demo["reports"]), "batch-flip")
    os.makedirs(reports, exist_ok=True)
    result, _recap = run_playbook("playbooks/deploy.yml", lab.inventory, "-e", "deploy_version=4.0.0", "-e", BESIDE,
                                  "-e", json.dumps({"deploy_serial": [1, 2], "deploy_lb_up_timeout": 6,
                                                    "deploy_hooks": {"after_activate": hook}}),
                                  env={"SEEDOPS_DEPLOY_REPORT_DIR": reports})
    assert result.returncode != 0
    out = flat(result.stdout)
    assert (f"app/app3-{idle['app3']} (down) is not up in HAProxy's health checks after 6 s (up_timeout), so no "
            f"traffic was moved: app/app2-{ports['app2']}, app/app3-{ports['app3']} still serve") in out, out[-3000:]
    flipped_back = task_results(result.stdout, "Flip failed - flip back where the flip was made")
    assert "changed:" not in flipped_back and "ok:" not in flipped_back, flipped_back
    assert (live_port(lab, "app1"), live(lab, "app1")[0]) == (idle["app1"], "4.0.0")
    assert instance(lab, "app1", ports["app1"])[:2] == ("inactive", "disabled")
    for host in ("app2", "app3"):
        assert (live_port(lab, host), instance(lab, host, ports[host])[::3]) == (ports[host], ("active", pids[host]))
        assert instance(lab, host, idle[host])[0] == "inactive" and live(lab, host)[0] != "4.0.0", host
        assert servers(lab)[f"{host}-{ports[host]}"] == ("ready", "up") and servers(lab)[f"{host}-{idle[host]}"][0] == "maint"
    (report_path,) = glob.glob(os.path.join(reports, "deploy-*.json"))
    with open(report_path, encoding="utf-8") as f:
        report = json.load(f)
    assert {h: r["result"] for h, r in rows(report).items()} == {
        "app1": "switched", "app2": "rolled back", "app3": "rolled back"}, report["hosts"]
    assert "flipped" in rows(report)["app1"]["restart_times"] and lock_record(lab) is None


def test_beside_together_flips_every_host_at_once_a_rollback_flips_back_and_a_rerun_tidies_a_flip_cut_short(
        lab, demo, beside):
    current = fleet_at(lab, RELEASES, extra=("-e", BESIDE))
    result, _recap, load, report = playbook_under_load(demo, lab, "playbooks/deploy.yml",
                                                       "-e", f"deploy_version={other(current)}",
                                                       "-e", "deploy_switch=together", "-e", BESIDE)
    assert result.returncode == 0, result.stdout[-4000:]
    assert load["all"]["failed"] == 0, load
    ports = {host: live_port(lab, host) for host in APPS}
    for host in APPS:
        assert instance(lab, host, ports[host])[::2] == ("active", other(current))
        # The old instances ran until every flip passed, then stopped.
        assert instance(lab, host, 8080 if ports[host] == 8081 else 8081)[:2] == ("inactive", "disabled")
    # The skew is the spread of the moments the load balancer flipped each host, as each flip returned them: none,
    # since every host flipped in one runtime API call.
    flipped = [row["restart_times"]["flipped"] for row in report["hosts"]]
    assert {row["batch"] for row in report["hosts"]} == {"all"} and "drain" not in report["hosts"][0]["phases"]
    assert report["skew_s"] == round(max(flipped) - min(flipped), 3) == 0, report["hosts"]

    # A rollback is the same flip, back to the previous release on the other port.
    result, _recap = run_playbook("playbooks/rollback.yml", lab.inventory, "-e", BESIDE)
    assert result.returncode == 0, result.stdout[-4000:]
    assert f"rollback {current} (rolling)" in flat(result.stdout) and "(start beside on" in flat(result.stdout)
    for host in APPS:
        back = 8080 if ports[host] == 8081 else 8081
        assert live_port(lab, host) == back and instance(lab, host, back)[::2] == ("active", current)
        assert instance(lab, host, ports[host])[0] == "inactive"
        ports[host] = back

    # What a run killed right after app2's flip leaves: both instances run, the load balancer sends app2's traffic
    # to the new one while the live-port file still names the old one.
    old, new = ports["app2"], 8080 if ports["app2"] == 8081 else 8081
    assert lab.ssh("app2", f"sudo systemctl start seedops-app@{new}").returncode == 0
    flip = run_module(lab, "lb1", "seedops.deploy.lb_member",
                      {"backend": "app", "server": f"app2-{new}", "replaces": f"app2-{old}"})
    assert flip["_status"] == "CHANGED", flip
    result, _recap = run_playbook("playbooks/deploy.yml", lab.inventory, "-e", f"deploy_version={current}", "-e", BESIDE)
    assert result.returncode == 0, result.stdout[-4000:]
    assert f"app2: repair in batch 1 - runs {current}, but a second instance (port {old}) still runs" in flat(result.stdout)
    assert live_port(lab, "app2") == new, "the load balancer's truth wins over the file"
    assert instance(lab, "app2", new)[0] == "active" and instance(lab, "app2", old)[:2] == ("inactive", "disabled")
    assert servers(lab)[f"app2-{new}"] == ("ready", "up") and servers(lab)[f"app2-{old}"][0] == "maint"

    # The load balancer cannot reach app2's idle port (its new instance is healthy on the host itself): no check of
    # app2's new server passes, so no host flips, and every host stays on its old instance and release.
    ports["app2"] = new
    idle = {host: 8080 if ports[host] == 8081 else 8081 for host in APPS}
    lb1 = lab.host("lb1")["address"]
    sh(lab, "app2", f"sudo nft add table inet seedops_test && sudo nft 'add chain inet seedops_test in {{ type filter "
                    f"hook input priority -10; }}' && sudo nft add rule inet seedops_test in ip saddr {lb1} tcp dport "
                    f"{idle['app2']} drop")
    try:
        result, _recap, load, _report = playbook_under_load(
            demo, lab, "playbooks/deploy.yml", "-e", f"deploy_version={other(current)}", "-e", "deploy_switch=together",
            "-e", "deploy_lb_up_timeout=4", "-e", BESIDE)
    finally:
        sh(lab, "app2", "sudo nft delete table inet seedops_test")
    assert result.returncode != 0
    out = flat(result.stdout)
    assert f"app2 did not become healthy in {other(current)} (at the host, or in the load balancers' checks)" in out, out[-3000:]
    assert (f"switched back to the release it ran before (see the report). app2: server app2-{idle['app2']} of backend "
            "app is drain, but HAProxy's checks do not see it up") in out, out[-3000:]
    assert load["all"]["failed"] == 0, load
    for host in APPS:
        assert live_port(lab, host) == ports[host] and instance(lab, host, ports[host])[::2] == ("active", current)
        assert instance(lab, host, idle[host])[0] == "inactive"
    assert servers(lab) == {**{f"{h}-{ports[h]}": ("ready", "up") for h in APPS},
                            **{f"{h}-{idle[h]}": ("maint", "down") for h in APPS}}


def test_beside_a_canary_that_fails_its_bake_flips_back_to_its_old_instance_which_kept_running(lab, demo, beside):
    """4.0.0 passes the health gate and answers real traffic with 500s. The canary app1 starts it beside its live
    instance and flips; its old instance keeps running through the bake, so the failed verdict flips the traffic
    back to that same process (no restart), stops the new one and marks 4.0.0 failed."""
    current = fleet_at(lab, RELEASES, extra=("-e", BESIDE))
    old = live_port(lab, "app1")
    new = 8080 if old == 8081 else 8081
    before = {host: instance(lab, host, live_port(lab, host)) for host in APPS}
    result, _recap, load, report = playbook_under_load(demo, lab, "playbooks/deploy.yml", "-e", "deploy_version=4.0.0",
                                                       "-e", "deploy_canary_bake=10", "-e", BESIDE)
    assert result.returncode != 0
    out = flat(result.stdout)
    assert "The canary app1 failed its judgement after" in out and f"app1 is back on {current}" in out, out[-3000:]
    assert "Flip back - move the host's traffic back to its old instance" in result.stdout
    # The old instance's server took app1's traffic back on lb1 in the call that drained the canary, before the flip
    # back: app1 never served nothing there.
    assert f"back in rotation on lb1 in the same call (the old instances): app1-{old}" in out, out[-3000:]
    assert live_port(lab, "app1") == old and instance(lab, "app1", old) == before["app1"], "the same process serves"
    assert instance(lab, "app1", new)[:2] == ("inactive", "disabled")
    assert lab.ssh("app1", f"readlink {BASE}/current").stdout.strip().endswith("/" + current)
    assert record_state(lab, "app1", "4.0.0") == "failed"
    assert servers(lab)[f"app1-{old}"] == ("ready", "up") and servers(lab)[f"app1-{new}"][0] == "maint"
    assert {h: instance(lab, h, live_port(lab, h)) for h in ("app2", "app3")} == {h: before[h] for h in ("app2", "app3")}
    assert rows(report)["app1"]["result"] == "rolled back", rows(report)["app1"]
    # app2 and app3 had started 4.0.0 beside their old instances before the first batch and never flipped: the stop
    # took them back (new instance stopped, its server in maintenance, current switched back).
    assert "app2, app3 had started 4.0.0 beside their old instances and were taken back to them" in out, out[-3000:]
    for host in ("app2", "app3"):
        idle = 8080 if live_port(lab, host) == 8081 else 8081
        assert instance(lab, host, idle)[0] == "inactive" and servers(lab)[f"{host}-{idle}"][0] == "maint"
        assert lab.ssh(host, f"readlink {BASE}/current").stdout.strip().endswith("/" + current)
        assert rows(report)[host]["result"] == "rolled back", rows(report)[host]
    # The clients saw only the canary's 500s while it served, never a 4.0.0 answer that succeeded.
    assert set(load["errors"]) <= {"HTTP 500"} and "4.0.0" not in load["versions"], load["errors"]


def test_beside_a_flip_only_batch_whose_flip_fails_goes_back_to_its_old_instance_and_stops_the_rollout(lab, demo, beside):
    """Batch 2 (app2) only flips (flip_batch.yml). Its new instance, started ahead with the others, stops during the
    canary's bake, so HAProxy's checks see its server down and the batch's one flip call moves no traffic. app2 goes
    back to its old instance, which never stopped: its new server to maintenance, the new instance stopped, current
    switched back. app3, never reached, is taken back the same way; the canary app1 keeps the release; the lock is
    given back; no request fails."""
    current = fleet_at(lab, RELEASES, extra=("-e", BESIDE))
    target = other(current)
    old = {host: live_port(lab, host) for host in APPS}
    new = {host: 8080 if old[host] == 8081 else 8081 for host in APPS}
    before = {host: instance(lab, host, old[host]) for host in APPS}

    def stop_app2s_new_instance_once_the_canary_flipped():
        deadline = time.monotonic() + 300
        while live_port(lab, "app1") != new["app1"]:
            assert time.monotonic() < deadline, "the canary never flipped"
            time.sleep(0.3)
        sh(lab, "app2", f"sudo systemctl stop seedops-app@{new['app2']}")

    # The bake (6 s) outlasts HAProxy's two failed checks (1 s apart); the flip waits 3 s for a check that passes.
    result, _recap, load, report = playbook_under_load(
        demo, lab, "playbooks/deploy.yml", "-e", f"deploy_version={target}", "-e", "deploy_canary_bake=6",
        "-e", "deploy_lb_up_timeout=3", "-e", BESIDE, during=stop_app2s_new_instance_once_the_canary_flipped)
    assert result.returncode != 0
    out = flat(result.stdout)
    assert report["canary"]["verdict"] == "pass", report["canary"]
    # The canary's new server started from nothing: HAProxy's mean for it is the plain mean of what it served, which
    # is what the bake's window mean must give back (it once read it as a moving mean's tail, 5 times too high).
    judged = report["canary"]["servers"][f"app1-{new['app1']}"]
    assert judged["requests"] > 0 and judged["rtime_ms"] <= 1.5 * judged["rtime_moving_ms"] + 5, judged
    # app2's batch took flip_batch.yml's path, and its rescue took app2 back.
    assert "ok: [app2]" in task_results(result.stdout, "Flip batch - note what failed"), result.stdout[-4000:]
    assert re.search(r"app2: lb1: .*" + re.escape(
        "Its old instance still serves it: the new one was stopped and current switched back. The rollout stops here: "
        "hosts of later batches were not touched and keep their release."), out), out[-3000:]
    assert "app3 had started" in out and "taken back" in out, out[-3000:]
    assert load["all"]["failed"] == 0, load
    found = servers(lab)
    for host in ("app2", "app3"):
        # The same process serves, on the old port; the new instance is stopped and its server in maintenance.
        assert live_port(lab, host) == old[host] and instance(lab, host, old[host]) == before[host]
        assert instance(lab, host, new[host])[0] == "inactive"
        assert found[f"{host}-{old[host]}"] == ("ready", "up") and found[f"{host}-{new[host]}"][0] == "maint"
        assert lab.ssh(host, f"readlink {BASE}/current").stdout.strip().endswith("/" + current)
        assert rows(report)[host]["result"] == "rolled back", rows(report)[host]
    assert live_port(lab, "app1") == new["app1"] and live(lab, "app1")[0] == target
    assert found[f"app1-{new['app1']}"] == ("ready", "up")
    assert lock_record(lab) is None, "the lock was given back"


def stat(lab, lb="lb1"):
    """{server: its row of HAProxy's show stat on `lb`, by column name} for backend app, read there."""
    lines = sh(lab, lb, "echo 'show stat' | sudo socat stdio /run/haproxy/admin.sock").splitlines()
    header = lines[0].lstrip("# ").split(",")
    rows = (dict(zip(header, line.split(","))) for line in lines[1:])
    return {row["svname"]: row for row in rows if row.get("pxname") == "app"}


def sessions(lab, lb, server):
    """The sessions a server has now in HAProxy on `lb` (show stat's scur), read there."""
    return int(stat(lab, lb)[server]["scur"])


SECOND_LB_RULE = "seedops test: the second load balancer"


@pytest.fixture
def second_lb(lab, demo, beside, tmp_path):
    """repo1 as a second load balancer for one test: an inventory that adds it to group lb (HAProxy on 8088, beside
    the repository on 80), HAProxy there with the same servers as lb1, and the app hosts' firewalls letting it reach
    the service's ports. Yields the arguments that add the inventory to a run; afterwards HAProxy on repo1 stops and
    the app hosts' firewalls let lb1 alone in again.
    The firewall rule is set up here, not by the firewall role (which would write the same rule for a host of group
    lb): one nft command per host instead of two runs of the role on every app host (test_firewall.py tests the
    role's allow list for the load balancers)."""
    fleet_at(lab, RELEASES, extra=("-e", BESIDE))
    extra = tmp_path / "second-lb.yml"
    extra.write_text(yaml.safe_dump({"lb": {"hosts": {"repo1": {"haproxy_frontend_port": 8088}}}}))
    both = ("-i", str(extra))
    repo1 = lab.host("repo1")["address"]
    try:
        for host in APPS:
            sh(lab, host, f"sudo nft insert rule inet seedops_firewall input ip saddr {repo1} tcp dport '{{ 8080, 8081 }}' "
                          f"accept comment '\"{SECOND_LB_RULE}\"'")
        result, _recap = run_playbook("tests/integration/playbooks/beside.yml", lab.inventory, *both, "-e", BESIDE)
        assert result.returncode == 0, result.stdout[-4000:]
        # A server HAProxy just started with is up after its first checks passed (rise 2, one a second).
        deadline = time.monotonic() + 10
        while True:
            second = run_module(lab, "repo1", "seedops.deploy.lb_info", {"backend": "app"})["servers"]
            if {n: (s["admin"], s["op"]) for n, s in second.items()} == servers(lab) or time.monotonic() > deadline:
                break
            time.sleep(0.5)
        assert {n: (s["admin"], s["op"]) for n, s in second.items()} == servers(lab)
        yield both
    finally:
        # Stopping saves its server states, which its next start would load: a later use of the fixture starts
        # from the states lb1 has then, not from where this test left repo1.
        sh(lab, "repo1", "sudo systemctl disable --now --quiet haproxy; sudo rm -f /var/lib/haproxy/server-state",
           check=False)
        for host in APPS:
            handles = re.findall(rf'comment "{SECOND_LB_RULE}" # handle (\d+)',
                                 sh(lab, host, "sudo nft -a list chain inet seedops_firewall input"))
            for handle in handles:
                sh(lab, host, f"sudo nft delete rule inet seedops_firewall input handle {handle}")
            assert SECOND_LB_RULE not in sh(lab, host, "sudo nft list chain inet seedops_firewall input")


def test_beside_with_two_load_balancers_a_flip_moves_every_ones_traffic_or_none(lab, demo, beside, second_lb):
    """lb1 and repo1 (second_lb) in front of the fleet. A new instance that repo1 cannot reach is checked in both
    before either moves app1's traffic: lb1 never sends it a request. A flip that fails in repo1 after both moved
    the traffic (app1's old server in repo1 keeps long requests past deploy_drain_timeout) is moved back in both,
    rolling (app1, the canary) and together: there every host flips in one call per load balancer, and every one flips
    back. Each host ends on its old instance, which never stopped, in both load balancers, the lock is given back, and
    the long requests succeed. A canary that bakes flips in lb1 alone, whose counters judge it: a client of repo1 never meets
    a canary that fails, and once one passed repo1 flips every host too."""
    current = fleet_at(lab, RELEASES, extra=("-e", BESIDE))
    target = other(current)
    old = {host: live_port(lab, host) for host in APPS}
    new = {host: 8080 if old[host] == 8081 else 8081 for host in APPS}
    pids = {host: instance(lab, host, old[host])[3] for host in APPS}
    was = {host: record_state(lab, host, target) for host in APPS}
    repo1 = lab.host("repo1")["address"]

    def on_old_instances(hosts):
        for host in hosts:
            assert live_port(lab, host) == old[host] and instance(lab, host, old[host])[::3] == ("active", pids[host])
            assert instance(lab, host, new[host])[0] == "inactive" and live(lab, host)[0] == current
            assert record_state(lab, host, target) == "failed"
        for lb in ("lb1", "repo1"):
            found = run_module(lab, lb, "seedops.deploy.lb_info", {"backend": "app"})["servers"]
            assert {h: (found[f"{h}-{old[h]}"]["admin"], found[f"{h}-{new[h]}"]["admin"]) for h in APPS} == {
                h: ("ready", "maint") for h in APPS}, (lb, found)
        assert lock_record(lab) is None, "the lock was given back"

    def deploy(*args):
        return playbook_under_load(demo, lab, "playbooks/deploy.yml", *second_lb, "-e", f"deploy_version={target}",
                                   "-e", BESIDE, *args)

    # repo1 cannot reach app1's new instance: no check of it passes there, so no load balancer moves its traffic.
    sh(lab, "app1", f"sudo nft add table inet seedops_test && sudo nft 'add chain inet seedops_test in {{ type filter "
                    f"hook input priority -10; }}' && sudo nft add rule inet seedops_test in ip saddr {repo1} tcp dport "
                    f"{new['app1']} drop")
    try:
        result, _recap, load, _report = deploy("-e", "deploy_lb_up_timeout=4")
    finally:
        sh(lab, "app1", "sudo nft delete table inet seedops_test")
    assert result.returncode != 0
    out = flat(result.stdout)
    assert f"app1: server app1-{new['app1']} of backend app is drain, but HAProxy's checks do not see it up" in out, \
        out[-3000:]
    assert "so no host flipped" in out and "Every host's old instance still serves it" in out, out[-3000:]
    assert load["all"]["failed"] == 0 and set(load["versions"]) == {current}, load
    on_old_instances(APPS)

    # Two long requests through repo1 (55 s, below HAProxy's 60 s timeout server), both on app1's old server (the
    # others at weight 0 in repo1 while they start), before each of the two runs below: the others have none.
    script = ("import threading, urllib.request as u\n"
              "out = []\n"
              "def one():\n"
              "    try: out.append(u.urlopen('http://127.0.0.1:8088/?delay=55s', timeout=90).status)\n"
              "    except Exception as e: out.append(repr(e))\n"
              "ts = [threading.Thread(target=one) for _ in range(2)]\n"
              "[t.start() for t in ts]\n"
              "[t.join() for t in ts]\n"
              "print(out)\n")
    weights = run_module(lab, "repo1", "seedops.deploy.lb_info", {"backend": "app"})["servers"]

    def weigh(zero):
        for host in ("app2", "app3"):
            server = f"{host}-{old[host]}"
            run_module(lab, "repo1", "seedops.deploy.lb_member",
                       {"backend": "app", "server": server, "weight": 0 if zero else weights[server]["weight"]})

    def hold():
        """Start two long requests on app1's old server in repo1 and wait until it has them; returns the thread and
        the box its output lands in. Each run below gets its own pair, so its flip meets them whatever the run
        before it took (a pair lasts 55 s)."""
        box = {}
        slow = threading.Thread(target=lambda: box.update(out=lab.ssh("repo1", f"python3 -c \"{script}\"")))
        before = sessions(lab, "repo1", f"app1-{old['app1']}")
        weigh(True)
        slow.start()
        try:
            deadline = time.monotonic() + 10
            while sessions(lab, "repo1", f"app1-{old['app1']}") < before + 2 and time.monotonic() < deadline:
                time.sleep(0.2)
        finally:
            weigh(False)
        return slow, box

    holds = [hold()]
    try:
        assert {h: sessions(lab, "repo1", f"{h}-{old[h]}") for h in APPS} == {"app1": 2, "app2": 0, "app3": 0}
        # Rolling, each host started in its own batch (deploy_beside_prestart false: the flip waits for the old
        # server's requests; with the prestart it leaves them to end while later batches flip).
        result, _recap, load, _report = deploy("-e", "deploy_drain_timeout=3", "-e", "deploy_beside_prestart=false")
        assert result.returncode != 0
        out = flat(result.stdout)
        assert f"app1: switch in batch 1 (start beside on {new['app1']}, then flip)" in out, out[-3000:]
        assert (f"app1: app/app1-{new['app1']} serves now, but app/app1-{old['app1']} still has 2 sessions after 3 s"
                in out), out[-3000:]
        assert ("Its old instance still serves it: lb1, repo1 had moved its traffic to the new one and moved it back; "
                "the new one was stopped and current switched back.") in out, out[-3000:]
        # lb1 sent app1's traffic to the new instance until the flip back: the clients met both, and no failure.
        assert load["all"]["failed"] == 0 and set(load["versions"]) == {current, target}, load
        # app2 and app3 were not started: their batches never came.
        assert "had started" not in out and "hosts of later batches were not touched" in out, out[-3000:]
        on_old_instances(APPS)

        # Together: the flip of every host fails in repo1 the same way, and every host goes back to its old instance
        # (their processes never stopped: on_old_instances compares them).
        holds.append(hold())
        held = sessions(lab, "repo1", f"app1-{old['app1']}")
        assert held >= 2 and {h: sessions(lab, "repo1", f"{h}-{old[h]}") for h in ("app2", "app3")} == {
            "app2": 0, "app3": 0}, "the long requests still run"
        result, _recap, load, report = deploy("-e", "deploy_drain_timeout=3", "-e", "deploy_switch=together")
        assert result.returncode != 0
        out = flat(result.stdout)
        # The report says where every host ends: back on the release it ran.
        assert {h: (r["result"], r["runs"]) for h, r in rows(report).items()} == {
            h: ("rolled back", current) for h in APPS}, report["hosts"]
        # Every host's flip is one call per load balancer, which waits for the old servers' requests: app1's keep
        # theirs in repo1, so no host keeps its flip, and the message says so once. 2 or more sessions: the first pair
        # may still run.
        assert re.search(r"app1, app2, app3: their flips, in one call per load balancer, failed: repo1: the new servers "
                         r"serve now, but sessions stay after 3 s \(drain_timeout\) on "
                         f"app/app1-{old['app1']} " r"\(\d+\): it stays in drain, so its old instance must not be "
                         r"stopped yet\. Its old instance still serves it: lb1, repo1 had moved its traffic to the new "
                         r"one and moved it back; the new one was stopped and current switched back\.", out), out[-4000:]
        assert load["all"]["failed"] == 0, load
        on_old_instances(APPS)
    finally:
        for slow, _box in holds:
            slow.join(90)
        # The release the failed flips marked failed is one the later tests go back and forth between.
        record = f"{BASE}/releases/{target}.json"
        for host in APPS:
            # Only a record the failed flips marked (a run that passed against the test's will leaves a live one).
            sh(lab, host, f"sudo python3 -c \"import json; d = json.load(open('{record}')); d['state'] = '{was[host]}' "
                          f"if d['state'] == 'failed' else d['state']; json.dump(d, open('{record}', 'w'))\"")
    assert [box["out"].stdout.strip() for _slow, box in holds] == ["[200, 200]"] * 2, holds

    # A canary that bakes serves through lb1 alone, whose counters judge it: repo1 keeps sending app1's traffic to
    # the old instance until the verdict passed. 4.0.0 answers real requests with 500s: the verdict fails, and a
    # client of repo1 never meets it. (Before, repo1 flipped with lb1 and served 4.0.0's 500s until the flip back.)
    with requests_through(lab, "repo1", 8088) as seen:
        result, _recap, load, _report = playbook_under_load(
            demo, lab, "playbooks/deploy.yml", *second_lb, "-e", "deploy_version=4.0.0", "-e", "deploy_canary_bake=10",
            "-e", BESIDE)
    assert result.returncode != 0
    out = flat(result.stdout)
    assert "The canary app1 failed its judgement after" in out and f"app1 is back on {current}" in out, out[-3000:]
    assert set(load["errors"]) <= {"HTTP 500"} and "4.0.0" not in load["versions"], load
    assert seen == {current: seen.get(current)} and seen[current] >= 30, seen
    assert live_port(lab, "app1") == old["app1"] and instance(lab, "app1", old["app1"])[::3] == ("active", pids["app1"])
    for lb in ("lb1", "repo1"):
        found = run_module(lab, lb, "seedops.deploy.lb_info", {"backend": "app"})["servers"]
        assert (found[f"app1-{old['app1']}"]["admin"], found[f"app1-{new['app1']}"]["admin"]) == ("ready", "maint"), \
            (lb, found)

    # A canary that passes flips in repo1 too, then every later batch flips in both: each host ends on its new
    # instance everywhere, its old one stopped, and no client of either load balancer saw a failure.
    with requests_through(lab, "repo1", 8088) as seen:
        result, _recap, load, _report = deploy("-e", "deploy_canary_bake=3")
    assert result.returncode == 0, result.stdout[-4000:]
    assert load["all"]["failed"] == 0 and set(seen) == {current, target}, (load, seen)
    for lb in ("lb1", "repo1"):
        found = run_module(lab, lb, "seedops.deploy.lb_info", {"backend": "app"})["servers"]
        assert {h: (found[f"{h}-{new[h]}"]["admin"], found[f"{h}-{old[h]}"]["admin"]) for h in APPS} == {
            h: ("ready", "maint") for h in APPS}, (lb, found)
    for host in APPS:
        assert live_port(lab, host) == new[host] and instance(lab, host, new[host])[::2] == ("active", target)
        assert instance(lab, host, old[host])[0] == "inactive"


# Sends requests one after the other through a load balancer's frontend, on that host, and counts the answers:
# {version: count} for the ones that succeeded, {"HTTP <status>" or the error's name: count} for the others.
PROBE = """
import json, os, re, time, urllib.request as u
seen = {}
end = time.monotonic() + 300
while time.monotonic() < end and not os.path.exists("/tmp/seedops-probe-stop"):
    try:
        key = re.search(r"version=(\\S+)", u.urlopen("http://127.0.0.1:PORT/", timeout=5).read().decode()).group(1)
    except Exception as e:
        key = "HTTP %s" % e.code if hasattr(e, "code") else type(e).__name__
    seen[key] = seen.get(key, 0) + 1
    time.sleep(0.05)
print(json.dumps(seen))
"""


@contextlib.contextmanager
def requests_through(lab, lb, port):
    """Sends requests through `lb`'s frontend on `port` (from lb itself) while the block runs; yields a dict that
    holds the answers counted (PROBE) once the block ended."""
    seen = {}
    script = base64.b64encode(PROBE.replace("PORT", str(port)).encode()).decode()
    sh(lab, lb, "rm -f /tmp/seedops-probe-stop")
    box = {}
    thread = threading.Thread(target=lambda: box.update(out=lab.ssh(lb, f"echo {script} | base64 -d | python3 -")))
    thread.start()
    try:
        yield seen
    finally:
        sh(lab, lb, "touch /tmp/seedops-probe-stop")
        thread.join(30)
    assert box["out"].returncode == 0, box["out"]
    seen.update(json.loads(box["out"].stdout))


def test_beside_patch_drains_the_live_instances_server_and_checks_it_at_its_port_across_a_reboot(lab, demo, beside):
    """patch.yml on a host that runs beside itself: the server it drains and readies is the live instance's (the
    host name alone is no server), its health is checked at the live port after the reboot, and the live instance
    is the one that comes back at boot - under load, with no failed request."""
    live = live_port(lab, "app1")
    idle = 8080 if live == 8081 else 8081
    # Nothing to install, a reboot pending: patch.yml drains app1, reboots it and puts it back.
    sh(lab, "app1", "sudo touch /var/run/reboot-required")
    booted = sh(lab, "app1", "sed 's/.*) //' /proc/1/stat | cut -d ' ' -f 20")
    result, _recap, load, _report = playbook_under_load(
        demo, lab, "playbooks/patch.yml", "-e", "os_patch_hosts=app1", "-e", "os_patch_cache_valid_time=86400",
        "-e", BESIDE)
    assert result.returncode == 0, result.stdout[-4000:]
    assert load["all"]["failed"] == 0, load
    out = flat(result.stdout)
    assert f"app1-{live} on lb1" in out and f"app1-{idle} on lb1" not in out, out[-3000:]
    assert sh(lab, "app1", "sed 's/.*) //' /proc/1/stat | cut -d ' ' -f 20") != booted, "app1 rebooted"
    assert "reboot: required, done" in out and f"health: healthy (http://127.0.0.1:{live}/healthz)" in out, out[-3000:]
    assert live_port(lab, "app1") == live
    assert instance(lab, "app1", live)[:2] == ("active", "enabled") and instance(lab, "app1", idle)[0] == "inactive"
    assert servers(lab)[f"app1-{live}"] == ("ready", "up") and servers(lab)[f"app1-{idle}"][0] == "maint"


# -- container releases (deploy_kind: container) -----------------------------------------------------------------------
# The fleet moves from packages to images of the sample service in repo1's registry and back. The images are other
# versions than the packages (a release id names one artifact), built for amd64, the app hosts' platform.
IMAGES = {"5.0.0": [], "6.0.0": [], "7.0.0": ["--broken"]}


def container_at(lab):
    """(current release, the version the service answers, the image of its running container) on each app host."""
    found = {}
    for host in APPS:
        image = lab.ssh(host, "sudo docker inspect --format '{{.Config.Image}}' seedops-app").stdout.strip()
        current, version, _pid, _level = live(lab, host)
        found[host] = (current, version, image or None)
    return found


@pytest.fixture(scope="module")
def containers(lab, demo, registry, tmp_path_factory):
    """The fleet on a package release (1.0.0 or 2.0.0) with one instance per host, images 5.0.0 and a broken 7.0.0 in
    the registry, the Docker engine on every app host and the service's container unit
    (tests/integration/playbooks/container.yml); yields the extra variables a container deploy takes. Afterwards the
    fleet goes back to the package release it ran and to the native unit, for the tests that follow (when the run ends
    there, it stays: more_tests_follow)."""
    if lab.ssh("app1", "test -e /etc/systemd/system/seedops-app@.service").returncode == 0:
        # The beside tests' fixture moves the fleet back to one instance only at the end of the file.
        result, _recap = run_playbook("tests/integration/playbooks/beside.yml", lab.inventory)
        assert result.returncode == 0, result.stdout[-4000:]
    start = fleet_at(lab, RELEASES)
    out = tmp_path_factory.mktemp("images")
    build = os.path.join(REPO_ROOT, "tests", "fixtures", "app", "build.sh")
    packages = {}
    for version, extra in IMAGES.items():
        subprocess.run([build, "-o", str(out / version), "-p", "linux/amd64", *extra, version], check=True,
                       capture_output=True)
        packages[version] = [{"platform": "linux/amd64",
                              "path": str(out / version / f"seedops-app-{version}-linux-amd64.tar.gz")}]
        pushed = push_image(lab, registry, packages[version], tag=version)
        assert pushed["_status"] in ("CHANGED", "SUCCESS"), pushed
    extra = tmp_path_factory.mktemp("container-vars") / "container.json"
    sys.path.insert(0, os.path.join(REPO_ROOT, "tests", "lab"))
    import registry as lab_registry  # pylint: disable=import-outside-toplevel

    settings = lab_registry.container_vars(str(extra), registry["address"], registry["ca"], REGISTRY_USERS[0])
    result, _recap = run_playbook("tests/integration/playbooks/container.yml", lab.inventory, "-e", f"@{extra}")
    assert result.returncode == 0, result.stdout[-4000:]
    yield {"extra": ("-e", f"@{extra}"), "start": start, "packages": packages, "settings": settings,
           "registry": registry}
    if not more_tests_follow():
        print("containers: the last test of this run on this lab; the fleet stays on container releases (the demo "
              "fixture's clean slate starts afresh)")
        return
    # Back to the package release (the container unit runs a package release's program), then the native unit.
    result, _recap = run_playbook("playbooks/deploy.yml", lab.inventory, "-e", f"deploy_version={start}")
    assert result.returncode == 0, result.stdout[-4000:]
    result, _recap = run_playbook("tests/integration/playbooks/container.yml", lab.inventory)
    assert result.returncode == 0, result.stdout[-4000:]
    for host in APPS:
        assert live(lab, host)[:2] == (start, start)
        assert lab.ssh(host, "sudo docker ps --quiet").stdout.strip() == ""
        assert "User=seedops-app" in lab.ssh(host, "cat /etc/systemd/system/seedops-app.service").stdout


def test_a_rolling_container_deploy_under_load_moves_the_fleet_to_images_and_a_tag_moved_meanwhile_changes_nothing(
        lab, demo, containers):
    # From packages to the image 5.0.0: each host drained, switched and restarted as a container, under load. Once
    # the plan has resolved the tag, a before_stage hook moves it to the broken 7.0.0's image: every host must still
    # get what the plan resolved (a host that pulled the moved tag would fail its health gate).
    registry = containers["registry"]
    login = {"registry": registry["outside"], "repository": "seedops-app", "username": "ci",
             "password": REGISTRY_USERS[0]["password"], "ca_path": registry["ca"]}
    move = {**login, "packages": containers["packages"]["7.0.0"], "entrypoint": ["/app/bin/seedops-app"], "ports": [8080]}
    hook = os.path.join(REPO_ROOT, "tests", "integration", "playbooks", "hooks", "move_tag.yml")
    # An image of the repository on app1 that no release names, pulled by digest as a release pruned by deploy_keep
    # leaves it: the stage's pull removes it from the engine.
    stray = run_module(lab, "localhost", "seedops.deploy.image_info", {**login, "reference": "7.0.0"}, become=False)
    stray_pull = {"registry": registry["inside"], "repository": "seedops-app", "digest": stray["digest"], "username": "ci",
                  "password": REGISTRY_USERS[0]["password"], "ca_path": f"/etc/docker/certs.d/{registry['host']}/ca.crt"}
    pulled = run_module(lab, "app1", "seedops.deploy.image_pull", stray_pull)
    assert pulled["_status"] in ("CHANGED", "SUCCESS"), pulled
    # The engine holds that image under another name only (as after the registry moved to another address): the
    # pull is needed again, since the container runs it by the reference the release names.
    sh(lab, "app1", f"sudo docker tag {pulled['reference']} seedops-test/elsewhere:stray && sudo docker rmi "
                    f"{pulled['reference']} && ! sudo docker image inspect {pulled['reference']} >/dev/null 2>&1")
    pulled = run_module(lab, "app1", "seedops.deploy.image_pull", stray_pull)
    assert pulled["_status"] == "CHANGED", pulled
    sh(lab, "app1", f"sudo docker image inspect {pulled['reference']} >/dev/null && sudo docker rmi seedops-test/elsewhere:stray")
    result, _recap, load, report = playbook_under_load(
        demo, lab, "playbooks/deploy.yml", "-e", "deploy_version=5.0.0", *containers["extra"],
        "-e", json.dumps({"deploy_hooks": {"before_stage": hook}, "seedops_test_move": move}))
    try:
        assert result.returncode == 0, result.stdout[-4000:]
        assert load["all"]["failed"] == 0, load
        moved = run_module(lab, "localhost", "seedops.deploy.image_info", {**login, "reference": "5.0.0"}, become=False)
        broken = run_module(lab, "localhost", "seedops.deploy.image_info", {**login, "reference": "7.0.0"}, become=False)
        assert moved["digest"] == broken["digest"], "the hook moved the tag"
        record = json.loads(lab.ssh("app1", "sudo cat /srv/seedops-app/releases/5.0.0.json").stdout)
        assert record["format"] == "image" and record["digest"].startswith("sha256:") and record["digest"] != moved["digest"]
        for host, (current, version, image) in container_at(lab).items():
            assert (current, version) == ("5.0.0", "5.0.0"), host
            # The container runs the platform manifest the engine pulled by digest, never a tag.
            assert image.startswith(f"{registry['host']}/seedops-app@sha256:"), image
            assert lab.ssh(host, "sudo cat /srv/seedops-app/current/image.env").stdout.strip() == f"SEEDOPS_IMAGE={image}"
            # The engine holds the running image and no other of the repository (app1's stray one was removed).
            held = lab.ssh(host, "sudo docker images --digests --format '{{.Repository}}@{{.Digest}}'").stdout.split()
            assert [i for i in held if i.startswith(f"{registry['host']}/seedops-app@")] == [image], (host, held)
            assert record_state(lab, host, containers["start"]) == "previous"
        assert {(r["old"], r["new"], r["result"]) for r in report["hosts"]} == {(containers["start"], "5.0.0", "switched")}
        assert answering(demo["port"]) == set(APPS)
    finally:
        # The tag back on its own image.
        pushed = push_image(lab, registry, containers["packages"]["5.0.0"], tag="5.0.0")
        assert pushed["_status"] in ("CHANGED", "SUCCESS"), pushed


def test_a_live_config_change_reaches_the_containers_and_a_broken_image_is_rolled_back_by_itself(
        lab, demo, containers):
    before = container_at(lab)
    assert {v[:2] for v in before.values()} == {("5.0.0", "5.0.0")}
    # reconfigure.yml: the new environment file, then systemctl reload - the signal goes through docker run to the
    # service, which reads the file again (its directory is mounted read-only): the same containers, a new log level.
    started = {host: service_version(lab, host)["started"] for host in APPS}
    level = "info" if {live(lab, h)[3] for h in APPS} != {"info"} else "warn"
    result, _recap = run_playbook("playbooks/reconfigure.yml", lab.inventory, "-e", f"seedops_demo_log_level={level}",
                                  *containers["extra"])
    assert result.returncode == 0, result.stdout[-4000:]
    for host in APPS:
        doc = service_version(lab, host)
        assert (doc["log_level"], doc["started"]) == (level, started[host]), host
    assert container_at(lab) == before

    # A tag the registry does not have stops the run at the plan, saying so; nothing changes.
    result, _recap = run_playbook("playbooks/deploy.yml", lab.inventory, "-e", "deploy_version=9.9.9", *containers["extra"])
    assert result.returncode != 0 and "seedops-app:9.9.9 is not in the registry at" in flat(result.stdout)
    assert container_at(lab) == before

    # A release whose health check fails, on the canary: rolled back to the image it ran, in a new container.
    result, _recap, load, report = playbook_under_load(demo, lab, "playbooks/deploy.yml", "-e", "deploy_version=7.0.0",
                                                       "-e", '{"deploy_canary_hosts": ["app2"]}', *containers["extra"])
    assert result.returncode != 0
    out = flat(result.stdout)
    assert "did not become healthy after restart" in out and "Rolled back: 7.0.0 marked failed" in out
    assert load["all"]["failed"] == 0, load["errors"]
    assert set(load["versions"]) == {"5.0.0"}, load["versions"]
    assert rows(report)["app2"]["result"] == "rolled back"
    assert record_state(lab, "app2", "7.0.0") == "failed"
    # app2 runs its previous image again, in a new container; the others were not touched.
    assert container_at(lab) == before
    assert answering(demo["port"]) == set(APPS)


def test_beside_containers_start_the_new_image_beside_the_old_one_and_flip(lab, demo, containers):
    """The container fleet moved to two instances per host (beside.yml with the container settings): a deploy of the
    image 6.0.0 starts each host's new container (seedops-app-<port>) beside the one that serves, flips the load
    balancer to it and stops the old one, under load with no failed request. Afterwards the fleet goes back to one
    container per host."""
    before = container_at(lab)
    result, _recap = run_playbook("tests/integration/playbooks/beside.yml", lab.inventory, "-e", BESIDE,
                                  *containers["extra"])
    assert result.returncode == 0, result.stdout[-4000:]
    try:
        old = {host: live_port(lab, host) for host in APPS}
        new = {host: 8080 if old[host] == 8081 else 8081 for host in APPS}
        for host in APPS:
            names = lab.ssh(host, "sudo docker ps --format '{{.Names}}'").stdout.split()
            assert names == [f"seedops-app-{old[host]}"], (host, names)
        result, _recap, load, report = playbook_under_load(
            demo, lab, "playbooks/deploy.yml", "-e", "deploy_version=6.0.0", "-e", BESIDE, *containers["extra"])
        assert result.returncode == 0, result.stdout[-4000:]
        assert load["all"]["failed"] == 0, load
        assert set(load["versions"]) == {"5.0.0", "6.0.0"}, load["versions"]
        assert "(start beside on" in flat(result.stdout)
        assert {(r["old"], r["new"], r["result"]) for r in report["hosts"]} == {("5.0.0", "6.0.0", "switched")}
        for host in APPS:
            assert live_port(lab, host) == new[host]
            assert instance(lab, host, new[host])[::2] == ("active", "6.0.0")
            assert instance(lab, host, old[host])[:2] == ("inactive", "disabled")
            names = lab.ssh(host, "sudo docker ps --format '{{.Names}}'").stdout.split()
            assert names == [f"seedops-app-{new[host]}"], (host, names)
            image = lab.ssh(host, f"sudo docker inspect --format '{{{{.Config.Image}}}}' seedops-app-{new[host]}").stdout
            assert f"SEEDOPS_IMAGE={image.strip()}" == sh(lab, host, "sudo cat /srv/seedops-app/current/image.env")
        assert servers(lab) == {**{f"{h}-{new[h]}": ("ready", "up") for h in APPS},
                                **{f"{h}-{old[h]}": ("maint", "down") for h in APPS}}
    finally:
        result, _recap = run_playbook("tests/integration/playbooks/beside.yml", lab.inventory, *containers["extra"])
        assert result.returncode == 0, result.stdout[-4000:]
    for host, (current, version, image) in container_at(lab).items():
        assert (current, version) == ("6.0.0", "6.0.0") and image != before[host][2], host
