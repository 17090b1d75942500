"""Release records, the atomic switch, rollback choice and pruning."""

import json
import os
import threading

import pytest

from ansible_collections.seedops.deploy.plugins.module_utils import _releases as rel


def rec(rid, state, created, seq=None, exists=True):
    return {"id": rid, "state": state, "created": created, "seq": seq, "exists": exists}


@pytest.mark.parametrize("good", ["1.0.0", "v2", "2026-11-27T12.00.00Z", "a+b~c_d-e", "x" * 128])
def test_valid_release_ids(good):
    assert rel.validate_release_id(good) == good


@pytest.mark.parametrize("bad", ["", ".hidden", "a/b", "..", "a..b", "-x", "x" * 129, "a b", None, "a\\b",
                                 "1.0.json", "v2.JSON", "x.json", "1.0\n", "v1\n", "v1\r", "\nv1", 3])
def test_invalid_release_ids_are_named(bad):
    with pytest.raises(rel.ReleaseError, match="release_id"):
        rel.validate_release_id(bad)


def test_rollback_target_is_by_records_not_times():
    records = {
        "1": rec("1", "previous", "2026-01-01", seq=1),
        "2": rec("2", "previous", "2026-01-02", seq=3),   # activated later than 3 was
        "3": rec("3", "previous", "2026-01-03", seq=2),
        "4": rec("4", "failed", "2026-01-04", seq=4),
        "5": rec("5", "active", "2026-01-05", seq=5),
        "6": rec("6", "previous", "2026-01-06", seq=9, exists=False),  # gone from disk
    }
    assert rel.rollback_target(records, "5") == "2"
    assert rel.rollback_target({"5": records["5"]}, "5") is None


def test_prune_keeps_current_rollback_target_and_n_healthy():
    records = {
        "r1": rec("r1", "previous", "2026-01-01", seq=1),
        "r2": rec("r2", "previous", "2026-01-02", seq=2),
        "r3": rec("r3", "previous", "2026-01-03", seq=3),
        "r4": rec("r4", "failed", "2026-01-04", seq=4),
        "r5": rec("r5", "active", "2026-01-05", seq=5),
        "r6": rec("r6", "staged", "2026-01-06"),
    }
    # keep 2 healthy: r6 and r5 (newest non-failed); r3 is the rollback target; r4 failed is not among
    # the 2 newest overall (r6, r5) -> removed; r1, r2 removed.
    assert sorted(rel.plan_prune(records, "r5", 2)) == ["r1", "r2", "r4"]
    # keep 3: r6 r5 r3 healthy kept; r4 failed is among the 3 newest overall -> kept for inspection.
    assert sorted(rel.plan_prune(records, "r5", 3)) == ["r1", "r2"]


def test_prune_never_removes_the_current_even_when_failed_or_old():
    records = {"old": rec("old", "active", "2020-01-01", seq=1), "n1": rec("n1", "staged", "2026-01-01"),
               "n2": rec("n2", "staged", "2026-01-02")}
    assert rel.plan_prune(records, "old", 1) == ["n1"]
    assert rel.plan_prune(records, "old", None) == []


def test_failed_releases_do_not_count_toward_keep():
    records = {"a": rec("a", "previous", "1", seq=1), "b": rec("b", "active", "2", seq=2),
               "f1": rec("f1", "failed", "3", seq=3), "f2": rec("f2", "failed", "4", seq=4)}
    assert sorted(rel.plan_prune(records, "b", 2)) == []           # f2,f1 among 2 newest overall: kept
    assert sorted(rel.plan_prune(records, "b", 1)) == ["f1"]       # a is the rollback target


def test_switch_is_a_rename_and_never_dangles(tmp_path):
    layout = rel.Layout(str(tmp_path))
    layout.ensure()
    for rid in ("a", "b"):
        os.mkdir(layout.release_dir(rid))
        (tmp_path / "releases" / rid / "id").write_text(rid)
    rel.switch_current(layout, "a")
    assert rel.current_release(layout) == "a"
    assert os.readlink(layout.current) == "releases/a"
    stop = threading.Event()
    seen = []

    def reader():
        while not stop.is_set():
            try:
                seen.append((tmp_path / "current" / "id").read_text())
            except FileNotFoundError:
                seen.append("MISSING")

    t = threading.Thread(target=reader)
    t.start()
    for i in range(300):
        rel.switch_current(layout, "b" if i % 2 == 0 else "a")
    stop.set()
    t.join()
    assert "MISSING" not in seen and set(seen) <= {"a", "b"}
    assert [n for n in os.listdir(tmp_path) if n.startswith(".current-")] == []


def test_current_that_is_a_directory_is_refused(tmp_path):
    layout = rel.Layout(str(tmp_path))
    os.mkdir(layout.current)
    with pytest.raises(rel.ReleaseError, match="not a symlink"):
        rel.current_release(layout)


def test_records_round_trip_and_corrupt_ones_are_reported(tmp_path):
    layout = rel.Layout(str(tmp_path))
    layout.ensure()
    rel.save_record(layout, {"id": "1.0", "state": "staged", "exists": True})
    (tmp_path / "releases" / "bad.json").write_text("{not json")
    records = rel.read_records(layout)
    assert records["1.0"]["state"] == "staged" and records["1.0"]["exists"] is False
    assert "exists" not in json.loads((tmp_path / "releases" / "1.0.json").read_text())
    assert records["bad"]["state"] == "corrupt"
    assert [n for n in os.listdir(tmp_path / "releases") if n.startswith(".tmp-")] == []


def test_link_shared(tmp_path):
    layout = rel.Layout(str(tmp_path))
    layout.ensure()
    release = tmp_path / "releases" / "1"
    (release / "var" / "log").mkdir(parents=True)
    (release / "var" / "log" / "old.log").write_text("from the archive")
    rel.link_shared(layout, str(release), ["var/log", "data"])
    assert os.path.realpath(release / "var" / "log") == str(tmp_path / "shared" / "var" / "log")
    assert os.path.realpath(release / "data") == str(tmp_path / "shared" / "data")
    (release / "data" / "x").write_text("kept")
    assert (tmp_path / "shared" / "data" / "x").read_text() == "kept"
    with pytest.raises(rel.ReleaseError, match="without '..'"):
        rel.link_shared(layout, str(release), ["../escape"])


def test_remove_release_and_leftovers(tmp_path):
    layout = rel.Layout(str(tmp_path))
    layout.ensure()
    os.mkdir(layout.release_dir("1"))
    rel.save_record(layout, {"id": "1", "state": "staged"})
    os.mkdir(os.path.join(layout.releases, ".staging-2-123"))
    assert rel.leftovers(layout) == [os.path.join(layout.releases, ".staging-2-123")]
    rel.remove_release(layout, "1")
    assert sorted(os.listdir(layout.releases)) == [".staging-2-123"]


# -- records that cannot be trusted --------------------------------------------------------------


@pytest.mark.parametrize("content, why", [
    ("[]", "JSON list, not an object"),
    ("null", "JSON NoneType, not an object"),
    ('"1.0"', "JSON str, not an object"),
    ("5", "JSON int, not an object"),
    ("{not json", "cannot be read"),
    ('{"id": 1}', "its id is 1, not '1.0'"),
    ('{"id": "2.0"}', "its id is '2.0', not '1.0'"),
    ('{"id": "1.0", "state": "corrupt"}', "its state 'corrupt' is none of"),
    ('{"id": "1.0", "state": ["active"]}', "its state ['active'] is none of"),
    ('{"id": "1.0", "state": "previous", "seq": "3"}', "its seq '3' is not a number"),
    ('{"id": "1.0", "state": "previous", "seq": true}', "its seq True is not a number"),
    ('{"id": "1.0", "created": 5}', "its created 5 is not a string"),
    ('{"id": "1.0", "digest": {}}', "its digest {} is not a string"),
    (b"\xff\xfe", "cannot be read"),
])
def test_records_of_any_other_shape_are_corrupt_never_a_crash(tmp_path, content, why):
    layout = rel.Layout(str(tmp_path))
    layout.ensure()
    os.mkdir(layout.release_dir("1.0"))
    path = tmp_path / "releases" / "1.0.json"
    if isinstance(content, bytes):
        path.write_bytes(content)
    else:
        path.write_text(content)
    rel.save_record(layout, {"id": "2.0", "state": "active", "seq": 1, "created": "2"})
    records = rel.read_records(layout)
    assert records["1.0"]["state"] == "corrupt" and why in records["1.0"]["error"]
    assert records["1.0"]["exists"] is True
    assert rel.corrupt_records(records) == {"1.0": records["1.0"]["error"]}
    assert records["2.0"]["state"] == "active"
    assert rel.plan_prune(records, "2.0", 1) == [], "a release whose record is corrupt is never pruned"
    assert rel.rollback_target(records, "2.0") is None and rel.next_seq(records) == 2
    assert [r["id"] for r in rel.newest_first(records)] == ["2.0", "1.0"]


def test_a_record_with_an_id_that_is_not_valid_is_corrupt(tmp_path):
    layout = rel.Layout(str(tmp_path))
    layout.ensure()
    (tmp_path / "releases" / "a b.json").write_text(json.dumps({"id": "a b", "state": "staged"}))
    (tmp_path / "releases" / "v1.json.json").write_text(json.dumps({"id": "v1.json", "state": "staged"}))
    records = rel.read_records(layout)
    assert {rid: r["state"] for rid, r in records.items()} == {"a b": "corrupt", "v1.json": "corrupt"}
    assert "not a valid release id" in records["a b"]["error"]
    assert rel.plan_prune(records, None, 1) == []


def test_a_directory_named_like_a_record_is_not_a_record(tmp_path):
    layout = rel.Layout(str(tmp_path))
    layout.ensure()
    os.mkdir(os.path.join(layout.releases, "v9.json"))  # a release of the id v9.json, as staged before the fix
    rel.save_record(layout, {"id": "v1", "state": "active"})
    assert sorted(rel.read_records(layout)) == ["v1"], "no phantom record v9"


def test_prune_never_removes_a_release_whose_record_is_corrupt():
    records = {
        "r1": rec("r1", "previous", "2026-01-01", seq=1),
        "r2": {"id": "r2", "state": "corrupt", "error": "unreadable", "exists": True},  # the real previous one
        "r3": rec("r3", "active", "2026-01-03", seq=3),
        "r4": rec("r4", "staged", "2026-01-04"),
        "r5": {"id": "r5", "state": "corrupt", "error": "unreadable", "exists": False},
    }
    # r1 is the rollback target (the only readable previous); r4 and r3 are the 1 newest healthy and live.
    assert sorted(rel.plan_prune(records, "r3", 1)) == []
    del records["r1"]
    assert sorted(rel.plan_prune(records, "r3", 1)) == []


def test_a_corrupt_record_is_never_switched_to_nor_written_over(tmp_path):
    layout = rel.Layout(str(tmp_path))
    layout.ensure()
    for rid in ("a", "b"):
        os.mkdir(layout.release_dir(rid))
    (tmp_path / "releases" / "a.json").write_text("[]")
    rel.save_record(layout, {"id": "b", "state": "staged"})
    records = rel.read_records(layout)
    with pytest.raises(rel.ReleaseError, match=r"cannot switch to release a: its record a.json cannot be trusted"):
        rel.activate(layout, records, None, "a")
    assert not os.path.lexists(layout.current) and (tmp_path / "releases" / "a.json").read_text() == "[]"
    rel.switch_current(layout, "a")  # live before its record went bad
    rel.activate(layout, records, "a", "b")
    assert rel.current_release(layout) == "b" and (tmp_path / "releases" / "a.json").read_text() == "[]"
