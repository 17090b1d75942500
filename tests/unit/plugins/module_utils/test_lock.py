"""The deploy lock: waits, times out naming the holder, takes over a lock whose holder is gone."""

import fcntl
import json
import multiprocessing
import os
import time
import types

import pytest

from ansible_collections.seedops.deploy.plugins.module_utils import _lock


def hold(path, seconds, ready):
    with _lock.DeployLock(path, "holder-process", timeout=1):
        ready.set()
        time.sleep(seconds)


def holding(path, seconds):
    """A process that holds the lock at path for `seconds`, started and holding it."""
    ready = multiprocessing.Event()
    p = multiprocessing.Process(target=hold, args=(path, seconds, ready))
    p.start()
    assert ready.wait(10), "the holder process did not take the lock"
    return p


def test_second_caller_times_out_naming_the_holder(tmp_path):
    path = str(tmp_path / ".lock")
    p = holding(path, 3)
    try:
        with pytest.raises(_lock.LockTimeout) as err:
            _lock.DeployLock(path, "second", timeout=0.3).acquire()
        assert "holder-process (pid %d" % p.pid in str(err.value)
        assert "lock_timeout" in str(err.value)
    finally:
        p.join()


def test_waiter_gets_the_lock_when_the_holder_finishes(tmp_path):
    path = str(tmp_path / ".lock")
    p = holding(path, 0.5)
    with _lock.DeployLock(path, "second", timeout=10) as lock:
        assert lock.waited > 0.1
        assert lock.took_over is None, "a holder that released cleanly leaves no record"
        assert json.load(open(path))["owner"] == "second"
    p.join()
    assert open(path).read() == ""


def test_a_free_lock_reports_no_wait_however_slow_the_host(tmp_path, monkeypatch):
    # Opening and checking the file is not waiting: on a busy host it alone took a millisecond, and two
    # deploys that met on one host both said they had waited (seen in the lab).
    clock = iter(range(0, 1000, 7))
    slow = types.SimpleNamespace(monotonic=lambda: float(next(clock)), sleep=time.sleep, strftime=time.strftime,
                                 gmtime=time.gmtime)
    monkeypatch.setattr(_lock, "time", slow)
    with _lock.DeployLock(str(tmp_path / ".lock"), "alone", timeout=60) as lock:
        assert lock.waited == 0.0


def test_a_killed_holder_is_taken_over_with_its_record(tmp_path):
    path = str(tmp_path / ".lock")
    p = holding(path, 60)
    p.kill()
    p.join()
    with _lock.DeployLock(path, "next", timeout=5) as lock:
        assert lock.waited == 0.0, "the kernel freed a killed holder's flock: nothing to wait for"
        assert lock.took_over["owner"] == "holder-process" and lock.took_over["pid"] == p.pid
    assert "pid %d" % p.pid in _lock.describe(lock.took_over)


def test_describe_unknown():
    assert "unknown holder" in _lock.describe(None)


def test_lock_file_is_not_followed_through_a_symlink(tmp_path):
    target = tmp_path / "elsewhere"
    target.write_text("precious")
    os.symlink(target, tmp_path / ".lock")
    with pytest.raises(OSError):
        _lock.DeployLock(str(tmp_path / ".lock"), "x", timeout=1).acquire()
    assert target.read_text() == "precious"


def test_held_by_names_a_live_holder_and_does_not_take_the_lock(tmp_path):
    path = str(tmp_path / ".lock")
    p = holding(path, 3)
    try:
        held = _lock.held_by(path)
        assert held["owner"] == "holder-process" and held["pid"] == p.pid
        with pytest.raises(_lock.LockTimeout):
            _lock.DeployLock(path, "second", timeout=0.1).acquire()
    finally:
        p.join()
    assert _lock.held_by(path) is None, "a released lock has no holder"


def test_held_by_is_none_for_a_missing_or_free_lock_and_keeps_a_gone_holders_record(tmp_path):
    path = tmp_path / ".lock"
    assert _lock.held_by(str(path)) is None
    path.write_text(json.dumps({"owner": "gone", "pid": 1}))
    assert _lock.held_by(str(path)) is None, "a record without an flock is a gone holder, not a holder"
    assert json.loads(path.read_text())["owner"] == "gone", "probing writes nothing"


@pytest.mark.parametrize("content, expected", [
    ("", {"owner": "unknown"}),
    ("{not json", {"owner": "unreadable lock record"}),
    ("[1, 2]", {"owner": "unreadable lock record"}),
    ('{"owner": "deploy 7", "pid": 42}', {"owner": "deploy 7", "pid": 42}),
])
def test_held_by_reads_whatever_record_a_holder_left(tmp_path, content, expected):
    path = tmp_path / ".lock"
    path.write_text(content)
    with open(path, "rb") as f:
        fcntl.flock(f.fileno(), fcntl.LOCK_EX)  # another open file description: the probe sees it held
        assert _lock.held_by(str(path)) == expected


# -- who may open the lock file ------------------------------------------------------------------


def mode(path):
    return oct(os.stat(path).st_mode & 0o777)


def test_a_new_lock_file_is_0600_whatever_the_umask(tmp_path):
    path = str(tmp_path / ".lock")
    old = os.umask(0)
    try:
        with _lock.DeployLock(path, "me", timeout=1):
            assert mode(path) == "0o600"
    finally:
        os.umask(old)
    assert mode(path) == "0o600"


def test_an_existing_0644_lock_file_is_made_0600_and_an_old_descriptor_is_powerless(tmp_path):
    path = tmp_path / ".lock"
    path.write_text("")
    os.chmod(path, 0o644)
    # Someone opened the world-readable lock file before the fix (read-only is enough for flock).
    other = os.open(str(path), os.O_RDONLY)
    try:
        with _lock.DeployLock(str(path), "me", timeout=1):
            assert mode(path) == "0o600"
            with pytest.raises(_lock.LockTimeout):
                _lock.DeployLock(str(path), "second", timeout=0.1).acquire()
        assert mode(path) == "0o600" and path.read_text() == ""
        fcntl.flock(other, fcntl.LOCK_EX | fcntl.LOCK_NB)  # the old file: no longer the lock
        with _lock.DeployLock(str(path), "next", timeout=0.5) as lock:
            assert lock.waited == 0.0, "a flock on the old file does not block deploys"
    finally:
        os.close(other)
    assert [n for n in os.listdir(tmp_path) if n != ".lock"] == [], "no temp file left"


def test_a_lock_file_linked_to_another_file_is_replaced_not_written(tmp_path):
    precious = tmp_path / "precious"
    precious.write_text("do not touch")
    os.chmod(precious, 0o600)
    os.link(precious, tmp_path / ".lock")
    with _lock.DeployLock(str(tmp_path / ".lock"), "me", timeout=1):
        assert json.loads((tmp_path / ".lock").read_text())["owner"] == "me"
    assert precious.read_text() == "do not touch" and mode(precious) == "0o600"
    assert os.stat(tmp_path / ".lock").st_ino != os.stat(precious).st_ino


@pytest.mark.skipif(os.geteuid() != 0, reason="needs root to give the file to another user")
def test_as_root_a_lock_file_of_another_user_is_replaced_by_one_of_root(tmp_path):
    os.chown(tmp_path, 0, 0)
    path = tmp_path / ".lock"
    path.write_text("")
    os.chmod(path, 0o600)
    os.chown(path, 65534, 65534)
    with _lock.DeployLock(str(path), "me", timeout=1):
        pass
    st = os.stat(path)
    assert (st.st_uid, oct(st.st_mode & 0o777)) == (0, "0o600")


def take_in_turn(path, journal, ready):
    ready.set()
    with _lock.DeployLock(path, "worker %d" % os.getpid(), timeout=20):
        with open(journal, "a") as f:
            f.write("in\n")
        time.sleep(0.2)
        with open(journal, "a") as f:
            f.write("out\n")


def hold_raw(path, held, done):
    fd = os.open(path, os.O_RDWR)
    fcntl.flock(fd, fcntl.LOCK_EX)
    held.set()
    done.wait(30)
    os.close(fd)


def test_waiters_on_a_replaced_lock_file_still_take_turns(tmp_path):
    path = tmp_path / ".lock"
    path.write_text("")
    os.chmod(path, 0o644)
    journal = str(tmp_path / "journal")
    held, done = multiprocessing.Event(), multiprocessing.Event()
    old = multiprocessing.Process(target=hold_raw, args=(str(path), held, done))
    old.start()  # an old holder: every worker waits on the old 0644 file
    assert held.wait(10)
    workers = []
    for _n in range(3):
        ready = multiprocessing.Event()
        p = multiprocessing.Process(target=take_in_turn, args=(str(path), journal, ready))
        p.start()
        assert ready.wait(10)
        workers.append(p)
    time.sleep(0.3)
    done.set()
    old.join(10)  # the first worker replaces the file; the others must wait for it, not hold the old one
    for p in workers:
        p.join(30)
        assert p.exitcode == 0
    assert open(journal).read() == "in\nout\n" * 3
    assert mode(path) == "0o600"
