"""Checksum and SHA256SUMS parsing."""

import hashlib

import pytest

from ansible_collections.seedops.deploy.plugins.module_utils import _digest as dg

HEX = hashlib.sha256(b"x").hexdigest()


def test_parse_checksum_forms():
    assert dg.parse_checksum("sha256:" + HEX) == ("sha256", HEX)
    assert dg.parse_checksum(" SHA256:" + HEX.upper()) == ("sha256", HEX)
    h512 = hashlib.sha512(b"x").hexdigest()
    assert dg.parse_checksum("sha512:" + h512) == ("sha512", h512)


@pytest.mark.parametrize("bad,fragment", [
    (HEX, "has no algorithm"),
    ("md5:" + "0" * 32, "unknown algorithm 'md5'"),
    ("sha256:" + HEX[:-1], "takes 64 hex digits"),
    ("sha256:" + "g" * 64, "malformed"),
    ("sha384:" + HEX, "takes 96 hex digits"),
    (None, "must be a string"),
])
def test_parse_checksum_errors_say_what_is_expected(bad, fragment):
    with pytest.raises(dg.DigestError, match=fragment):
        dg.parse_checksum(bad)


SUMS = """\
# comment
%s  app-1.0-linux-amd64.tar.gz
%s *app-1.0-linux-arm64.tar.gz
%s  ./dist/other.zip
""" % ("a" * 64, "b" * 64, "c" * 128)


def test_parse_sums_text_and_binary_forms():
    assert dg.parse_sums(SUMS, "app-1.0-linux-amd64.tar.gz") == ("sha256", "a" * 64)
    assert dg.parse_sums(SUMS, "app-1.0-linux-arm64.tar.gz") == ("sha256", "b" * 64)
    assert dg.parse_sums(SUMS, "other.zip") == ("sha512", "c" * 128)


def test_parse_sums_missing_names_what_it_lists():
    with pytest.raises(dg.DigestError) as err:
        dg.parse_sums(SUMS, "app-2.0.tar.gz")
    assert "app-2.0.tar.gz is not listed" in str(err.value) and "app-1.0-linux-amd64.tar.gz" in str(err.value)


def test_parse_sums_conflicting_and_malformed_lines():
    with pytest.raises(dg.DigestError, match="different checksums"):
        dg.parse_sums("%s  f\n%s  f\n" % ("a" * 64, "b" * 64), "f")
    with pytest.raises(dg.DigestError, match="malformed"):
        dg.parse_sums("xyz  f\n", "f")
    assert dg.parse_sums("%s  f\n%s  f\n" % ("a" * 64, "a" * 64), "f") == ("sha256", "a" * 64)


def test_file_digest(tmp_path):
    p = tmp_path / "f"
    p.write_bytes(b"hello" * 300000)
    assert dg.file_digest(str(p)) == hashlib.sha256(p.read_bytes()).hexdigest()
    assert dg.file_digest(str(p), "sha512") == hashlib.sha512(p.read_bytes()).hexdigest()
