"""app_service, staged_restart and health_check on a lab host with the sample service: restart
into new releases behind a health gate, automatic rollback of a broken one, reload without restart."""

import json
import shlex

import pytest

from conftest import copy_to, refused, run_module, run_playbook, service_version, sh

pytestmark = pytest.mark.lab

HOST = "app3"
BASE = "/srv/seedops-app"
HEALTH = {"url": "http://127.0.0.1:8080/healthz", "successes": 3, "interval": 0.3, "timeout": 20}
PLAYBOOK = "tests/integration/playbooks/app_service.yml"
PROGRAM = f"{BASE}/current/bin/seedops-app"
# Arguments and environment values the service must get exactly as given (the sample service ignores arguments after
# its flags): spaces, $ and % that systemd would split or expand, quotes and backslashes, raw UTF-8.
ARGS = ["two words", "$HOME ${PORT}", "100%n", 'say "hi" \\o/', "café"]
TRICKY_ENV = {"SEEDOPS_UTF8": "café ☕", "SEEDOPS_LITERAL": "\\u00e9 \\n", "SEEDOPS_SHELLISH": '"$HOME" `id` \\ %n',
              "SEEDOPS_TAB": "a\tb"}
# The playbook's values, with the arguments and tricky values added; every run of the playbook here passes them.
EXTRA = ["-e", json.dumps({"app_service_args": ARGS, "app_service_env": {
    "PORT": "8080", "LOG_LEVEL": "{{ app_log_level | default('debug') }}", "DRAIN_DELAY": "300ms", **TRICKY_ENV}})]


def play(lab, *args):
    return run_playbook(PLAYBOOK, lab.inventory, "-e", f"target_hosts={HOST}", *EXTRA, *args)


def version(lab):
    return service_version(lab, HOST)


@pytest.fixture(scope="module")
def service(lab, app_packages):
    lab.ssh(HOST, f"sudo systemctl stop seedops-app 2>/dev/null; sudo rm -rf {BASE} /etc/seedops-app "
                  "/etc/systemd/system/seedops-app.service; sudo systemctl daemon-reload")
    result, recap = play(lab, "-e", "app_api_token=do-not-print-me")
    assert result.returncode == 0, result.stdout[-3000:]
    assert "do-not-print-me" not in result.stdout + result.stderr
    for v in ("1.0.0", "2.0.0", "3.0.0"):
        copy_to(lab, HOST, app_packages[v], f"/var/tmp/app-{v}.tar.gz")
    yield
    lab.ssh(HOST, "sudo systemctl stop seedops-app")


def test_role_is_idempotent_and_writes_a_private_env_file(lab, service):
    result, recap = play(lab, "-e", "app_api_token=do-not-print-me")
    assert result.returncode == 0 and recap[HOST]["changed"] == 0, result.stdout[-2000:]
    check, recap = play(lab, "--check", "--diff", "-e", "app_api_token=do-not-print-me")
    assert check.returncode == 0 and recap[HOST]["changed"] == 0, check.stdout[-2000:]
    assert "do-not-print-me" not in check.stdout + check.stderr
    assert sh(lab, HOST, "sudo stat -c '%a %U %G' /etc/seedops-app/env") == "640 root seedops-app"
    env = sh(lab, HOST, "sudo cat /etc/seedops-app/env")
    assert 'API_TOKEN="do-not-print-me"' in env and 'PORT="8080"' in env
    assert 'SEEDOPS_UTF8="café ☕"' in env, "raw UTF-8, not \\u escapes systemd would keep"
    # systemd reads every value back exactly (EnvironmentFile=).
    show = "import json, os, sys; print(json.dumps({k: os.environ.get(k) for k in sys.argv[1:]}))"
    out = sh(lab, HOST, "sudo systemd-run --quiet --pipe --wait -p EnvironmentFile=/etc/seedops-app/env /usr/bin/python3 "
                        f"-c {shlex.quote(show)} {' '.join(TRICKY_ENV)} API_TOKEN")
    assert json.loads(out) == {**TRICKY_ENV, "API_TOKEN": "do-not-print-me"}
    unit = sh(lab, HOST, "systemctl show seedops-app -p NoNewPrivileges -p ProtectSystem -p PrivateTmp -p User")
    assert set(unit.splitlines()) == {"NoNewPrivileges=yes", "ProtectSystem=strict", "PrivateTmp=yes",
                                      "User=seedops-app"}


def test_restart_into_releases_behind_a_health_gate_and_roll_back_a_broken_one(lab, service):
    def release(v, **kw):
        r = run_module(lab, HOST, "seedops.deploy.release",
                       {"path": BASE, "release_id": v, "src": f"/var/tmp/app-{v}.tar.gz", "state": "active", **kw})
        assert r["_status"] in ("SUCCESS", "CHANGED"), r
        return r

    def restart(**kw):
        return run_module(lab, HOST, "seedops.deploy.staged_restart",
                          {"service": "seedops-app", "path": BASE, "health": HEALTH, **kw})

    release("1.0.0")
    check = run_module(lab, HOST, "seedops.deploy.staged_restart",
                       {"service": "seedops-app", "path": BASE, "health": HEALTH}, check=True)
    assert check["changed"] and "health" not in check
    r = restart()
    assert r["changed"] and r["healthy"] and not r["rolled_back"], r
    assert r["health"]["consecutive"] == 3 and r["release"] == "1.0.0"
    assert version(lab)["version"] == "1.0.0"
    assert sh(lab, HOST, "systemctl is-enabled seedops-app") == "enabled"

    release("2.0.0")
    r = restart()
    assert r["healthy"] and r["pid_after"] != r["pid_before"], r
    assert version(lab)["version"] == "2.0.0"

    release("3.0.0")  # a build whose /healthz never passes
    r = restart(health={**HEALTH, "timeout": 4})
    assert r["_status"] == "FAILED!"
    assert r["rolled_back"] and r["rolled_back_to"] == "2.0.0" and r["failed_release"] == "3.0.0", r
    assert "did not become healthy after restart" in r["msg"] and "HTTP 503 'broken build'" in r["msg"]
    assert "Rolled back: 3.0.0 marked failed, current switched to 2.0.0" in r["msg"]
    assert "the service is healthy in 2.0.0" in r["msg"]
    assert r["rollback_health"]["healthy"]
    assert version(lab)["version"] == "2.0.0"
    assert sh(lab, HOST, f"readlink {BASE}/current") == "releases/2.0.0"
    assert json.loads(sh(lab, HOST, f"cat {BASE}/releases/3.0.0.json"))["state"] == "failed"
    info = run_module(lab, HOST, "seedops.deploy.release_info", {"path": BASE})
    assert info["current"] == "2.0.0" and info["rollback_target"] == "1.0.0"


def test_the_service_gets_its_arguments_and_environment_exactly(lab, service):
    if sh(lab, HOST, "systemctl is-active seedops-app || true") != "active":  # alone: start 1.0.0
        r = run_module(lab, HOST, "seedops.deploy.release",
                       {"path": BASE, "release_id": "1.0.0", "src": "/var/tmp/app-1.0.0.tar.gz", "state": "active"})
        assert r["_status"] in ("SUCCESS", "CHANGED"), r
        sh(lab, HOST, "sudo systemctl restart seedops-app")
    pid = sh(lab, HOST, "systemctl show -p MainPID --value seedops-app")
    argv = sh(lab, HOST, f"sudo python3 -c 'import json; print(json.dumps(open(\"/proc/{pid}/cmdline\", "
                         "encoding=\"utf-8\").read().split(chr(0))[:-1]))'")
    assert json.loads(argv) == [PROGRAM, *ARGS]
    environ = sh(lab, HOST, f"sudo python3 -c 'import json; print(json.dumps(dict(kv.split(\"=\", 1) for kv in "
                            f"open(\"/proc/{pid}/environ\", encoding=\"utf-8\").read().split(chr(0))[:-1])))'")
    assert {k: json.loads(environ).get(k) for k in TRICKY_ENV} == TRICKY_ENV


def test_bad_keys_values_and_program_fail_before_anything_changes(lab, service):
    before = sh(lab, HOST, "sudo sha256sum /etc/seedops-app/env /etc/systemd/system/seedops-app.service")
    out = refused(*run_playbook(PLAYBOOK, lab.inventory, "-e", f"target_hosts={HOST}", "-e", json.dumps({
        "app_service_env": {"MY-VAR": "x", "PORT": "8080", "PEM": "line 1\nline 2"},
        "app_service_secret_env": {"2FA_SEED": "hidden-seed-value"},
        "app_service_exec": "/usr/bin/java -jar app.jar", "app_service_writable_paths": ["/var/lib/my data"]})), HOST,
        'app_service_env: "MY-VAR" is not a variable name - use letters, digits and _, not starting with a digit',
        "app_service_env: the value of PEM holds a line break",
        'app_service_secret_env: "2FA_SEED" is not a variable name',
        'app_service_exec must be the absolute path of the program alone, got "/usr/bin/java -jar app.jar" - its '
        "arguments go in app_service_args",
        'app_service_base and app_service_writable_paths must be absolute paths of letters, digits and _ . / @ + - '
        '(systemd reads WorkingDirectory= and ReadWritePaths= with spaces, quotes and % specially), got "/var/lib/my data"',
        "Nothing was changed")
    assert "hidden-seed-value" not in out
    assert sh(lab, HOST, "sudo sha256sum /etc/seedops-app/env /etc/systemd/system/seedops-app.service") == before


def test_reload_changes_config_without_a_new_process(lab, service):
    if sh(lab, HOST, "systemctl is-active seedops-app || true") != "active":
        pytest.skip("needs the service from the restart test")
    before = version(lab)
    result, _recap = play(lab, "-e", "app_log_level=warn")
    assert result.returncode == 0
    r = run_module(lab, HOST, "seedops.deploy.staged_restart",
                   {"service": "seedops-app", "mode": "reload", "health": HEALTH})
    assert r["healthy"] and r["pid_before"] == r["pid_after"] == before["pid"], r
    after = version(lab)
    assert after["log_level"] == "warn" and after["pid"] == before["pid"]


def test_health_check_from_the_lb_and_a_failing_one(lab, service):
    if sh(lab, HOST, "systemctl is-active seedops-app || true") != "active":
        pytest.skip("needs the service from the restart test")
    address = lab.host(HOST)["address"]
    r = run_module(lab, "lb1", "seedops.deploy.health_check",
                   {"url": f"http://{address}:8080/version", "body_regex": '"version": *"2.0.0"', "interval": 0.2},
                   become=False)
    assert r["healthy"] and not r["changed"] and r["attempts"] == 3, r
    bad = run_module(lab, HOST, "seedops.deploy.health_check",
                     {"port": 8099, "timeout": 1.5, "interval": 0.5, "successes": 1}, become=False)
    assert bad["_status"] == "FAILED!" and "tcp://127.0.0.1:8099 is not healthy" in bad["msg"]
    assert "refused" in bad["msg"].lower()
