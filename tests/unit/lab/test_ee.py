"""Unit tests for tests/lab/ee.py's pure logic: the digests that name the execution environment's image."""

import io
import tarfile

import ee


def tarball(path, files, mtime):
    with tarfile.open(path, "w:gz") as tar:
        for name, data in files.items():
            info = tarfile.TarInfo(name)
            info.size, info.mtime, info.mode = len(data), mtime, 0o644
            tar.addfile(info, io.BytesIO(data))
    return str(path)


def test_the_collection_digest_follows_the_files_and_not_the_tarballs_timestamps(tmp_path):
    files = {"MANIFEST.json": b"{}", "plugins/modules/release.py": b"print(1)\n"}
    first = ee.collection_digest(tarball(tmp_path / "a.tar.gz", files, 1_000_000))
    assert ee.collection_digest(tarball(tmp_path / "b.tar.gz", files, 2_000_000)) == first
    changed = {**files, "plugins/modules/release.py": b"print(2)\n"}
    assert ee.collection_digest(tarball(tmp_path / "c.tar.gz", changed, 1_000_000)) != first
    renamed = {"MANIFEST.json": b"{}", "plugins/modules/other.py": b"print(1)\n"}
    assert ee.collection_digest(tarball(tmp_path / "d.tar.gz", renamed, 1_000_000)) != first


def test_the_image_digest_changes_with_the_definition_the_base_or_the_collection():
    digest = ee.image_digest("version: 3\n", "sha256:base", "abc")
    assert len(digest) == 12 and digest == ee.image_digest("version: 3\n", "sha256:base", "abc")
    assert len({digest, ee.image_digest("version: 3 \n", "sha256:base", "abc"),
                ee.image_digest("version: 3\n", "sha256:other", "abc"),
                ee.image_digest("version: 3\n", "sha256:base", "abd")}) == 4
