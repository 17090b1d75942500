"""playbooks/build.yml (the build role): reproducible per-platform packages of the sample service, built on the
controller for the platforms the lab's app hosts report, refused before anything is written when the toolchain or a
platform is wrong, and published to the lab's repository host, where an app host fetches and verifies one the way a
deploy does."""

import json
import os
import subprocess
import tarfile

import pytest

from conftest import REPO_ROOT, file_sha256, flat, run_module, run_playbook, sh

pytestmark = pytest.mark.lab

SOURCE = os.path.join(REPO_ROOT, "tests", "fixtures", "app")
APP = ("-e", "build_app=seedops-app", "-e", f"build_source={SOURCE}")
# ELF e_machine at offset 18: 62 is x86-64, 183 is AArch64.
MACHINE = {"linux/amd64": 62, "linux/arm64": 183}


def build(lab, out, *args):
    return run_playbook("playbooks/build.yml", lab.inventory, *APP, "-e", f"build_output_dir={out}", *args)


def members(package):
    with tarfile.open(package) as tar:
        binary = tar.extractfile("bin/seedops-app").read()
        version = tar.extractfile("VERSION").read().decode()
        return [m.name for m in tar.getmembers()], binary, version


def test_two_builds_give_the_same_bytes_and_a_rerun_changes_nothing(lab, tmp_path):
    both = ("-e", "build_version=9.9.0", "-e", '{"build_platforms": ["linux/arm64", "linux/amd64"]}')
    first, recap = build(lab, tmp_path / "a", *both)
    assert first.returncode == 0, first.stdout[-3000:]
    # build_platforms given: the app hosts are not asked.
    assert recap["app1"]["ok"] == 0 and recap["localhost"]["changed"] == 3
    second, _recap = build(lab, tmp_path / "b", *both)
    assert second.returncode == 0, second.stdout[-3000:]

    sums = (tmp_path / "a" / "SHA256SUMS").read_text()
    assert sums == (tmp_path / "b" / "SHA256SUMS").read_text()
    assert sorted(os.listdir(tmp_path / "a")) == [
        "SHA256SUMS", "seedops-app-9.9.0-linux-amd64.tar.gz", "seedops-app-9.9.0-linux-arm64.tar.gz",
        "seedops-app-9.9.0.build.json"]
    subprocess.run(["sha256sum", "--check", "--strict", "--quiet", "SHA256SUMS"], cwd=tmp_path / "a", check=True)
    record = json.loads((tmp_path / "a" / "seedops-app-9.9.0.build.json").read_text())
    go = subprocess.run(["go", "env", "GOVERSION"], capture_output=True, text=True, check=True).stdout.strip()
    head = subprocess.run(["git", "-C", REPO_ROOT, "rev-parse", "HEAD"], capture_output=True, text=True,
                          check=True).stdout.strip()
    assert record["toolchain"] == go and record["source"]["revision"] == head and record["cgo"] is False
    assert record["ldflags"] == "-s -w -X main.version=9.9.0"
    for platform, machine in MACHINE.items():
        name = f"seedops-app-9.9.0-{platform.replace('/', '-')}.tar.gz"
        package = tmp_path / "a" / name
        assert {"platform": platform, "file": name, "sha256": file_sha256(package),
                "size": package.stat().st_size} in record["packages"]
        names, binary, version = members(package)
        assert names == ["VERSION", "bin", "bin/seedops-app"] and version == "9.9.0\n"
        assert binary[:4] == b"\x7fELF" and int.from_bytes(binary[18:20], "little") == machine
        assert b"9.9.0" in binary  # the version is stamped into the binary

    again, recap = build(lab, tmp_path / "a", *both)
    assert again.returncode == 0 and recap["localhost"]["changed"] == 0, again.stdout[-3000:]
    assert json.loads((tmp_path / "a" / "seedops-app-9.9.0.build.json").read_text()) == record


def test_the_fleet_names_the_platforms_and_a_bad_toolchain_platform_or_host_is_refused_before_anything_is_written(
        lab, tmp_path):
    fleet, recap = build(lab, tmp_path / "fleet", "-e", "build_version=9.9.1")
    assert fleet.returncode == 0, fleet.stdout[-3000:]
    assert all(recap[h]["ok"] == 1 for h in ("app1", "app2", "app3")), recap
    assert sorted(os.listdir(tmp_path / "fleet")) == [
        "SHA256SUMS", "seedops-app-9.9.1-linux-amd64.tar.gz", "seedops-app-9.9.1.build.json"]

    toolchain, _recap = build(lab, tmp_path / "go", "-e", "build_version=9.9.1", "-e", "build_go_version=1.99")
    assert toolchain.returncode != 0
    assert "build_go_version is 1.99, but go is go1." in flat(toolchain) and "Nothing was built." in flat(toolchain)

    platform, _recap = build(lab, tmp_path / "sparc", "-e", "build_version=9.9.1",
                             "-e", '{"build_platforms": ["linux/amd64", "linux/sparc9"]}')
    assert platform.returncode != 0 and "unsupported GOOS/GOARCH pair linux/sparc9" in flat(platform)

    inventory = tmp_path / "inventory.yml"
    inventory.write_text(open(lab.inventory, encoding="utf-8").read())
    gone, _recap = run_playbook("playbooks/build.yml", str(inventory), *APP, "-e", "build_version=9.9.1",
                                "-e", f"build_output_dir={tmp_path / 'gone'}",
                                "-e", '{"ansible_port": 9}', "--limit", "app2,localhost")
    assert gone.returncode != 0
    assert "app1, app2, app3 reported no platform" in flat(gone) or "app2 reported no platform" in flat(gone)
    for out in ("go", "sparc", "gone"):
        assert not (tmp_path / out).exists(), out
    assert not [n for n in os.listdir("/tmp") if n.startswith("seedops-build-")]


def test_a_published_build_is_fetched_and_verified_by_an_app_host_as_a_deploy_does(lab, served_repo, tmp_path):
    publish, store = "/srv/artifacts/seedops-app/9.9.2", "/tmp/seedops-build-test-store"
    try:
        result, _recap = build(lab, tmp_path / "out", "-e", "build_version=9.9.2", "-e", "build_publish_host=repo1",
                               "-e", f"build_publish_dir={publish}")
        assert result.returncode == 0, result.stdout[-3000:]
        local = (tmp_path / "out" / "SHA256SUMS").read_text()
        assert sh(lab, "repo1", f"cat {publish}/SHA256SUMS") + "\n" == local
        assert sh(lab, "repo1", f"cd {publish} && sha256sum --check --strict SHA256SUMS") == (
            "seedops-app-9.9.2-linux-amd64.tar.gz: OK")
        repo = lab.host("repo1")["address"]
        fetched = run_module(lab, "app1", "seedops.deploy.artifact", {
            "store": store, "url": f"http://{repo}/seedops-app/9.9.2/seedops-app-9.9.2-linux-amd64.tar.gz",
            "checksum_url": f"http://{repo}/seedops-app/9.9.2/SHA256SUMS", "allow_unverified": True})
        assert fetched["_status"] == "CHANGED", fetched
        digest = file_sha256(tmp_path / "out" / "seedops-app-9.9.2-linux-amd64.tar.gz")
        assert fetched["digest"] == "sha256:" + digest
        assert sh(lab, "app1", f"sha256sum {fetched['path']}").split()[0] == digest
    finally:
        sh(lab, "app1", f"sudo rm -rf {store}")
        sh(lab, "repo1", f"sudo rm -rf {publish}")


def test_a_jar_is_packaged_with_a_launcher_and_the_java_its_classes_need(lab, tmp_path):
    src = tmp_path / "src" / "org" / "example"
    src.mkdir(parents=True)
    (src / "App.java").write_text('package org.example; public class App { public static void main(String[] a) {'
                                  ' System.out.println("japp on " + System.getProperty("java.specification.version")); } }\n')
    subprocess.run(["javac", "--release", "11", "-d", str(tmp_path / "classes"), str(src / "App.java")], check=True)
    subprocess.run(["jar", "--create", "--file", str(tmp_path / "app.jar"), "--main-class", "org.example.App",
                    "-C", str(tmp_path / "classes"), "."], check=True)
    subprocess.run(["jar", "--create", "--file", str(tmp_path / "lib.jar"), "-C", str(tmp_path / "classes"), "."], check=True)
    jar = ("-e", "build_app=japp", "-e", f"build_source={tmp_path}", "-e", "build_kind=jar", "-e", "build_version=1.0",
           "-e", '{"build_platforms": ["linux/amd64", "linux/arm64"]}')

    built, _recap = run_playbook("playbooks/build.yml", lab.inventory, *jar, "-e", f"build_jar={tmp_path / 'app.jar'}",
                                 "-e", f"build_output_dir={tmp_path / 'out'}")
    assert built.returncode == 0, built.stdout[-3000:]
    record = json.loads((tmp_path / "out" / "japp-1.0.build.json").read_text())
    assert record["requires"]["java"] == 11 and record["toolchain"] == "class files for Java 11"
    assert record["jar"] == {"file": "app.jar", "main_class": "org.example.App", "class_major": 55}
    amd64, arm64 = (tmp_path / "out" / f"japp-1.0-linux-{arch}.tar.gz" for arch in ("amd64", "arm64"))
    assert amd64.read_bytes() == arm64.read_bytes()
    with tarfile.open(amd64) as tar:
        assert [m.name for m in tar.getmembers()] == ["VERSION", "bin", "bin/japp", "lib", "lib/japp.jar"]
    (tmp_path / "release").mkdir()
    subprocess.run(["tar", "-C", str(tmp_path / "release"), "-xzf", str(amd64)], check=True)
    assert (tmp_path / "release" / "lib" / "japp.jar").read_bytes() == (tmp_path / "app.jar").read_bytes()
    ran = subprocess.run([str(tmp_path / "release" / "bin" / "japp")], capture_output=True, text=True, check=True)
    assert ran.stdout.startswith("japp on ")

    older, _recap = run_playbook("playbooks/build.yml", lab.inventory, *jar, "-e", f"build_jar={tmp_path / 'app.jar'}",
                                 "-e", "build_java_version=8", "-e", f"build_output_dir={tmp_path / 'old'}")
    assert older.returncode != 0
    assert "build_java_version is 8, but the classes of" in flat(older) and "need Java 11 (class file version 55)" in flat(older)
    library, _recap = run_playbook("playbooks/build.yml", lab.inventory, *jar, "-e", f"build_jar={tmp_path / 'lib.jar'}",
                                   "-e", f"build_output_dir={tmp_path / 'lib'}")
    assert library.returncode != 0 and "has no Main-Class in its manifest" in flat(library)
    assert not (tmp_path / "old").exists() and not (tmp_path / "lib").exists()
