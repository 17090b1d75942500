"""A Java service end to end on one lab host: the jar built by javac, packaged and published by build.yml
(build_kind=jar), checked against the host by the plan (the Java its classes need, and a Java the host lacks refused
before any change), deployed by deploy.yml, and reconfigured by reconfigure.yml with a reload the JVM survives (the
same process id) - not SIGHUP, which app_service refuses for a JVM, and no reload at all refused by reconfigure.yml
before it changes anything."""

import json
import os
import subprocess

import pytest

from conftest import REPO_ROOT, flat, run_playbook, sh

pytestmark = pytest.mark.lab

HOST = "app1"
PUBLISH = "/srv/artifacts/seedops-japp"
SOURCE = os.path.join(REPO_ROOT, "tests", "fixtures", "japp")


@pytest.fixture(scope="module")
def jar(tmp_path_factory):
    """The sample service's jar, compiled here for Java 17."""
    work = tmp_path_factory.mktemp("japp")
    subprocess.run(["javac", "--release", "17", "-d", str(work / "classes"),
                    os.path.join(SOURCE, "src", "org", "seedops", "japp", "App.java")], check=True)
    subprocess.run(["jar", "--create", "--file", str(work / "japp.jar"), "--main-class", "org.seedops.japp.App",
                    "-C", str(work / "classes"), "."], check=True)
    return work / "japp.jar"


def settings(lab, **more):
    """The extra vars that make the lab's app settings the Java service's (for app_service and deploy)."""
    repo = f"http://{lab.host('repo1')['address']}/seedops-japp"
    return json.dumps({
        "target_hosts": HOST, "deploy_hosts": HOST,
        "app_service_name": "seedops-japp", "app_service_runtime": "jvm", "app_service_reload": "command",
        "app_service_reload_command": ["/usr/bin/curl", "-fsS", "-X", "POST", "http://127.0.0.1:9090/-/reload"],
        "app_service_env": {"PORT": "9090", "LOG_LEVEL": "debug"}, "app_service_secret_env": {},
        "app_service_beside_ports": [], "deploy_beside_ports": [],
        "deploy_app": "seedops-japp", "deploy_lb_hosts": [], "deploy_fanout": False,
        "deploy_artifact_url": repo + "/{{ deploy_version }}/{{ deploy_artifact_name }}",
        "deploy_checksum_url": repo + "/{{ deploy_version }}/SHA256SUMS",
        "deploy_build_record_url": repo + "/{{ deploy_version }}/seedops-japp-{{ deploy_version }}.build.json",
        "deploy_health": {"url": "http://127.0.0.1:9090/healthz", "successes": 2, "interval": 0.25, "timeout": 60},
        "deploy_version_url": "http://127.0.0.1:9090/version", **more})


def config(lab):
    return json.loads(sh(lab, HOST, "curl -fsS http://127.0.0.1:9090/config"))


def test_a_jar_is_built_checked_deployed_and_reloaded_without_a_new_jvm(lab, served_repo, jar, tmp_path):
    try:
        built, _recap = run_playbook("playbooks/build.yml", lab.inventory, "-e", "build_app=seedops-japp",
                                     "-e", "build_kind=jar", "-e", f"build_jar={jar}", "-e", f"build_source={SOURCE}",
                                     "-e", "build_version=1.0.0", "-e", f"build_output_dir={tmp_path / 'dist'}",
                                     "-e", '{"build_requires_env": ["LOG_LEVEL"]}',
                                     "-e", "build_publish_host=repo1", "-e", f"build_publish_dir={PUBLISH}/1.0.0")
        assert built.returncode == 0, built.stdout[-3000:]
        record = json.loads((tmp_path / "dist" / "seedops-japp-1.0.0.build.json").read_text())
        assert record["requires"]["java"] == 17 and record["kind"] == "jar"

        # A JVM is not sent SIGHUP: app_service refuses a signal reload for it before changing anything.
        refused, _recap = run_playbook("tests/integration/playbooks/japp.yml", lab.inventory,
                                       "-e", settings(lab, app_service_reload="signal"))
        assert refused.returncode != 0 and "a JVM runs its shutdown hooks and exits on SIGHUP" in flat(refused)
        assert lab.ssh(HOST, "test -e /etc/systemd/system/seedops-japp.service").returncode != 0

        ready, _recap = run_playbook("tests/integration/playbooks/japp.yml", lab.inventory, "-e", settings(lab))
        assert ready.returncode == 0, ready.stdout[-3000:]
        unit = sh(lab, HOST, "systemctl cat seedops-japp.service")
        assert "ExecReload=/usr/bin/curl -fsS -X POST http://127.0.0.1:9090/-/reload" in unit.replace('"', "")

        # The plan reads the host's Java: a Java newer than the host's is refused before any change.
        newer, _recap = run_playbook("playbooks/deploy.yml", lab.inventory, "-e", "deploy_version=1.0.0",
                                     "-e", settings(lab, deploy_requires={"java": 21}))
        assert newer.returncode != 0
        assert f"{HOST}: needs Java 21 or later, has Java 17" in flat(newer) and "Nothing was changed" in flat(newer)
        assert lab.ssh(HOST, "test -e /srv/seedops-japp/releases/1.0.0").returncode != 0

        deployed, _recap = run_playbook("playbooks/deploy.yml", lab.inventory, "-e", "deploy_version=1.0.0",
                                        "-e", settings(lab))
        assert deployed.returncode == 0, deployed.stdout[-3000:]
        assert "fit: every host can run the build (needs: linux/amd64; libc any; java >= 17; env LOG_LEVEL)" in flat(
            deployed)
        assert json.loads(sh(lab, HOST, "curl -fsS http://127.0.0.1:9090/version")) == {"version": "1.0.0"}
        before = config(lab)
        assert before["log_level"] == "debug"
        # The unit's main process is the JVM itself (the launcher exec'd it), running this release's jar.
        assert sh(lab, HOST, f"tr '\\0' ' ' < /proc/{before['pid']}/cmdline") == (
            "java -jar /srv/seedops-japp/releases/1.0.0/lib/seedops-japp.jar")
        assert sh(lab, HOST, "systemctl show -p MainPID --value seedops-japp") == str(before["pid"])

        reloaded, _recap = run_playbook("playbooks/reconfigure.yml", lab.inventory,
                                        "-e", settings(lab, app_service_env={"PORT": "9090", "LOG_LEVEL": "warn"}))
        assert reloaded.returncode == 0, reloaded.stdout[-3000:]
        assert config(lab) == {"log_level": "warn", "pid": before["pid"]}

        # Without a reload, reconfigure.yml says what to do instead and changes nothing.
        plain, _recap = run_playbook("tests/integration/playbooks/japp.yml", lab.inventory,
                                     "-e", settings(lab, app_service_reload="none",
                                                    app_service_env={"PORT": "9090", "LOG_LEVEL": "warn"}))
        assert plain.returncode == 0, plain.stdout[-3000:]
        env_before = sh(lab, HOST, "sudo cat /etc/seedops-japp/env")
        blocked, _recap = run_playbook("playbooks/reconfigure.yml", lab.inventory,
                                       "-e", settings(lab, app_service_reload="none",
                                                      app_service_env={"PORT": "9090", "LOG_LEVEL": "error"}))
        assert blocked.returncode != 0
        assert "seedops-japp on app1 has no reload (app_service_reload: none" in flat(blocked)
        assert "TASK [Lock]" not in blocked.stdout, "refused before the lock was taken"
        assert sh(lab, HOST, "sudo cat /etc/seedops-japp/env") == env_before
        assert config(lab) == {"log_level": "warn", "pid": before["pid"]}

        # A JVM stopped by SIGTERM exits 143: the unit counts that as a clean stop (SuccessExitStatus), not a failure.
        sh(lab, HOST, "sudo systemctl stop seedops-japp.service")
        assert sorted(sh(lab, HOST, "systemctl show -p ActiveState -p Result seedops-japp.service").split()) == [
            "ActiveState=inactive", "Result=success"]
    finally:
        lab.ssh(HOST, "sudo systemctl disable --now seedops-japp.service; sudo rm -rf /etc/systemd/system/seedops-japp.service"
                      " /srv/seedops-japp /etc/seedops-japp; sudo systemctl daemon-reload; sudo systemctl reset-failed")
        lab.ssh("repo1", f"sudo rm -rf {PUBLISH}")
