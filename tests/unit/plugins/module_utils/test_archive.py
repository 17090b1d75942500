"""Safe unpacking: a corpus of malicious archives built here, every one refused with nothing
written outside the staging directory; and good archives unpacked exactly."""

import hashlib
import io
import multiprocessing
import os
import stat
import tarfile
import zipfile

import pytest

from ansible_collections.seedops.deploy.plugins.module_utils import _archive as arc


def add(tar, name, kind="file", data=b"x", target=None, mode=None):
    info = tarfile.TarInfo(name)
    if kind == "file":
        info.size = len(data)
        info.mode = 0o644 if mode is None else mode
        tar.addfile(info, io.BytesIO(data))
        return
    info.type = {"dir": tarfile.DIRTYPE, "sym": tarfile.SYMTYPE, "lnk": tarfile.LNKTYPE, "chr": tarfile.CHRTYPE,
                 "blk": tarfile.BLKTYPE, "fifo": tarfile.FIFOTYPE, "vol": b"V"}[kind]
    info.mode = 0o755 if mode is None else mode
    if target is not None:
        info.linkname = target
    tar.addfile(info)


def make_tar(path, members, compression="gz"):
    with tarfile.open(path, "w:" + compression if compression else "w") as tar:
        for m in members:
            add(tar, *m) if isinstance(m, tuple) else add(tar, **m)
    return path


def make_zip(path, members, method=zipfile.ZIP_STORED):
    with zipfile.ZipFile(path, "w", method) as z:
        for name, data, mode in members:
            info = zipfile.ZipInfo(name)
            info.create_system = 3
            info.external_attr = mode << 16
            info.compress_type = method
            z.writestr(info, data)
    return path


def assert_nothing_leads_outside(staging):
    """No symlink left under staging resolves outside it (the caller removes staging, but even so)."""
    top = os.path.realpath(str(staging))
    for dirpath, dirnames, filenames in os.walk(str(staging)):
        for n in dirnames + filenames:
            path = os.path.join(dirpath, n)
            if os.path.islink(path):
                real = os.path.realpath(path)
                assert real == top or real.startswith(top + os.sep), "%s -> %s leads outside" % (path, real)


def run_with_deadline(fn, seconds=30):
    """fn() in a forked child; returns ('ok', '') or (exception type name, message). A child still running
    at the deadline is killed and the test fails, instead of hanging."""
    ctx = multiprocessing.get_context("fork")
    receive, send = ctx.Pipe(duplex=False)

    def child():
        try:
            fn()
            send.send(("ok", ""))
        except BaseException as exc:  # pylint: disable=broad-except
            send.send((type(exc).__name__, str(exc)))

    proc = ctx.Process(target=child)
    proc.start()
    try:
        if not receive.poll(seconds):
            pytest.fail("still running after %d s: the unpacker hangs" % seconds)
        return receive.recv()
    finally:
        proc.kill()
        proc.join()


def snapshot(root):
    """Every path under root (the test's tmp dir) - to prove nothing appeared outside staging."""
    found = set()
    for dirpath, dirnames, filenames in os.walk(root):
        for n in dirnames + filenames:
            found.add(os.path.relpath(os.path.join(dirpath, n), root))
    return found


MALICIOUS_TAR = {
    "absolute path": [("/etc/evil",)],
    "dot-dot": [("a/../../evil",)],
    "dot-dot at start": [("../evil",)],
    "symlink absolute": [("link", "sym", b"", "/etc")],
    "symlink escapes": [("link", "sym", b"", "../../etc")],
    "symlink then write through it": [("d", "sym", b"", "sub"), ("sub", "dir"), ("d/evil",)],
    "symlink chain escapes": [("sub", "dir"), ("sub/up", "sym", b"", ".."), ("esc", "sym", b"", "sub/up/..")],
    "symlink chain of dirs (CVE-2020-10691 style)": [
        ("a", "dir"), ("a/b", "dir"), ("a/b/l1", "sym", b"", ".."), ("a/b/l2", "sym", b"", "l1/.."),
        ("x", "sym", b"", "a/b/l2/..")],
    "symlink loop": [("l1", "sym", b"", "l2"), ("l2", "sym", b"", "l1")],
    "hardlink outside": [("h", "lnk", b"", "/etc/passwd")],
    "hardlink dot-dot": [("h", "lnk", b"", "../outside")],
    "hardlink to nothing unpacked": [("h", "lnk", b"", "missing")],
    "hardlink through symlink out": [("l", "sym", b"", "."), ("h", "lnk", b"", "l/../../x")],
    "char device": [("dev", "chr")],
    "block device": [("blk", "blk")],
    "fifo": [("pipe", "fifo")],
    "setuid": [("bin", "file", b"x", None, 0o4755)],
    "setgid": [("bin", "file", b"x", None, 0o2755)],
    "duplicate member": [("f", "file", b"1"), ("f", "file", b"2")],
    "file replaces dir": [("d", "dir"), ("d", "file", b"1")],
    "symlink replaces dir": [("d", "dir"), ("d", "sym", b"", ".")],
    # A link that was inside when it was added, turned outside by a later link.
    "later link turns an earlier one out": [("x", "sym", b"", "d/.."), ("d", "sym", b"", ".")],
    "long ../ walk made valid by a later link": [
        ("x", "sym", b"", "s/" * 24 + "../" * 24 + "etc/passwd"), ("s", "sym", b"", ".")],
    "later link turns an earlier one out, in a subdirectory": [
        ("a", "dir"), ("a/x", "sym", b"", "b/../.."), ("a/b", "sym", b"", "."), ("a/f",)],
    "escaping pair, then a bad member": [("x", "sym", b"", "d/.."), ("d", "sym", b"", "."), ("../evil",)],
    "'..' after a path the archive does not have": [("x", "sym", b"", "logs/a/../../etc")],
    "hard link to a symlink to a directory": [("d", "dir"), ("l", "sym", b"", "d"), ("h", "lnk", b"", "l")],
    "unsupported type": [("v", "vol")],
}


@pytest.mark.parametrize("case", sorted(MALICIOUS_TAR))
@pytest.mark.parametrize("compression", ["gz", "xz", ""])
def test_malicious_tar_is_refused_and_nothing_escapes(tmp_path, case, compression):
    members = MALICIOUS_TAR[case]
    src = tmp_path / "a.tar"
    make_tar(str(src), members, compression)
    staging = tmp_path / "staging"
    staging.mkdir()
    before = snapshot(tmp_path)
    with pytest.raises(arc.ArchiveError):
        arc.unpack(str(src), str(staging), "auto")
    after = snapshot(tmp_path)
    outside = {p for p in after - before if not p.startswith("staging" + os.sep)}
    assert outside == set(), "written outside staging: %s" % outside
    assert not os.path.exists("/etc/evil")
    assert_nothing_leads_outside(staging)


MALICIOUS_ZIP = {
    "absolute": [("/etc/evil", b"x", 0o100644)],
    "dot-dot": [("../evil", b"x", 0o100644)],
    "backslash dot-dot": [("..\\evil", b"x", 0o100644)],
    "windows drive": [("C:/evil", b"x", 0o100644)],
    "symlink escapes": [("l", b"../../etc", 0o120777)],
    "symlink absolute": [("l", b"/etc", 0o120777)],
    "write through symlink": [("l", b"sub", 0o120777), ("sub/", b"", 0o040755), ("l/evil", b"x", 0o100644)],
    "fifo": [("p", b"", 0o010644)],
    "setuid": [("s", b"x", 0o104755)],
    "char device": [("c", b"", 0o020644)],
    "block device": [("b", b"", 0o060644)],
    "duplicate member": [("f", b"1", 0o100644), ("f", b"2", 0o100644)],
    "later link turns an earlier one out": [("x", b"d/..", 0o120777), ("d", b".", 0o120777)],
    "long ../ walk made valid by a later link": [
        ("x", b"s/" * 24 + b"../" * 24 + b"etc/passwd", 0o120777), ("s", b".", 0o120777)],
    "escaping pair, then a bad member": [("x", b"d/..", 0o120777), ("d", b".", 0o120777), ("d/evil", b"x", 0o100644)],
    "symlink body longer than PATH_MAX": [("l", b"a/" * 3000, 0o120777)],
}


@pytest.mark.parametrize("case", sorted(MALICIOUS_ZIP))
@pytest.mark.filterwarnings("ignore:Duplicate name")
def test_malicious_zip_is_refused_and_nothing_escapes(tmp_path, case):
    src = make_zip(str(tmp_path / "a.zip"), MALICIOUS_ZIP[case])
    staging = tmp_path / "staging"
    staging.mkdir()
    before = snapshot(tmp_path)
    with pytest.raises(arc.ArchiveError):
        arc.unpack(src, str(staging), "auto")
    assert {p for p in snapshot(tmp_path) - before if not p.startswith("staging" + os.sep)} == set()
    assert_nothing_leads_outside(staging)


def test_zip_is_checked_whole_before_anything_is_written(tmp_path):
    src = make_zip(str(tmp_path / "a.zip"), [("good", b"x", 0o100644), ("../evil", b"x", 0o100644)])
    staging = tmp_path / "staging"
    staging.mkdir()
    with pytest.raises(arc.ArchiveError, match="'..'"):
        arc.unpack(src, str(staging), "zip")
    assert os.listdir(staging) == []


def test_zip_bomb_by_declared_size(tmp_path):
    src = str(tmp_path / "bomb.zip")
    with zipfile.ZipFile(src, "w", zipfile.ZIP_DEFLATED) as z:
        z.writestr("zeros", b"\0" * (3 << 20))
    staging = tmp_path / "s"
    staging.mkdir()
    with pytest.raises(arc.ArchiveError, match="more than the max size"):
        arc.unpack(src, str(staging), "auto", arc.Limits(max_bytes=1 << 20))
    assert os.listdir(staging) == []


def test_tar_bomb_counted_on_written_bytes(tmp_path):
    src = make_tar(str(tmp_path / "bomb.tar.gz"), [("a", "file", b"\0" * (600 << 10)), ("b", "file", b"\0" * (600 << 10))])
    staging = tmp_path / "s"
    staging.mkdir()
    with pytest.raises(arc.ArchiveError, match="max size"):
        arc.unpack(src, str(staging), "auto", arc.Limits(max_bytes=1 << 20))


def test_member_count_limit(tmp_path):
    src = make_tar(str(tmp_path / "many.tar"), [("f%d" % i,) for i in range(20)], None)
    staging = tmp_path / "s"
    staging.mkdir()
    with pytest.raises(arc.ArchiveError, match="more than 10 members"):
        arc.unpack(src, str(staging), "auto", arc.Limits(max_members=10))


def test_truncated_and_garbage_archives(tmp_path):
    good = make_tar(str(tmp_path / "g.tar.gz"), [("f", "file", os.urandom(200000))])
    data = open(good, "rb").read()
    (tmp_path / "t.tar.gz").write_bytes(data[: len(data) // 2])
    for name in ("t.tar.gz",):
        staging = tmp_path / ("s-" + name)
        staging.mkdir()
        with pytest.raises(arc.ArchiveError, match="corrupt or truncated"):
            arc.unpack(str(tmp_path / name), str(staging), "auto")
    (tmp_path / "junk.zip").write_bytes(b"PK\x03\x04garbage")
    staging = tmp_path / "s-zip"
    staging.mkdir()
    with pytest.raises(arc.ArchiveError, match="not a readable zip"):
        arc.unpack(str(tmp_path / "junk.zip"), str(staging), "auto")


def test_good_tar_unpacks_exactly_with_safe_links(tmp_path):
    payload = os.urandom(300000)
    src = make_tar(str(tmp_path / "good.tar.gz"), [
        ("app", "dir"), ("app/bin", "dir", b"", None, 0o750), ("app/bin/run", "file", payload, None, 0o755),
        ("app/VERSION", "file", b"1.0\n"), ("app/latest", "sym", b"", "bin/run"),
        ("app/bin/again", "lnk", b"", "app/bin/run"), ("app/up", "sym", b"", "bin/.."),
    ])
    staging = tmp_path / "s"
    staging.mkdir()
    info = arc.unpack(src, str(staging), "auto")
    assert info["format"] == "tar"
    assert info["digest"] == hashlib.sha256(open(src, "rb").read()).hexdigest()
    assert info["source_bytes"] == os.path.getsize(src)
    assert (staging / "app/bin/run").read_bytes() == payload
    assert stat.S_IMODE((staging / "app/bin/run").stat().st_mode) == 0o755
    assert stat.S_IMODE((staging / "app/bin").stat().st_mode) == 0o750
    assert os.readlink(staging / "app/latest") == "bin/run"
    assert os.path.samefile(staging / "app/bin/again", staging / "app/bin/run")
    assert info["members"] == 7 and info["bytes"] == len(payload) + 4


def test_strip_components(tmp_path):
    src = make_tar(str(tmp_path / "s.tar.gz"), [("top", "dir"), ("top/bin", "dir"), ("top/bin/app", "file", b"A")])
    staging = tmp_path / "s"
    staging.mkdir()
    arc.unpack(src, str(staging), "tar", strip_components=1)
    assert sorted(os.listdir(staging)) == ["bin"] and (staging / "bin/app").read_bytes() == b"A"


def test_setuid_allowed_when_asked(tmp_path):
    src = make_tar(str(tmp_path / "s.tar"), [("bin", "file", b"x", None, 0o4755)], None)
    staging = tmp_path / "s"
    staging.mkdir()
    arc.unpack(src, str(staging), "auto", arc.Limits(allow_setuid=True))
    assert stat.S_IMODE((staging / "bin").stat().st_mode) == 0o4755


def test_good_zip_and_single_file(tmp_path):
    src = make_zip(str(tmp_path / "a.zip"), [("d/", b"", 0o040755), ("d/f", b"hello", 0o100640),
                                             ("d/l", b"f", 0o120777)])
    staging = tmp_path / "s"
    staging.mkdir()
    info = arc.unpack(src, str(staging), "auto")
    assert info["format"] == "zip"
    assert (staging / "d/f").read_bytes() == b"hello" and os.readlink(staging / "d/l") == "f"
    assert stat.S_IMODE((staging / "d/f").stat().st_mode) == 0o640
    single = tmp_path / "app.jar"
    single.write_bytes(b"not an archive, a plain file\n" * 10)
    staging2 = tmp_path / "s2"
    staging2.mkdir()
    info = arc.unpack(str(single), str(staging2), "auto", file_mode=0o644)
    assert info["format"] == "file" and info["digest"] == hashlib.sha256(single.read_bytes()).hexdigest()
    assert (staging2 / "app.jar").read_bytes() == single.read_bytes()
    with pytest.raises(arc.ArchiveError, match="plain file name"):
        arc.unpack(str(single), str(tmp_path / "s2"), "file", file_name="../x")


@pytest.mark.parametrize("name,expected", [("a/./b", ("a", "b")), ("./a//b/", ("a", "b")), ("top", None)])
def test_split_member_path(name, expected):
    assert arc.split_member_path(name, 1 if expected is None else 0) == expected


def test_nul_in_a_member_name():
    with pytest.raises(arc.ArchiveError, match="NUL"):
        arc.split_member_path("a\x00b")


def test_detect_format(tmp_path):
    make_tar(str(tmp_path / "p.tar"), [("f",)], None)
    make_tar(str(tmp_path / "x.tar.xz"), [("f",)], "xz")
    make_zip(str(tmp_path / "z.zip"), [("f", b"x", 0o100644)])
    (tmp_path / "bin").write_bytes(b"\x7fELF....")
    assert [arc.detect_format(str(tmp_path / n)) for n in ("p.tar", "x.tar.xz", "z.zip", "bin")] == [
        "tar", "tar", "zip", "file"]


# -- links checked again after the last member (issue 13, finding 2) ---------------------------------------------


@pytest.mark.parametrize("fmt", ["tar", "zip"])
def test_a_link_turned_outside_by_a_later_link_is_named(tmp_path, fmt):
    if fmt == "tar":
        src = make_tar(str(tmp_path / "a.tar"), [("x", "sym", b"", "d/.."), ("d", "sym", b"", ".")], None)
    else:
        src = make_zip(str(tmp_path / "a.zip"), [("x", b"d/..", 0o120777), ("d", b".", 0o120777)])
    staging = tmp_path / "s"
    staging.mkdir()
    with pytest.raises(arc.ArchiveError, match=r"member 'x': symlink target 'd/\.\.' leaves the release, once the whole"):
        arc.unpack(src, str(staging), "auto")
    assert os.listdir(staging) == []


def test_links_are_checked_again_on_disk(tmp_path):
    """The second pass reads the tree on disk (lstat, readlink), not the writer's model: where the two disagree
    (a case-insensitive file system, say), the disk is what counts."""
    staging = tmp_path / "s"
    staging.mkdir()
    writer = arc._Writer(str(staging), arc.Limits())
    writer.add_dir(("sub",), "sub", 0o755)
    writer.add_symlink(("x",), "x", "d/..")
    writer.add_symlink(("d",), "d", "sub")
    writer.check_links()  # as the model sees it: d -> sub, x -> sub/.. = the root
    os.unlink(str(staging / "d"))
    os.symlink(".", str(staging / "d"))
    with pytest.raises(arc.ArchiveError, match="member 'x': .* leaves the release on disk"):
        writer.check_links()


def test_forward_links_and_dot_dot_through_real_directories_still_unpack(tmp_path):
    src = make_tar(str(tmp_path / "ok.tar"), [
        ("latest", "sym", b"", "app/bin/run"), ("up", "sym", b"", "app/bin/../.."), ("bin", "sym", b"", "app/bin"),
        ("runner", "sym", b"", "bin/run"), ("app", "dir"), ("app/bin", "dir"), ("app/bin/run", "file", b"#!"),
        ("dangling", "sym", b"", "logs/app.log")], None)
    staging = tmp_path / "s"
    staging.mkdir()
    arc.unpack(src, str(staging), "tar")
    assert (staging / "latest").read_bytes() == b"#!" and (staging / "runner").read_bytes() == b"#!"
    assert os.path.samefile(str(staging / "up"), str(staging))
    assert os.readlink(str(staging / "dangling")) == "logs/app.log"


def test_dot_dot_after_a_missing_path_is_refused_once_the_archive_is_complete(tmp_path):
    """'logs' may become a shared link after unpacking; 'logs/a/../..' would then lead elsewhere."""
    src = make_tar(str(tmp_path / "a.tar"), [("x", "sym", b"", "logs/a/../../etc")], None)
    staging = tmp_path / "s"
    staging.mkdir()
    with pytest.raises(arc.ArchiveError, match="uses '..' after 'logs/a', which is not a directory in the archive"):
        arc.unpack(src, str(staging), "tar")


def test_a_hard_link_to_a_symlink_links_the_file_it_leads_to(tmp_path):
    src = make_tar(str(tmp_path / "a.tar"), [
        ("f", "file", b"data"), ("d", "dir"), ("d/l", "sym", b"", "../f"), ("h", "lnk", b"", "d/l")], None)
    staging = tmp_path / "s"
    staging.mkdir()
    arc.unpack(src, str(staging), "tar")
    assert not os.path.islink(str(staging / "h")) and os.path.samefile(str(staging / "h"), str(staging / "f"))


# -- hostile archives that hang or exhaust memory (issue 13, finding 3) ------------------------------------------

def exponential_links(n=30):
    """l0 -> ., l1 -> l0/l0, l2 -> l1/l1, ...: resolving l<n> naively walks 2**n links."""
    return [("l0", "."),] + [("l%d" % i, "l%d/l%d" % (i - 1, i - 1)) for i in range(1, n + 1)]


@pytest.mark.parametrize("fmt", ["tar", "zip"])
def test_exponential_link_chains_are_refused_quickly(tmp_path, fmt):
    if fmt == "tar":
        src = make_tar(str(tmp_path / "exp.tar.gz"), [(n, "sym", b"", t) for n, t in exponential_links()])
    else:
        src = make_zip(str(tmp_path / "exp.zip"), [(n, t.encode(), 0o120777) for n, t in exponential_links()])
    staging = tmp_path / "s"
    staging.mkdir()
    kind, message = run_with_deadline(lambda: arc.unpack(src, str(staging), "auto"))
    assert kind == "ArchiveError" and "goes through more than 40 symlinks" in message, (kind, message)


def test_link_resolution_has_a_total_budget(tmp_path, monkeypatch):
    monkeypatch.setattr(arc, "MAX_RESOLVE_STEPS", 1000)
    src = make_tar(str(tmp_path / "many.tar"), [("f",)] + [("l%d" % i, "sym", b"", "./" * 30 + "f") for i in range(40)], None)
    staging = tmp_path / "s"
    staging.mkdir()
    with pytest.raises(arc.ArchiveError, match=r"more than 1000 steps in all \(MAX_RESOLVE_STEPS\)"):
        arc.unpack(src, str(staging), "tar")


@pytest.mark.parametrize("members,strip", [
    ([("top", "dir"), ("top/f", "file", b"x"), ("big", "file", b"\0" * (3 << 20))], 1),
    ([(".", "file", b"\0" * (3 << 20)), ("f", "file", b"x")], 0),
])
def test_skipped_members_count_against_max_size(tmp_path, members, strip):
    src = make_tar(str(tmp_path / "skip.tar.gz"), members)
    staging = tmp_path / "s"
    staging.mkdir()
    with pytest.raises(arc.ArchiveError, match="max size.*counting the members it skips"):
        arc.unpack(src, str(staging), "tar", arc.Limits(max_bytes=1 << 20), strip_components=strip)


def test_skipped_members_count_against_max_members(tmp_path):
    src = make_tar(str(tmp_path / "dots.tar"), [(".", "dir")] * 20 + [("f",)], None)
    staging = tmp_path / "s"
    staging.mkdir()
    with pytest.raises(arc.ArchiveError, match="more than 10 members"):
        arc.unpack(src, str(staging), "tar", arc.Limits(max_members=10))


def gnu_tar(path, infos):
    with tarfile.open(path, "w", format=tarfile.GNU_FORMAT) as tar:
        for info in infos:
            tar.addfile(info)
    return path


def test_long_gnu_name_and_link_records_are_bounded(tmp_path):
    name = tarfile.TarInfo("n" * 65536)
    link = tarfile.TarInfo("l")
    link.type, link.linkname = tarfile.SYMTYPE, "t" * 65536
    for what, info in (("GNU long name record of 65537 bytes", name), ("GNU long link record of 65537 bytes", link)):
        staging = tmp_path / ("s-" + what[:14].replace(" ", "-"))
        staging.mkdir()
        src = gnu_tar(str(tmp_path / "long.tar"), [info])
        with pytest.raises(arc.ArchiveError, match=what + r" \(at byte 0 of the tar stream\): more than 4097"):
            arc.unpack(src, str(staging), "tar")


def test_names_and_targets_over_path_max_are_refused(tmp_path):
    info = tarfile.TarInfo("l")
    info.type, info.linkname = tarfile.SYMTYPE, "a/" * 2100
    src = str(tmp_path / "t.tar")
    with tarfile.open(src, "w", format=tarfile.PAX_FORMAT) as tar:
        tar.addfile(info)
    staging = tmp_path / "s"
    staging.mkdir()
    with pytest.raises(arc.ArchiveError, match="member 'l': symlink target of 4200 bytes, more than 4096"):
        arc.unpack(src, str(staging), "tar")
    with pytest.raises(arc.ArchiveError, match="its name is 5000 bytes long"):
        arc.split_member_path("d/" * 2500)


def test_big_pax_headers_are_refused(tmp_path):
    src = str(tmp_path / "pax.tar")
    with tarfile.open(src, "w", format=tarfile.PAX_FORMAT) as tar:
        info = tarfile.TarInfo("f")
        info.pax_headers = {"comment": "c" * (2 << 20)}
        tar.addfile(info)
    staging = tmp_path / "s"
    staging.mkdir()
    with pytest.raises(arc.ArchiveError, match="pax extended header of .* bytes .*more than 1048576"):
        arc.unpack(src, str(staging), "tar")


def test_chains_of_extended_headers_are_refused(tmp_path):
    one = tarfile.TarInfo("a" * 200).tobuf(tarfile.GNU_FORMAT, "utf-8", "surrogateescape")
    long_name_record, header = one[:1024], one[1024:]
    (tmp_path / "chain.tar").write_bytes(long_name_record * 10 + header + b"\0" * 1024)
    staging = tmp_path / "s"
    staging.mkdir()
    with pytest.raises(arc.ArchiveError, match="more than 8 extended headers in a row"):
        arc.unpack(str(tmp_path / "chain.tar"), str(staging), "tar")


def test_sparse_members_are_refused(tmp_path):
    old = tarfile.TarInfo("old")
    old.type = tarfile.GNUTYPE_SPARSE
    src = gnu_tar(str(tmp_path / "old.tar"), [old])
    staging = tmp_path / "s1"
    staging.mkdir()
    with pytest.raises(arc.ArchiveError, match="member 'old': sparse file"):
        arc.unpack(src, str(staging), "tar")
    # pax sparse 1.0: the map is read from the data, as long as its first line says; here a huge count.
    src = str(tmp_path / "pax.tar")
    with tarfile.open(src, "w", format=tarfile.PAX_FORMAT) as tar:
        info = tarfile.TarInfo("GNUSparseFile.0/f")
        info.pax_headers = {"GNU.sparse.major": "1", "GNU.sparse.minor": "0", "GNU.sparse.name": "f",
                            "GNU.sparse.realsize": "10"}
        body = b"99999999999\n" + b"1\n" * 300
        info.size = len(body)
        tar.addfile(info, io.BytesIO(body))
    staging = tmp_path / "s2"
    staging.mkdir()
    with pytest.raises(arc.ArchiveError, match="member 'GNUSparseFile.0/f': sparse file"):
        arc.unpack(src, str(staging), "tar")


# -- modes, corrupt and unsupported archives (issue 13, finding 11) ----------------------------------------------

def test_world_writable_modes_are_cleared(tmp_path):
    src = make_tar(str(tmp_path / "w.tar"), [("d", "dir", b"", None, 0o777), ("d/f", "file", b"x", None, 0o666),
                                             ("d/t", "dir", b"", None, 0o1777)], None)
    staging = tmp_path / "s"
    staging.mkdir()
    arc.unpack(src, str(staging), "tar")
    modes = [stat.S_IMODE(os.lstat(str(staging / p)).st_mode) for p in ("d", "d/f", "d/t")]
    assert modes == [0o775, 0o664, 0o1775]
    zsrc = make_zip(str(tmp_path / "w.zip"), [("z/", b"", 0o040777), ("z/f", b"x", 0o100666)])
    staging = tmp_path / "s2"
    staging.mkdir()
    arc.unpack(zsrc, str(staging), "zip")
    assert [stat.S_IMODE(os.lstat(str(staging / p)).st_mode) for p in ("z", "z/f")] == [0o775, 0o664]


def patch_zip(path, **fields):
    """Set flag_bits / compress_type in the first local header and central directory entry."""
    data = bytearray(open(path, "rb").read())
    central = data.rindex(b"PK\x01\x02")
    for key, value in fields.items():
        local_off, central_off = {"flag_bits": (6, 8), "compress_type": (8, 10)}[key]
        data[local_off:local_off + 2] = value.to_bytes(2, "little")
        data[central + central_off:central + central_off + 2] = value.to_bytes(2, "little")
    open(path, "wb").write(bytes(data))
    return path


def corrupt_middle(path, offset_from=60):
    data = bytearray(open(path, "rb").read())
    for i in range(offset_from, offset_from + 40):
        data[i] ^= 0x55
    open(path, "wb").write(bytes(data))
    return path


ZEROS_AND_TEXT = b"0123456789abcdef" * 4000


@pytest.mark.parametrize("case,expected", [
    ("zip bad deflate stream", "member 'f': corrupt or unreadable data"),
    ("zip bad bzip2 stream", "member 'f': corrupt or unreadable data"),
    ("zip bad lzma stream", "member 'f': corrupt or unreadable data"),
    ("zip unknown compression method", "member 'f': compression method 93 is not supported"),
    ("zip encrypted", "member 'f': encrypted"),
    ("tar negative mtime", "member 'f': modification time -1.0 is out of range"),
    ("tar mtime after 9999", "member 'f': modification time 1000000000000.0 is out of range"),
    ("tar mtime nan", "member 'f': modification time nan is out of range"),
    ("tar.gz without its trailer", "corrupt or truncated tar archive"),
    ("tar.gz with a bad CRC", "corrupt or truncated tar archive"),
    ("tar cut inside a header", "truncated tar archive: it ends at byte 1200"),
    ("tar with an invalid header after the first member", "corrupt tar archive: invalid header at byte 1024"),
    ("tar member with a negative size", "member 'b': negative size -1024 in its header"),
    ("tar.xz corrupt", "corrupt or truncated tar archive"),
    ("tar.bz2 corrupt", "corrupt or truncated tar archive"),
])
def test_corrupt_and_unsupported_archives_end_in_a_clear_error(tmp_path, case, expected):
    path = str(tmp_path / "a")
    if case.startswith("zip bad"):
        method = {"deflate": zipfile.ZIP_DEFLATED, "bzip2": zipfile.ZIP_BZIP2, "lzma": zipfile.ZIP_LZMA}[case.split()[2]]
        corrupt_middle(make_zip(path, [("f", ZEROS_AND_TEXT, 0o100644)], method))
    elif case == "zip unknown compression method":
        patch_zip(make_zip(path, [("f", b"hello", 0o100644)]), compress_type=93)
    elif case == "zip encrypted":
        patch_zip(make_zip(path, [("f", b"hello", 0o100644)]), flag_bits=1)
    elif "mtime" in case:
        with tarfile.open(path, "w", format=tarfile.PAX_FORMAT) as tar:
            info = tarfile.TarInfo("f")
            if case == "tar mtime nan":
                info.pax_headers = {"mtime": "nan"}
            else:
                info.mtime = -1 if "negative" in case else 10 ** 12
            tar.addfile(info, io.BytesIO(b""))
    elif case.startswith("tar.gz"):
        with tarfile.open(path, "w:gz", compresslevel=0) as tar:
            add(tar, "f", data=os.urandom(5000))
        data = open(path, "rb").read()
        if "trailer" in case:
            data = data[:-4]
        else:
            data = data[:-8] + bytes(b ^ 0xFF for b in data[-8:-4]) + data[-4:]
        open(path, "wb").write(data)
    elif case.startswith("tar cut") or case.startswith("tar with"):
        make_tar(path, [("f", "file", b"x" * 100), ("g", "file", b"y" * 100)], None)
        data = open(path, "rb").read()
        data = data[:1200] if "cut" in case else data[:1024] + b"garbage!" * 64 + data[1536:]
        open(path, "wb").write(data)
    elif "negative size" in case:
        first, second = tarfile.TarInfo("a"), tarfile.TarInfo("b")
        second.size = -1024  # base-256 in a GNU header; tarfile would go back 1024 bytes for the next header
        with open(path, "wb") as f:
            for info in (first, second):
                f.write(info.tobuf(tarfile.GNU_FORMAT, "utf-8", "surrogateescape"))
            f.write(b"\0" * 1024)
    else:
        make_tar(path, [("f", "file", ZEROS_AND_TEXT)], case.split(".")[1].split()[0])
        corrupt_middle(path)
    staging = tmp_path / "s"
    staging.mkdir()
    with pytest.raises(arc.ArchiveError, match=expected.replace("(", r"\(").replace("+", r"\+")):
        arc.unpack(path, str(staging), "zip" if case.startswith("zip") else "tar")


def test_zip_members_are_checked_for_method_and_encryption_before_anything_is_written(tmp_path):
    path = str(tmp_path / "a.zip")
    with zipfile.ZipFile(path, "w") as z:
        z.writestr("a", b"first")
        z.writestr("f", b"second")
    data = bytearray(open(path, "rb").read())
    central = data.index(b"PK\x01\x02", data.index(b"PK\x01\x02") + 4)  # the second entry
    data[central + 8:central + 10] = (1).to_bytes(2, "little")
    open(path, "wb").write(bytes(data))
    staging = tmp_path / "s"
    staging.mkdir()
    with pytest.raises(arc.ArchiveError, match="member 'f': encrypted"):
        arc.unpack(path, str(staging), "zip")
    assert os.listdir(staging) == []
