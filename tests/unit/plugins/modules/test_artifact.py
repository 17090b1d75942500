"""The artifact module end to end through main(), on real temp files: the argument spec, the
file attributes of dest, failures with nothing stored, and the docs matching the spec."""

import hashlib
import json
import os

import pytest
import yaml

from ansible.module_utils.testing import patch_module_args

from ansible_collections.seedops.deploy.plugins.doc_fragments.url import ModuleDocFragment
from ansible_collections.seedops.deploy.plugins.modules import artifact

PAYLOAD = b"build output\n" * 1000
HEX = hashlib.sha256(PAYLOAD).hexdigest()


def run_module(capsys, **args):
    with patch_module_args(args):
        with pytest.raises(SystemExit) as exited:
            artifact.main()
    result = json.loads(capsys.readouterr().out)
    assert (exited.value.code != 0) == bool(result.get("failed"))
    return result


@pytest.fixture
def src(tmp_path):
    path = tmp_path / "app.tar.gz"
    path.write_bytes(PAYLOAD)
    return path


def test_store_and_place_with_mode_and_diff(tmp_path, src, capsys):
    store = tmp_path / "store"
    dest = tmp_path / "opt" / "app.tar.gz"
    dest.parent.mkdir()
    args = dict(store=str(store), src=str(src), remote_src=True, checksum="sha256:" + HEX, dest=str(dest),
                mode="0600", _ansible_diff=True)
    result = run_module(capsys, **args)
    assert result["changed"] and result["path"] == str(store / "sha256" / HEX)
    assert dest.read_bytes() == PAYLOAD and oct(dest.stat().st_mode & 0o777) == "0o600"
    assert result["diff"]["after"]["store"] == str(store / "sha256" / HEX)
    assert result["bytes_transferred"] == 0 and result["pruned"] == []

    again = run_module(capsys, **args)
    assert not again["changed"]
    os.chmod(str(dest), 0o644)
    fixed = run_module(capsys, **args)
    assert fixed["changed"] and oct(dest.stat().st_mode & 0o777) == "0o600"


def test_mismatch_fails_with_nothing_stored(tmp_path, src, capsys):
    store = tmp_path / "store"
    result = run_module(capsys, store=str(store), src=str(src), remote_src=True, checksum="sha256:" + "0" * 64)
    assert result["failed"] and "checksum mismatch" in result["msg"] and "Nothing was stored" in result["msg"]
    assert result["source"] == str(src)
    assert os.listdir(str(store / "sha256")) == []


def test_bad_arguments_fail_before_anything_happens(tmp_path, capsys):
    result = run_module(capsys, store=str(tmp_path / "store"), checksum="sha256:" + HEX, keep=-1)
    assert result["failed"] and "keep must be 0 or more" in result["msg"]
    result = run_module(capsys, store=str(tmp_path / "store"), url="https://r/a", src="/a")
    assert result["failed"] and "mutually exclusive" in result["msg"]
    result = run_module(capsys, store=str(tmp_path / "store"), checksum="sha256:" + HEX)
    assert result["failed"] and result["missing"] is True
    assert not (tmp_path / "store").exists()


def test_documentation_with_the_url_fragment_matches_the_argument_spec(monkeypatch):
    seen = {}

    class Capture:
        def __init__(self, **kwargs):
            seen.update(kwargs)
            raise SystemExit(0)

    monkeypatch.setattr(artifact, "AnsibleModule", Capture)
    with pytest.raises(SystemExit):
        artifact.main()
    spec = seen["argument_spec"]
    doc = yaml.safe_load(artifact.DOCUMENTATION)
    assert "seedops.deploy.url" in doc["extends_documentation_fragment"]
    options = dict(doc["options"])
    fragment = yaml.safe_load(ModuleDocFragment.DOCUMENTATION)["options"]
    assert not set(options) & set(fragment), "an option is documented twice"
    options.update(fragment)
    assert sorted(options) == sorted(spec)
    for name, option in options.items():
        assert option["type"] == spec[name]["type"], name
        assert option.get("default") == spec[name].get("default"), name
    assert spec["url_password"]["no_log"] and spec["bearer_token"]["no_log"]
