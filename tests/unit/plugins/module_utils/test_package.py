"""Reproducible packages (module_utils/_package.py) and the package module end to end: real files in a temp dir,
read back with tarfile and with GNU tar."""

import gzip
import hashlib
import os
import subprocess
import tarfile
import time

import pytest

import fakes

from ansible_collections.seedops.deploy.plugins.module_utils import _package
from ansible_collections.seedops.deploy.plugins.modules import package


def tree(root, mode=0o755, when=None):
    os.makedirs(os.path.join(root, "bin"))
    with open(os.path.join(root, "bin", "app"), "wb") as handle:
        handle.write(b"\x7fELF binary")
    with open(os.path.join(root, "VERSION"), "w") as handle:
        handle.write("1.2.0\n")
    os.chmod(os.path.join(root, "bin", "app"), mode)
    os.symlink("bin/app", os.path.join(root, "run"))
    if when is not None:
        for rel in ("bin/app", "VERSION", "bin", "."):
            os.utime(os.path.join(root, rel), (when, when))
    return root


def test_the_same_contents_give_the_same_bytes_whatever_their_times_and_umask(tmp_path):
    one = tree(str(tmp_path / "one"), when=1000)
    two = tree(str(tmp_path / "two"), mode=0o700, when=time.time())
    os.chmod(tmp_path / "two" / "VERSION", 0o600)
    os.chmod(tmp_path / "two" / "bin", 0o700)
    assert _package.pack(one, str(tmp_path / "a.tar.gz"))[1] == _package.pack(two, str(tmp_path / "b.tar.gz"))[1]
    assert (tmp_path / "a.tar.gz").read_bytes() == (tmp_path / "b.tar.gz").read_bytes()


def test_members_are_in_name_order_at_one_time_owned_by_0_with_modes_from_one_rule(tmp_path):
    src = tree(str(tmp_path / "src"), mode=0o4755)
    dest = str(tmp_path / "p.tar.gz")
    _package.pack(src, dest, mtime=1700000000)
    with tarfile.open(dest) as tar:
        got = [(m.name, m.mtime, m.uid, m.gid, m.uname, m.gname) for m in tar.getmembers()]
        app = tar.getmember("bin/app")
        link = tar.getmember("run")
        modes = {m.name: m.mode for m in tar.getmembers()}
    assert modes == {"VERSION": 0o644, "bin": 0o755, "bin/app": 0o755, "run": 0o777}
    assert [g[0] for g in got] == ["VERSION", "bin", "bin/app", "run"]
    assert {g[1:] for g in got} == {(1700000000, 0, 0, "", "")}
    assert app.mode == 0o755 and link.issym() and link.linkname == "bin/app"
    with open(dest, "rb") as handle:
        header = handle.read(10)
    assert header[4:8] == b"\0\0\0\0", "the gzip header carries no time"
    assert gzip.open(dest).read(1)  # a valid gzip stream
    listing = subprocess.run(["tar", "-tzf", dest], check=True, capture_output=True, text=True).stdout.split()
    assert listing == ["VERSION", "bin/", "bin/app", "run"]


def test_a_package_whose_bytes_would_not_change_is_left_alone_and_no_temp_file_stays(tmp_path):
    src = tree(str(tmp_path / "src"))
    dest = str(tmp_path / "p.tar.gz")
    changed, digest, size = _package.pack(src, dest)
    assert changed and size == os.path.getsize(dest)
    assert digest == hashlib.sha256(open(dest, "rb").read()).hexdigest()
    inode = os.stat(dest).st_ino
    assert _package.pack(src, dest) == (False, digest, size)
    assert os.stat(dest).st_ino == inode
    (tmp_path / "src" / "VERSION").write_text("1.2.1\n")
    assert _package.pack(src, dest)[0] is True and os.stat(dest).st_ino != inode
    assert sorted(os.listdir(tmp_path)) == ["p.tar.gz", "src"]


def test_check_mode_tells_the_change_and_writes_nothing(tmp_path):
    src = tree(str(tmp_path / "src"))
    dest = str(tmp_path / "p.tar.gz")
    changed, digest, _size = _package.pack(src, dest, check_mode=True)
    assert changed and not os.path.exists(dest)
    assert _package.pack(src, dest)[1] == digest
    assert _package.pack(src, dest, check_mode=True)[0] is False


@pytest.mark.parametrize("target", ["/etc/passwd", "../../outside", "../bin/../../x"])
def test_a_link_out_of_the_tree_is_refused_naming_it(tmp_path, target):
    src = tree(str(tmp_path / "src"))
    os.symlink(target, os.path.join(src, "bin", "bad"))
    with pytest.raises(_package.PackageError, match="bin/bad is a symbolic link to .*outside the package"):
        _package.pack(src, str(tmp_path / "p.tar.gz"))
    assert not os.path.exists(tmp_path / "p.tar.gz")
    assert sorted(os.listdir(tmp_path)) == ["src"]


def test_a_fifo_an_empty_tree_or_a_missing_one_is_refused(tmp_path):
    src = tree(str(tmp_path / "src"))
    os.mkfifo(os.path.join(src, "pipe"))
    with pytest.raises(_package.PackageError, match="pipe is neither a file"):
        _package.pack(src, str(tmp_path / "p.tar.gz"))
    os.makedirs(tmp_path / "empty")
    with pytest.raises(_package.PackageError, match="is empty"):
        _package.pack(str(tmp_path / "empty"), str(tmp_path / "p.tar.gz"))
    with pytest.raises(_package.PackageError, match="is not a directory"):
        _package.pack(str(tmp_path / "nope"), str(tmp_path / "p.tar.gz"))


def test_the_checksum_list_keeps_other_lines_sorted_and_replaces_one(tmp_path):
    sums = str(tmp_path / "SHA256SUMS")
    assert _package.record_sum(sums, "b.tar.gz", "b" * 64)
    assert _package.record_sum(sums, "a.tar.gz", "a" * 64)
    assert not _package.record_sum(sums, "a.tar.gz", "a" * 64)
    assert _package.record_sum(sums, "b.tar.gz", "c" * 64)
    assert open(sums).read() == "%s  a.tar.gz\n%s  b.tar.gz\n" % ("a" * 64, "c" * 64)
    assert not _package.record_sum(sums, "d.tar.gz", "d" * 64, check_mode=True) is False
    assert "d.tar.gz" not in open(sums).read()
    # sha256sum -c reads what we write.
    (tmp_path / "x").write_bytes(b"x")
    _package.record_sum(sums, "x", hashlib.sha256(b"x").hexdigest())
    with open(sums) as handle:
        keep = [line for line in handle if line.endswith("  x\n")]
    (tmp_path / "only").write_text("".join(keep))
    subprocess.run(["sha256sum", "-c", "--quiet", "only"], cwd=tmp_path, check=True)


def test_a_malformed_checksum_list_is_refused_naming_the_line(tmp_path):
    sums = tmp_path / "SHA256SUMS"
    sums.write_text("%s  a.tar.gz\nnot a line\n" % ("a" * 64))
    with pytest.raises(_package.PackageError, match="line 2 is not"):
        _package.record_sum(str(sums), "b.tar.gz", "b" * 64)
    with pytest.raises(_package.PackageError, match="plain file name"):
        _package.record_sum(str(tmp_path / "S"), "dir/b.tar.gz", "b" * 64)


def test_the_module_packs_records_and_reports_no_change_the_second_time(tmp_path, capsys):
    src = tree(str(tmp_path / "src"))
    args = {"src": src, "dest": str(tmp_path / "app-1.2.0-linux-amd64.tar.gz"), "sums": str(tmp_path / "SHA256SUMS")}
    rc, first = fakes.run_main(package.main, capsys, args)
    assert rc == 0 and first["changed"] and first["sums_changed"]
    assert open(args["sums"]).read() == "%s  app-1.2.0-linux-amd64.tar.gz\n" % first["sha256"]
    rc, again = fakes.run_main(package.main, capsys, args)
    assert rc == 0 and not again["changed"] and again["sha256"] == first["sha256"]


@pytest.mark.parametrize("change, message", [
    ({"dest": "app.zip"}, "must end in .tar.gz"),
    ({"dest": "missing/app.tar.gz"}, "does not exist: create it first"),
    ({"sums": "other/SHA256SUMS"}, "must be in the directory of dest"),
    ({"mtime": -1}, "mtime must be 0 or more"),
])
def test_the_module_names_what_is_wrong(tmp_path, capsys, change, message):
    src = tree(str(tmp_path / "src"))
    args = {"src": src, "dest": str(tmp_path / "app.tar.gz")}
    args.update({k: (str(tmp_path / v) if isinstance(v, str) else v) for k, v in change.items()})
    rc, result = fakes.run_main(package.main, capsys, args)
    assert rc == 1 and message in result["msg"]
    assert sorted(os.listdir(tmp_path)) == ["src"]
