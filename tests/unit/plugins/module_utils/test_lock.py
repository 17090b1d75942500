"""The deploy lock: waits, times out naming the holder, takes over a lock whose holder is gone."""

import fcntl
import json
import multiprocessing
import os
import time

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


def test_a_killed_holder_is_taken_over_with_its_record(tmp_path):
    path = str(tmp_path / ".lock")
    p = holding(path, 60)
    p.kill()
    p.join()
    with _lock.DeployLock(path, "next", timeout=5) as lock:
        assert lock.waited < 1
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
