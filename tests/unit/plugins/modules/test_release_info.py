"""The release_info module's main: the report of a real release directory."""

import base64
import http.server
import json
import os
import shutil
import subprocess
import threading

import pytest

from fakes import patch_module_args

from ansible_collections.seedops.deploy.plugins.module_utils import _hostfit
from ansible_collections.seedops.deploy.plugins.module_utils import _releases
from ansible_collections.seedops.deploy.plugins.modules import release_info


def call(capsys, args):
    with patch_module_args(args), pytest.raises(SystemExit):
        release_info.main()
    return json.loads(capsys.readouterr().out)


def test_reports_the_releases_and_changes_nothing(capsys, tmp_path):
    layout = _releases.Layout(str(tmp_path))
    layout.ensure()
    for rid, state, created, seq in (("1.0", "previous", "2026-01-01", 1), ("2.0", "active", "2026-01-02", 2)):
        os.mkdir(layout.release_dir(rid))
        _releases.save_record(layout, {"id": rid, "state": state, "created": created, "seq": seq})
    _releases.switch_current(layout, "2.0")
    before = sorted(os.listdir(tmp_path))
    out = call(capsys, {"path": str(tmp_path), "_ansible_check_mode": True})
    assert out["changed"] is False and out["exists"] is True
    assert out["current"] == "2.0" and out["rollback_target"] == "1.0" and out["lock"] is None
    assert [(r["id"], r["current"]) for r in out["releases"]] == [("2.0", True), ("1.0", False)]
    assert out["platform"]["system"] == os.uname().sysname
    assert out["platform"]["libc"] == {"family": "glibc", "version": os.confstr("CS_GNU_LIBC_VERSION").split()[1]}
    assert "env_keys" not in out and "runtime" not in out
    assert sorted(os.listdir(tmp_path)) == before, "no lock file, nothing written"


def test_the_env_file_s_names_never_its_values_and_the_java_major_version(capsys, tmp_path):
    env = tmp_path / "env"
    env.write_text('# comment\nLOG_LEVEL="info"\n; other comment\nDATABASE_URL="postgres://u:secret@db/x"\n\nbad line\n')
    out = call(capsys, {"path": str(tmp_path), "env_file": str(env), "java": True})
    assert out["env_keys"] == ["DATABASE_URL", "LOG_LEVEL"]
    assert "secret" not in json.dumps(out)
    java = shutil.which("java")
    expected = _hostfit.java_major(subprocess.run([java, "-version"], capture_output=True, text=True, check=True).stderr) if java else None
    assert out["runtime"] == {"java": expected}
    assert call(capsys, {"path": str(tmp_path), "env_file": str(tmp_path / "none")})["env_keys"] is None


def test_an_empty_host(capsys, tmp_path):
    out = call(capsys, {"path": str(tmp_path / "none")})
    assert out["exists"] is False and out["releases"] == [] and out["current"] is None


def test_a_current_that_is_not_a_link_fails_with_what_to_do(capsys, tmp_path):
    (tmp_path / "current").mkdir()
    out = call(capsys, {"path": str(tmp_path)})
    assert out["failed"] and "is not a symlink" in out["msg"]


def test_instances_reads_each_at_its_port_and_names_the_live_one(capsys, tmp_path, monkeypatch):
    layout = _releases.Layout(str(tmp_path))
    layout.ensure()
    seen = []

    def service_state(run, systemctl, unit, releases_dir, version_url=None, records=None):
        seen.append((unit, version_url))
        return {"name": unit, "state": "active" if unit.endswith("@8081") else "inactive", "release": None}

    monkeypatch.setattr(release_info._service, "service_state", service_state)
    monkeypatch.setattr(release_info.AnsibleModule, "get_bin_path", lambda self, name, required=False: "/bin/" + name)
    args = {"path": str(tmp_path), "service": "app", "instances": [8080, 8081],
            "version_url": "http://127.0.0.1:8080/version", "health": {"port": 1, "timeout": 1}}
    out = call(capsys, args)
    assert seen == [("app@8080", "http://127.0.0.1:8080/version"), ("app@8081", "http://127.0.0.1:8081/version")]
    # No live-port file: the running instance is the live one.
    assert out["live_port"] == 8081 and out["service"]["name"] == "app@8081"
    assert set(out["instances"]) == {"8080", "8081"} and out["instances"]["8080"]["healthy"] is None
    assert out["service"]["health"] is not None, "the running instance is probed, the stopped one not"
    # The live-port file wins over what runs: a flip wrote it.
    with open(layout.live_port, "w") as handle:
        handle.write("8080\n")
    assert call(capsys, args)["live_port"] == 8080
    bad = call(capsys, dict(args, instances=[8080, 8080]))
    assert bad["failed"] and "two different ports" in bad["msg"]


class SumsHandler(http.server.BaseHTTPRequestHandler):
    """SHA256SUMS for user 'deploy' (basic auth), /moved redirects to it, anything else is missing."""

    def log_message(self, *args):
        pass

    def do_GET(self):
        if self.path == "/moved":
            self.send_response(302)
            self.send_header("Location", "/SHA256SUMS")
            self.send_header("Content-Length", "0")
            self.end_headers()
            return
        if self.path != "/SHA256SUMS":
            self.send_error(404)
            return
        if self.headers.get("Authorization") != "Basic " + base64.b64encode(b"deploy:s3cret").decode():
            self.send_error(401)
            return
        body = b"ab12  app-2.0.0-linux-amd64.tar.gz\n"
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


def test_checksum_lists_are_fetched_in_the_same_run_and_one_that_fails_is_reported_not_fatal(capsys, tmp_path):
    srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), SumsHandler)
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    base = "http://127.0.0.1:%d" % srv.server_address[1]
    try:
        out = call(capsys, {"path": str(tmp_path), "checksum_lists": [base + "/moved", base + "/missing"],
                            "url_username": "deploy", "url_password": "s3cret"})
        unauthorized = call(capsys, {"path": str(tmp_path), "checksum_lists": [base + "/SHA256SUMS"]})
    finally:
        srv.shutdown()
    assert out["changed"] is False and out["exists"] is False
    moved, missing = out["checksum_lists"]
    assert moved == {"source": base + "/moved", "url": base + "/SHA256SUMS",
                     "content": "ab12  app-2.0.0-linux-amd64.tar.gz\n", "error": None}
    assert missing["content"] is None and "HTTP 404" in missing["error"] and missing["source"] == base + "/missing"
    assert unauthorized["checksum_lists"][0]["content"] is None and "HTTP 401" in unauthorized["checksum_lists"][0]["error"]
    assert "s3cret" not in json.dumps(out)
    assert call(capsys, {"path": str(tmp_path)})["checksum_lists"] == []
