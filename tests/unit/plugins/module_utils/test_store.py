"""The artifact store on real temp directories: entries, verified placement, mismatches that
leave nothing behind, dest, pruning by release records, check mode, and pulls from a local HTTP
server."""

import fcntl
import hashlib
import http.server
import json
import os
import threading
import time

import httptest
import pytest

from ansible_collections.seedops.deploy.plugins.module_utils import _fetch
from ansible_collections.seedops.deploy.plugins.module_utils import _store

PAYLOAD = os.urandom(300 * 1024 + 7)
HEX = hashlib.sha256(PAYLOAD).hexdigest()
OTHER = hashlib.sha256(b"something else").hexdigest()


def params(store, **kw):
    p = dict(store=str(store), url=None, src=None, remote_src=False, checksum=None, checksum_url=None,
             allow_unverified=False, dest=None, owner=None, group=None, mode=None, headers={}, url_username=None,
             url_password=None, force_basic_auth=True, bearer_token=None, client_cert=None, client_key=None,
             validate_certs=True, use_proxy=False, timeout=5, retries=0, retry_delay=0.0, resume=True, keep=None,
             releases_path=None, verify_existing=False)
    p.update(kw)
    return p


def listing(directory):
    """Every name below directory, hidden ones too."""
    found = []
    for root, dirs, files in os.walk(str(directory)):
        found += [os.path.relpath(os.path.join(root, f), str(directory)) for f in files]
    return sorted(found)


@pytest.fixture
def src(tmp_path):
    path = tmp_path / "incoming" / "app.tar.gz"
    path.parent.mkdir()
    path.write_bytes(PAYLOAD)
    return path


def record(releases, release_id, digest):
    releases.mkdir(exist_ok=True)
    (releases / (release_id + ".json")).write_text(json.dumps({"id": release_id, "digest": digest, "state": "previous"}))


def entry(store, hexdigest, content, mtime):
    path = store / "sha256" / hexdigest
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(content)
    os.utime(str(path), (mtime, mtime))
    return str(path)


# -- store entries and release references ----------------------------------------------------


def test_store_entries_lists_complete_entries_only(tmp_path):
    store = tmp_path / "store"
    a = entry(store, "a" * 64, b"a", 100)
    (store / "sha256" / (".partial-" + "b" * 64)).write_text("half")
    (store / "sha512").mkdir()
    (store / "sha512" / ("c" * 128)).write_text("c")
    found = _store.store_entries(str(store))
    c = str(store / "sha512" / ("c" * 128))
    assert [(e[0], e[1], e[2]) for e in found] == [("sha256", "a" * 64, a), ("sha512", "c" * 128, c)]
    assert found[0][3] == 100
    assert _store.store_entries(str(tmp_path / "nothing")) == []


def test_referenced_digests_reads_the_release_records(tmp_path):
    releases = tmp_path / "releases"
    record(releases, "1.0.0", "sha256:" + "a" * 64)
    record(releases, "1.1.0", "sha256:" + "b" * 64)
    (releases / "broken.json").write_text("{")
    (releases / "other.json").write_text(json.dumps({"id": "not-other", "digest": "sha256:" + "c" * 64}))
    (releases / ".tmp-x.json").write_text(json.dumps({"id": ".tmp-x", "digest": "sha256:" + "d" * 64}))
    assert _store.referenced_digests(str(releases)) == {"sha256:" + "a" * 64, "sha256:" + "b" * 64}
    assert _store.referenced_digests(str(tmp_path / "none")) == set()


def test_referenced_digests_in_a_directory_of_another_name(tmp_path):
    records = tmp_path / "records"
    record(records, "7", "sha256:" + "e" * 64)
    assert _store.referenced_digests(str(records)) == {"sha256:" + "e" * 64}
    assert _store.default_releases_path("/srv/app/store/") == "/srv/app/releases"


def plan_entry(hexd, mtime):
    return ("sha256", hexd, "/s/sha256/" + hexd, mtime)


def test_prune_plan_keeps_referenced_and_newest_unreferenced():
    entries = [plan_entry("a", 1), plan_entry("b", 2), plan_entry("c", 3), plan_entry("d", 4), plan_entry("e", 5)]
    referenced = {"sha256:a", "sha256:c"}
    # unreferenced newest first: e, d, b; keep 1 -> d and b go
    assert _store.plan_store_prune(entries, referenced, 1) == ["/s/sha256/d", "/s/sha256/b"]
    assert _store.plan_store_prune(entries, referenced, 0) == ["/s/sha256/e", "/s/sha256/d", "/s/sha256/b"]
    assert _store.plan_store_prune(entries, referenced, 5) == []


def test_prune_plan_never_removes_the_entry_just_stored():
    entries = [plan_entry("old", 1), plan_entry("new", 0)]
    assert _store.plan_store_prune(entries, set(), 0, protect=("/s/sha256/new",)) == ["/s/sha256/old"]


# -- storing a file from the host ------------------------------------------------------------


def test_remote_src_is_copied_in_verified(tmp_path, src):
    store = tmp_path / "store"
    art = _store.Artifact(params(store, src=str(src), remote_src=True, checksum="sha256:" + HEX))
    result = art.run()
    path = store / "sha256" / HEX
    assert result["changed"] and result["path"] == str(path) and result["digest"] == "sha256:" + HEX
    assert result["size"] == len(PAYLOAD)
    assert path.read_bytes() == PAYLOAD and oct(path.stat().st_mode & 0o777) == "0o644"
    assert src.read_bytes() == PAYLOAD, "remote_src is the user's file: copied, never moved"
    assert listing(store) == ["sha256/" + HEX]
    assert art.diff == {"before": {"store": None}, "after": {"store": str(path)}}

    again = _store.Artifact(params(store, src=str(src), remote_src=True, checksum="sha256:" + HEX)).run()
    assert not again["changed"] and again["bytes_transferred"] == 0 and again["path"] == str(path)


def test_a_pushed_temp_file_is_moved_in(tmp_path, src):
    store = tmp_path / "store"
    result = _store.Artifact(params(store, src=str(src), checksum="sha256:" + HEX)).run()
    assert result["changed"] and (store / "sha256" / HEX).read_bytes() == PAYLOAD
    assert not src.exists(), "the action plugin's temp file is moved, not copied"


# -- who owns an entry -------------------------------------------------------------------------

needs_root = pytest.mark.skipif(os.geteuid() != 0, reason="giving files to other users needs root")
OTHER_UID, OTHER_GID = 4242, 4343


def owner_mode(path):
    st = os.stat(str(path))
    return st.st_uid, st.st_gid, oct(st.st_mode & 0o7777)


@needs_root
def test_a_file_another_user_pushed_is_copied_in_and_owned_by_the_store_owner(tmp_path, src):
    """With become, the pushed temp file belongs to the SSH login user, who may still have it open: the entry is a
    file of the module's own with the bytes that were hashed, owned like the store, whatever that user writes later."""
    store = tmp_path / "store"
    (store / "sha256").mkdir(parents=True)
    os.chown(str(src), OTHER_UID, OTHER_GID)
    os.chmod(str(src), 0o664)
    held = open(str(src), "r+b")  # the login user's descriptor, opened before the module ran
    try:
        result = _store.Artifact(params(store, src=str(src), checksum="sha256:" + HEX)).run()
        entry = store / "sha256" / HEX
        assert result["changed"] and entry.read_bytes() == PAYLOAD
        assert owner_mode(entry) == (0, 0, "0o644"), "the store's owner and group, not the login user"
        assert os.stat(str(entry)).st_ino != os.stat(str(src)).st_ino, "a copy, never the pushed inode"
        held.write(b"changed after the hash")
        held.flush()
    finally:
        held.close()
    assert entry.read_bytes() == PAYLOAD
    assert listing(store) == ["sha256/" + HEX]


@needs_root
@pytest.mark.parametrize("store_mode,entry_mode", [(0o755, "0o644"), (0o750, "0o640"), (0o711, "0o644"),
                                                   (0o700, "0o600")])
def test_an_entry_follows_the_store_directory(tmp_path, src, store_mode, entry_mode):
    store = tmp_path / "store"
    store.mkdir()
    os.chown(str(store), OTHER_UID, OTHER_GID)
    os.chmod(str(store), store_mode)
    _store.Artifact(params(store, src=str(src), remote_src=True, checksum="sha256:" + HEX)).run()
    assert owner_mode(store / "sha256" / HEX) == (OTHER_UID, OTHER_GID, entry_mode)
    # A pushed temp file of the module's own user is moved in, and gets the same.
    other = tmp_path / "pushed"
    other.write_bytes(b"pushed bytes")
    os.chmod(str(other), 0o600)
    digest = hashlib.sha256(b"pushed bytes").hexdigest()
    _store.Artifact(params(store, src=str(other), checksum="sha256:" + digest)).run()
    assert not other.exists() and owner_mode(store / "sha256" / digest) == (OTHER_UID, OTHER_GID, entry_mode)


def test_a_pulled_entry_follows_the_store_directory_too(tmp_path, server):
    _srv, base = server
    store = tmp_path / "store"
    store.mkdir(mode=0o750)
    os.chmod(str(store), 0o750)
    _store.Artifact(params(store, url=base + "/app.tar.gz", checksum="sha256:" + HEX)).run()
    st = os.stat(str(store))
    assert owner_mode(store / "sha256" / HEX) == (st.st_uid, st.st_gid, "0o640")


def test_a_user_who_cannot_give_files_away_keeps_them(tmp_path, src, monkeypatch):
    """Without root, chown to the store's owner fails: the entry stays the running user's (who may write into the
    store anyway), in the store's group where that works."""
    calls = []

    def fchown(fd, uid, gid):
        calls.append((uid, gid))
        raise PermissionError(1, "Operation not permitted")

    monkeypatch.setattr(_store, "entry_attributes", lambda store: (5555, 6666, 0o640))
    monkeypatch.setattr(_store.os, "fchown", fchown)
    store = tmp_path / "store"
    result = _store.Artifact(params(store, src=str(src), remote_src=True, checksum="sha256:" + HEX)).run()
    assert result["changed"] and calls == [(5555, 6666), (-1, 6666)]
    assert oct(os.stat(str(store / "sha256" / HEX)).st_mode & 0o777) == "0o640"


def test_an_entry_that_cannot_be_settled_leaves_nothing(tmp_path, src, monkeypatch):
    def fchmod(fd, mode):
        raise OSError(5, "Input/output error")

    monkeypatch.setattr(_store.os, "fchmod", fchmod)
    store = tmp_path / "store"
    with pytest.raises(OSError, match="Input/output error"):
        _store.Artifact(params(store, src=str(src), remote_src=True, checksum="sha256:" + HEX)).run()
    assert listing(store) == []


def test_unverified_remote_src_is_stored_under_its_digest(tmp_path, src):
    store = tmp_path / "store"
    with pytest.raises(_store.ArtifactError, match="without a checksum"):
        _store.Artifact(params(store, src=str(src), remote_src=True)).run()
    assert not store.exists()
    result = _store.Artifact(params(store, src=str(src), remote_src=True, allow_unverified=True)).run()
    assert result["digest"] == "sha256:" + HEX and listing(store) == ["sha256/" + HEX]


def test_digest_mismatch_leaves_nothing_behind(tmp_path, src):
    store = tmp_path / "store"
    for remote_src in (True, False):
        art = _store.Artifact(params(store, src=str(src), remote_src=remote_src, checksum="sha256:" + OTHER,
                                     dest=str(tmp_path / "app.tar.gz")))
        with pytest.raises(_store.ArtifactError, match="checksum mismatch .* expected sha256:%s, got sha256:%s"
                           % (OTHER, HEX)):
            art.run()
        assert listing(store) == [], "no entry and no temp file in the store"
        assert not (tmp_path / "app.tar.gz").exists()
        assert "path" not in art.result
    assert not src.exists(), "a pushed temp file that does not match is gone too"


def test_missing_src_on_the_host(tmp_path):
    with pytest.raises(_store.ArtifactError, match="does not exist on this host"):
        _store.Artifact(params(tmp_path / "store", src=str(tmp_path / "nope"), remote_src=True,
                               checksum="sha256:" + HEX)).run()
    assert listing(tmp_path / "store") == []


def test_checksum_only_uses_the_store_or_says_it_is_missing(tmp_path):
    store = tmp_path / "store"
    art = _store.Artifact(params(store, checksum="sha256:" + HEX))
    with pytest.raises(_store.ArtifactError, match="is not in the store"):
        art.run()
    assert art.result["missing"] is True
    entry(store, HEX, PAYLOAD, 100)
    result = _store.Artifact(params(store, checksum="sha256:" + HEX)).run()
    assert not result["changed"] and result["size"] == len(PAYLOAD)


@pytest.mark.parametrize("bad,message", [
    (dict(checksum="sha256:xyz"), "malformed"),
    (dict(keep=-1), "keep must be 0 or more"),
    (dict(checksum_url="https://r/SHA256SUMS", src="x"), "checksum_url needs url"),
    (dict(), "give url, src"),
])
def test_refusals(tmp_path, bad, message):
    with pytest.raises(_store.ArtifactError, match=message):
        _store.Artifact(params(tmp_path / "store", **bad)).run()
    assert not (tmp_path / "store").exists()


# -- dest --------------------------------------------------------------------------------------


def test_dest_is_a_hard_link_to_the_entry_and_then_unchanged(tmp_path, src):
    store = tmp_path / "store"
    dest = tmp_path / "opt" / "app.tar.gz"
    dest.parent.mkdir()
    calls = []

    def attributes(changed):
        calls.append(changed)
        return changed

    result = _store.Artifact(params(store, src=str(src), remote_src=True, checksum="sha256:" + HEX, dest=str(dest)),
                             file_attributes=attributes).run()
    assert result["changed"] and result["dest"] == str(dest)
    assert os.path.samefile(str(dest), str(store / "sha256" / HEX))
    assert calls == [True]
    assert listing(dest.parent) == ["app.tar.gz"], "no temp file left beside dest"

    again = _store.Artifact(params(store, checksum="sha256:" + HEX, dest=str(dest)), file_attributes=attributes).run()
    assert not again["changed"] and calls == [True, False]


def test_dest_with_other_bytes_is_replaced_and_same_bytes_kept(tmp_path):
    store = tmp_path / "store"
    entry(store, HEX, PAYLOAD, 100)
    dest = tmp_path / "app.tar.gz"
    dest.write_bytes(b"old build")
    art = _store.Artifact(params(store, checksum="sha256:" + HEX, dest=str(dest)))
    result = art.run()
    assert result["changed"] and dest.read_bytes() == PAYLOAD
    assert art.diff["before"]["dest"] == str(dest) and HEX in art.diff["after"]["dest"]

    copy = tmp_path / "copy.tar.gz"
    copy.write_bytes(PAYLOAD)  # the same bytes, another file: left as it is
    inode = copy.stat().st_ino
    result = _store.Artifact(params(store, checksum="sha256:" + HEX, dest=str(copy))).run()
    assert not result["changed"] and copy.stat().st_ino == inode


def test_link_or_copy_copies_when_it_cannot_link(tmp_path, monkeypatch):
    stored = tmp_path / "entry"
    stored.write_bytes(PAYLOAD)

    def no_link(a, b):
        raise OSError(18, "Invalid cross-device link")

    monkeypatch.setattr(_store.os, "link", no_link)
    _store.link_or_copy(str(stored), str(tmp_path / "dest"))
    assert (tmp_path / "dest").read_bytes() == PAYLOAD
    assert not os.path.samefile(str(stored), str(tmp_path / "dest"))
    assert listing(tmp_path) == ["dest", "entry"]


def test_the_copy_to_dest_is_never_written_through_a_symlink(tmp_path, monkeypatch):
    """The link fails (another filesystem), and the owner of dest's directory has put a symlink at
    the temporary name meanwhile: the copy must not go through it."""
    stored = tmp_path / "entry"
    stored.write_bytes(PAYLOAD)
    victim = tmp_path / "victim"
    victim.write_text("root's file")
    opt = tmp_path / "opt"
    opt.mkdir()
    planted = []

    def cross_device_and_a_race(src, dst, **kw):
        os.symlink(str(victim), dst)  # what the attacker puts at the name in the meantime
        planted.append(dst)
        raise OSError(18, "Invalid cross-device link")

    monkeypatch.setattr(_store.os, "link", cross_device_and_a_race)
    _store.link_or_copy(str(stored), str(opt / "app.tar.gz"))
    assert victim.read_bytes() == b"root's file", "written through the symlink"
    dest = opt / "app.tar.gz"
    assert not dest.is_symlink() and dest.read_bytes() == PAYLOAD
    assert oct(dest.stat().st_mode & 0o777) == oct(stored.stat().st_mode & 0o777)
    assert listing(opt) == sorted(["app.tar.gz"] + [os.path.basename(p) for p in planted]), "no temp file of ours"


def test_a_taken_temporary_name_is_never_used_for_the_link(tmp_path, monkeypatch):
    stored = tmp_path / "entry"
    stored.write_bytes(PAYLOAD)
    victim = tmp_path / "victim"
    victim.write_text("root's file")
    opt = tmp_path / "opt"
    opt.mkdir()
    real_link = os.link
    calls = []

    def taken_first(src, dst, **kw):
        calls.append(dst)
        if len(calls) == 1:
            os.symlink(str(victim), dst)
        return real_link(src, dst, **kw)

    monkeypatch.setattr(_store.os, "link", taken_first)
    _store.link_or_copy(str(stored), str(opt / "app.tar.gz"))
    assert len(calls) == 2 and calls[0] != calls[1]
    assert os.path.samefile(str(opt / "app.tar.gz"), str(stored)) and not (opt / "app.tar.gz").is_symlink()
    assert victim.read_text() == "root's file" and os.path.islink(calls[0])


def test_dest_directory_must_exist(tmp_path):
    store = tmp_path / "store"
    entry(store, HEX, PAYLOAD, 100)
    with pytest.raises(_store.ArtifactError, match="does not exist; create it first"):
        _store.Artifact(params(store, checksum="sha256:" + HEX, dest=str(tmp_path / "no" / "app"))).run()


# -- check mode --------------------------------------------------------------------------------


def test_check_mode_changes_nothing(tmp_path, src):
    store = tmp_path / "store"
    dest = tmp_path / "app.tar.gz"
    art = _store.Artifact(params(store, src=str(src), remote_src=True, checksum="sha256:" + HEX, dest=str(dest)),
                          check_mode=True)
    result = art.run()
    assert result["changed"] and result["bytes_transferred"] == 0
    assert art.diff["after"]["store"] == str(store / "sha256" / HEX)
    assert not store.exists() and not dest.exists() and src.exists()

    entry(store, HEX, PAYLOAD, 100)
    result = _store.Artifact(params(store, checksum="sha256:" + HEX, dest=str(dest)), check_mode=True).run()
    assert result["changed"] and not dest.exists()


# -- pruning -----------------------------------------------------------------------------------


def test_prune_keeps_referenced_entries_and_the_one_just_stored(tmp_path, src):
    base = tmp_path / "app"
    store = base / "store"
    live = entry(store, "1" * 64, b"live", 100)
    old = entry(store, "2" * 64, b"old", 200)
    newer = entry(store, "3" * 64, b"newer", 300)
    record(base / "releases", "1.0.0", "sha256:" + "1" * 64)
    just = entry(store, HEX, PAYLOAD, 50)  # oldest mtime, but the one this task uses

    art = _store.Artifact(params(store, checksum="sha256:" + HEX, keep=1))
    result = art.run()
    assert result["changed"] and result["pruned"] == [old]
    assert art.diff["before"]["pruned"] == [old]
    assert sorted(e[2] for e in _store.store_entries(str(store))) == sorted([live, newer, just])

    again = _store.Artifact(params(store, checksum="sha256:" + HEX, keep=1)).run()
    assert not again["changed"] and again["pruned"] == []


def test_prune_reads_releases_path_and_check_mode_keeps_files(tmp_path):
    store = tmp_path / "store"
    a = entry(store, "a" * 64, b"a", 100)
    b = entry(store, "b" * 64, b"b", 200)
    record(tmp_path / "records", "1", "sha256:" + "a" * 64)
    result = _store.Artifact(params(store, checksum="sha256:" + "a" * 64, keep=0,
                                    releases_path=str(tmp_path / "records")), check_mode=True).run()
    assert result["changed"] and result["pruned"] == [b]
    assert os.path.exists(a) and os.path.exists(b), "check mode removes nothing"
    result = _store.Artifact(params(store, checksum="sha256:" + "a" * 64, keep=0,
                                    releases_path=str(tmp_path / "records"))).run()
    assert result["pruned"] == [b] and os.path.exists(a) and not os.path.exists(b)


# -- pulling over HTTP -------------------------------------------------------------------------


class Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *args):
        pass

    def do_GET(self):
        self.server.requests.append(self.headers.get("Range"))
        if self.path == "/slow.tar.gz":
            return self.slowly()
        if self.path == "/SHA256SUMS":
            body = ("%s  app.tar.gz\n" % HEX).encode()
            self.send_response(200)
        elif self.path == "/gone":
            body = b""
            self.send_response(404)
        else:
            start = httptest.range_start(self)
            return httptest.send_payload(self, PAYLOAD, start, start > 0)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def slowly(self):
        """The payload in 16 pieces, 20 ms apart (resumable like the others)."""
        start = httptest.range_start(self)
        body = httptest.send_head(self, PAYLOAD, start, start > 0)
        piece = len(body) // 16 + 1
        for i in range(0, len(body), piece):
            self.wfile.write(body[i:i + piece])
            self.wfile.flush()
            time.sleep(0.02)


@pytest.fixture
def server():
    srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    srv.requests = []
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    yield srv, "http://127.0.0.1:%d" % srv.server_address[1]
    srv.shutdown()


def test_pull_verified_by_a_checksum_file(tmp_path, server):
    srv, base = server
    store = tmp_path / "store"
    result = _store.Artifact(params(store, url=base + "/app.tar.gz", checksum_url=base + "/SHA256SUMS")).run()
    assert result["changed"] and result["bytes_transferred"] == len(PAYLOAD) and not result["resumed"]
    assert (store / "sha256" / HEX).read_bytes() == PAYLOAD and listing(store) == ["sha256/" + HEX]
    assert result["source"] == base + "/app.tar.gz"


def test_pull_resumes_the_partial_an_earlier_run_left(tmp_path, server):
    srv, base = server
    store = tmp_path / "store"
    (store / "sha256").mkdir(parents=True)
    (store / "sha256" / (".partial-" + HEX)).write_bytes(PAYLOAD[:100000])
    result = _store.Artifact(params(store, url=base + "/app.tar.gz", checksum="sha256:" + HEX)).run()
    assert result["resumed"] and result["bytes_transferred"] == len(PAYLOAD) - 100000
    assert srv.requests == ["bytes=100000-"]
    assert listing(store) == ["sha256/" + HEX]


def test_pull_over_plain_http_needs_a_checksum_and_unverified_leaves_no_temp_file(tmp_path, server):
    srv, base = server
    store = tmp_path / "store"
    with pytest.raises(_store.ArtifactError, match="plain http://"):
        _store.Artifact(params(store, url=base + "/app.tar.gz")).run()
    assert srv.requests == []
    result = _store.Artifact(params(store, url=base + "/app.tar.gz", allow_unverified=True)).run()
    assert result["digest"] == "sha256:" + HEX and listing(store) == ["sha256/" + HEX]
    with pytest.raises(_fetch.FetchError, match="HTTP 404"):
        _store.Artifact(params(store, url=base + "/gone", allow_unverified=True)).run()
    assert listing(store) == ["sha256/" + HEX], "a failed unverified download leaves no temp file"


# -- two runs at once, and entries that cannot be trusted ----------------------------------------


def test_two_runs_pulling_the_same_artifact_take_turns(tmp_path, server):
    srv, base = server
    store = tmp_path / "store"
    results, errors = [], []

    def pull():
        try:
            results.append(_store.Artifact(params(store, url=base + "/slow.tar.gz", checksum="sha256:" + HEX)).run())
        except Exception as exc:  # reported below
            errors.append(exc)

    threads = [threading.Thread(target=pull) for _n in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert errors == [] and len(results) == 3
    assert (store / "sha256" / HEX).read_bytes() == PAYLOAD
    assert listing(store) == ["sha256/" + HEX], "no partial or lock file left"
    assert srv.requests == [None], "one download; the others waited for it and used its entry"
    assert sorted(r["changed"] for r in results) == [False, False, True]
    assert sum(r["bytes_transferred"] for r in results) == len(PAYLOAD)


def test_a_run_waits_for_the_digest_lock_and_uses_what_its_holder_stored(tmp_path, server):
    srv, base = server
    store = tmp_path / "store"
    (store / "sha256").mkdir(parents=True)
    done = []
    # Another run, in the middle of its download: it holds the flock on the digest's partial file.
    other = os.open(str(store / "sha256" / (".partial-" + HEX)), os.O_RDWR | os.O_CREAT, 0o600)
    fcntl.flock(other, fcntl.LOCK_EX)
    try:
        t = threading.Thread(target=lambda: done.append(
            _store.Artifact(params(store, url=base + "/app.tar.gz", checksum="sha256:" + HEX)).run()))
        t.start()
        time.sleep(0.3)
        assert t.is_alive() and srv.requests == [], "it waits, and downloads nothing meanwhile"
        entry(store, HEX, PAYLOAD, 100)  # the other run stores the entry
    finally:
        os.close(other)
    t.join(10)
    assert not done[0]["changed"] and done[0]["bytes_transferred"] == 0 and srv.requests == []
    assert listing(store) == ["sha256/" + HEX]


def test_an_entry_whose_size_differs_from_its_release_record_is_downloaded_again(tmp_path, server):
    srv, base = server
    base_dir = tmp_path / "app"
    store = base_dir / "store"
    entry(store, HEX, PAYLOAD[:1000], 100)  # truncated
    (base_dir / "releases").mkdir()
    made_from = {"id": "1.0", "state": "active", "digest": "sha256:" + HEX, "source_size": len(PAYLOAD)}
    (base_dir / "releases" / "1.0.json").write_text(json.dumps(made_from))
    art = _store.Artifact(params(store, url=base + "/app.tar.gz", checksum="sha256:" + HEX))
    result = art.run()
    assert result["changed"] and result["replaced"] and result["bytes_transferred"] == len(PAYLOAD)
    assert result["corrupt"] == "it holds 1000 bytes, but the record of release 1.0 says the artifact has %d" % len(PAYLOAD)
    assert (store / "sha256" / HEX).read_bytes() == PAYLOAD and listing(store) == ["sha256/" + HEX]
    assert art.diff["before"]["store"].endswith("(not trusted: %s)" % result["corrupt"])
    again = _store.Artifact(params(store, url=base + "/app.tar.gz", checksum="sha256:" + HEX)).run()
    assert not again["changed"] and not again["replaced"] and "corrupt" not in again


def test_verify_existing_rehashes_the_entry_and_replaces_a_bad_one(tmp_path, server):
    srv, base = server
    store = tmp_path / "store"
    flipped = bytes([PAYLOAD[0] ^ 1]) + PAYLOAD[1:]
    entry(store, HEX, flipped, 100)
    trusted = _store.Artifact(params(store, url=base + "/app.tar.gz", checksum="sha256:" + HEX)).run()
    assert not trusted["changed"] and srv.requests == [], "without verify_existing only the size is checked"
    result = _store.Artifact(params(store, url=base + "/app.tar.gz", checksum="sha256:" + HEX,
                                    verify_existing=True)).run()
    assert result["changed"] and result["replaced"]
    assert result["corrupt"] == "its content hashes to sha256:%s" % hashlib.sha256(flipped).hexdigest()
    assert (store / "sha256" / HEX).read_bytes() == PAYLOAD and listing(store) == ["sha256/" + HEX]
    again = _store.Artifact(params(store, url=base + "/app.tar.gz", checksum="sha256:" + HEX,
                                   verify_existing=True)).run()
    assert not again["changed"] and not again["replaced"] and len(srv.requests) == 1


def test_a_bad_entry_with_nothing_to_fetch_from_is_named_and_left_then_replaced_from_src(tmp_path, src):
    store = tmp_path / "store"
    bad = entry(store, HEX, b"x" * len(PAYLOAD), 100)
    art = _store.Artifact(params(store, checksum="sha256:" + HEX, verify_existing=True))
    with pytest.raises(_store.ArtifactError, match="the store entry %s cannot be trusted: its content hashes to "
                       "sha256:[0-9a-f]{64}. Nothing was changed; give url or src" % bad):
        art.run()
    assert art.result["missing"] is True and not art.result["replaced"]
    check = _store.Artifact(params(store, src=str(src), remote_src=True, checksum="sha256:" + HEX,
                                   verify_existing=True), check_mode=True).run()
    assert check["changed"] and check["replaced"] and open(bad, "rb").read() == b"x" * len(PAYLOAD)
    result = _store.Artifact(params(store, src=str(src), remote_src=True, checksum="sha256:" + HEX,
                                    verify_existing=True)).run()
    assert result["changed"] and result["replaced"] and open(bad, "rb").read() == PAYLOAD
    assert listing(store) == ["sha256/" + HEX]


def test_an_src_of_another_size_gets_the_entry_hashed(tmp_path, src):
    store = tmp_path / "store"
    entry(store, HEX, b"short", 100)
    result = _store.Artifact(params(store, src=str(src), remote_src=True, checksum="sha256:" + HEX)).run()
    assert result["replaced"] and result["corrupt"] == "its content hashes to sha256:%s" % (
        hashlib.sha256(b"short").hexdigest())
    assert (store / "sha256" / HEX).read_bytes() == PAYLOAD
    other = tmp_path / "other"
    other.write_bytes(b"not the artifact")
    result = _store.Artifact(params(store, src=str(other), remote_src=True, checksum="sha256:" + HEX)).run()
    assert not result["changed"] and not result["replaced"], "the entry is good: the other src is not used"


def test_a_replacement_that_does_not_verify_leaves_the_old_entry(tmp_path):
    store = tmp_path / "store"
    old = entry(store, HEX, b"short", 100)
    wrong = tmp_path / "wrong"
    wrong.write_bytes(b"neither the artifact")
    with pytest.raises(_store.ArtifactError, match="checksum mismatch"):
        _store.Artifact(params(store, src=str(wrong), remote_src=True, checksum="sha256:" + HEX)).run()
    assert open(old, "rb").read() == b"short" and listing(store) == ["sha256/" + HEX]
