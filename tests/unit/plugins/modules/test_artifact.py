"""Store housekeeping: which entries pruning removes."""

from ansible_collections.seedops.deploy.plugins.modules import artifact


def entry(hexd, mtime):
    return ("sha256", hexd, "/s/sha256/" + hexd, mtime)


def test_prune_keeps_referenced_and_newest_unreferenced():
    entries = [entry("a", 1), entry("b", 2), entry("c", 3), entry("d", 4), entry("e", 5)]
    referenced = {"sha256:a", "sha256:c"}
    # unreferenced newest first: e, d, b; keep 1 -> d and b go
    assert artifact.plan_store_prune(entries, referenced, 1) == ["/s/sha256/d", "/s/sha256/b"]
    assert artifact.plan_store_prune(entries, referenced, 0) == ["/s/sha256/e", "/s/sha256/d", "/s/sha256/b"]
    assert artifact.plan_store_prune(entries, referenced, 5) == []


def test_prune_never_removes_the_entry_just_stored():
    entries = [entry("old", 1), entry("new", 0)]
    assert artifact.plan_store_prune(entries, set(), 0, protect=("/s/sha256/new",)) == ["/s/sha256/old"]


def test_store_entries_and_references(tmp_path):
    store = tmp_path / "store"
    (store / "sha256").mkdir(parents=True)
    (store / "sha256" / ("a" * 64)).write_text("x")
    (store / "sha256" / (".partial-" + "b" * 64)).write_text("half")
    releases = tmp_path / "releases"
    releases.mkdir()
    (releases / "1.json").write_text('{"id": "1", "digest": "sha256:%s"}' % ("a" * 64))
    (releases / "bad.json").write_text("{")
    found = artifact.store_entries(str(store))
    assert [(e[0], e[1]) for e in found] == [("sha256", "a" * 64)], "partials are not entries"
    assert artifact.referenced_digests(str(releases)) == {"sha256:" + "a" * 64}


def test_push_ssh_args_drop_compression_and_multiplexing_only():
    from ansible_collections.seedops.deploy.plugins.action.artifact import without_multiplexing_or_compression as w

    assert w("-C -o ControlMaster=auto -o ControlPersist=60s") == \
        "-o Compression=no -o ControlMaster=no -o ControlPath=none"
    assert w("-C -oControlPersist=30s -o ForwardAgent=yes -F '/x/my cfg'") == \
        "-o Compression=no -o ControlMaster=no -o ControlPath=none -o ForwardAgent=yes -F '/x/my cfg'"
