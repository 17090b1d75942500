"""site.yml against the lab: from a checkout, then in check mode, then from the built and installed
collection tarball - the rerun, which changes nothing on the fleet the first run converged."""

import glob
import os
import subprocess

import pytest

from conftest import REPO_ROOT, VENV_BIN, flat, run_playbook, sh

pytestmark = pytest.mark.lab


V1 = ("-e", "deploy_version=1.0.0")


def test_site_from_checkout_converges_the_fleet(lab, demo_packages):
    first, recap = run_playbook("playbooks/site.yml", lab.inventory, *V1)
    assert first.returncode == 0, first.stdout[-3000:] + first.stderr[-2000:]
    assert set(recap) == {h["name"] for h in lab.hosts}
    assert all(r["failed"] == 0 and r["unreachable"] == 0 for r in recap.values()), recap
    for h in lab.hosts:
        assert f"{h['name']} ({h['group']}): linux/amd64, Debian 12" in first.stdout

    for host in ("app1", "app2", "app3"):
        assert sh(lab, host, "readlink /srv/seedops-app/current") == "releases/1.0.0"


def test_site_in_check_mode_changes_nothing(lab):
    result, recap = run_playbook("playbooks/site.yml", lab.inventory, "--check", "--diff", *V1)
    assert result.returncode == 0, result.stdout[-3000:]
    assert set(recap) == {h["name"] for h in lab.hosts}, recap
    assert all(r["changed"] == 0 and r["failed"] == 0 for r in recap.values()), recap


def test_preflight_lists_everything_missing_at_once(lab):
    result, recap = run_playbook(
        "playbooks/site.yml", lab.inventory, "--limit", "app1",
        "-e", '{"preflight_min_cpus": 4096, "preflight_min_memory_mb": 99999999, "preflight_os_families": ["RedHat"],'
              ' "preflight_require_time_sync": true, "preflight_resolve": ["localhost", "seedops-no-such-host.invalid"],'
              ' "preflight_free_ports": [22, 8443, {"port": 8080, "allow": ["seedops-app"]}],'
              ' "preflight_builds": ["linux/arm64", "linux/riscv64"], "preflight_max_clock_offset": 0.0001}',
    )
    assert result.returncode != 0
    assert recap["app1"]["failed"] == 1
    out = flat(result)
    assert "app1 is not fit to deploy to:" in out
    for fragment in ("need at least 4096", "need at least 99999999 MiB", "OS family: Debian, supported: RedHat",
                     "time sync: the clock is not synchronised (timedatectl NTPSynchronized=no)",
                     "name resolution: seedops-no-such-host.invalid not resolved",
                     "port 22/tcp is in use by sshd (pid ",
                     "platform: linux/amd64 has no build (builds exist for linux/arm64, linux/riscv64)",
                     "s off the controller's clock, at most 0.0001 s allowed"):
        assert fragment in out, fragment
    # localhost resolves, 8443 is free and the service may hold its own port: none of them is listed
    assert "localhost" not in out.split("name resolution:")[1].split(";")[0]
    assert "8443" not in out and "port 8080" not in out


def test_preflight_rejects_a_bad_variable_by_its_argument_spec(lab):
    result = run_playbook("playbooks/site.yml", lab.inventory, "--limit", "app1", "-e", "preflight_min_cpus=many")[0]
    assert result.returncode != 0
    assert "preflight_min_cpus" in result.stdout and "cannot be converted to an int" in result.stdout


def test_built_collection_installs_offline_and_its_site_rerun_changes_nothing(lab, tmp_path):
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

    # The rerun on the fleet test_site_from_checkout_converges_the_fleet converged: nothing changes.
    result, recap = run_playbook("seedops.deploy.site", lab.inventory, *V1, cwd=str(tmp_path), env=env)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-2000:]
    assert {host: (r["failed"], r["changed"]) for host, r in recap.items()} == {h["name"]: (0, 0) for h in lab.hosts}
