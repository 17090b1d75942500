"""What a host has to run a build (module_utils/_hostfit.py): C library, Java major version, environment names."""

import pytest

from ansible_collections.seedops.deploy.plugins.module_utils import _hostfit


def test_glibc_from_confstr_musl_from_its_loader_or_nothing():
    assert _hostfit.libc(lambda name: "glibc 2.36") == {"family": "glibc", "version": "2.36"}

    def no_glibc(name):
        raise ValueError(name)

    assert _hostfit.libc(no_glibc, musl_loaders=["/lib/ld-musl-aarch64.so.1"]) == {"family": "musl", "version": None}
    assert _hostfit.libc(no_glibc, musl_loaders=[]) is None


@pytest.mark.parametrize("output, major", [
    ('openjdk version "17.0.9" 2023-10-17\nOpenJDK Runtime Environment', 17),
    ('java version "1.8.0_392"\nJava(TM) SE Runtime Environment', 8),
    ('openjdk version "21" 2023-09-19', 21),
    ("bash: java: command not found", None),
    ("", None),
])
def test_the_java_major_version_from_java_dash_version(output, major):
    assert _hostfit.java_major(output) == major


def test_read_java_asks_the_command_and_knows_when_there_is_none():
    assert _hostfit.read_java(lambda argv: (0, "", 'openjdk version "17.0.9"'), "/usr/bin/java") == 17
    assert _hostfit.read_java(lambda argv: (1, "", "broken"), "/usr/bin/java") is None
    assert _hostfit.read_java(lambda argv: pytest.fail("not run"), None) is None


def test_env_keys_are_the_names_only_and_none_when_unreadable(tmp_path):
    env = tmp_path / "env"
    env.write_text('A="1"\n# B="2"\n  ; C=3\nexport D=4\nE_9 = x\n9BAD=1\nno equals\n')
    assert _hostfit.env_keys(str(env)) == ["A", "D", "E_9"]
    assert _hostfit.env_keys(str(tmp_path / "missing")) is None
