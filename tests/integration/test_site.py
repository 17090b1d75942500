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
