"""The deploy lock: waits, times out naming the holder, takes over a lock whose holder is gone."""

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


def test_second_caller_times_out_naming_the_holder(tmp_path):
    path = str(tmp_path / ".lock")
    ready = multiprocessing.Event()
    p = multiprocessing.Process(target=hold, args=(path, 3, ready))
    p.start()
    try:
        assert ready.wait(10)
        with pytest.raises(_lock.LockTimeout) as err:
            _lock.DeployLock(path, "second", timeout=0.3).acquire()
        assert "holder-process (pid %d" % p.pid in str(err.value)
        assert "lock_timeout" in str(err.value)
    finally:
        p.join()


def test_waiter_gets_the_lock_when_the_holder_finishes(tmp_path):
    path = str(tmp_path / ".lock")
    ready = multiprocessing.Event()
    p = multiprocessing.Process(target=hold, args=(path, 0.5, ready))
    p.start()
    assert ready.wait(10)
    with _lock.DeployLock(path, "second", timeout=10) as lock:
        assert lock.waited > 0.1
        assert lock.took_over is None, "a holder that released cleanly leaves no record"
        assert json.load(open(path))["owner"] == "second"
    p.join()
    assert open(path).read() == ""


def test_a_killed_holder_is_taken_over_with_its_record(tmp_path):
    path = str(tmp_path / ".lock")
    ready = multiprocessing.Event()
    p = multiprocessing.Process(target=hold, args=(path, 60, ready))
    p.start()
    assert ready.wait(10)
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
