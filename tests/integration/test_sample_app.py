"""The sample service, built by its build script and run as a real process on 127.0.0.1."""

import json
import os
import signal
import socket
import subprocess
import tarfile
import threading
import time
import urllib.error
import urllib.request

import pytest

from conftest import REPO_ROOT, file_sha256

APP_DIR = os.path.join(REPO_ROOT, "tests", "fixtures", "app")
ELF_MACHINE = {"amd64": 62, "arm64": 183}


@pytest.fixture(scope="module")
def dist(tmp_path_factory):
    out = tmp_path_factory.mktemp("dist")
    subprocess.run([os.path.join(APP_DIR, "build.sh"), "-o", str(out), "1.2.3"], check=True, capture_output=True)
    subprocess.run([os.path.join(APP_DIR, "build.sh"), "-o", str(out / "broken"), "-p", "linux/amd64", "--broken",
                    "9.9.9"], check=True, capture_output=True)
    return out


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def get(port, path, timeout=10):
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=timeout) as r:
            return r.status, r.read().decode()
    except urllib.error.HTTPError as e:
        return e.code, e.read().decode()


def unpack_binary(dist, version, platform, dest):
    with tarfile.open(dist / f"seedops-app-{version}-linux-{platform}.tar.gz") as tar:
        tar.extractall(dest, filter="data")
    return dest / "bin" / "seedops-app"


def start(binary, env_file, tmp_path):
    log = open(tmp_path / "app.log", "w")
    proc = subprocess.Popen([str(binary), "-env-file", str(env_file)], stdout=log, stderr=log,
                            env={"PATH": os.environ["PATH"]})
    return proc


def wait_until(predicate, timeout=10.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if predicate():
                return True
        except OSError:
            pass
        time.sleep(0.05)
    return False


def test_packages_and_checksums(dist):
    sums = dict(reversed(line.split("  ")) for line in (dist / "SHA256SUMS").read_text().splitlines())
    assert set(sums) == {"seedops-app-1.2.3-linux-amd64.tar.gz", "seedops-app-1.2.3-linux-arm64.tar.gz"}
    for name, digest in sums.items():
        assert file_sha256(dist / name) == digest
        with tarfile.open(dist / name) as tar:
            assert sorted(tar.getnames()) == ["VERSION", "bin", "bin/seedops-app"]
            assert tar.extractfile("VERSION").read() == b"1.2.3\n"
            elf = tar.extractfile("bin/seedops-app").read(20)
            assert elf[:4] == b"\x7fELF"
            assert int.from_bytes(elf[18:20], "little") == ELF_MACHINE[name.split("-")[-1][:-7]]


def test_build_is_reproducible(dist, tmp_path):
    subprocess.run([os.path.join(APP_DIR, "build.sh"), "-o", str(tmp_path), "-p", "linux/amd64", "1.2.3"],
                   check=True, capture_output=True)
    name = "seedops-app-1.2.3-linux-amd64.tar.gz"
    assert (tmp_path / name).read_bytes() == (dist / name).read_bytes()


def test_build_rejects_a_bad_version():
    r = subprocess.run([os.path.join(APP_DIR, "build.sh"), "../1.0"], capture_output=True, text=True, check=False)
    assert r.returncode == 2 and "VERSION '../1.0'" in r.stderr


def test_lifecycle_health_version_reload_and_graceful_stop(dist, tmp_path):
    binary = unpack_binary(dist, "1.2.3", "amd64", tmp_path)
    port = free_port()
    env_file = tmp_path / "env"
    env_file.write_text(f"BIND=127.0.0.1\nPORT={port}\nLOG_LEVEL=debug\nSTARTUP_DELAY=700ms\nDRAIN_DELAY=300ms\n")
    proc = start(binary, env_file, tmp_path)
    try:
        assert wait_until(lambda: get(port, "/healthz")[0] in (200, 503))
        code, body = get(port, "/healthz")
        assert (code, body.strip()) == (503, "starting")
        assert wait_until(lambda: get(port, "/healthz")[0] == 200)
        version = json.loads(get(port, "/version")[1])
        assert version["version"] == "1.2.3" and version["platform"] == "linux/amd64"
        assert version["pid"] == proc.pid and version["log_level"] == "debug"

        # SIGHUP re-reads the file: same process, new log level and message.
        env_file.write_text(f"BIND=127.0.0.1\nPORT={port}\nLOG_LEVEL=info\nAPP_MESSAGE=reloaded\nDRAIN_DELAY=300ms\n")
        proc.send_signal(signal.SIGHUP)
        assert wait_until(lambda: json.loads(get(port, "/version")[1])["log_level"] == "info")
        assert json.loads(get(port, "/version")[1])["pid"] == proc.pid
        assert get(port, "/")[1].startswith("reloaded version=1.2.3")

        # SIGTERM: health turns 503 at once, the slow in-flight request still completes, exit 0.
        slow = {}
        thread = threading.Thread(target=lambda: slow.update(result=get(port, "/?delay=1500ms")))
        thread.start()
        time.sleep(0.2)
        proc.send_signal(signal.SIGTERM)
        assert wait_until(lambda: get(port, "/healthz")[0] == 503, timeout=0.3)
        thread.join(10)
        assert slow["result"][0] == 200 and "version=1.2.3" in slow["result"][1]
        assert proc.wait(10) == 0
        with pytest.raises(OSError):
            get(port, "/healthz", timeout=1)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def test_broken_build_serves_but_never_turns_healthy(dist, tmp_path):
    binary = unpack_binary(dist / "broken", "9.9.9", "amd64", tmp_path)
    port = free_port()
    env_file = tmp_path / "env"
    env_file.write_text(f"BIND=127.0.0.1\nPORT={port}\n")
    proc = start(binary, env_file, tmp_path)
    try:
        assert wait_until(lambda: get(port, "/")[0] == 200)
        time.sleep(0.3)
        assert get(port, "/healthz") == (503, "broken build\n")
    finally:
        proc.terminate()
        proc.wait(10)


def test_bad_configuration_exits_with_a_clear_message(dist, tmp_path):
    binary = unpack_binary(dist, "1.2.3", "amd64", tmp_path)
    env_file = tmp_path / "env"
    env_file.write_text("PORT=not-a-port\n")
    r = subprocess.run([str(binary), "-env-file", str(env_file)], capture_output=True, text=True, timeout=10, check=False)
    assert r.returncode == 2 and "PORT must be a number from 1 to 65535" in r.stderr
