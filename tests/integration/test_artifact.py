"""seedops.deploy.artifact on lab hosts, against nginx on the repo host: pull and push, idempotent
reruns, check mode, every injected corruption detected with nothing left behind, credentials,
404, a connection cut mid-download then resumed, and store housekeeping."""

import hashlib
import os
import shutil
import subprocess
import time
import uuid

import pytest

from conftest import (MODULE_ENV, REPO_ROOT, copy_to, file_sha256, module_command, parse_module_output, run_module, run_playbook,
                      sh)

pytestmark = pytest.mark.lab

WEB = "/srv/artifacts"
BIG_MB = 48


@pytest.fixture(scope="module")
def repo(lab, app_packages, tmp_path_factory):
    """nginx on repo1 serving the sample service's packages, a private copy, corrupted copies and a
    large file on the slow location. Returns the base URL (as the app hosts reach it) and facts."""
    result, recap = run_playbook("tests/integration/playbooks/repo.yml", lab.inventory)
    assert result.returncode == 0 and recap["repo1"]["failed"] == 0, result.stdout[-3000:]
    local = app_packages["1.0.0"]
    name = os.path.basename(local)
    digest = file_sha256(local)
    work = tmp_path_factory.mktemp("repo")
    flipped = bytearray(open(local, "rb").read())
    flipped[len(flipped) // 2] ^= 0x01
    (work / "flipped").write_bytes(bytes(flipped))
    (work / "truncated").write_bytes(open(local, "rb").read()[: len(flipped) // 2])
    (work / "SHA256SUMS").write_text(f"{digest}  {name}\n")
    (work / "WRONGSUMS").write_text(f"{hashlib.sha256(b'other').hexdigest()}  {name}\n")
    files = {
        f"app/1.0.0/{name}": local, "app/1.0.0/SHA256SUMS": str(work / "SHA256SUMS"),
        f"private/app/1.0.0/{name}": local, "private/app/1.0.0/SHA256SUMS": str(work / "SHA256SUMS"),
        f"bad/flipped/{name}": str(work / "flipped"), "bad/flipped/SHA256SUMS": str(work / "SHA256SUMS"),
        f"bad/truncated/{name}": str(work / "truncated"), "bad/truncated/SHA256SUMS": str(work / "SHA256SUMS"),
        f"bad/wrongsums/{name}": local, "bad/wrongsums/SHA256SUMS": str(work / "WRONGSUMS"),
    }
    # Laid out here, then copied in one run (one module run per file would cost a run of ansible each).
    tree = work / "web"
    for rel, src in files.items():
        (tree / rel).parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(src, tree / rel)
    copy_to(lab, "repo1", f"{tree}/", f"{WEB}/", mode="u=rwX,g=rX,o=rX")
    big = lab.ssh("repo1", f"sudo mkdir -p {WEB}/slow && (test -s {WEB}/slow/big.bin || sudo sh -c "
                           f"'head -c {BIG_MB}M /dev/urandom > {WEB}/slow/big.bin') && sha256sum {WEB}/slow/big.bin")
    assert big.returncode == 0, big.stderr
    return {"base": f"http://{lab.host('repo1')['address']}", "name": name, "digest": digest,
            "size": os.path.getsize(local), "local": local, "big_digest": big.stdout.split()[0]}


@pytest.fixture
def store(lab):
    path = f"/srv/arttest-{uuid.uuid4().hex[:8]}/store"
    yield path
    for host in ("app1", "app2", "app3"):
        lab.ssh(host, f"sudo rm -rf {os.path.dirname(path)}")


def art(lab, host, check=False, diff=False, **args):
    return run_module(lab, host, "seedops.deploy.artifact", args, check=check, diff=diff)


def store_listing(lab, host, store):
    return sh(lab, host, f"sudo sh -c 'ls -A {store}/sha256 2>/dev/null || true'")


def test_pull_verified_by_sha256sums_then_idempotent(lab, repo, store):
    url = f"{repo['base']}/app/1.0.0/{repo['name']}"
    sums = f"{repo['base']}/app/1.0.0/SHA256SUMS"
    # The lab's repository is plain http: a checksum list over http proves nothing against someone in the middle,
    # so it is refused before any request unless the run opts in (the list is still checked then).
    refused = art(lab, "app1", url=url, checksum_url=sums, store=store)
    assert refused["_status"] == "FAILED!" and "Serve checksum_url over https://" in refused["msg"], refused
    assert sh(lab, "app1", f"sudo test -e {store} && echo yes || echo no") == "no", "nothing was fetched"
    check = art(lab, "app1", check=True, url=url, checksum_url=sums, store=store, allow_unverified=True)
    assert check["changed"] and check["bytes_transferred"] == 0
    assert sh(lab, "app1", f"sudo test -e {store} && echo yes || echo no") == "no", "check mode writes nothing"

    r = art(lab, "app1", url=url, checksum_url=sums, store=store, allow_unverified=True)
    assert r["changed"] and r["digest"] == "sha256:" + repo["digest"], r
    assert r["path"] == f"{store}/sha256/{repo['digest']}" and r["size"] == repo["size"]
    assert r["bytes_transferred"] == repo["size"] and not r["resumed"]
    assert r["source"] == url and r["throughput"] > 0
    assert sh(lab, "app1", f"sha256sum {r['path']}").split()[0] == repo["digest"]
    assert sh(lab, "app1", f"stat -c '%U %G %a' {r['path']}") == "root root 644", "like the store (root, 0755)"
    assert store_listing(lab, "app1", store) == repo["digest"], "no temp or partial files left"

    again = art(lab, "app1", url=url, checksum_url=sums, store=store, allow_unverified=True)
    assert not again["changed"] and again["bytes_transferred"] == 0
    assert not art(lab, "app1", check=True, url=url, checksum_url=sums, store=store, allow_unverified=True)["changed"]
    # With a checksum and no source: taken from the store.
    assert not art(lab, "app1", checksum="sha256:" + repo["digest"], store=store)["changed"]


def test_basic_auth_wrong_credentials_and_404(lab, repo, store):
    url = f"{repo['base']}/private/app/1.0.0/{repo['name']}"
    ok = art(lab, "app2", url=url, checksum="sha256:" + repo["digest"], store=store, url_username="deploy",
             url_password="lab-only-password")
    assert ok["changed"] and ok["bytes_transferred"] == repo["size"], ok
    bad = art(lab, "app2", url=url, checksum="sha256:" + repo["digest"], store=store + "2",
              url_username="deploy", url_password="not-the-password")
    assert bad["_status"] == "FAILED!"
    assert f"GET {url} answered HTTP 401" in bad["msg"]
    assert "not-the-password" not in bad["_stdout"] + bad["_stderr"]
    inline = url.replace("http://", "http://deploy:not-the-password@")
    bad2 = art(lab, "app2", url=inline, checksum="sha256:" + repo["digest"], store=store + "2")
    assert bad2["_status"] == "FAILED!" and "HTTP 401" in bad2["msg"] and "not-the-password" not in bad2["msg"]
    missing = art(lab, "app2", url=f"{repo['base']}/app/9.9.9/nothing.tar.gz", checksum="sha256:" + repo["digest"],
                  store=store + "2")
    assert missing["_status"] == "FAILED!" and "HTTP 404 not found" in missing["msg"]
    assert "/app/9.9.9/nothing.tar.gz" in missing["msg"]
    assert store_listing(lab, "app2", store + "2") == ""


@pytest.mark.parametrize("case", ["flipped", "truncated", "wrongsums"])
def test_every_corruption_is_detected_and_nothing_is_left(lab, repo, store, case):
    url = f"{repo['base']}/bad/{case}/{repo['name']}"
    dest_dir = os.path.dirname(store) + "/dest"
    sh(lab, "app3", f"sudo mkdir -p {dest_dir}")
    r = art(lab, "app3", url=url, checksum_url=f"{repo['base']}/bad/{case}/SHA256SUMS", store=store, allow_unverified=True,
            dest=f"{dest_dir}/app.tar.gz")
    assert r["_status"] == "FAILED!", r
    assert f"checksum mismatch for {url}: expected sha256:" in r["msg"] and "Nothing was stored" in r["msg"]
    assert store_listing(lab, "app3", store) == ""
    assert sh(lab, "app3", f"sudo ls -A {dest_dir}") == ""


def test_refusals_without_a_checksum(lab, repo, store):
    url = f"{repo['base']}/app/1.0.0/{repo['name']}"
    r = art(lab, "app1", url=url, store=store)
    assert r["_status"] == "FAILED!" and "over plain http:// without a checksum" in r["msg"]
    r = art(lab, "app1", url=url, store=store, checksum="sha256:abc")
    assert r["_status"] == "FAILED!" and "takes 64 hex digits" in r["msg"]
    r = art(lab, "app1", src=repo["local"], store=store)
    assert r["_status"] == "FAILED!" and "refusing to push" in r["msg"] and r["bytes_transferred"] == 0
    r = art(lab, "app1", src=repo["local"], store=store, checksum="sha256:" + "0" * 64)
    assert r["_status"] == "FAILED!" and "does not match its checksum" in r["msg"] and "Nothing was transferred" in r["msg"]
    assert store_listing(lab, "app1", store) == ""
    r = art(lab, "app1", url=url, store=store, dest="/nonexistent/dir/app.tar.gz", checksum="sha256:" + repo["digest"])
    assert r["_status"] == "FAILED!" and "/nonexistent/dir, does not exist" in r["msg"]
    unverified = art(lab, "app1", url=url, store=store, allow_unverified=True)
    assert unverified["changed"] and unverified["digest"] == "sha256:" + repo["digest"]


def test_push_to_every_app_host_then_rerun_moves_nothing(lab, repo, store):
    args = {"src": repo["local"], "checksum": "sha256:" + repo["digest"], "store": store,
            "dest": os.path.dirname(store) + "/app.tar.gz", "mode": "0640"}
    for host in ("app1", "app2", "app3"):
        sh(lab, host, f"sudo mkdir -p {os.path.dirname(store)}")
    hosts = ["app1", "app2", "app3"]
    first = run_module(lab, "app", "seedops.deploy.artifact", args, hosts=hosts)
    for host in hosts:
        r = first[host]
        assert r["changed"] and r["bytes_transferred"] == repo["size"], (host, r)
        assert sh(lab, host, f"sudo sha256sum {store}/sha256/{repo['digest']}").split()[0] == repo["digest"]
        links, mode = sh(lab, host, f"stat -c '%h %a' {args['dest']}").split()
        assert (links, mode) == ("2", "640"), "dest is a hard link to the store entry"
        # Pushed by the SSH login user (debian), stored with become: the entry is the store owner's, not debian's.
        assert sh(lab, host, f"stat -c '%U %G' {store}/sha256/{repo['digest']}") == "root root"
    assert sum(not first[h]["digest_cached"] for h in hosts) == 1, "the controller digest is computed once per run"
    again = run_module(lab, "app", "seedops.deploy.artifact", args, hosts=hosts)
    for host in hosts:
        assert not again[host]["changed"] and again[host]["bytes_transferred"] == 0, again[host]
    assert sum(not again[h]["digest_cached"] for h in hosts) == 1
    check = run_module(lab, "app", "seedops.deploy.artifact", {**args, "store": store + "-new"}, check=True,
                       hosts=hosts)
    assert all(check[h]["changed"] and check[h]["bytes_transferred"] == 0 for h in hosts), check
    for host in hosts:
        assert sh(lab, host, f"sudo test -e {store}-new && echo yes || echo no") == "no", f"check mode wrote on {host}"


def _downloader_pid(lab, host):
    """The pid of the process that has a .partial- download open on the host, or ''."""
    script = 'for p in /proc/[0-9]*; do ls -l $p/fd 2>/dev/null | grep -q "/.partial-" && echo ${p#/proc/}; done; true'
    return sh(lab, host, f"sudo sh -c '{script}'")


def test_connection_cut_mid_download_is_resumed(lab, repo, store):
    url = f"{repo['base']}/slow/big.bin"
    cmd = module_command(lab, "app1", "seedops.deploy.artifact",
                         {"url": url, "checksum": "sha256:" + repo["big_digest"], "store": store, "retry_delay": 1})
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env={**os.environ, **MODULE_ENV}, cwd=REPO_ROOT)
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and not _downloader_pid(lab, "app1"):
            time.sleep(0.2)
        assert _downloader_pid(lab, "app1"), "the download never started"
        time.sleep(2)  # some megabytes in, at the slow location's 4 MB/s
        sh(lab, "repo1", "sudo pkill -9 -f '^nginx: worker'")  # the master starts new workers at once
        out, err = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            proc.kill()
    r = parse_module_output("app1", out)
    assert r["changed"] and r["resumed"], (r, err)
    assert r["digest"] == "sha256:" + repo["big_digest"]
    assert r["bytes_transferred"] == BIG_MB << 20, "resumed where it stopped: no byte fetched twice"
    assert store_listing(lab, "app1", store) == repo["big_digest"]


def test_killed_download_resumes_in_the_next_run(lab, repo, store):
    url = f"{repo['base']}/slow/big.bin"
    args = {"url": url, "checksum": "sha256:" + repo["big_digest"], "store": store}
    proc = subprocess.Popen(module_command(lab, "app2", "seedops.deploy.artifact", args), stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, env={**os.environ, **MODULE_ENV}, cwd=REPO_ROOT)
    try:
        pid = ""
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and not pid:
            pid = _downloader_pid(lab, "app2")
            time.sleep(0.2)
        assert pid, "the download never started"
        time.sleep(2)
        sh(lab, "app2", f"sudo kill -9 {pid.split()[0]}")
        proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
    partial = f"{store}/sha256/.partial-{repo['big_digest']}"
    have = int(sh(lab, "app2", f"sudo stat -c %s {partial}"))
    assert 0 < have < BIG_MB << 20
    assert store_listing(lab, "app2", store) == f".partial-{repo['big_digest']}", "only the partial, no entry"
    r = art(lab, "app2", **args)
    assert r["changed"] and r["resumed"] and r["bytes_transferred"] == (BIG_MB << 20) - have, r
    assert store_listing(lab, "app2", store) == repo["big_digest"]


def test_store_housekeeping_keeps_what_releases_use(lab, repo, store):
    base = os.path.dirname(store)
    for i in range(4):
        sh(lab, "app3", f"sudo mkdir -p {base} && echo payload{i} | sudo tee {base}/f{i} >/dev/null")
        d = sh(lab, "app3", f"sha256sum {base}/f{i}").split()[0]
        r = art(lab, "app3", src=f"{base}/f{i}", remote_src=True, checksum="sha256:" + d, store=store)
        assert r["changed"], r
        sh(lab, "app3", f"sudo touch -d '-{10 - i} min' {store}/sha256/{d}")
    digests = [sh(lab, "app3", f"sha256sum {base}/f{i}").split()[0] for i in range(4)]
    sh(lab, "app3", f"sudo mkdir -p {base}/releases && echo '{{\"id\": \"r0\", \"digest\": \"sha256:{digests[0]}\"}}' "
                    f"| sudo tee {base}/releases/r0.json >/dev/null")
    r = art(lab, "app3", checksum="sha256:" + digests[3], store=store, keep=1)
    # referenced f0 stays; unreferenced newest first: f3 (just used), f2, f1 -> keep 1 -> f2 and f1 go.
    assert sorted(r["pruned"]) == sorted(f"{store}/sha256/{d}" for d in (digests[1], digests[2])), r
    assert sorted(store_listing(lab, "app3", store).split()) == sorted([digests[0], digests[3]])
    assert not art(lab, "app3", checksum="sha256:" + digests[3], store=store, keep=1)["changed"]
