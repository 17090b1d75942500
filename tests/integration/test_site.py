"""site.yml against the lab: from a checkout with the build step, and preflight's refusals. (The main command runs
site.yml on the whole fleet in test_deploy, where the built and installed collection's site.yml then runs in check
mode and changes nothing.)"""

import json
import os
import re
import shlex
import shutil

import pytest

from conftest import flat, run_playbook, service_version, sh

pytestmark = pytest.mark.lab


# A version that only the main job's own build makes (build.sh never builds it).
V1 = ("-e", "deploy_version=1.0.1")


def test_site_from_checkout_builds_then_converges_the_fleet(lab, demo_packages):
    """The main job with -e deploy_build=true: build.yml builds 1.0.1 for the platforms the app hosts report, into
    the directory the repo host serves; the deploy checks every host against the build record, then installs it.
    The host-preparation roles are left out (prepare_roles empty): the main command in test_deploy runs them on the
    whole fleet, and each has its own tests."""
    built = os.path.join(demo_packages, "1.0.1")
    shutil.rmtree(built, ignore_errors=True)
    first, recap = run_playbook("playbooks/site.yml", lab.inventory, *V1, "-e", "deploy_build=true",
                                "-e", '{"prepare_roles": []}')
    assert first.returncode == 0, first.stdout[-3000:] + first.stderr[-2000:]
    assert set(recap) == {h["name"] for h in lab.hosts} | {"localhost"}
    assert all(r["failed"] == 0 and r["unreachable"] == 0 for r in recap.values()), recap
    for h in lab.hosts:
        assert f"{h['name']} ({h['group']}): linux/amd64, Debian 12" in first.stdout

    with open(os.path.join(built, "seedops-app-1.0.1.build.json"), encoding="utf-8") as f:
        record = json.load(f)
    assert record["requires"]["platforms"] == ["linux/amd64"]
    assert sorted(os.listdir(built)) == ["SHA256SUMS", "seedops-app-1.0.1-linux-amd64.tar.gz",
                                         "seedops-app-1.0.1.build.json"]
    assert "fit: every host can run the build (needs: linux/amd64" in flat(first)
    package_sum = record["packages"][0]["sha256"]
    for host in ("app1", "app2", "app3"):
        assert sh(lab, host, "readlink /srv/seedops-app/current") == "releases/1.0.1"
        served = service_version(lab, host)
        assert (served["version"], served["platform"]) == ("1.0.1", "linux/amd64"), served
        # The host's store holds exactly the package the build made, under its SHA-256.
        assert sh(lab, host, f"sudo sha256sum /srv/seedops-app/store/sha256/{package_sum}").split()[0] == package_sum


# The lab's hosts share the machine's clock, and setting a container's clock would set the machine's. So app1's
# clock is made to read 100 s ahead where preflight reads it (date +%s.%N, found first in /usr/local/bin).
CLOCK_AHEAD = """#!/bin/sh
# seedops test_site.py: this host's clock reads 100 s ahead (removed at the end of the test)
if [ "$1" = "+%s.%N" ]; then /usr/bin/date +%s.%N | awk '{ printf "%.9f\\n", $1 + 100 }'; else exec /usr/bin/date "$@"; fi
"""


def test_preflight_lists_everything_missing_at_once(lab):
    sh(lab, "app1", f"printf '%s' {shlex.quote(CLOCK_AHEAD)} | sudo tee /usr/local/bin/date >/dev/null && "
                    "sudo chmod 0755 /usr/local/bin/date")
    try:
        result, recap = run_playbook(
            "playbooks/site.yml", lab.inventory, "--limit", "app1",
            "-e", '{"preflight_min_cpus": 4096, "preflight_min_memory_mb": 99999999, "preflight_os_families": ["RedHat"],'
                  ' "preflight_require_time_sync": true, "preflight_resolve": ["localhost", "seedops-no-such-host.invalid"],'
                  ' "preflight_free_ports": [22, 8443, {"port": 8080, "allow": ["seedops-app"]}],'
                  ' "preflight_builds": ["linux/arm64", "linux/riscv64"], "preflight_max_clock_offset": 30}',
        )
    finally:
        sh(lab, "app1", "sudo rm -f /usr/local/bin/date")
    assert result.returncode != 0
    assert recap["app1"]["failed"] == 1
    # site.yml takes the fleet's deploy lock only once the hosts are prepared: a refused host leaves no lease behind.
    assert sh(lab, "lb1", "sudo sh -c 'ls /var/lib/seedops-deploy/locks/*.json 2>/dev/null; true'") == ""
    out = flat(result)
    assert "app1 is not fit to deploy to:" in out
    for fragment in ("need at least 4096", "need at least 99999999 MiB", "OS family: Debian, supported: RedHat",
                     "time sync: the clock is not synchronised (timedatectl NTPSynchronized=no)",
                     "name resolution: seedops-no-such-host.invalid not resolved",
                     "port 22/tcp is in use by sshd (pid ",
                     "platform: linux/amd64 has no build (builds exist for linux/arm64, linux/riscv64)",
                     "s) off the controller's clock, at most 30 s allowed"):
        assert fragment in out, fragment
    # The offset is the middle of the interval the host's reading lies in; the interval is the round trip.
    offset, error = re.search(r"clock: ([0-9.]+) s \(within ([0-9.]+) s\)", out).groups()
    assert abs(float(offset) - 100) <= float(error) + 0.01 and float(error) < 30, (offset, error)
    # localhost resolves, 8443 is free and the service may hold its own port: none of them is listed
    assert "localhost" not in out.split("name resolution:")[1].split(";")[0]
    assert "8443" not in out and "port 8080" not in out


def test_preflight_rejects_a_bad_variable_by_its_argument_spec(lab):
    result = run_playbook("playbooks/site.yml", lab.inventory, "--limit", "app1", "-e", "preflight_min_cpus=many")[0]
    assert result.returncode != 0
    assert "preflight_min_cpus" in result.stdout and "cannot be converted to an int" in result.stdout


LOCK_FILE = "/var/lib/seedops-deploy/locks/seedops-app-app.json"


def test_a_site_run_whose_hosts_fail_after_the_lock_gives_it_back_and_says_who(lab, tmp_path):
    """The plays between site.yml's take of the fleet's deploy lock and its deploy step (the repository host, the
    service, the load balancer). One app host failing goes on without it: the deploy step plans the others, and the
    report names the one left out. The load balancer failing ends the run (it was the play's only host): the lock
    is given back before it ends, instead of holding every other run off until it expires."""
    env = {"SEEDOPS_DEPLOY_REPORT_DIR": str(tmp_path)}
    runs = {h: sh(lab, h, "readlink /srv/seedops-app/current") for h in ("app1", "app2", "app3")}
    config = sh(lab, "lb1", "sudo sha256sum /etc/haproxy/haproxy.cfg")
    # app2 alone gets a program path the app_service role refuses; nothing changes on it.
    bad_exec = "{{ 'relative/path' if inventory_hostname == 'app2' else app_service_base ~ '/current/bin/seedops-app' }}"
    first, recap = run_playbook("playbooks/site.yml", lab.inventory, "-e", '{"prepare_roles": []}',
                                "-e", "app_service_exec=" + bad_exec, env=env)
    assert first.returncode != 0
    assert (recap["app2"]["failed"], recap["app1"]["failed"], recap["app3"]["failed"]) == (1, 0, 0), recap
    out = flat(first)
    assert ("app2: setting up the service failed at the task Check the variables before anything changes: "
            "app_service role on app2: app_service_exec must be the absolute path") in out
    assert "The run goes on with the other hosts of this play." in out
    assert "left out: app2 (failed earlier in this run)" in out
    with open(sorted(tmp_path.glob("deploy-*.json"))[-1], encoding="utf-8") as f:
        report = json.load(f)
    assert [row["host"] for row in report["hosts"]] == ["app1", "app3"]
    assert list(report["failed_before_plan"]) == ["app2"]
    assert "WARNING: app2 failed before the deploy's plan and is not in it" in first.stdout
    assert sh(lab, "lb1", f"sudo sh -c 'test -e {LOCK_FILE} && echo held; true'") == "", "the deploy step gave it back"
    assert {h: sh(lab, h, "readlink /srv/seedops-app/current") for h in runs} == runs

    # app1 alone of the app hosts: the take's play needs one, and the others add nothing here.
    second, recap = run_playbook("playbooks/site.yml", lab.inventory, "--limit", "app1,lb1", "-e", '{"prepare_roles": []}',
                                 "-e", "haproxy_timeout_connect=5parsecs", env=env)
    assert second.returncode != 0
    assert recap["lb1"]["failed"] == 1, recap
    out = flat(second)
    # haproxy -c's own words, and the lock given back before Ansible ended the run.
    assert "lb1: configuring the load balancer failed at the task Configure HAProxy" in out
    assert "unexpected character" in out and "timeout connect" in out
    assert ("No host of this play is left, so the run stops here, before its deploy step, and has given the fleet "
            "deploy lock back.") in out
    assert "TASK [Plan]" not in second.stdout
    assert sh(lab, "lb1", f"sudo sh -c 'test -e {LOCK_FILE} && echo held; true'") == ""
    assert sh(lab, "lb1", "sudo sha256sum /etc/haproxy/haproxy.cfg") == config, "the refused file was not written"
    assert sh(lab, "lb1", "systemctl is-active haproxy") == "active"
