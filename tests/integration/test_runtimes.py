"""jdk and golang roles on lab hosts: OpenJDK from the OS packages next to a vendor-style tarball (served by
repo1's nginx), Go from the OS packages next to an official-layout tarball (pushed from the controller),
idempotent reruns and clean check runs, the real effect in login shells and through the alternatives, an
atomic switch of the active Go, and bad input (an unknown JDK version, wrong checksums) failing clearly with
nothing changed.

The tarballs are built on the controller from its own toolchains: a JDK image made with jlink from the
controller's OpenJDK 17 (needs openjdk-17-jdk-headless: jlink and jmods), and a go/ tree from Debian's Go 1.19
with symlinks dereferenced and tests, test data and cmd/ sources left out."""

import hashlib
import json
import os
import shutil
import subprocess
import tarfile
import time
from concurrent.futures import ThreadPoolExecutor

import pytest

from conftest import file_sha256, flat, refused, run_playbook, sh

pytestmark = pytest.mark.lab

JDK_HOST = "app1"
GO_HOST = "app2"
JDK_PLAYBOOK = "tests/integration/playbooks/jdk.yml"
GO_PLAYBOOK = "tests/integration/playbooks/golang.yml"
JDK_NAME = "jdk-17-lab"
JDK_PACKAGE_VERSION = "17"  # Debian 12's OpenJDK
JDK_PACKAGE_HOME = "/usr/lib/jvm/java-17-openjdk-amd64"
GO_PACKAGE_VERSION = "1.19"  # Debian 12's Go
GO_PACKAGE_ROOT = "/usr/lib/go-1.19"
WRONG = "sha256:" + hashlib.sha256(b"not the archive").hexdigest()

WATCHER = r'''
import ctypes, json, os, select, struct, sys, time
directory, stop, out, ready = sys.argv[1:5]
libc = ctypes.CDLL(None, use_errno=True)
fd = libc.inotify_init1(os.O_NONBLOCK)
# IN_MOVED_FROM | IN_MOVED_TO | IN_CREATE | IN_DELETE
if fd < 0 or libc.inotify_add_watch(fd, directory.encode(), 0x40 | 0x80 | 0x100 | 0x200) < 0:
    sys.exit("inotify: errno %d" % ctypes.get_errno())
open(ready, "w").close()
events, deadline = [], time.time() + 600
def drain():
    while True:
        try:
            data = os.read(fd, 65536)
        except BlockingIOError:
            return
        i = 0
        while i < len(data):
            _wd, mask, _cookie, size = struct.unpack_from("iIII", data, i)
            events.append([mask, data[i + 16:i + 16 + size].rstrip(b"\0").decode()])
            i += 16 + size
while not os.path.exists(stop) and time.time() < deadline:
    if select.select([fd], [], [], 0.2)[0]:
        drain()
drain()
with open(out + ".tmp", "w") as f:
    json.dump(events, f)
os.rename(out + ".tmp", out)
'''
IN_MOVED_TO, IN_CREATE, IN_DELETE = 0x80, 0x100, 0x200


def play(lab, playbook, host, variables, *args):
    return run_playbook(playbook, lab.inventory, "-e", f"target_hosts={host}", "-e", json.dumps(variables), *args)


def converged_ok(result, recap, host):
    assert result.returncode == 0 and recap[host]["failed"] == 0, result.stdout[-4000:]


def failed_cleanly(result, recap, host):
    """The run failed on host, having changed nothing; returns the output to look for the message in."""
    assert recap[host]["failed"] == 1, result.stdout[-4000:]
    return refused(result, recap, host)


def build_jdk(out_dir, work):
    """A JDK image (java, javac, jar) made with jlink from the controller's OpenJDK, as <name>/... in a .tar.gz."""
    java = shutil.which("java")
    home = os.path.dirname(os.path.dirname(os.path.realpath(java))) if java else None
    if not home or not os.path.isfile(os.path.join(home, "bin", "jlink")) or not os.path.isdir(os.path.join(home, "jmods")):
        raise AssertionError(f"the controller needs a full OpenJDK 17 (jlink and jmods; Debian: openjdk-17-jdk-headless) "
                             f"to build the JDK tarball; found java at {java} (home {home})")
    stage = os.path.join(work, "jlink")
    shutil.rmtree(stage, ignore_errors=True)
    subprocess.run([os.path.join(home, "bin", "jlink"), "--add-modules", "java.base,jdk.compiler,jdk.jartool",
                    "--strip-debug", "--no-man-pages", "--no-header-files", "--output", os.path.join(stage, JDK_NAME)],
                   check=True, capture_output=True)
    path = os.path.join(out_dir, f"{JDK_NAME}.tar.gz")
    subprocess.run(["bash", "-c", 'set -o pipefail; tar -C "$1" --sort=name --mtime=@0 --owner=0 --group=0 '
                    '--numeric-owner -cf - "$2" | gzip -n > "$3"', "bash", stage, JDK_NAME, path], check=True)
    return path


def build_go(out_dir):
    """The controller's Debian Go as an official-layout go/ tree (symlinks dereferenced, without tests, test data
    and cmd/ sources: `go version` and `go build` of a program need none of them)."""
    go = shutil.which("go")
    goroot = os.path.dirname(os.path.dirname(os.path.realpath(go))) if go else None
    if not goroot or not os.path.isfile(os.path.join(goroot, "VERSION")):
        raise AssertionError(f"the controller needs Debian's Go (golang-go) to build the Go tarball; found go at {go}")
    with open(os.path.join(goroot, "VERSION"), encoding="utf-8") as f:
        version = f.readline().strip().removeprefix("go")
    top = os.path.basename(goroot)
    path = os.path.join(out_dir, f"go{version}.linux-amd64.tar.gz")
    excludes = [f"{top}/{p}" for p in ("test", "misc", "api", "src/cmd", "pkg/linux_amd64/cmd", "pkg/obj")]
    excludes += [f"{top}/pkg/tool/linux_amd64/{t}" for t in ("pprof", "trace", "objdump", "addr2line", "doc", "fix",
                                                             "api", "dist")]
    excludes += ["*_test.go", "testdata"]
    tar = ["tar", "-C", os.path.dirname(goroot), "-h", "--sort=name", "--mtime=@0", "--owner=0", "--group=0",
           "--numeric-owner", f"--transform=s,^{top},go,", *[f"--exclude={e}" for e in excludes], "-cf", "-", top]
    subprocess.run(["bash", "-c", 'set -o pipefail; "${@:2}" | gzip -1n > "$1"', "bash", path, *tar], check=True)
    return version, path


def jdk_state(lab):
    """Everything the jdk role could change on its host."""
    return sh(lab, JDK_HOST, "ls -A /usr/lib/jvm; sudo ls -A /var/cache/seedops/jdk/sha256 2>/dev/null; "
                             "update-alternatives --query java; update-alternatives --query javac; "
                             "cat /etc/profile.d/jdk.sh; grep JAVA_HOME /etc/environment; "
                             "dpkg-query -W 'openjdk*' 'java*'; true")


def go_state(lab):
    return sh(lab, GO_HOST, "ls -A /usr/local; readlink /usr/local/go; sudo ls -A /var/cache/seedops/golang/sha256 "
                            "2>/dev/null; cat /etc/profile.d/golang.sh; dpkg-query -W 'golang*'; true")


@pytest.fixture(scope="module")
def runtimes(lab, tmp_path_factory):
    """Both roles converged on their hosts from a clean state (the OS packages may stay from an earlier run),
    each run twice more - again, and in check mode. JDK and Go run side by side, on their own hosts."""
    work = tmp_path_factory.mktemp("runtimes")
    (work / "jdk").mkdir()
    repo1 = lab.host("repo1")["address"]

    def jdk_chain():
        tarball = build_jdk(str(work / "jdk"), str(work))
        result, recap = run_playbook("tests/integration/playbooks/repo.yml", lab.inventory, "-e", json.dumps(
            {"artifact_repo_files": [{"src": str(work / "jdk") + "/", "dest": "runtimes/"}]}))
        assert result.returncode == 0 and recap["repo1"]["failed"] == 0, result.stdout[-3000:]
        sh(lab, JDK_HOST, f"sudo rm -rf /usr/lib/jvm/{JDK_NAME} /usr/lib/jvm/.jdk-17-*.seedops-tmp /var/cache/seedops/jdk "
                          f"/etc/profile.d/jdk.sh; sudo sed -i '/^JAVA_HOME=/d' /etc/environment 2>/dev/null; for t in java "
                          f"javac; do sudo update-alternatives --remove $t /usr/lib/jvm/{JDK_NAME}/bin/$t 2>/dev/null; "
                          f"sudo update-alternatives --auto $t 2>/dev/null; done; true")
        variables = {"jdk_version": JDK_NAME, "jdk_extra_versions": [JDK_PACKAGE_VERSION], "jdk_package_kind": "jre",
                     "jdk_etc_environment": True,
                     "jdk_tarballs": [{"name": JDK_NAME, "url": f"http://{repo1}/runtimes/{JDK_NAME}.tar.gz",
                                       "checksum": "sha256:" + file_sha256(tarball)}]}
        runs = [play(lab, JDK_PLAYBOOK, JDK_HOST, variables) for _run in range(2)]
        runs.append(play(lab, JDK_PLAYBOOK, JDK_HOST, variables, "--check", "--diff"))
        return {"vars": variables, "runs": runs}

    def go_chain():
        version, tarball = build_go(str(work))
        sh(lab, GO_HOST, "sudo rm -rf /usr/local/go /usr/local/go-* /usr/local/.go-*.seedops-tmp /var/cache/seedops/golang "
                         "/etc/profile.d/golang.sh")
        variables = {"golang_version": GO_PACKAGE_VERSION,
                     "golang_tarballs": [{"version": version, "src": tarball, "checksum": "sha256:" + file_sha256(tarball)}]}
        runs = [play(lab, GO_PLAYBOOK, GO_HOST, variables) for _run in range(2)]
        runs.append(play(lab, GO_PLAYBOOK, GO_HOST, variables, "--check", "--diff"))
        return {"vars": variables, "runs": runs, "version": version, "tarball": tarball}

    with ThreadPoolExecutor(2) as pool:
        jdk, go = pool.submit(jdk_chain), pool.submit(go_chain)
        return {"jdk": jdk.result(), "go": go.result()}


# -- jdk -----------------------------------------------------------------------------------------------------


def test_jdk_converges_then_reruns_and_check_runs_change_nothing(runtimes):
    (first, recap1), (second, recap2), (check, recap3) = runtimes["jdk"]["runs"]
    converged_ok(first, recap1, JDK_HOST)
    assert recap1[JDK_HOST]["changed"] > 0, "the first run installs the tarball JDK"
    converged_ok(second, recap2, JDK_HOST)
    assert recap2[JDK_HOST]["changed"] == 0, second.stdout[-3000:]
    converged_ok(check, recap3, JDK_HOST)
    assert recap3[JDK_HOST]["changed"] == 0, check.stdout[-3000:]


def test_jdk_tarball_selected_next_to_the_os_package(lab, runtimes):
    home = f"/usr/lib/jvm/{JDK_NAME}"
    # Login shell: JAVA_HOME from /etc/profile.d, java and javac through PATH -> /usr/bin -> alternatives.
    out = sh(lab, JDK_HOST, "bash -lc 'echo JAVA_HOME=$JAVA_HOME; java -version 2>&1; javac -version 2>&1; "
                            "java -XshowSettings:properties -version 2>&1 | grep java.home'")
    assert f"JAVA_HOME={home}" in out
    assert 'openjdk version "17.' in out and "javac 17." in out
    assert f"java.home = {home}" in out
    # The alternatives themselves: manual mode, the tarball's tools, the package's java still registered.
    query = sh(lab, JDK_HOST, "update-alternatives --query java")
    assert "Status: manual" in query and f"Value: {home}/bin/java" in query
    assert f"Alternative: {JDK_PACKAGE_HOME}/bin/java" in query
    assert sh(lab, JDK_HOST, "readlink -f /usr/bin/java /usr/bin/javac").split() == [f"{home}/bin/java", f"{home}/bin/javac"]
    assert "17." in sh(lab, JDK_HOST, "/etc/alternatives/java -version 2>&1")
    # /etc/environment (PAM): even a plain SSH command, no login shell, sees JAVA_HOME.
    assert sh(lab, JDK_HOST, "echo $JAVA_HOME") == home
    # The tarball JDK compiles and runs a program; the tree is root's, with the record of its checksum.
    out = sh(lab, JDK_HOST, "d=$(mktemp -d) && cd $d && printf 'class Hello { public static void main(String[] a) { "
                            "System.out.println(\"hello from \" + System.getProperty(\"java.home\")); } }' > Hello.java "
                            "&& bash -lc 'javac Hello.java && java -cp . Hello'; rc=$?; rm -rf $d; exit $rc")
    assert out == f"hello from {home}"
    assert sh(lab, JDK_HOST, f"stat -c %U {home}/bin/java; cat {home}/.seedops-source") == \
        "root\n" + runtimes["jdk"]["vars"]["jdk_tarballs"][0]["checksum"]
    # Nothing half-done is left: no temporary tree, the downloaded archive removed once unpacked.
    assert sh(lab, JDK_HOST, "ls -A /usr/lib/jvm | grep seedops-tmp; sudo ls -A /var/cache/seedops/jdk/sha256") == ""
    assert sh(lab, JDK_HOST, f"dpkg-query -W -f '${{Status}}' openjdk-{JDK_PACKAGE_VERSION}-jre-headless") == \
        "install ok installed"


def test_jdk_switch_to_the_os_package(lab, runtimes):
    variables = {**runtimes["jdk"]["vars"], "jdk_version": JDK_PACKAGE_VERSION}
    result, recap = play(lab, JDK_PLAYBOOK, JDK_HOST, variables)
    converged_ok(result, recap, JDK_HOST)
    assert recap[JDK_HOST]["changed"] > 0
    out = sh(lab, JDK_HOST, "bash -lc 'echo JAVA_HOME=$JAVA_HOME; java -XshowSettings:properties -version 2>&1 "
                            "| grep java.home'; readlink -f /usr/bin/java; update-alternatives --query java | grep Status")
    assert out.splitlines() == [f"JAVA_HOME={JDK_PACKAGE_HOME}", f"    java.home = {JDK_PACKAGE_HOME}",
                                f"{JDK_PACKAGE_HOME}/bin/java", "Status: manual"]
    # The tarball JDK stays installed side by side.
    assert "17." in sh(lab, JDK_HOST, f"/usr/lib/jvm/{JDK_NAME}/bin/java -version 2>&1")


def test_jdk_tarball_with_a_wrong_checksum_installs_nothing(lab, runtimes):
    before = jdk_state(lab)
    good = runtimes["jdk"]["vars"]["jdk_tarballs"][0]
    bad = {"name": "jdk-17-bad", "url": good["url"], "checksum": WRONG}
    settings = {**runtimes["jdk"]["vars"], "jdk_version": "jdk-17-bad", "jdk_tarballs": [good, bad]}
    result, recap = play(lab, JDK_PLAYBOOK, JDK_HOST, settings)
    out = failed_cleanly(result, recap, JDK_HOST)
    assert "jdk: could not get the tarball jdk-17-bad: checksum mismatch for " + good["url"] in out, out[-3000:]
    assert f"expected {WRONG}" in out and "No JDK was installed and the selected one is unchanged" in out
    assert jdk_state(lab) == before
    assert "jdk-17-bad" not in before


def test_jdk_unknown_version_fails_before_changing_anything(lab, runtimes):
    before = jdk_state(lab)
    result, recap = play(lab, JDK_PLAYBOOK, JDK_HOST, {**runtimes["jdk"]["vars"], "jdk_version": 99})
    out = failed_cleanly(result, recap, JDK_HOST)
    assert "jdk: OpenJDK 99 is not available from this host's package sources: no package openjdk-99-jre-headless" in out
    assert f"Versions offered here (jre): {JDK_PACKAGE_VERSION}" in out and "Nothing was changed." in out
    assert jdk_state(lab) == before
    # Not even a tarball of the same run is fetched: the version check comes first.
    assert "Download each tarball" not in result.stdout


# -- golang --------------------------------------------------------------------------------------------------


def test_golang_converges_then_reruns_and_check_runs_change_nothing(lab, runtimes):
    (first, recap1), (second, recap2), (check, recap3) = runtimes["go"]["runs"]
    converged_ok(first, recap1, GO_HOST)
    assert recap1[GO_HOST]["changed"] > 0
    converged_ok(second, recap2, GO_HOST)
    assert recap2[GO_HOST]["changed"] == 0, second.stdout[-3000:]
    converged_ok(check, recap3, GO_HOST)
    assert recap3[GO_HOST]["changed"] == 0, check.stdout[-3000:]
    # Converged with the OS package's Go active and the tarball's installed next to it.
    version = runtimes["go"]["version"]
    assert sh(lab, GO_HOST, "readlink /usr/local/go") == GO_PACKAGE_ROOT
    found = sh(lab, GO_HOST, "bash -lc 'command -v go; go env GOROOT'").splitlines()
    assert found == ["/usr/local/go/bin/go", GO_PACKAGE_ROOT]
    assert sh(lab, GO_HOST, f"/usr/local/go-{version}/bin/go version") == f"go version go{version} linux/amd64"


def test_golang_switch_is_atomic_and_the_new_go_builds(lab, runtimes):
    version = runtimes["go"]["version"]
    files = "/tmp/seedops-golang-watch"
    sh(lab, GO_HOST, f"rm -rf {files} && mkdir {files} && cat > {files}/watch.py << 'EOF'\n{WATCHER}\nEOF\n"
                     f"nohup python3 {files}/watch.py /usr/local {files}/stop {files}/events.json {files}/ready "
                     f"< /dev/null > {files}/log 2>&1 &")
    deadline = time.monotonic() + 120
    while lab.ssh(GO_HOST, f"test -e {files}/ready").returncode != 0:
        assert time.monotonic() < deadline, sh(lab, GO_HOST, f"cat {files}/log")
        time.sleep(0.2)

    variables = {**runtimes["go"]["vars"], "golang_version": version, "golang_extra_versions": [GO_PACKAGE_VERSION]}
    result, recap = play(lab, GO_PLAYBOOK, GO_HOST, variables, "--diff")
    sh(lab, GO_HOST, f"touch {files}/stop")
    deadline = time.monotonic() + 120
    while lab.ssh(GO_HOST, f"test -e {files}/events.json").returncode != 0:
        assert time.monotonic() < deadline, sh(lab, GO_HOST, f"cat {files}/log")
        time.sleep(0.2)
    events = json.loads(sh(lab, GO_HOST, f"cat {files}/events.json; rm -rf {files}"))
    converged_ok(result, recap, GO_HOST)
    assert recap[GO_HOST]["changed"] == 1, "only the link changes: " + result.stdout[-3000:]

    # The mechanism: the name "go" in /usr/local was only ever renamed over (a new link moved onto it), never
    # deleted or created - so at every instant it resolved to the old Go or to the new one.
    on_go = [mask for mask, name in events if name == "go"]
    assert any(mask & IN_MOVED_TO for mask in on_go), events
    assert not any(mask & (IN_DELETE | IN_CREATE) for mask in on_go), events
    # The result: the link, PATH in a login shell, `go version`, and a program built with it.
    assert sh(lab, GO_HOST, "readlink /usr/local/go") == f"/usr/local/go-{version}"
    assert sh(lab, GO_HOST, "bash -lc 'go version'") == f"go version go{version} linux/amd64"
    assert sh(lab, GO_HOST, "bash -lc 'go env GOROOT'") == f"/usr/local/go-{version}"
    out = sh(lab, GO_HOST, "d=$(mktemp -d) && cd $d && printf 'package main\\n\\nimport \"fmt\"\\n\\nfunc main() "
                           "{ fmt.Println(\"hello from go\") }\\n' > main.go && bash -lc 'GO111MODULE=off go build -o "
                           "hello main.go' && ./hello; rc=$?; rm -rf $d; exit $rc")
    assert out == "hello from go"
    # Both versions side by side.
    assert sh(lab, GO_HOST, f"{GO_PACKAGE_ROOT}/bin/go version").startswith("go version go1.19")


def test_golang_tarball_with_a_wrong_checksum_changes_nothing(lab, runtimes):
    before = go_state(lab)
    good = runtimes["go"]["vars"]["golang_tarballs"][0]
    bad = {"version": "1.19.99", "src": good["src"], "checksum": WRONG}
    result, recap = play(lab, GO_PLAYBOOK, GO_HOST, {"golang_version": "1.19.99", "golang_tarballs": [good, bad]})
    out = failed_cleanly(result, recap, GO_HOST)
    assert "golang: could not get the tarball of Go 1.19.99: the controller file " + good["src"] in out, out[-3000:]
    assert f"does not match its checksum: expected {WRONG}" in out
    assert "No Go was installed and the active one is unchanged" in out
    assert go_state(lab) == before
    assert "go-1.19.99" not in before


def test_golang_archive_without_a_go_directory_leaves_nothing_behind(lab, runtimes, tmp_path):
    """A verified archive of the wrong layout fails while unpacking: the temporary tree and the downloaded archive
    are removed, no go-<version> appears, the active Go stays."""
    (tmp_path / "notgo" / "bin").mkdir(parents=True)
    (tmp_path / "notgo" / "bin" / "go").write_text("#!/bin/sh\n")
    archive = tmp_path / "notgo.tar.gz"
    with tarfile.open(archive, "w:gz") as tar:
        tar.add(tmp_path / "notgo", arcname="notgo")
    before = go_state(lab)
    result, recap = play(lab, GO_PLAYBOOK, GO_HOST, {
        "golang_version": "1.0.0", "golang_tarballs": [
            *runtimes["go"]["vars"]["golang_tarballs"],
            {"version": "1.0.0", "src": str(archive), "checksum": "sha256:" + file_sha256(archive)}]})
    assert result.returncode != 0 and recap[GO_HOST]["failed"] == 1, result.stdout[-4000:]
    out = flat(result)
    assert f"golang: installing Go 1.0.0 from {archive} failed: the archive has no executable go/bin/go" in out, out[-3000:]
    assert "The partial tree and the archive were removed; /usr/local/go-1.0.0 was not created" in out
    assert go_state(lab) == before
