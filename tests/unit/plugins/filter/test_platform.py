"""Unit tests for the platform filters (ansible_facts -> GOOS/GOARCH)."""

import pytest
from ansible.errors import AnsibleFilterError

from ansible_collections.seedops.deploy.plugins.filter import platform as plugin


@pytest.mark.parametrize(
    "arch,expected",
    [("x86_64", "amd64"), ("aarch64", "arm64"), ("AARCH64", "arm64"), ("armv7l", "arm"), ("i686", "386"),
     ("ppc64le", "ppc64le"), ("s390x", "s390x"), ("riscv64", "riscv64")],
)
def test_goarch_maps_uname_names(arch, expected):
    assert plugin.goarch(arch) == expected


def test_goarch_unknown_names_the_input_and_the_known_list():
    with pytest.raises(AnsibleFilterError) as err:
        plugin.goarch("mips64")
    assert "'mips64'" in str(err.value)
    assert "x86_64" in str(err.value)


@pytest.mark.parametrize("bad", [None, "", 42])
def test_goarch_rejects_non_names(bad):
    with pytest.raises(AnsibleFilterError, match="expected an architecture name"):
        plugin.goarch(bad)


def test_goos():
    assert plugin.goos("Linux") == "linux"
    with pytest.raises(AnsibleFilterError, match="'Plan9'"):
        plugin.goos("Plan9")


def test_platform_from_facts():
    assert plugin.platform({"system": "Linux", "architecture": "aarch64"}) == "linux/arm64"
    assert plugin.platform({"system": "Linux", "architecture": "x86_64", "other": 1}) == "linux/amd64"


def test_platform_without_facts_says_to_gather_them():
    with pytest.raises(AnsibleFilterError, match="lacks system and architecture; gather facts"):
        plugin.platform({})
    with pytest.raises(AnsibleFilterError, match="expected a host's ansible_facts"):
        plugin.platform("linux")


def test_filters_are_registered():
    assert set(plugin.FilterModule().filters()) == {"goarch", "goos", "platform"}
