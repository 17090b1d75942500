"""The release module's main: options in, the Releaser's result (and diff, warnings, failures) out."""

import hashlib
import io
import json
import os
import tarfile
from unittest import mock

import pytest

from fakes import patch_module_args

from ansible_collections.seedops.deploy.plugins.modules import release


def call(capsys, args):
    """Run the module's main with args; the JSON it printed."""
    with patch_module_args(args), pytest.raises(SystemExit):
        release.main()
    return json.loads(capsys.readouterr().out)


@pytest.fixture
def artifact(tmp_path):
    path = tmp_path / "app.tar.gz"
    data = b"1.0.0\n"
    with tarfile.open(path, "w:gz") as tar:
        info = tarfile.TarInfo("VERSION")
        info.size = len(data)
        tar.addfile(info, io.BytesIO(data))
    return str(path), hashlib.sha256(path.read_bytes()).hexdigest()


def test_activate_through_main_with_diff(capsys, tmp_path, artifact):
    base = tmp_path / "app"
    out = call(capsys, {"path": str(base), "release_id": "1.0.0", "src": artifact[0],
                        "digest": "sha256:" + artifact[1], "_ansible_diff": True})
    assert out["changed"] and out["staged"] and out["switched"] and not out.get("failed")
    assert out["current"] == "1.0.0" and out["digest"] == "sha256:" + artifact[1]
    assert out["diff"] == {"before": {"current": None}, "after": {"staged": "1.0.0", "current": "1.0.0"}}
    assert os.readlink(base / "current") == "releases/1.0.0"
    assert (base / "current" / "VERSION").read_text() == "1.0.0\n"

    again = call(capsys, {"path": str(base), "release_id": "1.0.0"})
    assert not again["changed"] and "diff" not in again


def test_check_mode_through_main(capsys, tmp_path, artifact):
    base = tmp_path / "app"
    out = call(capsys, {"path": str(base), "release_id": "1.0.0", "src": artifact[0], "_ansible_check_mode": True})
    assert out["changed"] and out["current"] == "1.0.0" and not out["switched"]
    assert not base.exists()


def test_a_refusal_fails_with_its_message_and_the_partial_result(capsys, tmp_path, artifact):
    out = call(capsys, {"path": str(tmp_path / "app"), "release_id": "1.0.0", "src": artifact[0],
                        "digest": "sha256:" + "0" * 64})
    assert out["failed"] and "does not match its digest" in out["msg"]
    assert out["staged"] is False and out["switched"] is False and "lock_wait" in out
    assert os.listdir(tmp_path / "app" / "releases") == []


def test_the_argument_spec_requires_a_release_id_to_stage(capsys, tmp_path):
    out = call(capsys, {"path": str(tmp_path / "app"), "state": "staged"})
    assert out["failed"] and "release_id" in out["msg"]
    assert not (tmp_path / "app").exists()


def test_warnings_reach_the_result(capsys, tmp_path, artifact):
    base = tmp_path / "app"
    (base / "releases" / ".staging-0.9-1").mkdir(parents=True)
    with mock.patch.object(release.AnsibleModule, "warn") as warn:
        out = call(capsys, {"path": str(base), "release_id": "1.0.0", "src": artifact[0], "state": "staged"})
    assert out["staged"]
    warn.assert_called_once_with("removed %s, left by an interrupted run" % (base / "releases" / ".staging-0.9-1"))
    assert not (base / "releases" / ".staging-0.9-1").exists()
