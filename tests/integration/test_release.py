"""seedops.deploy.release and release_info on a lab host: the whole cycle with idempotent reruns,
refusals that change nothing, pruning, the deploy lock under concurrency, and SIGKILL mid-unpack."""

import io
import json
import os
import subprocess
import tarfile
import time
import uuid

import pytest

from conftest import MODULE_ENV, REPO_ROOT, copy_to, file_sha256, flat, module_command, parse_module_output, run_module, sh

pytestmark = pytest.mark.lab

HOST = "app2"
REMOTE_PKG = "/var/tmp/seedops-test"


@pytest.fixture(scope="module")
def packages(lab, app_packages):
    """The sample service's packages copied to the host: {version: (remote path, sha256)}."""
    remote = {}
    sh(lab, HOST, f"sudo install -d -m 0777 {REMOTE_PKG}")
    for version, local in app_packages.items():
        dest = f"{REMOTE_PKG}/app-{version}.tar.gz"
        copy_to(lab, HOST, local, dest, mode="0644")
        remote[version] = (dest, file_sha256(local))
    return remote


@pytest.fixture
def base(lab):
    path = f"/srv/reltest-{uuid.uuid4().hex[:8]}"
    yield path
    lab.ssh(HOST, f"sudo rm -rf {path}")


def release(lab, base, check=False, diff=False, **args):
    return run_module(lab, HOST, "seedops.deploy.release", {"path": base, **args}, check=check, diff=diff)


def record(lab, base, rid):
    return json.loads(sh(lab, HOST, f"cat {base}/releases/{rid}.json"))


def test_stage_activate_rollback_cycle_with_idempotent_reruns(lab, packages, base):
    v1, d1 = packages["1.0.0"]
    v2, d2 = packages["2.0.0"]

    r = release(lab, base, release_id="1.0.0", src=v1, state="staged", shared=["logs"])
    assert r["changed"] and r["staged"] and not r["switched"], r
    assert r["digest"] == "sha256:" + d1
    assert sh(lab, HOST, f"test -e {base}/current && echo yes || echo no") == "no", "staging must not make anything live"
    assert sh(lab, HOST, f"readlink {base}/releases/1.0.0/logs") == "../../shared/logs"
    again = release(lab, base, release_id="1.0.0", src=v1, state="staged", shared=["logs"])
    assert not again["changed"] and not again["staged"], again

    r = release(lab, base, release_id="1.0.0", state="active")
    assert r["changed"] and r["switched"] and r["current"] == "1.0.0" and r["previous"] is None
    assert sh(lab, HOST, f"readlink {base}/current") == "releases/1.0.0"
    assert sh(lab, HOST, f"{base}/current/bin/seedops-app -version") == "1.0.0 linux/amd64"
    assert not release(lab, base, release_id="1.0.0", state="active")["changed"]
    assert not release(lab, base, release_id="1.0.0", state="active", check=True)["changed"]

    # v2 by digest: checked while unpacking; activation in check mode changes nothing and shows the diff.
    r = release(lab, base, release_id="2.0.0", src=v2, digest="sha256:" + d2, state="staged")
    assert r["changed"] and r["record"]["digest"] == "sha256:" + d2
    r = release(lab, base, release_id="2.0.0", state="active", check=True, diff=True)
    assert r["changed"] and '-    "current": "1.0.0"' in r["_stdout"] and '+    "current": "2.0.0"' in r["_stdout"]
    assert sh(lab, HOST, f"readlink {base}/current") == "releases/1.0.0"
    r = release(lab, base, release_id="2.0.0", state="active")
    assert r["changed"] and r["previous"] == "1.0.0" and r["current"] == "2.0.0"
    assert record(lab, base, "1.0.0")["state"] == "previous"
    assert record(lab, base, "2.0.0")["state"] == "active"
    assert record(lab, base, "2.0.0")["deployed_by"]["remote_user"] == "debian"

    # Roll v2 back: to v1 by the records; v2 marked failed; a rerun changes nothing.
    r = release(lab, base, release_id="2.0.0", state="rolled_back")
    assert r["changed"] and r["current"] == "1.0.0" and r["rolled_back_to"] == "1.0.0", r
    assert sh(lab, HOST, f"{base}/current/bin/seedops-app -version") == "1.0.0 linux/amd64"
    assert record(lab, base, "2.0.0")["state"] == "failed"
    assert record(lab, base, "1.0.0")["state"] == "active"
    assert not release(lab, base, release_id="2.0.0", state="rolled_back")["changed"]
    assert not release(lab, base, release_id="2.0.0", state="rolled_back", check=True)["changed"]

    # Activate v2 again (a fixed environment, say): it goes live and v1 is the rollback target again.
    r = release(lab, base, release_id="2.0.0", state="active")
    assert r["changed"] and r["current"] == "2.0.0"
    assert sh(lab, HOST, f"{base}/current/bin/seedops-app -version") == "2.0.0 linux/amd64"
    assert not release(lab, base, release_id="2.0.0", state="active")["changed"]

    info = run_module(lab, HOST, "seedops.deploy.release_info", {"path": base})
    assert info["current"] == "2.0.0" and info["rollback_target"] == "1.0.0" and info["lock"] is None
    assert {x["id"]: x["state"] for x in info["releases"]} == {"1.0.0": "previous", "2.0.0": "active"}
    assert [x["id"] for x in info["releases"] if x["current"]] == ["2.0.0"]
    assert sh(lab, HOST, f"ls -A {base}/releases | grep -c '^\\.' || true") == "0", "no staging or temp leftovers"


def test_same_id_with_another_artifact_is_refused(lab, packages, base):
    v1 = packages["1.0.0"][0]
    v2, d2 = packages["2.0.0"]
    release(lab, base, release_id="1.0.0", src=v1, state="active")
    before = sh(lab, HOST, f"find {base}/releases -printf '%p %s\\n' | sort")
    r = release(lab, base, release_id="1.0.0", src=v2, state="staged")
    assert r["_status"].startswith("FAILED")
    assert "already staged with sha256:" in r["msg"] and d2 in r["msg"] and "new release_id" in r["msg"]
    assert sh(lab, HOST, f"find {base}/releases -printf '%p %s\\n' | sort") == before


def test_digest_mismatch_stages_nothing(lab, packages, base):
    v1, d1 = packages["1.0.0"]
    wrong = "sha256:" + "0" * 64
    r = release(lab, base, release_id="1.0.0", src=v1, digest=wrong, state="active")
    assert r["_status"].startswith("FAILED")
    assert f"expected {wrong}" in r["msg"] and d1 in r["msg"] and "Nothing was staged" in r["msg"]
    assert sh(lab, HOST, f"ls -A {base}/releases") == ""
    assert sh(lab, HOST, f"test -e {base}/current && echo yes || echo no") == "no"
    bad = release(lab, base, release_id="1.0.0", src=v1, digest="md5:abc", state="staged")
    assert bad["_status"].startswith("FAILED") and "unknown algorithm 'md5'" in bad["msg"]
    for rid in ("../x", ".hidden", "a/b"):
        r = release(lab, base, release_id=rid, src=v1, state="staged")
        assert r["_status"].startswith("FAILED") and "is not valid" in r["msg"], rid


def test_malicious_archive_is_refused_on_the_host(lab, packages, base, tmp_path):
    v1 = packages["1.0.0"][0]
    release(lab, base, release_id="1.0.0", src=v1, state="active")
    evil = tmp_path / "evil.tar.gz"
    with tarfile.open(evil, "w:gz") as tar:
        for name, kind, target in (("ok", "file", None), ("sub", "dir", None), ("sub/up", "sym", ".."),
                                   ("esc", "sym", "sub/up/.."), ("esc/pwned", "file", None)):
            info = tarfile.TarInfo(name)
            if kind == "file":
                info.size = 2
                tar.addfile(info, io.BytesIO(b"x\n"))
            else:
                info.type = tarfile.DIRTYPE if kind == "dir" else tarfile.SYMTYPE
                info.linkname = target or ""
                tar.addfile(info)
    copy_to(lab, HOST, evil, f"{REMOTE_PKG}/evil.tar.gz")
    r = release(lab, base, release_id="evil", src=f"{REMOTE_PKG}/evil.tar.gz", state="active")
    assert r["_status"].startswith("FAILED")
    assert "refused to stage evil" in r["msg"] and "'esc'" in r["msg"] and "leaves the release" in r["msg"]
    assert sh(lab, HOST, f"ls -A {base}/releases") == "1.0.0\n1.0.0.json"
    assert sh(lab, HOST, f"readlink {base}/current") == "releases/1.0.0"
    assert sh(lab, HOST, f"test -e {base}/pwned -o -e /srv/pwned && echo yes || echo no") == "no"


def test_pruning_keeps_the_right_releases_with_failed_ones_present(lab, base):
    sh(lab, HOST, f"for i in 1 2 3 4 5 6; do echo r$i > {REMOTE_PKG}/r$i.txt; done")
    for i in range(1, 6):
        r = release(lab, base, release_id=f"r{i}", src=f"{REMOTE_PKG}/r{i}.txt", file_name="payload",
                    format="file", state="active")
        assert r["changed"], r
    # r5 goes bad: roll back to r4; r5 failed. Then r6 is staged, not live.
    assert release(lab, base, release_id="r5", state="rolled_back")["current"] == "r4"
    release(lab, base, release_id="r6", src=f"{REMOTE_PKG}/r6.txt", file_name="payload", format="file",
            state="staged")
    # keep=2: the newest healthy are r6 (staged) and r4 (live); the rollback target r3 is protected;
    # failed r5 is among the two newest overall (r6, r5) and stays for inspection; r1, r2 go.
    check = release(lab, base, keep=2, release_id="r4", state="active", check=True)
    assert not check["switched"] and sorted(check["pruned"]) == ["r1", "r2"]
    assert sh(lab, HOST, f"ls {base}/releases | grep -v json | sort | tr '\\n' ' '") == "r1 r2 r3 r4 r5 r6"
    r = release(lab, base, keep=2, release_id="r4", state="active")
    assert sorted(r["pruned"]) == ["r1", "r2"] and r["changed"]
    assert sh(lab, HOST, f"ls {base}/releases | sort | tr '\\n' ' '") == \
        "r3 r3.json r4 r4.json r5 r5.json r6 r6.json"
    assert not release(lab, base, keep=2, release_id="r4", state="active")["changed"]
    # keep=1: r6 is the newest healthy, r4 live, r3 the rollback target; failed r5 is no longer among the
    # newest one overall, so it goes.
    r = release(lab, base, keep=1, release_id="r4", state="active")
    assert r["pruned"] == ["r5"]
    assert sh(lab, HOST, f"cat {base}/current/payload") == "r4"


HOLD_LOCK = """
import fcntl, json, os, sys, time
fd = os.open(sys.argv[1], os.O_RDWR | os.O_CREAT, 0o644)
fcntl.flock(fd, fcntl.LOCK_EX)
os.ftruncate(fd, 0)
os.write(fd, json.dumps({"owner": "test-holder", "pid": os.getpid(), "host": "app2", "started": "now"}).encode())
print("held", flush=True)
time.sleep(float(sys.argv[2]))
"""


def test_the_deploy_lock_waits_then_names_the_holder(lab, packages, base):
    v1 = packages["1.0.0"][0]
    sh(lab, HOST, f"sudo mkdir -p {base}")
    ssh = ["ssh", "-F", f"{lab.state_dir}/ssh_config", "-o", "BatchMode=yes", HOST,
           f"sudo python3 -c '{HOLD_LOCK}' {base}/.lock 15"]
    holder = subprocess.Popen(ssh, stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "held"
        r = release(lab, base, release_id="1.0.0", src=v1, state="staged", lock_timeout=1)
        assert r["_status"].startswith("FAILED")
        assert "held by test-holder (pid" in r["msg"] and "lock_timeout" in r["msg"]
        assert sh(lab, HOST, f"ls -A {base}/releases 2>/dev/null || true") == ""
        info = run_module(lab, HOST, "seedops.deploy.release_info", {"path": base})
        assert info["lock"]["owner"] == "test-holder"
        r = release(lab, base, release_id="1.0.0", src=v1, state="staged", lock_timeout=60)
        assert r["changed"] and r["lock_wait"] > 0, r
    finally:
        holder.wait(30)


def test_concurrent_runs_on_one_host_both_land(lab, packages, base):
    procs = []
    for version in ("1.0.0", "2.0.0"):
        src = packages[version][0]
        cmd = module_command(lab, HOST, "seedops.deploy.release",
                             {"path": base, "release_id": version, "src": src, "state": "staged"}, become=True)
        procs.append(subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                                      env={**os.environ, **MODULE_ENV}, cwd=REPO_ROOT))
    results = [parse_module_output(HOST, p.communicate(timeout=300)[0]) for p in procs]
    assert all(r["changed"] for r in results), results
    assert sum(1 for r in results if r["lock_wait"] > 0) <= 1
    for version in ("1.0.0", "2.0.0"):
        assert record(lab, base, version)["state"] == "staged"
        assert sh(lab, HOST, f"{base}/releases/{version}/bin/seedops-app -version") == f"{version} linux/amd64"


def test_sigkill_mid_unpack_then_a_rerun_converges(lab, packages, base):
    v1 = packages["1.0.0"][0]
    release(lab, base, release_id="1.0.0", src=v1, state="active")
    # A large, slow-to-unpack artifact made on the host (random data: gzip cannot shrink it).
    sh(lab, HOST, f"test -s {REMOTE_PKG}/big.tar.gz || (mkdir -p {REMOTE_PKG}/big && "
                  f"head -c 400M /dev/urandom > {REMOTE_PKG}/big/blob && "
                  f"tar -C {REMOTE_PKG}/big -czf {REMOTE_PKG}/big.tar.gz . && rm -rf {REMOTE_PKG}/big)")
    cmd = module_command(lab, HOST, "seedops.deploy.release",
                         {"path": base, "release_id": "big", "src": f"{REMOTE_PKG}/big.tar.gz", "state": "active"})
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env={**os.environ, **MODULE_ENV}, cwd=REPO_ROOT)
    try:
        deadline = time.monotonic() + 60
        pid = ""
        while time.monotonic() < deadline and not pid:
            pid = lab.ssh(HOST, f"sudo ls -d {base}/releases/.staging-big-* >/dev/null 2>&1 && "
                                f"sudo python3 -c 'import json; print(json.load(open(\"{base}/.lock\"))[\"pid\"])'"
                          ).stdout.strip()
            time.sleep(0.05)
        assert pid, "the module never started unpacking"
        sh(lab, HOST, f"sudo kill -9 {pid}")
        proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
    # Killed mid-unpack: current still the old, complete release; no half release anywhere live.
    assert sh(lab, HOST, f"readlink {base}/current") == "releases/1.0.0"
    assert sh(lab, HOST, f"{base}/current/bin/seedops-app -version") == "1.0.0 linux/amd64"
    assert sh(lab, HOST, f"test -e {base}/releases/big && echo yes || echo no") == "no"
    assert sh(lab, HOST, f"ls -d {base}/releases/.staging-big-* | wc -l") == "1"
    # The rerun takes over the lock of the dead holder, clears its leftovers and converges.
    rerun = release(lab, base, release_id="big", src=f"{REMOTE_PKG}/big.tar.gz", state="active")
    assert rerun["changed"] and rerun["current"] == "big", rerun
    warnings = flat(rerun["_stderr"])
    assert "left by an interrupted run" in warnings and "which is gone" in warnings
    assert sh(lab, HOST, f"ls -A {base}/releases | grep -c '^\\.' || true") == "0"
    assert not release(lab, base, release_id="big", src=f"{REMOTE_PKG}/big.tar.gz", state="active")["changed"]
