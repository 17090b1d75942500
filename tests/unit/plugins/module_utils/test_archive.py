"""Safe unpacking: a corpus of malicious archives built here, every one refused with nothing
written outside the staging directory; and good archives unpacked exactly."""

import hashlib
import io
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
                 "blk": tarfile.BLKTYPE, "fifo": tarfile.FIFOTYPE}[kind]
    info.mode = 0o755 if mode is None else mode
    if target is not None:
        info.linkname = target
    tar.addfile(info)


def make_tar(path, members, compression="gz"):
    with tarfile.open(path, "w:" + compression if compression else "w") as tar:
        for m in members:
            add(tar, *m) if isinstance(m, tuple) else add(tar, **m)
    return path


def make_zip(path, members):
    with zipfile.ZipFile(path, "w") as z:
        for name, data, mode in members:
            info = zipfile.ZipInfo(name)
            info.create_system = 3
            info.external_attr = mode << 16
            z.writestr(info, data)
    return path


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
}


@pytest.mark.parametrize("case", sorted(MALICIOUS_ZIP))
def test_malicious_zip_is_refused_and_nothing_escapes(tmp_path, case):
    src = make_zip(str(tmp_path / "a.zip"), MALICIOUS_ZIP[case])
    staging = tmp_path / "staging"
    staging.mkdir()
    before = snapshot(tmp_path)
    with pytest.raises(arc.ArchiveError):
        arc.unpack(src, str(staging), "auto")
    assert {p for p in snapshot(tmp_path) - before if not p.startswith("staging" + os.sep)} == set()


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
