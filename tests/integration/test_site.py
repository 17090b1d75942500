"""site.yml against the lab: from a checkout, then from the built and installed collection tarball in check mode,
which changes nothing on the fleet the first run converged. (Each role's tests prove its own real rerun changes
nothing; a check run with --diff on the whole fleet also reports any change that roles would make to each other.)"""

import glob
import json
import os
import re
import shlex
import shutil
import subprocess

import pytest

from conftest import REPO_ROOT, VENV_BIN, flat, run_playbook, sh

pytestmark = pytest.mark.lab


# A version that only the main job's own build makes (build.sh never builds it).
V1 = ("-e", "deploy_version=1.0.1")


def test_site_from_checkout_builds_then_converges_the_fleet(lab, demo_packages):
    """The main job with -e deploy_build=true: build.yml builds 1.0.1 for the platforms the app hosts report, into
    the directory the repo host serves; the deploy checks every host against the build record, then installs it."""
    built = os.path.join(demo_packages, "1.0.1")
    shutil.rmtree(built, ignore_errors=True)
    first, recap = run_playbook("playbooks/site.yml", lab.inventory, *V1, "-e", "deploy_build=true")
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
        served = json.loads(sh(lab, host, "python3 -c \"import urllib.request as u; "
                                          "print(u.urlopen('http://127.0.0.1:8080/version', timeout=5).read().decode())\""))
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


def test_built_collection_installs_offline_and_its_site_in_check_mode_changes_nothing(lab, tmp_path):
    build = subprocess.run(
        [os.path.join(VENV_BIN, "ansible-galaxy"), "collection", "build", REPO_ROOT, "--output-path", str(tmp_path)],
        capture_output=True, text=True, cwd=tmp_path, check=False,
    )
    assert build.returncode == 0, build.stderr
    (tarball,) = glob.glob(str(tmp_path / "seedops-deploy-*.tar.gz"))
    listing = subprocess.run(["tar", "tzf", tarball], capture_output=True, text=True, check=True).stdout.split()
    assert "playbooks/site.yml" in listing and "roles/preflight/meta/argument_specs.yml" in listing
    assert "plugins/callback/deploy_report.py" in listing and "playbooks/deploy.yml" in listing
    for ignored in (".lab", ".venv", "tests/output", ".git"):
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

    # In check mode with --diff, on the fleet test_site_from_checkout_builds_then_converges_the_fleet converged:
    # every host is planned, and nothing would change.
    result, recap = run_playbook("seedops.deploy.site", lab.inventory, "--check", "--diff", *V1, cwd=str(tmp_path),
                                 env=env)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-2000:]
    assert {host: (r["failed"], r["changed"]) for host, r in recap.items()} == {h["name"]: (0, 0) for h in lab.hosts}
