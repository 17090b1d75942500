"""staged_restart's logic (module_utils/_restart.py): a fake systemctl that "starts" whatever release
`current` points at, a real HTTP health endpoint on 127.0.0.1 that answers as that release would, and
real release directories and records in a temp dir. Then the module end to end, with a fake systemctl
and journalctl on PATH."""

import http.server
import json
import os
import sys
import threading

import pytest

import fakes


from ansible_collections.seedops.deploy.plugins.module_utils import _health
from ansible_collections.seedops.deploy.plugins.module_utils import _releases as rel
from ansible_collections.seedops.deploy.plugins.module_utils import _restart
from ansible_collections.seedops.deploy.plugins.modules import staged_restart


class App:
    """The service as the health endpoint shows it: which release runs, and which releases are good builds."""

    def __init__(self):
        self.running = None
        self.running_file = None  # where a systemctl in another process writes what it started
        self.good = {"1.0.0", "2.0.0"}

    def serving(self):
        if self.running_file:
            return self.running_file.read_text() if self.running_file.exists() else None
        return self.running


class FakeSystemctl:
    """run_command-alike for systemctl and journalctl; restart starts the release `current` points at."""

    def __init__(self, app, base=None):
        self.app = app
        self.base = base
        self.calls = []
        self.pid = 100
        self.fail = set()            # verbs that fail
        self.reload_restarts = False

    def __call__(self, argv):
        self.calls.append(argv)
        if argv[0] == "journalctl":
            return 0, "starting\nlistening on :8080\nhealth: broken build\n", ""
        verb = argv[1]
        if verb in self.fail:
            return 1, "", "Job for app.service failed because the control process exited with error code."
        if verb == "show":
            return 0, "%d\n" % self.pid, ""
        if verb == "restart" or (verb == "reload" and self.reload_restarts):
            self.pid += 1
            self.app.running = os.path.basename(os.readlink(os.path.join(self.base, "current"))) if self.base else "2.0.0"
        return 0, "", ""

    def verbs(self):
        return [argv[1] if argv[0] == "systemctl" else argv[0] for argv in self.calls]


@pytest.fixture(autouse=True)
def health_deadline_in_probes(monkeypatch):
    """The health gate's deadline counted on a fake clock that moves only by the interval between probes: the probes
    still go to the real server below, but a busy machine (slow answers) neither fails a healthy release nor makes an
    unhealthy one take longer. test_health covers the deadline on the real clock."""
    real = _health.wait_healthy

    def counted(probe, successes=3, interval=1.0, timeout=60.0, keep=10, clock=None, sleep=None):
        fake = fakes.Clock()
        return real(probe, successes, interval, timeout, keep, clock=fake, sleep=fake.sleep)

    monkeypatch.setattr(_health, "wait_healthy", counted)


@pytest.fixture(scope="module")
def health_url():
    app = App()

    class Handler(http.server.BaseHTTPRequestHandler):
        def log_message(self, *a):
            pass

        def do_GET(self):
            code, body = (200, b"ok") if app.serving() in app.good else (503, b"broken build")
            self.send_response(code)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

    srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=srv.serve_forever, args=(0.05,), daemon=True).start()
    yield "http://127.0.0.1:%d/healthz" % srv.server_address[1], app
    srv.shutdown()


@pytest.fixture
def app(health_url):
    _url, app = health_url
    app.running, app.running_file, app.good = None, None, {"1.0.0", "2.0.0"}
    return app


@pytest.fixture
def releases(tmp_path):
    """1.0.0 (previous) and 2.0.0 (previous, activated later) and 3.0.0 live: records as the release module writes them."""
    layout = rel.Layout(str(tmp_path / "srv"))
    layout.ensure()
    for seq, rid in enumerate(["1.0.0", "2.0.0", "3.0.0"], 1):
        os.mkdir(layout.release_dir(rid))
        rel.save_record(layout, {"id": rid, "state": "active" if rid == "3.0.0" else "previous", "seq": seq,
                                 "created": "2026-01-0%d" % seq})
    rel.switch_current(layout, "3.0.0")
    return layout


def params(url, **kw):
    health = {name: spec.get("default") for name, spec in _health.ARGUMENT_SPEC.items()}
    health.update(url=url, successes=2, interval=0.2, timeout=0.6)
    health.update(kw.pop("health", {}))
    p = {"service": "app", "mode": "restart", "daemon_reload": False, "health": health, "path": None,
         "rollback": True, "rollback_to": None, "lock_timeout": 2}
    p.update(kw)
    return p


def restarter(health_url, systemctl, check_mode=False, **kw):
    url, _app = health_url
    systemd = _restart.Systemd(systemctl, "systemctl", "journalctl")
    return _restart.Restarter(params(url, **kw), systemd, check_mode=check_mode)


def record(layout, rid):
    with open(layout.record_path(rid)) as f:
        return json.load(f)


def test_restart_into_a_healthy_release(health_url, app, releases):
    rel.switch_current(releases, "2.0.0")
    systemctl = FakeSystemctl(app, releases.base)
    r = restarter(health_url, systemctl, path=releases.base, daemon_reload=True).run()
    assert r["changed"] and r["healthy"] and not r["rolled_back"] and r["release"] == "2.0.0"
    assert r["pid_before"] == 100 and r["pid_after"] == 101
    assert r["health"]["healthy"] and r["health"]["consecutive"] == 2
    assert r["times"]["start"] <= r["times"]["acted"] <= r["times"]["end"]
    assert systemctl.verbs() == ["show", "daemon-reload", "restart", "show"]
    assert systemctl.calls[2] == ["systemctl", "restart", "app"]
    assert app.running == "2.0.0" and "journal" not in r


def test_a_broken_release_is_rolled_back_to_the_previous_healthy_one(health_url, app, releases):
    systemctl = FakeSystemctl(app, releases.base)
    with pytest.raises(_restart.RestartFailed) as err:
        restarter(health_url, systemctl, path=releases.base).run()
    r, msg = err.value.result, err.value.msg
    assert r["rolled_back"] and r["rolled_back_to"] == "2.0.0" and r["failed_release"] == "3.0.0"
    assert r["release"] == "2.0.0" and not r["healthy"] and not r["health"]["healthy"]
    assert r["rollback_health"]["healthy"] and r["pid_after"] == 102
    assert r["journal"] == ["starting", "listening on :8080", "health: broken build"]
    assert "app did not become healthy after restart: 0 of 2 consecutive successes" in msg
    assert "HTTP 503 'broken build'" in msg
    assert "Rolled back: 3.0.0 marked failed, current switched to 2.0.0 and app restarted; the service is healthy in 2.0.0." in msg
    assert rel.current_release(releases) == "2.0.0" and app.running == "2.0.0"
    assert record(releases, "3.0.0")["state"] == "failed" and record(releases, "2.0.0")["state"] == "active"
    assert systemctl.verbs() == ["show", "restart", "show", "journalctl", "restart", "show"]


def test_rollback_to_a_named_release_that_is_broken_too(health_url, app, releases):
    app.good = {"2.0.0"}
    with pytest.raises(_restart.RestartFailed) as err:
        restarter(health_url, FakeSystemctl(app, releases.base), path=releases.base, rollback_to="1.0.0").run()
    assert err.value.result["rolled_back_to"] == "1.0.0" and not err.value.result["rollback_health"]["healthy"]
    assert "the service is STILL UNHEALTHY in 1.0.0 (last: HTTP 503 'broken build'" in err.value.msg
    assert rel.current_release(releases) == "1.0.0"


def test_nothing_to_roll_back_to_leaves_current(health_url, app, releases):
    for rid in ("1.0.0", "2.0.0"):
        rec = record(releases, rid)
        rec["state"] = "failed"
        rel.save_record(releases, rec)
    with pytest.raises(_restart.RestartFailed, match="No previous healthy release to roll back to under .*; the service "
                                                     "is left in 3.0.0") as err:
        restarter(health_url, FakeSystemctl(app, releases.base), path=releases.base).run()
    assert not err.value.result["rolled_back"] and rel.current_release(releases) == "3.0.0"


def test_without_path_or_rollback_nothing_is_rolled_back(health_url, app, releases):
    with pytest.raises(_restart.RestartFailed, match=r"Nothing was rolled back \(give path to roll back the release\)\.$"):
        restarter(health_url, FakeSystemctl(app, releases.base)).run()
    with pytest.raises(_restart.RestartFailed, match=r"Nothing was rolled back\.$") as err:
        restarter(health_url, FakeSystemctl(app, releases.base), path=releases.base, rollback=False).run()
    assert not err.value.result["rolled_back"] and rel.current_release(releases) == "3.0.0"


def test_reload_keeps_the_process(health_url, app, releases):
    app.running = "2.0.0"
    systemctl = FakeSystemctl(app)
    r = restarter(health_url, systemctl, mode="reload").run()
    assert r["healthy"] and r["pid_before"] == r["pid_after"] == 100
    assert systemctl.verbs() == ["show", "reload", "show"]


def test_a_reload_that_restarts_fails_and_never_rolls_back(health_url, app, releases):
    rel.switch_current(releases, "2.0.0")
    app.running = "2.0.0"
    systemctl = FakeSystemctl(app, releases.base)
    systemctl.reload_restarts = True
    with pytest.raises(_restart.RestartFailed) as err:
        restarter(health_url, systemctl, mode="reload", path=releases.base).run()
    assert err.value.msg == ("app restarted during a reload (pid 100 -> 101); reload must keep the process. "
                             "Nothing was rolled back.")
    assert err.value.result["health"]["healthy"] and not err.value.result["rolled_back"]
    assert rel.current_release(releases) == "2.0.0"


def test_systemctl_failing_is_reported_without_probing(health_url, app):
    systemctl = FakeSystemctl(app)
    systemctl.fail.add("restart")
    with pytest.raises(_restart.RestartFailed) as err:
        restarter(health_url, systemctl).run()
    assert err.value.msg.startswith("systemctl restart app failed (rc 1): Job for app.service failed")
    assert err.value.result["health"]["attempts"] == 0
    assert err.value.result["health"]["responses"][0]["error"].startswith("systemctl restart failed: Job for")


def test_check_mode_restarts_nothing(health_url, app, releases):
    systemctl = FakeSystemctl(app, releases.base)
    r = restarter(health_url, systemctl, check_mode=True, path=releases.base).run()
    assert r["changed"] and r["healthy"] and r["release"] == "3.0.0" and "times" not in r and "health" not in r
    assert systemctl.verbs() == ["show"] and app.running is None


def test_bad_input_fails_before_anything_runs(health_url, app, releases):
    systemctl = FakeSystemctl(app, releases.base)
    with pytest.raises(_restart.RestartFailed, match=r"^rollback_to: release_id '\.\./etc' is not valid"):
        restarter(health_url, systemctl, path=releases.base, rollback_to="../etc").run()
    with pytest.raises(_restart.RestartFailed, match="health needs url"):
        restarter(health_url, systemctl, health={"url": None}).run()
    assert systemctl.calls == []


# release_id: the switch and the restart in one run

def test_switch_then_restart_into_the_release(health_url, app, releases):
    systemctl = FakeSystemctl(app, releases.base)
    who = {"controller": "ctl", "job_id": "7"}
    r = restarter(health_url, systemctl, path=releases.base, release_id="2.0.0", deployed_by=who, keep=2).run()
    assert r["healthy"] and r["switched"] and r["previous"] == "3.0.0" and r["release"] == "2.0.0"
    assert r["times"]["start"] <= r["times"]["switched"] <= r["times"]["acted"] <= r["times"]["end"]
    assert r["pruned"] == ["1.0.0"] and not os.path.exists(releases.release_dir("1.0.0"))
    assert app.running == "2.0.0" and rel.current_release(releases) == "2.0.0"
    assert record(releases, "2.0.0")["state"] == "active" and record(releases, "2.0.0")["activated_by"]["job_id"] == "7"
    assert record(releases, "3.0.0")["state"] == "previous"
    assert systemctl.verbs() == ["show", "restart", "show"]


def test_a_release_already_live_is_restarted_without_a_switch(health_url, app, releases):
    app.good = {"3.0.0"}
    r = restarter(health_url, FakeSystemctl(app, releases.base), path=releases.base, release_id="3.0.0").run()
    assert not r["switched"] and r["previous"] == "3.0.0" and r["release"] == "3.0.0" and r["pid_after"] == 101


def test_a_switch_back_marks_the_release_left_failed(health_url, app, releases):
    r = restarter(health_url, FakeSystemctl(app, releases.base), path=releases.base, release_id="2.0.0",
                  previous_state="failed", deployed_by={"user": "alice"}).run()
    assert r["switched"] and r["release"] == "2.0.0" and app.running == "2.0.0"
    left = record(releases, "3.0.0")
    assert left["state"] == "failed" and left["failed_by"]["user"] == "alice" and left["failed_by"]["remote_user"]


def test_a_switch_that_is_refused_restarts_nothing(health_url, app, releases):
    systemctl = FakeSystemctl(app, releases.base)
    with pytest.raises(_restart.RestartFailed) as err:
        restarter(health_url, systemctl, path=releases.base, release_id="4.0.0").run()
    assert err.value.msg.startswith("could not switch %s to release 4.0.0: release 4.0.0 is not staged under " % releases.base)
    assert "stage it first" in err.value.msg and err.value.msg.endswith("Nothing was restarted: app runs 3.0.0 as before")
    assert not err.value.result["switched"] and "health" not in err.value.result and "times" not in err.value.result
    assert systemctl.verbs() == ["show"] and rel.current_release(releases) == "3.0.0"
    with pytest.raises(_restart.RestartFailed, match="release_id needs path"):
        restarter(health_url, systemctl, release_id="2.0.0").run()


def test_a_broken_release_switched_to_is_rolled_back_and_failed_by_names_who(health_url, app, releases):
    app.good = {"1.0.0", "3.0.0"}
    with pytest.raises(_restart.RestartFailed) as err:
        restarter(health_url, FakeSystemctl(app, releases.base), path=releases.base, release_id="2.0.0",
                  rollback_to="3.0.0", deployed_by={"job_id": "9"}).run()
    r = err.value.result
    assert r["switched"] and r["rolled_back"] and r["rolled_back_to"] == "3.0.0" and r["failed_release"] == "2.0.0"
    assert r["rollback_health"]["healthy"] and rel.current_release(releases) == "3.0.0" and app.running == "3.0.0"
    assert record(releases, "2.0.0")["state"] == "failed" and record(releases, "2.0.0")["failed_by"]["job_id"] == "9"


def test_check_mode_switches_nothing(health_url, app, releases):
    systemctl = FakeSystemctl(app, releases.base)
    r = restarter(health_url, systemctl, check_mode=True, path=releases.base, release_id="2.0.0", keep=1).run()
    assert r["changed"] and not r["switched"] and r["release"] == "2.0.0" and "times" not in r
    assert rel.current_release(releases) == "3.0.0" and os.path.isdir(releases.release_dir("1.0.0"))
    assert systemctl.verbs() == ["show"]


def test_systemd_helpers():
    assert _restart.Systemd(lambda argv: (0, "\n", ""), "systemctl").main_pid("app") == 0
    assert _restart.Systemd(lambda argv: (0, "MainPID=x\n", ""), "systemctl").main_pid("app") == 0
    assert _restart.Systemd(lambda argv: (1, "", "no such unit"), "systemctl").main_pid("app") == 0
    assert _restart.Systemd(lambda argv: (0, "1234\n", ""), "systemctl").main_pid("app") == 1234
    assert _restart.Systemd(lambda argv: (0, "x\n", ""), "systemctl").journal_tail("app") == []
    lines = "".join("line %d\n" % i for i in range(40))
    tail = _restart.Systemd(lambda argv: (0, lines, ""), "systemctl", "journalctl").journal_tail("app")
    assert tail == ["line %d" % i for i in range(25, 40)]


# the module, end to end in this process

# `systemctl restart` "starts" the release current points at: it writes its id to $FAKE_STATE/running.
SYSTEMCTL = """#!%s
import os, sys
state = os.environ["FAKE_STATE"]
with open(os.path.join(state, "calls"), "a") as f:
    f.write(" ".join(sys.argv[1:]) + "\\n")
pid_file = os.path.join(state, "pid")
pid = int(open(pid_file).read()) if os.path.exists(pid_file) else 100
if sys.argv[1] == "show":
    print(pid)
elif sys.argv[1] == "restart":
    open(pid_file, "w").write(str(pid + 1))
    release = os.path.basename(os.readlink(os.path.join(os.environ["FAKE_BASE"], "current")))
    open(os.path.join(state, "running"), "w").write(release)
""" % sys.executable
JOURNALCTL = "#!%s\nprint('app: health: broken build')\n" % sys.executable


@pytest.fixture
def host(tmp_path, monkeypatch, app, releases):
    """The state dir of the fake systemctl and journalctl, which come first on PATH."""
    bindir, state = tmp_path / "bin", tmp_path / "state"
    bindir.mkdir()
    state.mkdir()
    for name, text in (("systemctl", SYSTEMCTL), ("journalctl", JOURNALCTL)):
        (bindir / name).write_text(text)
        (bindir / name).chmod(0o755)
    monkeypatch.setenv("PATH", "%s:%s" % (bindir, os.environ.get("PATH", "")))
    monkeypatch.setenv("FAKE_STATE", str(state))
    monkeypatch.setenv("FAKE_BASE", releases.base)
    app.running_file = state / "running"
    return state


def module_run(capsys, args):
    return fakes.run_main(staged_restart.main, capsys, args)


def module_args(health_url, releases, **kw):
    url, _app = health_url
    return dict({"service": "app", "path": releases.base,
                 "health": {"url": url, "successes": 2, "interval": 0.2, "timeout": 0.6}}, **kw)


def test_module_restarts_behind_the_health_gate(health_url, releases, host, capsys):
    rel.switch_current(releases, "2.0.0")
    code, out = module_run(capsys, module_args(health_url, releases))
    assert code == 0 and out["changed"] and out["healthy"] and not out["rolled_back"], out
    assert out["release"] == "2.0.0" and out["pid_before"] == 100 and out["pid_after"] == 101
    assert set(out["times"]) == {"start", "acted", "end"} and out["health"]["consecutive"] == 2
    assert (host / "calls").read_text().splitlines() == [
        "show --property=MainPID --value app", "restart app", "show --property=MainPID --value app"]


def test_module_rolls_back_a_broken_release(health_url, releases, host, capsys):
    code, out = module_run(capsys, module_args(health_url, releases))
    assert code == 1 and out["failed"] and out["rolled_back"] and out["rolled_back_to"] == "2.0.0"
    assert out["failed_release"] == "3.0.0" and out["rollback_health"]["healthy"]
    assert out["journal"] == ["app: health: broken build"]
    assert "the service is healthy in 2.0.0." in out["msg"] and rel.current_release(releases) == "2.0.0"


def test_module_switches_and_restarts_in_one_run_with_a_diff(health_url, releases, host, capsys):
    code, out = module_run(capsys, module_args(health_url, releases, release_id="2.0.0", _ansible_diff=True))
    assert code == 0 and out["switched"] and out["release"] == "2.0.0" and out["healthy"], out
    assert out["diff"] == {"before": {"current": "3.0.0"}, "after": {"current": "2.0.0"}}
    assert set(out["times"]) == {"start", "switched", "acted", "end"}
    assert (host / "running").read_text() == "2.0.0"
    code, out = module_run(capsys, module_args(health_url, releases, keep=2))
    assert code == 1 and "missing parameter(s) required by 'keep': release_id" in out["msg"]


def test_module_check_mode_and_a_health_check_without_target(health_url, releases, host, capsys):
    code, out = module_run(capsys, module_args(health_url, releases, _ansible_check_mode=True))
    assert code == 0 and out["changed"] and "times" not in out and not (host / "running").exists()
    code, out = module_run(capsys, {"service": "app", "health": {"successes": 2}})
    assert code == 1 and "one of the following is required: url, port found in health" in out["msg"]
    assert not (host / "calls").exists() or "restart" not in (host / "calls").read_text()
