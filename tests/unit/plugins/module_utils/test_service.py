"""What a service really runs: its main process's release read from a /proc-shaped tree of real symlinks, systemd's
answer parsed, and the version the service reports from a real HTTP server on 127.0.0.1."""

import os
import subprocess
import sys
import time

import pytest

from fakes import http_routes

from ansible_collections.seedops.deploy.plugins.module_utils import _service


@pytest.fixture
def tree(tmp_path):
    releases = tmp_path / "srv" / "releases"
    for release in ("1.0.0", "2.0.0"):
        (releases / release / "bin").mkdir(parents=True)
    proc = tmp_path / "proc"

    def process(pid, exe, cwd):
        (proc / str(pid)).mkdir(parents=True)
        os.symlink(exe, proc / str(pid) / "exe")
        os.symlink(cwd, proc / str(pid) / "cwd")

    return str(releases), str(proc), process


def test_release_under():
    assert _service.release_under("/srv/app/releases", "/srv/app/releases/2.0.0/bin/app") == "2.0.0"
    assert _service.release_under("/srv/app/releases/", "/srv/app/releases/2.0.0") == "2.0.0"
    assert _service.release_under("/srv/app/releases", "/srv/app/releases/2.0.0/bin/app (deleted)") == "2.0.0"
    assert _service.release_under("/srv/app/releases", "/srv/app/releases") is None
    assert _service.release_under("/srv/app/releases", "/srv/app/releases-old/2.0.0/app") is None
    assert _service.release_under("/srv/app/releases", "/usr/bin/java") is None
    assert _service.release_under("/srv/app/releases", "/srv/app/releases/../etc/x") is None
    assert _service.release_under("/srv/app/releases", "") is None


def test_release_of_process_by_exe_then_cwd(tree):
    releases, proc, process = tree
    process(10, releases + "/2.0.0/bin/app", "/")
    process(11, "/usr/bin/java", releases + "/1.0.0")
    process(12, "/usr/bin/python3", "/tmp")
    assert _service.release_of_process(releases, 10, proc) == ("2.0.0", "exe")
    assert _service.release_of_process(releases, 11, proc) == ("1.0.0", "cwd")
    assert _service.release_of_process(releases, 12, proc) == (None, None)
    assert _service.release_of_process(releases, 13, proc) == (None, None)
    assert _service.release_of_process(releases, 0, proc) == (None, None)


def test_release_of_a_real_process_started_through_the_current_link(tmp_path):
    """The kernel resolves `current` when the process starts: switching the link later does not change the answer."""
    releases = tmp_path / "releases"
    for release in ("1.0.0", "2.0.0"):
        (releases / release).mkdir(parents=True)
    current = tmp_path / "current"
    os.symlink(releases / "1.0.0", current)
    child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)"], cwd=str(current))
    try:
        os.unlink(current)
        os.symlink(releases / "2.0.0", current)
        assert _service.release_of_process(str(releases), child.pid) == ("1.0.0", "cwd")
    finally:
        child.kill()
        child.wait()


SHOW = "ActiveState=active\nSubState=running\nMainPID=10\nExecMainStartTimestamp=Tue 2026-12-01 20:00:00 UTC\n" \
       "LoadState=loaded\n"


def fake_run(rc, out, err="", enabled="enabled\n"):
    """systemctl: `show` answers (rc, out, err); `is-enabled` answers `enabled` (exit 1 unless it says enabled)."""
    calls = []

    def run(argv):
        calls.append(argv)
        if argv[1] == "is-enabled":
            return (0 if enabled.strip() == "enabled" else 1), enabled, ""
        return rc, out, err
    run.calls = calls
    return run


def test_service_state_measures_the_release_of_the_main_process(tree):
    releases, proc, process = tree
    process(10, releases + "/1.0.0/bin/app", "/")
    run = fake_run(0, SHOW)
    state = _service.service_state(run, "/bin/systemctl", "app", releases, proc=proc)
    assert run.calls == [["/bin/systemctl", "show", "--property=" + ",".join(_service.PROPERTIES), "app"],
                         ["/bin/systemctl", "is-enabled", "app"]]
    assert state == {"name": "app", "state": "active", "sub": "running", "pid": 10,
                     "since": "Tue 2026-12-01 20:00:00 UTC", "boot": "enabled", "release": "1.0.0", "seen_by": "exe",
                     "reports": None, "error": None}


def test_service_state_of_a_stopped_missing_or_unreadable_unit(tree):
    releases, proc, _process = tree
    stopped = _service.service_state(fake_run(0, "ActiveState=failed\nSubState=failed\nMainPID=0\nLoadState=loaded",
                                              enabled="disabled\n"), "systemctl", "app", releases, proc=proc)
    assert (stopped["state"], stopped["pid"], stopped["release"], stopped["error"], stopped["boot"]) == (
        "failed", None, None, None, "disabled")
    missing = _service.service_state(fake_run(0, "ActiveState=inactive\nMainPID=0\nLoadState=not-found", enabled=""),
                                     "systemctl", "nope", releases, proc=proc)
    assert missing["state"] == "not-found" and "no unit nope" in missing["error"] and missing["boot"] is None
    masked = _service.service_state(fake_run(0, "ActiveState=inactive\nMainPID=0\nLoadState=masked", enabled="masked\n"),
                                    "systemctl", "app", releases, proc=proc)
    assert (masked["state"], masked["boot"]) == ("inactive", "masked")
    broken = _service.service_state(fake_run(1, "", "Failed to connect to bus"), "systemctl", "app", releases, proc=proc)
    assert broken["state"] is None and broken["error"] == "Failed to connect to bus"


@pytest.fixture(scope="module")
def base():
    with http_routes({"/json": (200, b'{"version": "2.0.0", "pid": 1}'), "/text": (200, b"2.0.0-rc1\nmore\n"),
                      "/nofield": (200, b'{"name": "x"}'), "/empty": (200, b"  "), "/down": (503, b"no")}) as where:
        yield where[0]


def test_reported_version(base):
    assert _service.reported_version(base + "/json") == ("2.0.0", None)
    assert _service.reported_version(base + "/text") == ("2.0.0-rc1", None)
    assert _service.reported_version(base + "/nofield") == (None, base + "/nofield has no version field")
    assert _service.reported_version(base + "/empty") == (None, base + "/empty answered an empty body")
    assert _service.reported_version(base + "/down") == (None, base + "/down answered HTTP 503")


def test_version_asked_only_of_an_active_service(tree, base):
    releases, proc, process = tree
    process(10, releases + "/2.0.0/bin/app", "/")
    state = _service.service_state(fake_run(0, SHOW), "systemctl", "app", releases, base + "/json", proc=proc)
    assert (state["release"], state["reports"], state["error"]) == ("2.0.0", "2.0.0", None)
    stopped = _service.service_state(fake_run(0, "ActiveState=inactive\nMainPID=0"), "systemctl", "app", releases,
                                     base + "/json", proc=proc)
    assert stopped["reports"] is None and stopped["error"] is None


def test_process_start_of_a_real_child_is_when_it_started():
    before = time.time()
    child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)"])
    try:
        started = _service.process_start(child.pid)
        assert before - 0.05 <= started <= time.time() + 0.05
    finally:
        child.kill()
        child.wait()
    assert _service.process_start(0, proc="/nonexistent") is None


RECORDS = [{"id": "2.0.0", "activated": "2026-12-01T10:00:00.500000Z"},
           {"id": "1.0.0", "activated": "2026-11-30T09:00:00.000000Z"},
           {"id": "3.0.0", "activated": None}, {"id": "bad", "activated": "yesterday"}]


def test_release_live_at_is_the_one_activated_last_before():
    at = _service.parse_iso
    assert _service.release_live_at(RECORDS, at("2026-12-01T10:00:00.600000Z")) == "2.0.0"
    assert _service.release_live_at(RECORDS, at("2026-12-01T10:00:00.400000Z")) == "1.0.0"
    assert _service.release_live_at(RECORDS, at("2026-11-01T00:00:00.000000Z")) is None
    assert _service.release_live_at([], time.time()) is None


def test_without_the_process_links_the_start_time_tells(tree):
    """Root without CAP_SYS_PTRACE cannot read another user's /proc/<pid>/exe: the start time decides."""
    releases, proc, _process = tree
    os.makedirs(os.path.join(proc, "10"))
    hz = os.sysconf("SC_CLK_TCK")
    with open(os.path.join(proc, "uptime"), "w") as f:
        f.write("1000.00 1900.00\n")
    with open(os.path.join(proc, "10", "stat"), "w") as f:  # started 900 s after boot: 100 s before "now"
        f.write("10 (seedops) app) S " + " ".join(["0"] * 18) + " %d 0 0\n" % (900 * hz))
    now = _service.parse_iso("2026-12-01T10:02:00.000000Z")
    assert _service.process_start(10, proc, clock=lambda: now) == pytest.approx(now - 100, abs=0.01)
    # It started 20 s after 2.0.0 went live: it runs 2.0.0. Had 2.0.0 gone live after it started: 1.0.0.
    state = _service.service_state(fake_run(0, SHOW), "systemctl", "app", releases, proc=proc, records=RECORDS,
                                   clock=lambda: now)
    assert (state["release"], state["seen_by"]) == ("2.0.0", "start time")
    later = [dict(RECORDS[0], activated="2026-12-01T10:00:30.000000Z")] + RECORDS[1:]
    state = _service.service_state(fake_run(0, SHOW), "systemctl", "app", releases, proc=proc, records=later,
                                   clock=lambda: now)
    assert (state["release"], state["seen_by"]) == ("1.0.0", "start time")
    assert _service.service_state(fake_run(0, SHOW), "systemctl", "app", releases, proc=proc)["release"] is None


def test_findings_say_what_the_service_shows_that_the_live_release_does_not():
    service = {"state": "active", "release": "1.0.0", "healthy": False, "reports": "1.0.0-dirty", "boot": "masked"}
    assert _service.findings(service, "2.0.0") == {"down": None, "stale": "1.0.0", "unhealthy": True,
                                                   "says": "1.0.0-dirty", "not_at_boot": "masked"}
    assert _service.findings({"state": "failed", "boot": "enabled"}, "2.0.0") == {
        "down": "failed", "stale": None, "unhealthy": False, "says": None, "not_at_boot": None}
    assert _service.findings({"state": "active", "release": "2.0.0", "reports": "2.0.0"}, "2.0.0")["says"] is None
    # Units that start at boot, or that something else starts: nothing to say.
    for boot in ("enabled", "enabled-runtime", "static", "indirect", "generated", None):
        assert _service.findings({"state": "active", "boot": boot}, "2.0.0")["not_at_boot"] is None, boot
    for boot in ("disabled", "masked", "linked"):
        assert _service.findings({"state": "active", "boot": boot}, "2.0.0")["not_at_boot"] == boot
    assert _service.findings(None, "2.0.0") == {"down": None, "stale": None, "unhealthy": False, "says": None,
                                                "not_at_boot": None}
