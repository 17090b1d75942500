"""The fleet deploy lease (module_utils/_lease.py) on real files: acquire, renew, release, refusal naming the
holder, waiting, expiry and take-over (with an injected clock), two processes racing, modes, corrupt files and
check mode."""

import json
import multiprocessing
import os
import stat
import threading
import time

import pytest

from ansible_collections.seedops.deploy.plugins.module_utils import _lease

T0 = 1_800_000_000.0  # 2027-01-15T08:00:00Z
HOLDER = {"user": "alice", "controller": "ops1", "controller_user": "deploy", "job_id": "1234",
          "playbook": "deploy.yml", "version": "2.0.0"}


class Clock:
    """The lock host's wall clock and a monotonic clock; sleep() moves both, at once."""

    def __init__(self, now=T0):
        self.now = now
        self.mono = 0.0
        self.slept = []

    def time(self):
        return self.now

    def monotonic(self):
        return self.mono

    def sleep(self, seconds):
        self.slept.append(seconds)
        self.now += seconds
        self.mono += seconds


def lease(path, clock=None, **kwargs):
    clock = clock or Clock()
    return _lease.Lease(str(path), clock=clock.time, monotonic=clock.monotonic, sleep=clock.sleep, **kwargs)


def mode(path):
    return stat.S_IMODE(os.stat(path).st_mode)


def on_disk(path):
    with open(path) as f:
        return json.load(f)


@pytest.fixture
def path(tmp_path):
    return tmp_path / "locks" / "shop.json"


def test_acquire_writes_the_lease_0600_in_a_0700_directory(path):
    result = lease(path).run("held", "run-1", HOLDER, ttl=600)
    assert result["changed"] is True and result["held"] is True and result["action"] == "acquired"
    assert result["run_id"] == "run-1" and result["holder"] == HOLDER
    assert result["since"] == T0 and result["expires"] == T0 + 600 and result["expires_in"] == 600
    assert result["since_iso"] == "2027-01-15T08:00:00Z" and result["expires_iso"] == "2027-01-15T08:10:00Z"
    assert result["previous"] is None and result["taken_over_from"] is None and result["expired_from"] is None
    assert result["waited"] == 0
    record = on_disk(path)
    assert record == {"run_id": "run-1", "holder": HOLDER, "ttl": 600, "since": T0, "since_iso": "2027-01-15T08:00:00Z",
                      "renewed": T0, "renewed_iso": "2027-01-15T08:00:00Z", "expires": T0 + 600,
                      "expires_iso": "2027-01-15T08:10:00Z"}
    assert mode(path) == 0o600 and mode(str(path) + ".lock") == 0o600
    assert mode(path.parent) == 0o700
    assert sorted(os.listdir(path.parent)) == ["shop.json", "shop.json.lock"], "no temp file left behind"


def test_renew_extends_expires_and_keeps_since(path):
    clock = Clock()
    lease(path, clock).acquire("run-1", HOLDER, ttl=300)
    clock.now += 200
    result = lease(path, clock).acquire("run-1", {"version": "2.0.1", "batch": 2}, ttl=300)
    assert result["action"] == "renewed" and result["changed"] is True
    assert result["since"] == T0 and result["expires"] == T0 + 500 and result["expires_in"] == 300
    assert result["previous"]["expires"] == T0 + 300
    record = on_disk(path)
    assert record["renewed"] == T0 + 200 and record["expires"] == T0 + 500
    assert record["holder"] == dict(HOLDER, version="2.0.1", batch=2), "details given at the start stay"


def test_release_by_the_holder_removes_the_lease(path):
    clock = Clock()
    lease(path, clock).acquire("run-1", HOLDER)
    result = lease(path, clock).run("released", "run-1")
    assert result["changed"] is True and result["action"] == "released" and result["held"] is False
    assert result["previous"]["run_id"] == "run-1" and result["run_id"] is None
    assert not path.exists()
    again = lease(path, clock).run("released", "run-1")
    assert again["changed"] is False and again["action"] == "none" and again["previous"] is None


def test_releasing_a_lock_never_taken_makes_nothing(path):
    result = lease(path).release("run-1")
    assert result["changed"] is False and result["held"] is False
    assert not path.parent.exists()


def test_only_the_holder_releases(path):
    clock = Clock()
    lease(path, clock).acquire("run-1", HOLDER)
    before = path.read_text()
    other = lease(path, clock)
    result = other.release("run-2")
    assert result["changed"] is False and result["held"] is True and result["run_id"] == "run-1"
    assert path.read_text() == before
    assert "held by run run-1" in other.warnings[0] and "not by run run-2; left alone" in other.warnings[0]


def test_the_holder_releases_its_expired_lease(path):
    clock = Clock()
    lease(path, clock).acquire("run-1", HOLDER, ttl=10)
    clock.now += 60
    assert lease(path, clock).release("run-1")["changed"] is True
    assert not path.exists()


def test_another_run_is_refused_naming_the_holder(path):
    clock = Clock()
    lease(path, clock).acquire("run-1", HOLDER, ttl=600)
    before = path.read_text()
    clock.now += 252
    with pytest.raises(_lease.LeaseBusy) as err:
        lease(path, clock).acquire("run-2", {"user": "bob"})
    msg = str(err.value)
    assert msg.startswith("the fleet deploy lock %s is held by run run-1 (" % path)
    for part in ("user alice", "controller ops1 as deploy", "job 1234", "playbook deploy.yml", "version 2.0.0",
                 "since 2027-01-15T08:00:00Z (4 min 12 s ago)", "expires in 5 min 48 s",
                 "deploy_lock_wait", "deploy_lock_break=true"):
        assert part in msg, part
    assert "waited" not in msg
    assert err.value.result["held"] is True and err.value.result["holder"] == HOLDER
    assert err.value.result["run_id"] == "run-1" and err.value.result["expires_in"] == 348
    assert path.read_text() == before


def test_wait_fails_after_the_wait(path):
    clock = Clock()
    lease(path, clock).acquire("run-1", HOLDER, ttl=600)
    with pytest.raises(_lease.LeaseBusy) as err:
        lease(path, clock).acquire("run-2", wait=5)
    assert clock.slept == [1.0] * 5, "looked once a second"
    assert "; waited 5 s." in str(err.value) and err.value.result["waited"] == 5
    assert on_disk(path)["run_id"] == "run-1"


def test_wait_takes_a_lease_that_expires_meanwhile(path):
    clock = Clock()
    lease(path, clock).acquire("run-1", HOLDER, ttl=3)
    result = lease(path, clock).acquire("run-2", {"user": "bob"}, wait=30)
    assert result["action"] == "acquired" and result["waited"] == 4, "free once now > expires"
    assert result["expired_from"]["run_id"] == "run-1"


def test_wait_succeeds_when_the_holder_releases_meanwhile(path):
    _lease.Lease(str(path)).acquire("run-1", HOLDER, ttl=600)
    timer = threading.Timer(0.3, lambda: _lease.Lease(str(path)).release("run-1"))
    timer.start()
    try:
        result = _lease.Lease(str(path), poll=0.05).acquire("run-2", {"user": "bob"}, wait=10)
    finally:
        timer.join()
    assert result["action"] == "acquired" and result["run_id"] == "run-2"
    assert 0.2 < result["waited"] < 5
    assert result["expired_from"] is None and result["previous"] is None
    assert on_disk(path)["run_id"] == "run-2"


def test_an_expired_lease_is_free_and_recorded(path):
    clock = Clock()
    lease(path, clock).acquire("run-1", HOLDER, ttl=300)
    clock.now += 300
    with pytest.raises(_lease.LeaseBusy):
        lease(path, clock).acquire("run-2"), "live while now == expires"
    clock.now += 0.5
    taker = lease(path, clock)
    result = taker.acquire("run-2", {"user": "bob"})
    assert result["action"] == "acquired" and result["since"] == T0 + 300.5
    assert result["expired_from"]["run_id"] == "run-1" and result["expired_from"]["holder"] == HOLDER
    assert result["taken_over_from"] is None
    assert on_disk(path)["expired_from"]["run_id"] == "run-1"
    assert "expired lease" in taker.warnings[0] and "expired 0 s ago" in taker.warnings[0]


def test_take_over_a_live_lease_is_recorded(path):
    clock = Clock()
    lease(path, clock).acquire("run-1", HOLDER, ttl=600)
    taker = lease(path, clock)
    result = taker.acquire("run-2", {"user": "bob"}, take_over=True)
    assert result["action"] == "taken_over" and result["run_id"] == "run-2"
    assert result["taken_over_from"]["run_id"] == "run-1" and result["taken_over_from"]["holder"] == HOLDER
    assert result["previous"]["run_id"] == "run-1"
    record = on_disk(path)
    assert record["taken_over_from"]["run_id"] == "run-1" and record["holder"] == {"user": "bob"}
    assert "live lease (take_over)" in taker.warnings[0] and "user alice" in taker.warnings[0]
    clock.now += 10
    renewed = lease(path, clock).acquire("run-2")
    assert renewed["taken_over_from"] is None, "the result says what this task did"
    assert on_disk(path)["taken_over_from"]["run_id"] == "run-1", "the record keeps it"
    with pytest.raises(_lease.LeaseBusy):
        lease(path, clock).acquire("run-1")
    assert lease(path, clock).release("run-1")["changed"] is False


def test_take_over_of_a_free_lock_is_a_plain_acquire(path):
    result = lease(path).acquire("run-1", take_over=True)
    assert result["action"] == "acquired" and result["taken_over_from"] is None


@pytest.mark.parametrize("content, reason", [
    ("{not json", "not JSON"),
    ("", "empty"),
    ("[1, 2]", "a JSON list, not an object"),
    ('{"owner": "x"}', "a JSON object without a run_id, since and expires"),
    ('{"run_id": "r", "since": "yesterday", "expires": 1}', "a JSON object without a run_id, since and expires"),
])
def test_a_corrupt_lock_file_is_refused_naming_it(path, content, reason):
    path.parent.mkdir()
    path.write_text(content)
    for state in ("held", "released", "query"):
        with pytest.raises(_lease.CorruptLease) as err:
            lease(path).run(state, "run-1")
        assert str(err.value).startswith("the fleet deploy lock file %s is %s, not a lease record" % (path, reason))
        assert "take_over" in str(err.value) and "deploy_lock_break=true" in str(err.value)
    assert path.read_text() == content


def test_take_over_replaces_a_corrupt_lock_file(path):
    path.parent.mkdir()
    path.write_text("garbage")
    taker = lease(path)
    result = taker.acquire("run-1", take_over=True)
    assert result["action"] == "taken_over" and result["taken_over_from"] == {"unreadable": "not JSON"}
    assert on_disk(path)["run_id"] == "run-1" and mode(path) == 0o600
    assert "whose file was not JSON" in taker.warnings[0]


def test_a_symlink_is_not_followed(path, tmp_path):
    target = tmp_path / "precious"
    target.write_text('{"run_id": "r", "since": 1, "expires": 9999999999}')
    path.parent.mkdir()
    os.symlink(target, path)
    with pytest.raises(_lease.CorruptLease, match="is a symlink"):
        lease(path).acquire("run-1")
    lease(path).acquire("run-1", take_over=True)
    assert not path.is_symlink() and on_disk(path)["run_id"] == "run-1"
    assert target.read_text().startswith('{"run_id": "r"'), "the symlink was replaced, its target untouched"


def test_the_lock_file_mode_is_put_back_to_0600(path):
    path.parent.mkdir()
    mutex = str(path) + ".lock"
    with open(mutex, "w"):
        pass
    os.chmod(mutex, 0o644)
    lease(path).acquire("run-1")
    assert mode(mutex) == 0o600 and mode(path) == 0o600


def test_check_mode_writes_nothing(path):
    result = lease(path, check_mode=True).acquire("run-1", HOLDER)
    assert result["changed"] is True and result["held"] is True and result["action"] == "acquired"
    assert not path.parent.exists(), "no directory, no lock file, no lease"

    clock = Clock()
    lease(path, clock).acquire("run-1", HOLDER, ttl=60)
    os.unlink(str(path) + ".lock")
    before = path.read_text()
    clock.now += 100
    checker = lease(path, clock, check_mode=True)
    result = checker.acquire("run-2", {"user": "bob"})
    assert result["changed"] is True and result["expired_from"]["run_id"] == "run-1"
    assert checker.after["run_id"] == "run-2" and checker.before["run_id"] == "run-1"
    assert lease(path, clock, check_mode=True).release("run-1")["changed"] is True
    assert lease(path, clock, check_mode=True).acquire("run-1", take_over=True)["changed"] is True
    assert path.read_text() == before and sorted(os.listdir(path.parent)) == ["shop.json"]


def test_check_mode_is_refused_like_a_real_run(path):
    clock = Clock()
    lease(path, clock).acquire("run-1", HOLDER, ttl=600)
    with pytest.raises(_lease.LeaseBusy, match="held by run run-1"):
        lease(path, clock, check_mode=True).acquire("run-2", wait=2)
    assert clock.slept == [1.0, 1.0]


def test_query_reads_only(path):
    clock = Clock()
    empty = lease(path, clock).query()
    assert empty["held"] is False and empty["changed"] is False and empty["previous"] is None
    assert not path.parent.exists()
    lease(path, clock).acquire("run-1", HOLDER, ttl=60)
    os.unlink(str(path) + ".lock")
    clock.now += 20
    live = lease(path, clock).run("query")
    assert live["held"] is True and live["run_id"] == "run-1" and live["holder"] == HOLDER and live["expires_in"] == 40
    clock.now += 41
    dead = lease(path, clock).query()
    assert dead["held"] is False and dead["run_id"] is None and dead["previous"]["run_id"] == "run-1"
    assert sorted(os.listdir(path.parent)) == ["shop.json"], "no flock file made by query"


def test_bad_ttl_and_wait(path):
    with pytest.raises(_lease.LeaseError, match="ttl must be more than 0"):
        lease(path).acquire("run-1", ttl=0)
    with pytest.raises(_lease.LeaseError, match="ttl must be more than 0"):
        lease(path).acquire("run-1", ttl=float("nan"))
    with pytest.raises(_lease.LeaseError, match="ttl must be more than 0"):
        lease(path).acquire("run-1", ttl=float("inf"))
    with pytest.raises(_lease.LeaseError, match="wait must be 0 seconds or more"):
        lease(path).acquire("run-1", wait=-1)
    assert not path.parent.exists()


class SlowLease(_lease.Lease):
    """Dawdles between reading the lease and writing its own: without the flock both racers would read a free
    lock and both write."""

    def read(self):
        record = super().read()
        time.sleep(0.2)
        return record


def race(path, run_id, barrier, results):
    barrier.wait(10)
    try:
        SlowLease(path).acquire(run_id, {"user": run_id}, ttl=600)
        results.put((run_id, "won"))
    except _lease.LeaseBusy:
        results.put((run_id, "refused"))
    except Exception as exc:  # pragma: no cover - reported by the assertion below
        results.put((run_id, repr(exc)))


@pytest.mark.parametrize("round_", range(3))
def test_two_processes_racing_exactly_one_wins(tmp_path, round_):
    path = str(tmp_path / "locks" / "race.json")
    barrier = multiprocessing.Barrier(2)
    results = multiprocessing.Queue()
    procs = [multiprocessing.Process(target=race, args=(path, "run-%s" % n, barrier, results)) for n in "ab"]
    for p in procs:
        p.start()
    outcomes = dict(results.get(timeout=30) for _p in procs)
    for p in procs:
        p.join(10)
    assert sorted(outcomes.values()) == ["refused", "won"], outcomes
    winner = [run_id for run_id, outcome in outcomes.items() if outcome == "won"][0]
    assert on_disk(path)["run_id"] == winner


def test_the_flock_serialises_the_read_modify_write(path):
    """While another process holds the flock, a change waits for it (and then sees that process's lease)."""
    path.parent.mkdir()
    holder = _lease.Lease(str(path))
    fd = holder.lock()
    result = {}

    def second():
        try:
            result["acquired"] = _lease.Lease(str(path)).acquire("run-2")
        except _lease.LeaseBusy as exc:
            result["refused"] = str(exc)

    thread = threading.Thread(target=second)
    thread.start()
    thread.join(0.3)
    assert thread.is_alive(), "waits for the flock"
    now = time.time()
    holder.write({"run_id": "run-1", "holder": {}, "since": now, "expires": now + 60})
    os.close(fd)
    thread.join(10)
    assert "acquired" not in result and "held by run run-1" in result["refused"], "run-1's lease, written under the flock"
    assert on_disk(path)["run_id"] == "run-1"


def test_words():
    assert [_lease.duration(s) for s in (0, 59.6, 61, 3600 * 3 + 300, 86400 * 2 + 3600)] == [
        "0 s", "1 min 0 s", "1 min 1 s", "3 h 5 min", "2 d 1 h"]
    assert _lease.who({}) == "no details recorded"
    assert _lease.who({"controller_user": "ops", "controller": "c1", "ticket": "OPS-1"}) == "user ops, controller c1, ticket OPS-1"
    assert _lease.who("not a dict") == "no details recorded"


def test_a_lease_from_the_future_says_the_clock_may_have_gone_back():
    text = _lease.describe({"run_id": "r", "since": T0 + 120, "expires": T0 + 420}, T0)
    assert "(2 min 0 s from now - has the lock host's clock gone back?)" in text and "expires in 7 min 0 s" in text
