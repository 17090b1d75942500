"""The build role's filter: the packages of one build, for its record."""

import pytest

from ansible.errors import AnsibleFilterError

from ansible_collections.seedops.deploy.plugins.filter.build import package_entries


def result(platform, digest):
    name = "app-1.0-%s.tar.gz" % platform.replace("/", "-")
    return {"item": platform, "dest": "/out/1.0/" + name, "sha256": digest, "size": 10, "changed": True}


def test_one_entry_per_platform_sorted_by_platform():
    got = package_entries([result("linux/arm64", "b" * 64), result("linux/amd64", "a" * 64)])
    assert got == [
        {"platform": "linux/amd64", "file": "app-1.0-linux-amd64.tar.gz", "sha256": "a" * 64, "size": 10},
        {"platform": "linux/arm64", "file": "app-1.0-linux-arm64.tar.gz", "sha256": "b" * 64, "size": 10},
    ]


@pytest.mark.parametrize("bad", [None, "x", [{"item": "linux/amd64"}], [{"skipped": True}]])
def test_anything_else_is_refused_saying_what_it_expects(bad):
    with pytest.raises(AnsibleFilterError, match="package_entries"):
        package_entries(bad)


from ansible_collections.seedops.deploy.plugins.filter.build import build_fit  # noqa: E402


def host(name, platform="linux/amd64", libc=("glibc", "2.36"), java=None, env_keys=None):
    return {"host": name, "platform": platform, "libc": {"family": libc[0], "version": libc[1]}, "java": java,
            "env_keys": env_keys}


def test_every_host_fits_a_static_go_build_and_the_table_says_so():
    fit = build_fit([host("app1"), host("app2", "linux/arm64")], {"platforms": ["linux/amd64", "linux/arm64"]})
    assert fit["problems"] == [] and all(row["ok"] for row in fit["rows"])
    lines = fit["table"].splitlines()
    assert lines[0] == "needs: linux/amd64, linux/arm64; libc any; java -; env -"
    assert lines[1].split() == ["host", "platform", "libc", "java", "env", "fit"]
    assert lines[2].split() == ["app1", "linux/amd64", "glibc", "2.36", "-", "-", "ok"]


def test_each_problem_is_named_per_host():
    needs = {"platforms": ["linux/amd64"], "libc": {"family": "glibc", "min": "2.36"}, "java": 17,
             "env": ["DATABASE_URL", "LOG_LEVEL"]}
    fit = build_fit([
        host("ok", java=17, env_keys=["LOG_LEVEL", "DATABASE_URL", "OTHER"]),
        host("arm", "linux/arm64", java=21, env_keys=["DATABASE_URL", "LOG_LEVEL"]),
        host("old", libc=("glibc", "2.31"), java=11, env_keys=["LOG_LEVEL"]),
        host("musl", libc=("musl", "1.2.4"), java=None, env_keys=None),
    ], needs)
    assert [row["ok"] for row in fit["rows"]] == [True, False, False, False]
    assert fit["problems"] == [
        "arm: no build for linux/arm64 (built: linux/amd64)",
        "old: needs glibc 2.36 or later, has glibc 2.31",
        "old: needs Java 17 or later, has Java 11",
        "old: its service environment lacks DATABASE_URL",
        "musl: needs glibc 2.36 or later, has musl 1.2.4",
        "musl: needs Java 17 or later, has no java",
        "musl: its service environment file could not be read (needs DATABASE_URL, LOG_LEVEL)",
    ]
    row = fit["rows"][0]
    assert (row["java"], row["env"]) == ("17", "2 of 2 keys")
    assert "NO: needs glibc 2.36 or later, has glibc 2.31; needs Java 17" in fit["table"]


def test_a_newer_glibc_fits_and_versions_compare_as_numbers():
    needs = {"libc": {"family": "glibc", "min": "2.9"}}
    assert build_fit([host("a", libc=("glibc", "2.36"))], needs)["problems"] == []
    assert build_fit([host("a", libc=("glibc", "2.8"))], needs)["problems"]


@pytest.mark.parametrize("needs, message", [
    ("x", "needs must be a mapping"),
    ({"jdk": 17}, "unknown needs jdk"),
    ({"libc": "glibc"}, "needs.libc must be"),
    ({"java": "seventeen"}, "needs.java must be"),
    ({"env": "A,B"}, "needs.env must be a list"),
    ({"platforms": "linux/amd64"}, "needs.platforms must be a list"),
])
def test_needs_that_make_no_sense_are_refused(needs, message):
    with pytest.raises(AnsibleFilterError, match=message):
        build_fit([host("a")], needs)
