"""The release operations on a real directory: stage from a real tar.gz, activate, roll back,
prune, the deploy lock, check mode, and what release_info reports."""

import hashlib
import io
import json
import os
import re
import stat
import tarfile

import pytest

from ansible_collections.seedops.deploy.plugins.module_utils import _lock
from ansible_collections.seedops.deploy.plugins.module_utils import _release
from ansible_collections.seedops.deploy.plugins.module_utils import _releases as rel
from ansible_collections.seedops.deploy.plugins.modules import release as release_module


def make_tar(path, files, links=()):
    """A gzip tar at path holding files {name: text} and symlinks [(name, target)]; its sha256 hex."""
    with tarfile.open(path, "w:gz") as tar:
        for name, text in files.items():
            data = text.encode()
            info = tarfile.TarInfo(name)
            info.size = len(data)
            info.mode = 0o755 if name.endswith(".sh") else 0o644
            tar.addfile(info, io.BytesIO(data))
        for name, target in links:
            info = tarfile.TarInfo(name)
            info.type = tarfile.SYMTYPE
            info.linkname = target
            tar.addfile(info)
    with open(path, "rb") as f:
        return hashlib.sha256(f.read()).hexdigest()


def params(base, **options):
    """The module's options as AnsibleModule would hand them over: the argument spec's defaults."""
    p = {name: spec.get("default") for name, spec in release_module.ARGUMENT_SPEC.items()}
    p.update(path=str(base), lock_timeout=5)
    p.update(options)
    return p


def run(base, check=False, **options):
    """A Releaser that has run (its result, diff and warnings)."""
    releaser = _release.Releaser(params(base, **options), check_mode=check)
    releaser.run()
    return releaser


def record(base, release_id):
    with open(os.path.join(str(base), "releases", release_id + ".json")) as f:
        return json.load(f)


def current(base):
    return rel.current_release(rel.Layout(str(base)))


def hidden(base):
    """Staging, trash and temp entries under releases/ (none may stay after a run)."""
    return [n for n in os.listdir(os.path.join(str(base), "releases")) if n.startswith(".")]


@pytest.fixture
def art(tmp_path):
    """Three small tar.gz artifacts v1, v2, v3: {id: (path, sha256 hex)}."""
    found = {}
    for version in ("v1", "v2", "v3"):
        path = str(tmp_path / ("app-%s.tar.gz" % version))
        found[version] = (path, make_tar(path, {"app/VERSION": version + "\n", "app/run.sh": "#!/bin/sh\necho %s\n" % version},
                                         links=[("app/latest", "VERSION")]))
    return found


@pytest.fixture
def base(tmp_path):
    return tmp_path / "srv" / "app"


def live(base, art, *versions, **options):
    """Stage and activate each version in turn."""
    for version in versions:
        run(base, release_id=version, src=art[version][0], state="active", **options)


# -- staging -----------------------------------------------------------------------------------


def test_stage_unpacks_a_real_tar_gz_records_it_and_changes_nothing_live(base, art):
    releaser = run(base, release_id="v1", src=art["v1"][0], state="staged", strip_components=1,
                   deployed_by={"controller": "ctl"})
    result = releaser.result
    release = base / "releases" / "v1"
    assert (release / "VERSION").read_text() == "v1\n"
    assert os.access(release / "run.sh", os.X_OK)
    assert os.readlink(release / "latest") == "VERSION"
    assert not os.path.lexists(base / "current"), "staging changes nothing live"
    rec = record(base, "v1")
    assert rec["digest"] == "sha256:" + art["v1"][1]
    assert rec["state"] == "staged" and rec["source"] == art["v1"][0] and rec["seq"] is None
    assert rec["deployed_by"]["controller"] == "ctl" and rec["deployed_by"]["remote_user"]
    assert result["changed"] and result["staged"] and not result["switched"]
    assert result["unpack"]["format"] == "tar" and result["unpack"]["members"] >= 3
    assert result["current"] is None and result["record"] == rec
    assert releaser.diff == {"before": {}, "after": {"staged": "v1"}}
    assert hidden(base) == [] and os.path.isdir(base / "shared")
    assert (base / ".lock").read_text() == "", "the lock is released, its record cleared"

    again = run(base, release_id="v1", src=art["v1"][0], state="staged", strip_components=1).result
    assert not again["changed"] and not again["staged"]


def test_stage_from_the_store_by_digest(base, art):
    path, hexdigest = art["v2"]
    store = base / "store" / "sha256"
    store.mkdir(parents=True)
    os.link(path, store / hexdigest)
    result = run(base, release_id="v2", digest="sha256:" + hexdigest, state="staged").result
    assert result["staged"] and (base / "releases" / "v2" / "app" / "VERSION").read_text() == "v2\n"
    assert record(base, "v2")["source"] == str(store / hexdigest)


def test_a_wrong_digest_stages_nothing(base, art):
    with pytest.raises(rel.ReleaseError, match="does not match its digest"):
        run(base, release_id="v1", src=art["v1"][0], digest="sha256:" + "0" * 64, state="staged")
    assert os.listdir(base / "releases") == []


def test_a_missing_artifact_is_named(base):
    with pytest.raises(rel.ReleaseError, match="does not exist on this host"):
        run(base, release_id="v1", src=str(base / "nowhere.tar.gz"), state="staged")
    with pytest.raises(rel.ReleaseError, match="give src"):
        run(base, release_id="v1", state="staged")
    assert os.listdir(base / "releases") == []


def test_one_release_id_names_one_artifact(base, art):
    run(base, release_id="v1", src=art["v1"][0], state="staged")
    before = record(base, "v1")
    with pytest.raises(rel.ReleaseError, match="already staged with sha256:%s" % art["v1"][1]):
        run(base, release_id="v1", src=art["v2"][0], state="staged")
    with pytest.raises(rel.ReleaseError, match="already staged"):
        run(base, release_id="v1", digest="sha256:" + art["v2"][1], state="staged")
    assert record(base, "v1") == before
    assert (base / "releases" / "v1" / "app" / "VERSION").read_text() == "v1\n"


def test_an_unsafe_archive_is_refused_and_leaves_nothing(base, tmp_path):
    evil = str(tmp_path / "evil.tar.gz")
    make_tar(evil, {"ok.txt": "fine", "../escaped.txt": "outside"})
    with pytest.raises(rel.ReleaseError, match="refused to stage bad from"):
        run(base, release_id="bad", src=evil, state="staged")
    assert os.listdir(base / "releases") == []
    assert not (base / "escaped.txt").exists() and not (tmp_path / "escaped.txt").exists()


def test_a_directory_without_a_record_is_not_overwritten(base, art):
    (base / "releases" / "v1").mkdir(parents=True)
    (base / "releases" / "v1" / "mine").write_text("someone else's")
    with pytest.raises(rel.ReleaseError, match="has no record"):
        run(base, release_id="v1", src=art["v1"][0], state="staged")
    assert os.listdir(base / "releases" / "v1") == ["mine"]
    assert hidden(base) == []


def test_shared_paths_mode_and_owner(base, art):
    run(base, release_id="v1", src=art["v1"][0], state="staged", shared=["app/logs"], mode="0750",
        owner=str(os.getuid()), group=str(os.getgid()))
    release = base / "releases" / "v1"
    assert os.path.realpath(release / "app" / "logs") == str(base / "shared" / "app" / "logs")
    assert stat.S_IMODE(os.stat(release).st_mode) == 0o750
    assert os.lstat(release / "app" / "VERSION").st_uid == os.getuid()


def test_an_unknown_owner_stages_nothing(base, art):
    with pytest.raises(rel.ReleaseError, match="does not exist on this host"):
        run(base, release_id="v1", src=art["v1"][0], state="staged", owner="no-such-user-seedops")
    assert os.listdir(base / "releases") == []


def test_a_single_file_release(base, tmp_path):
    binary = tmp_path / "app-linux-amd64"
    binary.write_bytes(b"\x7fELF pretend")
    result = run(base, release_id="b1", src=str(binary), format="file", file_name="app", file_mode="0750",
                 state="staged").result
    staged = base / "releases" / "b1" / "app"
    assert staged.read_bytes() == b"\x7fELF pretend" and stat.S_IMODE(os.stat(staged).st_mode) == 0o750
    assert result["unpack"]["format"] == "file"


def test_a_bad_mode_is_refused_before_the_release_appears(base, art):
    with pytest.raises(rel.ReleaseError, match="mode 'rwx' is not an octal mode"):
        run(base, release_id="v1", src=art["v1"][0], state="staged", mode="rwx")
    assert os.listdir(base / "releases") == []


def test_a_release_that_failed_before_stays_failed_when_staged_again(base, art):
    layout = rel.Layout(str(base))
    layout.ensure()
    rel.save_record(layout, {"id": "v1", "state": "failed", "created": "2020-01-01"})  # its directory was removed
    result = run(base, release_id="v1", src=art["v1"][0], state="staged").result
    assert result["staged"] and record(base, "v1")["state"] == "failed"


def test_leftovers_of_an_interrupted_run_are_removed_with_a_warning(base, art):
    leftover = base / "releases" / ".staging-v9-12345"
    (leftover / "half").mkdir(parents=True)
    releaser = run(base, release_id="v1", src=art["v1"][0], state="staged")
    assert not leftover.exists()
    assert releaser.warnings == ["removed %s, left by an interrupted run" % leftover]


# -- activating and rolling back ---------------------------------------------------------------


def test_activate_switches_current_and_keeps_the_old_release_as_previous(base, art):
    first = run(base, release_id="v1", src=art["v1"][0], state="active").result
    assert first["switched"] and first["previous"] is None and current(base) == "v1"
    releaser = run(base, release_id="v2", src=art["v2"][0], state="active")
    result = releaser.result
    assert current(base) == "v2" and (base / "current" / "app" / "VERSION").read_text() == "v2\n"
    assert result["previous"] == "v1" and result["current"] == "v2" and result["switched"]
    assert releaser.diff["before"]["current"] == "v1" and releaser.diff["after"]["current"] == "v2"
    v1, v2 = record(base, "v1"), record(base, "v2")
    assert (v1["state"], v2["state"]) == ("previous", "active")
    assert v2["seq"] == v1["seq"] + 1 and v2["activated"]
    assert result["record"] == v2
    again = run(base, release_id="v2", src=art["v2"][0], state="active").result
    assert not again["changed"] and not again["switched"] and current(base) == "v2"


def test_roll_back_the_live_release_to_the_previous_healthy_one(base, art):
    live(base, art, "v1", "v2")
    releaser = run(base, release_id="v2", state="rolled_back")
    result = releaser.result
    assert current(base) == "v1"
    assert result["rolled_back_to"] == "v1" and result["release_id"] == "v2" and result["current"] == "v1"
    assert record(base, "v2")["state"] == "failed" and record(base, "v1")["state"] == "active"
    assert releaser.diff == {"before": {"current": "v2"}, "after": {"current": "v1"}}
    again = run(base, release_id="v2", state="rolled_back").result
    assert not again["changed"] and current(base) == "v1"


def test_roll_back_whatever_is_live_or_to_a_given_release(base, art):
    live(base, art, "v1", "v2", "v3")
    result = run(base, state="rolled_back", rollback_to="v1").result
    assert result["release_id"] == "v3" and current(base) == "v1"
    assert record(base, "v3")["state"] == "failed"


def test_the_records_say_who_switched_apart_from_who_staged(base, art):
    run(base, release_id="v1", src=art["v1"][0], state="active", deployed_by={"job_id": "1", "user": "bob"})
    run(base, release_id="v2", src=art["v2"][0], state="staged", deployed_by={"job_id": "2", "user": "bob"})
    run(base, release_id="v2", state="active", deployed_by={"job_id": "3", "user": "alice"})
    v2 = record(base, "v2")
    assert (v2["deployed_by"]["job_id"], v2["activated_by"]["job_id"], v2["activated_by"]["user"]) == ("2", "3", "alice")
    run(base, release_id="v2", state="rolled_back", deployed_by={"job_id": "4", "user": "carol"})
    v1, v2 = record(base, "v1"), record(base, "v2")
    assert (v1["activated_by"]["job_id"], v2["failed_by"]["job_id"]) == ("4", "4")
    run(base, release_id="v3", src=art["v3"][0], state="staged", deployed_by={"job_id": "5"})
    run(base, release_id="v3", state="rolled_back", deployed_by={"job_id": "6"})
    assert record(base, "v3")["failed_by"]["job_id"] == "6"


def test_a_release_rolled_back_before_is_only_marked_failed(base, art):
    live(base, art, "v1", "v2")
    run(base, release_id="v3", src=art["v3"][0], state="staged")
    releaser = run(base, release_id="v3", state="rolled_back")
    result = releaser.result
    assert result["changed"] and not result["switched"] and current(base) == "v2"
    assert record(base, "v3")["state"] == "failed"
    assert releaser.diff == {"before": {"v3 state": "staged"}, "after": {"v3 state": "failed"}}


@pytest.mark.parametrize("options, message", [
    ({"rollback_to": "v9"}, "cannot roll back to v9: it is not staged"),
    ({"rollback_to": "v2"}, "is the release being rolled back"),
    ({"rollback_to": "../x"}, "release_id '../x' is not valid"),
])
def test_bad_rollback_targets_change_nothing(base, art, options, message):
    live(base, art, "v1", "v2")
    before = {rid: record(base, rid) for rid in ("v1", "v2")}
    with pytest.raises(rel.ReleaseError, match=message):
        run(base, release_id="v2", state="rolled_back", **options)
    assert current(base) == "v2" and {rid: record(base, rid) for rid in ("v1", "v2")} == before


def test_nothing_to_roll_back_to(base, art):
    with pytest.raises(rel.ReleaseError, match="nothing is live"):
        run(base, state="rolled_back")
    live(base, art, "v1")
    with pytest.raises(rel.ReleaseError, match="no previous healthy release"):
        run(base, state="rolled_back")
    assert current(base) == "v1" and record(base, "v1")["state"] == "active"


# -- pruning -----------------------------------------------------------------------------------


def test_prune_keeps_the_live_release_and_the_rollback_target(base, art, tmp_path):
    live(base, art, "v1", "v2", "v3")
    path = str(tmp_path / "app-v4.tar.gz")
    make_tar(path, {"VERSION": "v4"})
    releaser = run(base, release_id="v4", src=path, state="staged", keep=1)
    result = releaser.result
    # keep=1 keeps the newest healthy one (v4); v3 is live, v2 the rollback target.
    assert result["pruned"] == ["v1"]
    assert sorted(n for n in os.listdir(base / "releases") if not n.startswith(".")) == \
        ["v2", "v2.json", "v3", "v3.json", "v4", "v4.json"]
    assert releaser.diff["before"]["releases"] == ["v1", "v2", "v3", "v4"]
    assert releaser.diff["after"]["releases"] == ["v2", "v3", "v4"]
    assert current(base) == "v3" and hidden(base) == []


@pytest.mark.parametrize("state, pruned, live_after, rollback_after", [
    ("staged", [], "v3", "v1"),        # v2 was the rollback target: the readable v1 looks like one now
    ("active", ["v1"], "v4", "v3"),
])
@pytest.mark.parametrize("content", ["{not json", "[]", "null", '"v2"', '{"id": "v2", "state": "previous", "seq": "2"}'])
def test_a_corrupt_record_of_the_rollback_target_keeps_its_release(base, art, tmp_path, content, state, pruned,
                                                                   live_after, rollback_after):
    live(base, art, "v1", "v2", "v3")  # v3 live, v2 the previous healthy release
    (base / "releases" / "v2.json").write_text(content)
    path = str(tmp_path / "app-v4.tar.gz")
    make_tar(path, {"VERSION": "v4"})
    releaser = run(base, release_id="v4", src=path, state=state, keep=1)
    assert current(base) == live_after and releaser.result["pruned"] == pruned
    assert os.path.isdir(base / "releases" / "v2") and (base / "releases" / "v2.json").read_text() == content
    assert len(releaser.warnings) == 1 and "the record of release v2" in releaser.warnings[0]
    assert "never pruned" in releaser.warnings[0]
    assert hidden(base) == []
    # It is never picked or written either: an explicit rollback to v2 and activating v2 are refused.
    with pytest.raises(rel.ReleaseError, match="cannot roll back to release v2: its record v2.json cannot be trusted"):
        run(base, release_id=live_after, state="rolled_back", rollback_to="v2")
    with pytest.raises(rel.ReleaseError, match="cannot stage release v2: its record v2.json cannot be trusted"):
        run(base, release_id="v2", state="active")
    assert current(base) == live_after and record(base, live_after)["state"] == "active"
    assert run(base, release_id=live_after, state="rolled_back").result["rolled_back_to"] == rollback_after
    assert (base / "releases" / "v2.json").read_text() == content


def test_rolling_back_from_a_live_release_with_a_corrupt_record_leaves_the_record(base, art):
    live(base, art, "v1", "v2")
    (base / "releases" / "v2.json").write_text("[]")
    releaser = run(base, state="rolled_back")
    assert current(base) == "v1" and releaser.result["rolled_back_to"] == "v1"
    assert (base / "releases" / "v2.json").read_text() == "[]"


@pytest.mark.parametrize("release_id", ["v4.json", "v4.JSON", "v4\n"])
def test_an_id_that_would_make_a_phantom_record_is_refused(base, art, tmp_path, release_id):
    live(base, art, "v1", "v2")
    path = str(tmp_path / "app-v4.tar.gz")
    make_tar(path, {"VERSION": "v4"})
    before = sorted(os.listdir(base / "releases"))
    with pytest.raises(rel.ReleaseError, match="release_id .* is not valid: .*not ending in .json"):
        run(base, release_id=release_id, src=path, state="active", keep=1)
    assert sorted(os.listdir(base / "releases")) == before and current(base) == "v2"
    run(base, release_id="v3", src=art["v3"][0], state="active", keep=1)  # later runs are not disturbed
    assert current(base) == "v3"


def test_a_new_record_keeps_the_artifact_size(base, art):
    run(base, release_id="v1", src=art["v1"][0], state="staged")
    assert record(base, "v1")["source_size"] == os.path.getsize(art["v1"][0])


# -- the lock ----------------------------------------------------------------------------------


def test_a_held_lock_stops_the_run_naming_the_holder(base, art):
    layout = rel.Layout(str(base))
    layout.ensure()
    with _lock.DeployLock(layout.lock, "the other deploy", timeout=1):
        with pytest.raises(_lock.LockTimeout, match="held by the other deploy"):
            run(base, release_id="v1", src=art["v1"][0], state="active", lock_timeout=0)
    assert os.listdir(layout.releases) == [] and not os.path.lexists(layout.current)


def test_a_lock_left_by_a_gone_holder_is_taken_over_with_a_warning(base, art):
    base.mkdir(parents=True)
    (base / ".lock").write_text(json.dumps({"owner": "crashed deploy", "pid": 99999, "host": "h", "started": "t"}))
    releaser = run(base, release_id="v1", src=art["v1"][0], state="active")
    result = releaser.result
    assert current(base) == "v1" and result["lock_wait"] < 1
    assert len(releaser.warnings) == 1 and "crashed deploy (pid 99999" in releaser.warnings[0]


# -- check mode --------------------------------------------------------------------------------


def test_check_mode_on_a_fresh_host_creates_nothing(base, art):
    releaser = run(base, check=True, release_id="v1", src=art["v1"][0], state="active", keep=1)
    result = releaser.result
    assert result["changed"] and not result["staged"] and not result["switched"]
    assert result["current"] == "v1" and result["previous"] is None
    assert releaser.diff == {"before": {"current": None}, "after": {"staged": "v1", "current": "v1"}}
    assert not base.exists(), "check mode writes nothing, not even the base directory or the lock"


def test_check_mode_reports_a_switch_a_rollback_and_a_prune_without_doing_them(base, art):
    live(base, art, "v1", "v2", "v3")

    def snapshot():
        return {name: (base / "releases" / name).read_text() for name in os.listdir(base / "releases")
                if name.endswith(".json")}

    before = snapshot()
    switch = run(base, check=True, release_id="v1", state="active").result
    assert switch["changed"] and switch["current"] == "v1" and not switch["switched"]
    rollback = run(base, check=True, release_id="v3", state="rolled_back").result
    assert rollback["changed"] and rollback["rolled_back_to"] == "v2" and rollback["current"] == "v2"
    prune = run(base, check=True, release_id="v3", state="staged", keep=1).result
    assert prune["changed"] and prune["pruned"] == ["v1"]

    assert current(base) == "v3" and snapshot() == before
    assert os.path.isdir(base / "releases" / "v1") and hidden(base) == []


# -- option checks -----------------------------------------------------------------------------


@pytest.mark.parametrize("options, message", [
    ({"state": "active", "release_id": None}, "release_id is required with state=active"),
    ({"release_id": "a/b"}, "is not valid"),
    ({"release_id": "v1", "keep": 0}, "keep must be 1 or more"),
    ({"release_id": "v1", "strip_components": -1}, "strip_components must be 0 or more"),
    ({"release_id": "v1", "digest": "md5"}, "digest: "),
])
def test_bad_options_are_refused_before_anything_is_written(base, options, message):
    with pytest.raises(rel.ReleaseError, match=message):
        run(base, src="/nonexistent", **options)
    assert not (base / "releases").exists() or os.listdir(base / "releases") == []


@pytest.mark.parametrize("value, mode", [("0755", 0o755), ("644", 0o644), (0o700, 0o700)])
def test_parse_mode(value, mode):
    assert _release.parse_mode(value, "mode") == mode


def test_parse_digest():
    assert _release.parse_digest(None) == (None, None)
    assert _release.parse_digest("sha256:" + "a" * 64) == ("sha256", "a" * 64)
    with pytest.raises(rel.ReleaseError, match="^digest: "):
        _release.parse_digest("sha256:xyz")


# -- what release_info reports -----------------------------------------------------------------


def test_host_releases_reports_every_release_the_live_one_and_the_rollback_target(base, art):
    report = _release.host_releases(str(base))
    assert report["exists"] is False and report["releases"] == [] and report["current"] is None
    live(base, art, "v1", "v2", "v3")
    run(base, release_id="v3", state="rolled_back")
    report = _release.host_releases(str(base))
    assert report["exists"] is True and report["current"] == "v2" and report["rollback_target"] == "v1"
    assert [(r["id"], r["state"], r["current"]) for r in report["releases"]] == \
        [("v3", "failed", False), ("v2", "active", True), ("v1", "previous", False)]
    assert report["lock"] is None
    assert report["platform"] == {"system": os.uname().sysname, "architecture": os.uname().machine}


def test_host_releases_names_the_lock_holder(base, art):
    live(base, art, "v1")
    with _lock.DeployLock(str(base / ".lock"), "a running deploy", timeout=1):
        assert _release.host_releases(str(base))["lock"]["owner"] == "a running deploy"


# -- container releases (option image) ------------------------------------------------------------------------------

INDEX = "sha256:" + "1" * 64
IMAGE = "repo1.example.com:5000/team/seedops-app@sha256:" + "2" * 64


def test_a_container_release_is_a_directory_naming_its_image_and_switches_like_any_other(base, art):
    path, hexdigest = art["v1"]
    run(base, release_id="v1", src=path, digest="sha256:" + hexdigest)
    staged = run(base, release_id="c1", state="staged", image=IMAGE, digest=INDEX)
    assert staged.result["staged"] and staged.result["record"]["format"] == "image"
    directory = os.path.join(str(base), "releases", "c1")
    assert os.listdir(directory) == ["image.env"]
    with open(os.path.join(directory, "image.env")) as f:
        assert f.read() == "SEEDOPS_IMAGE=%s\n" % IMAGE
    assert stat.S_IMODE(os.stat(os.path.join(directory, "image.env")).st_mode) == 0o644
    saved = record(base, "c1")
    assert (saved["digest"], saved["image"], saved["state"]) == (INDEX, IMAGE, "staged")
    assert current(base) == "v1" and hidden(base) == []
    # Staged again with the same index: nothing to do. Another index under the same id is refused.
    assert not run(base, release_id="c1", state="staged", image=IMAGE, digest=INDEX).result["changed"]
    with pytest.raises(rel.ReleaseError, match="already staged with " + INDEX):
        run(base, release_id="c1", state="staged", image=IMAGE, digest="sha256:" + "3" * 64)
    # The switch and the rollback do not care what kind a release is.
    run(base, release_id="c1")
    assert current(base) == "c1"
    run(base, release_id="c1", state="rolled_back")
    assert current(base) == "v1" and record(base, "c1")["state"] == "failed"


@pytest.mark.parametrize("options, message", [
    ({"image": "seedops-app:2.0.0", "digest": INDEX}, "image must be what the engine holds, by digest"),
    ({"image": IMAGE + "; rm -rf /", "digest": INDEX}, "image must be what the engine holds, by digest"),
    ({"image": IMAGE}, "a container release needs digest: the image index's digest"),
    ({"image": IMAGE, "digest": "sha512:" + "1" * 128}, "a container release needs digest"),
    ({"image": IMAGE, "digest": INDEX, "src": "/tmp/x.tar.gz"}, "give image (a container release) or src"),
])
def test_a_container_release_with_bad_options_stages_nothing(base, options, message):
    with pytest.raises(rel.ReleaseError, match=re.escape(message)):
        run(base, release_id="c1", state="staged", **options)
    assert not os.path.exists(os.path.join(str(base), "releases", "c1"))
