"""The seedops.deploy lab: bare Debian 12 servers as systemd containers, reached over real SSH.

Usage: lab.py [--name NAME] {up,down,status} [options]

  up      bring the fleet up (idempotent; seconds when it already runs) and write its inventory
  down    remove the fleet's containers, network and state
  status  list hosts, addresses and ports

Each host runs systemd as PID 1 and sshd, with python3 and sudo, and a login user `debian`
with passwordless sudo. `up --arm64 N` adds N arm64 app hosts (arm1..armN), run under qemu-user
emulation (binfmt_misc): slow, and without nftables (qemu-user has no netfilter netlink). SSH,
the lb's HTTP port and the repo's HTTP port are published on 127.0.0.1 only. The state (SSH key, known_hosts, inventory.yml, ssh_config) lives in
.lab/NAME/ at the repository root, or under $SEEDOPS_LAB_STATE.
"""

from __future__ import annotations

import argparse
import contextlib
import fcntl
import hashlib
import io
import json
import os
import shutil
import socket
import subprocess
import sys
import tarfile
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

HERE = os.path.dirname(os.path.abspath(__file__))
REPO_ROOT = os.path.dirname(os.path.dirname(HERE))
IMAGE_CONTEXT = os.path.join(HERE, "image")

DEFAULT_NAME = "seedops-lab"
DEFAULT_APPS = 3
MAX_APPS = 16
MAX_ARM64 = 2
DEFAULT_BASE_PORT = 42200
LOGIN_USER = "debian"
BASE_IMAGE = "debian:bookworm"
# The arm64 base: built with debootstrap --arch=arm64, with the host image's packages already in it, so the host
# image's build runs no emulated apt.
ARM64_BASE_IMAGE = "seedops-lab/debian-arm64:bookworm"
HOST_PACKAGES = ["systemd", "systemd-sysv", "dbus", "openssh-server", "python3", "sudo", "ca-certificates", "iproute2"]
QEMU_BINFMT = "/proc/sys/fs/binfmt_misc/qemu-aarch64"
HOST_IMAGE_REPO = "seedops-lab/host"
LABEL = "io.seedops.lab"  # value: the lab's name
SPEC_LABEL = "io.seedops.lab.spec"  # value: hash of everything a container was created from
DOCKERD_LOG = "/var/log/seedops-lab-dockerd.log"


class LabError(Exception):
    """A failure to report in one clear message; exit status 2 for bad input, 1 otherwise."""

    def __init__(self, message: str, status: int = 1):
        super().__init__(message)
        self.status = status


def say(message: str) -> None:
    print(f"lab: {message}", flush=True)


# ---------------------------------------------------------------------------------------------
# Pure logic (unit-tested)
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class HostSpec:
    """One lab host: its inventory name, group and the ports it publishes on 127.0.0.1."""

    name: str
    group: str
    container: str
    ports: dict = field(default_factory=dict)  # container port ("22/tcp") -> host port
    arch: str = "amd64"  # arm64: run under qemu-user emulation

    @property
    def ssh_port(self) -> int:
        return self.ports["22/tcp"]

    @property
    def http_port(self) -> int | None:
        return self.ports.get("80/tcp")


def validate_name(name: str) -> str:
    ok = name and len(name) <= 40 and name[0].isalnum() and all(c.isalnum() or c in "-_" for c in name)
    if not ok:
        raise LabError(
            f"lab name {name!r} is not usable: use 1-40 letters, digits, '-' or '_', starting with a letter or digit",
            2,
        )
    return name


def plan_hosts(name: str, apps: int, base_port: int, arm64: int = 0) -> list[HostSpec]:
    """The fleet: lb1 and repo1 (SSH + HTTP published; repo1 also its image registry), app1..appN and arm1..armM
    (arm64, in group app; SSH published).

    Ports: lb1 ssh base+1, repo1 ssh base+2, appK ssh base+10+K, armK ssh base+50+K, lb1 http base+80,
    repo1 http base+81, repo1 registry (5000, TLS) base+82.
    """
    if not 1 <= apps <= MAX_APPS:
        raise LabError(f"--apps must be between 1 and {MAX_APPS}, got {apps}", 2)
    if not 0 <= arm64 <= MAX_ARM64:
        raise LabError(f"--arm64 must be between 0 and {MAX_ARM64} (emulated hosts are slow), got {arm64}", 2)
    if not 1024 <= base_port <= 65535 - 100:
        raise LabError(f"--base-port must be between 1024 and {65535 - 100}, got {base_port}", 2)
    hosts = [
        HostSpec("lb1", "lb", f"{name}-lb1", {"22/tcp": base_port + 1, "80/tcp": base_port + 80}),
        HostSpec("repo1", "repo", f"{name}-repo1",
                 {"22/tcp": base_port + 2, "80/tcp": base_port + 81, "5000/tcp": base_port + 82}),
    ]
    hosts += [HostSpec(f"app{k}", "app", f"{name}-app{k}", {"22/tcp": base_port + 10 + k}) for k in range(1, apps + 1)]
    hosts += [HostSpec(f"arm{k}", "app", f"{name}-arm{k}", {"22/tcp": base_port + 50 + k}, "arm64")
              for k in range(1, arm64 + 1)]
    return hosts


def spec_hash(host: HostSpec, image_id: str, network: str) -> str:
    """Everything a container is created from; a change means the container is recreated."""
    doc = {"host": host.name, "group": host.group, "ports": host.ports, "image": image_id, "network": network, "v": 1}
    if host.arch != "amd64":
        doc["arch"] = host.arch
    return hashlib.sha256(json.dumps(doc, sort_keys=True).encode()).hexdigest()[:16]


def parse_apt_sources(files: dict) -> list[dict]:
    """Binary package sources from apt's files: {path: text} -> [{uri, suites, components}].

    Reads one-line `.list` entries (`deb [opts] URI SUITE COMPONENT...`) and deb822 `.sources`
    stanzas (Types/URIs/Suites/Components, `Enabled: no` honoured); skips deb-src and comments.
    """
    entries = []
    for path, text in files.items():
        if path.endswith(".sources"):
            for stanza in _deb822_stanzas(text):
                if "deb" not in stanza.get("types", "").split():
                    continue
                if stanza.get("enabled", "yes").lower() in ("no", "false", "0"):
                    continue
                for uri in stanza.get("uris", "").split():
                    entries.append({
                        "uri": uri.rstrip("/"),
                        "suites": stanza.get("suites", "").split(),
                        "components": stanza.get("components", "").split(),
                    })
        else:
            for line in text.splitlines():
                line = line.split("#", 1)[0].strip()
                words = line.split()
                if not words or words[0] != "deb":
                    continue
                words = words[1:]
                if words and words[0].startswith("["):
                    while words and not words[0].endswith("]"):
                        words = words[1:]
                    words = words[1:]
                if len(words) >= 2:
                    entries.append({"uri": words[0].rstrip("/"), "suites": [words[1]], "components": words[2:]})
    return entries


def _deb822_stanzas(text: str):
    stanza: dict = {}
    key = None
    for raw in text.splitlines() + [""]:
        if raw.startswith("#"):
            continue
        if not raw.strip():
            if stanza:
                yield stanza
            stanza, key = {}, None
            continue
        if raw[0] in " \t" and key:
            stanza[key] += " " + raw.strip()
            continue
        if ":" in raw:
            key, value = raw.split(":", 1)
            key = key.strip().lower()
            stanza[key] = value.strip()
    return


def pick_debian_mirror(entries: list[dict], suite: str = "bookworm") -> str | None:
    """The Debian archive to debootstrap SUITE from: an entry naming the suite itself; else any
    Debian archive (a URI ending in /debian) since it carries every current suite. Security and
    update suites are not full archives and are skipped."""

    def is_main_archive(entry):
        return not entry["uri"].endswith("-security") and "security" not in entry["uri"].rsplit("/", 1)[-1]

    for entry in entries:
        if suite in entry["suites"] and is_main_archive(entry):
            return entry["uri"]
    for entry in entries:
        if entry["uri"].endswith("/debian") and is_main_archive(entry):
            return entry["uri"]
    return None


GROUP_VARS = os.path.join(os.path.dirname(os.path.abspath(__file__)), "group_vars")


def link_group_vars(state_dir: str) -> None:
    """group_vars/ beside the inventory -> tests/lab/group_vars (the demo's settings), as a user's inventory
    directory would have them."""
    link = os.path.join(state_dir, "group_vars")
    if os.path.islink(link) and os.readlink(link) == GROUP_VARS:
        return
    tmp = f"{link}.tmp-{os.getpid()}"
    os.symlink(GROUP_VARS, tmp)
    os.replace(tmp, link)


def render_inventory(lab: str, hosts: list[HostSpec], addresses: dict, state_dir: str) -> dict:
    """The Ansible inventory (as a dict for YAML) with the same groups as inventory.example."""
    key = os.path.join(state_dir, "id_ed25519")
    known = os.path.join(state_dir, "known_hosts")
    inventory = {
        "all": {
            "vars": {
                "ansible_host": "127.0.0.1",
                "ansible_user": LOGIN_USER,
                "ansible_python_interpreter": "/usr/bin/python3",
                "ansible_ssh_private_key_file": key,
                "ansible_ssh_common_args": (
                    f"-o UserKnownHostsFile={known} -o StrictHostKeyChecking=yes -o IdentitiesOnly=yes "
                    # A paused or vanished host shows up as unreachable within seconds, not never.
                    "-o ServerAliveInterval=2 -o ServerAliveCountMax=3"
                ),
                "seedops_lab_name": lab,
                # The checkout the lab was made from: the demo settings find the sample service's packages here.
                "seedops_lab_repo_root": os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))),
            },
            "children": {"app": {"hosts": {}}, "lb": {"hosts": {}}, "repo": {"hosts": {}}},
        }
    }
    for host in hosts:
        entry = {"ansible_port": host.ssh_port, "seedops_lab_address": addresses.get(host.name, "")}
        if host.arch != "amd64":
            # Emulated (qemu-user): no netfilter netlink, so no nftables firewall (group_vars/all.yml's prepare_roles).
            entry["seedops_lab_emulated"] = True
        if host.http_port:
            entry["seedops_lab_http_port"] = host.http_port
        inventory["all"]["children"][host.group]["hosts"][host.name] = entry
    return inventory


def render_known_hosts(hosts: list[HostSpec], host_keys: dict) -> str:
    return "".join(f"[127.0.0.1]:{h.ssh_port} {host_keys[h.name]}\n" for h in hosts if h.name in host_keys)


def render_ssh_config(hosts: list[HostSpec], state_dir: str) -> str:
    out = [f"# ssh -F {os.path.join(state_dir, 'ssh_config')} app1\n"]
    for h in hosts:
        out.append(
            f"Host {h.name}\n  HostName 127.0.0.1\n  Port {h.ssh_port}\n  User {LOGIN_USER}\n"
            f"  IdentityFile {os.path.join(state_dir, 'id_ed25519')}\n  IdentitiesOnly yes\n"
            f"  UserKnownHostsFile {os.path.join(state_dir, 'known_hosts')}\n  StrictHostKeyChecking yes\n"
            "  LogLevel ERROR\n"
        )
    return "".join(out)


def context_digest(path: str, base_image_id: str, build_args: dict | None = None) -> str:
    """Hash of the image build context, the base image and the build arguments: the host image's cache key."""
    h = hashlib.sha256(base_image_id.encode())
    if build_args:
        h.update(json.dumps(build_args, sort_keys=True).encode())
    for root, dirs, files in os.walk(path):
        dirs.sort()
        for name in sorted(files):
            full = os.path.join(root, name)
            h.update(os.path.relpath(full, path).encode() + b"\0")
            with open(full, "rb") as f:
                h.update(f.read())
    return h.hexdigest()[:12]


def write_atomic(path: str, data: str | bytes, mode: int = 0o644) -> None:
    """Write a file through a temp file in the same directory, fsync, rename."""
    directory = os.path.dirname(path)
    fd, tmp = tempfile.mkstemp(dir=directory, prefix=".tmp-")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data.encode() if isinstance(data, str) else data)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, mode)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


RESERVED_PORTS = "/proc/sys/net/ipv4/ip_local_reserved_ports"


def merge_port_ranges(current: str, low: int, high: int) -> str:
    """The kernel's reserved ports (`ip_local_reserved_ports`: "a,b-c,...") with low-high added."""
    spans = [(low, high)]
    for part in current.replace("\n", "").split(","):
        part = part.strip()
        if part:
            first, _dash, last = part.partition("-")
            spans.append((int(first), int(last or first)))
    merged = []
    for first, last in sorted(spans):
        if merged and first <= merged[-1][1] + 1:
            merged[-1] = (merged[-1][0], max(merged[-1][1], last))
        else:
            merged.append((first, last))
    return ",".join(f"{a}-{b}" if a != b else str(a) for a, b in merged)


def reserve_ports(low: int, high: int, path: str = RESERVED_PORTS) -> bool:
    """Keep the kernel from handing out low-high as the local port of an outgoing connection: the lab's published
    ports lie inside the usual ephemeral range (32768-60999), so an SSH or HTTP client of an earlier run could hold
    one when the lab grows, and Docker could not publish it. Needs root; returns whether the range is reserved."""
    try:
        with open(path, encoding="ascii") as f:
            current = f.read()
        wanted = merge_port_ranges(current, low, high)
        if wanted != current.strip():
            with open(path, "w", encoding="ascii") as f:
                f.write(wanted)
    except OSError:
        return False
    return True


# The CPU weight of the cgroup the Docker engine puts every container in (its cgroup parent, /docker with the cgroupfs
# driver): eight times the default, cgroup v1's cpu.shares (default 1024) or v2's cpu.weight (default 100). The lab's
# hosts stand for machines of their own, but the kernel weighs that group, every container together, against each of
# the controller's processes alone: with `make test`'s checks (sanity, the older cores' sanity, the arm64 image's
# emulated debootstrap) running beside two playbooks, the hosts' sshd got so little CPU that a login timed out (two
# site runs beside three busy processes at nice 10, 2026-12-06: both failed at once with the default, both passed in
# 457 s with this).
HOSTS_CPU_WEIGHT = {"cpu.shares": 8192, "cpu.weight": 800}


def cgroup_cpu_file(proc_cgroup: str, container_id: str, root: str = "/sys/fs/cgroup") -> str | None:
    """From a container's /proc/PID/cgroup: the file that sets the CPU weight of the group its cgroup sits in (the
    engine's cgroup parent, which every container of the engine shares: /docker with the cgroupfs driver), or None when
    that is the root or no path names the container. cgroup v1's cpu hierarchy comes first (its directory named after
    its controllers, "cpu" or "cpu,cpuacct"), then v2's unified one."""
    entries = [line.split(":", 2) for line in proc_cgroup.splitlines() if line.count(":") >= 2]
    found = [(os.path.join(root, controllers), path, "cpu.shares") for _id, controllers, path in entries
             if "cpu" in controllers.split(",")]
    found += [(root, path, "cpu.weight") for hierarchy, controllers, path in entries if (hierarchy, controllers) == ("0", "")]
    if not found:
        return None
    base, path, name = found[0]
    parts = path.split("/")
    own = next((n for n, part in enumerate(parts) if container_id in part), 0)
    parent = "/".join(parts[:own])
    return os.path.join(base + parent, name) if parent not in ("", "/") else None


def weigh_hosts(container) -> None:
    """Give the engine's container group HOSTS_CPU_WEIGHT (see there) once a host runs; needs root and a cgroupfs
    layout (with the systemd driver the containers' group is a slice systemd manages: left alone)."""
    pid = container.attrs.get("State", {}).get("Pid")
    try:
        with open(f"/proc/{pid}/cgroup", encoding="ascii") as f:
            path = cgroup_cpu_file(f.read(), container.id)
        if path is None or ".slice" in path:
            return
        with open(path, encoding="ascii") as f:
            current = int(f.read().split()[0])
        wanted = HOSTS_CPU_WEIGHT[os.path.basename(path)]
        if current < wanted:
            with open(path, "w", encoding="ascii") as f:
                f.write(str(wanted))
            say(f"the Docker engine's containers, together: CPU weight {wanted}, was {current} ({path})")
    except (OSError, ValueError):
        pass


def port_span(name: str, base_port: int) -> tuple[int, int]:
    """The lowest and highest port a lab at base_port publishes at its largest (MAX_APPS, MAX_ARM64)."""
    every = [p for h in plan_hosts(name, MAX_APPS, base_port, MAX_ARM64) for p in h.ports.values()]
    return min(every), max(every)


def port_is_free(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def read_file(container, path: str) -> str:
    """A small text file in the container, through the archive API (a tar stream of that one file)."""
    stream, _stat = container.get_archive(path)
    with tarfile.open(fileobj=io.BytesIO(b"".join(stream))) as archive:
        member = archive.extractfile(archive.getmembers()[0])
        return member.read().decode(errors="replace") if member else ""


def generate_keypair() -> tuple[bytes, bytes]:
    """An ed25519 key pair in OpenSSH format (private, public) made with `cryptography`."""
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    key = Ed25519PrivateKey.generate()
    private = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.OpenSSH, serialization.NoEncryption()
    )
    public = key.public_key().public_bytes(serialization.Encoding.OpenSSH, serialization.PublicFormat.OpenSSH)
    return private, public + b" seedops-lab\n"


# ---------------------------------------------------------------------------------------------
# The Docker engine and images
# ---------------------------------------------------------------------------------------------


def _import_docker():
    try:
        import docker  # noqa: F401  (the Docker SDK for Python)
    except ImportError:
        raise LabError(
            "the Docker SDK for Python is missing: run the lab from the project's virtual environment "
            "(make venv, then .venv/bin/python tests/lab/lab.py ...) or pip install docker"
        )
    return docker


def is_debian_like() -> bool:
    return os.path.exists("/etc/debian_version")


def connect(start_engine: bool = True):
    """A Docker client. Starts the local engine when none answers (installing docker.io on
    Debian when missing); an explicit DOCKER_HOST is never second-guessed."""
    docker = _import_docker()

    def try_connect():
        try:
            client = docker.from_env(timeout=300)
            client.ping()
            return client
        except Exception as exc:  # the SDK raises several kinds for "nothing is listening"
            try_connect.error = exc
            return None

    client = try_connect()
    if client:
        return client
    if os.environ.get("DOCKER_HOST"):
        raise LabError(
            f"no Docker engine answers at DOCKER_HOST={os.environ['DOCKER_HOST']} ({try_connect.error}); "
            "start it, or unset DOCKER_HOST to use the local engine"
        )
    if not start_engine:
        raise LabError(f"no Docker engine is running ({try_connect.error})")
    if not shutil.which("dockerd"):
        if not is_debian_like():
            raise LabError(
                "no Docker engine is running and this is not a Debian-family system: install Docker Engine "
                "(the docker.io or docker-ce package of your distribution), start it, and run this again"
            )
        if os.geteuid() != 0:
            raise LabError("no Docker engine is installed; as root run: apt-get install docker.io (or rerun as root)")
        say("no Docker engine installed: installing Debian's docker.io (apt-get install docker.io)")
        apt_install(["docker.io"])
    if os.geteuid() != 0:
        raise LabError("the Docker engine is installed but not running; start it (as root: dockerd, or systemctl start docker)")
    if os.path.isdir("/run/systemd/system"):
        say("Docker engine not running: starting it with systemctl start docker")
        subprocess.run(["systemctl", "start", "docker"], check=False)
    else:
        say(f"Docker engine not running: starting dockerd in the background (log: {DOCKERD_LOG})")
        with open(DOCKERD_LOG, "ab") as log:
            subprocess.Popen(["dockerd"], stdout=log, stderr=log, stdin=subprocess.DEVNULL, start_new_session=True)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        client = try_connect()
        if client:
            say("Docker engine is up")
            return client
        time.sleep(0.5)
    raise LabError(f"started the Docker engine but it does not answer after 60 s; see {DOCKERD_LOG}")


def apt_install(packages: list[str]) -> None:
    env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
    missing_lists = not any(n.endswith("_Packages") for n in os.listdir("/var/lib/apt/lists"))
    if missing_lists:
        subprocess.run(["apt-get", "update", "-qq"], check=True, env=env)
    result = subprocess.run(["apt-get", "install", "-y", "-qq", *packages], env=env, check=False)
    if result.returncode != 0 and not missing_lists:
        subprocess.run(["apt-get", "update", "-qq"], check=True, env=env)
        result = subprocess.run(["apt-get", "install", "-y", "-qq", *packages], env=env, check=False)
    if result.returncode != 0:
        raise LabError(f"apt-get install {' '.join(packages)} failed (exit {result.returncode}); see the output above")


def read_apt_sources() -> dict:
    files = {}
    candidates = ["/etc/apt/sources.list"]
    with contextlib.suppress(FileNotFoundError):
        candidates += sorted(os.path.join("/etc/apt/sources.list.d", n) for n in os.listdir("/etc/apt/sources.list.d"))
    for path in candidates:
        if path.endswith((".list", ".sources")) and os.path.isfile(path):
            with open(path, encoding="utf-8", errors="replace") as f:
                files[path] = f.read()
    return files


def ensure_base_image(client, pull: bool, mirror: str | None):
    docker = _import_docker()
    with contextlib.suppress(docker.errors.ImageNotFound):
        return client.images.get(BASE_IMAGE)
    if pull:
        say(f"{BASE_IMAGE} not present: pulling it")
        try:
            return client.images.pull(BASE_IMAGE)
        except docker.errors.APIError as exc:
            say(f"pull failed ({exc.explanation or exc}); building it with debootstrap instead")
    return debootstrap_import(client, mirror, BASE_IMAGE, [], "about a minute")


def debootstrap_import(client, mirror: str | None, image: str, extra: list[str], takes: str):
    """debootstrap a minimal bookworm (with `extra` arguments) from `mirror` (default: this machine's Debian archive)
    and import it into the engine as `image`; returns the image."""
    if not mirror:
        mirror = pick_debian_mirror(parse_apt_sources(read_apt_sources()))
    if not mirror:
        raise LabError(
            f"cannot build {image}: no Debian archive is configured in /etc/apt/sources.list(.d); "
            "give one with --mirror URL or SEEDOPS_LAB_MIRROR", 2
        )
    if os.geteuid() != 0:
        raise LabError(f"{image} is not present and building it with debootstrap needs root")
    if not shutil.which("debootstrap"):
        if not is_debian_like():
            raise LabError(f"{image} is not present and debootstrap is missing: install debootstrap")
        say("debootstrap is missing: installing it (apt-get install debootstrap)")
        apt_install(["debootstrap"])
    say(f"{image} not present: building it with {' '.join(['debootstrap', *extra[:1]])} from {mirror} ({takes})")
    work = tempfile.mkdtemp(prefix="seedops-lab-rootfs-", dir="/var/tmp")
    try:
        root = os.path.join(work, "rootfs")
        result = subprocess.run(
            ["debootstrap", "--variant=minbase", *extra, "bookworm", root, mirror],
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, check=False,
        )
        if result.returncode != 0:
            tail = "\n".join(result.stdout.splitlines()[-15:])
            raise LabError(f"debootstrap from {mirror} failed (exit {result.returncode}):\n{tail}")
        for sub in ("var/cache/apt/archives", "var/lib/apt/lists"):
            for entry in os.listdir(os.path.join(root, sub)):
                path = os.path.join(root, sub, entry)
                if os.path.isfile(path):
                    os.unlink(path)
        tarball = os.path.join(work, "rootfs.tar")
        subprocess.run(["tar", "-C", root, "--numeric-owner", "-cf", tarball, "."], check=True)
        repository, tag = image.rsplit(":", 1)
        client.api.import_image_from_file(tarball, repository=repository, tag=tag, changes=['CMD ["bash"]'])
    finally:
        shutil.rmtree(work, ignore_errors=True)
    say(f"built and imported {image}")
    return client.images.get(image)


def ensure_binfmt() -> None:
    """arm64 binaries run here through qemu-user-static, registered with binfmt_misc with the flags F (the kernel
    opens the interpreter at registration, so containers use it without a copy of their own) and C (a setuid binary
    such as sudo runs with its owner's credentials). Debian registers it without C: the lab registers it again."""
    def flags():
        with contextlib.suppress(OSError):
            with open(QEMU_BINFMT, encoding="utf-8") as f:
                text = f.read()
            if text.startswith("enabled"):
                return next((line.split(":", 1)[1].strip() for line in text.splitlines() if line.startswith("flags:")),
                            "")
        return None

    present = flags()
    if present is not None and "F" in present and "C" in present:
        return
    if os.geteuid() != 0:
        raise LabError("arm64 hosts need qemu-user-static registered with binfmt_misc (flags F and C): run lab.py as root")
    conf = "/usr/lib/binfmt.d/qemu-aarch64.conf"
    if not os.path.exists(conf):
        if not is_debian_like():
            raise LabError("arm64 hosts need qemu-user-static (its binfmt registration, " + conf + ")")
        say("qemu-user-static is missing: installing it (apt-get install qemu-user-static)")
        apt_install(["qemu-user-static"])
    if not os.path.exists("/proc/sys/fs/binfmt_misc/register"):
        subprocess.run(["mount", "-t", "binfmt_misc", "binfmt_misc", "/proc/sys/fs/binfmt_misc"], check=True)
    if flags() is not None:
        with open(QEMU_BINFMT, "w", encoding="utf-8") as f:
            f.write("-1")
    with open(conf, encoding="utf-8") as f:
        line = next(line.strip() for line in f if line.strip() and not line.startswith("#"))
    head, _sep, old_flags = line.rpartition(":")
    with open("/proc/sys/fs/binfmt_misc/register", "w", encoding="utf-8") as f:
        f.write(head + ":" + "".join(sorted(set(old_flags) | {"C", "F", "O"})))
    say(f"registered qemu-aarch64 with binfmt_misc (flags {flags()}; was {present or 'not registered'})")


def ensure_arm64_base_image(client, mirror: str | None):
    docker = _import_docker()
    ensure_binfmt()
    with contextlib.suppress(docker.errors.ImageNotFound):
        return client.images.get(ARM64_BASE_IMAGE)
    return debootstrap_import(client, mirror, ARM64_BASE_IMAGE, ["--arch=arm64", "--include=" + ",".join(HOST_PACKAGES)],
                              "emulated: about 5 minutes")


def ensure_host_image(client, base, verbose: bool, arch: str = "amd64"):
    docker = _import_docker()
    # The arm64 base has the packages already (ARM64_BASE_IMAGE): no emulated apt-get.
    args = ({"BASE": BASE_IMAGE, "PACKAGES": " ".join(HOST_PACKAGES)} if arch == "amd64"
            else {"BASE": ARM64_BASE_IMAGE, "EMULATED": "1"})
    tag = f"{HOST_IMAGE_REPO}:{context_digest(IMAGE_CONTEXT, base.id, args)}"
    with contextlib.suppress(docker.errors.ImageNotFound):
        return client.images.get(tag)
    say(f"building the host image {tag} (systemd, sshd, python3, sudo){' for arm64' if arch != 'amd64' else ''}")
    image = build_image(client, IMAGE_CONTEXT, tag, args, verbose, "the host image")
    if arch == "amd64":
        image.tag(HOST_IMAGE_REPO, "latest")
    return image


def build_image(client, context: str, tag: str, args: dict, verbose: bool, what: str):
    """Build the Dockerfile in `context` as `tag` with the build arguments `args`; returns the image. A failed build
    raises LabError naming `what`, with the build's last lines."""
    errors = []
    log_tail = []
    for chunk in client.api.build(path=context, tag=tag, rm=True, forcerm=True, decode=True, buildargs=args):
        if "error" in chunk:
            errors.append(chunk["error"].strip())
        text = chunk.get("stream", "").rstrip()
        if text:
            log_tail = (log_tail + [text])[-20:]
            if verbose:
                print(text, flush=True)
    if errors:
        raise LabError(f"building {what} failed: " + "; ".join(errors) + "\n" + "\n".join(log_tail))
    return client.images.get(tag)


# ---------------------------------------------------------------------------------------------
# The lab
# ---------------------------------------------------------------------------------------------


class Lab:
    def __init__(self, name: str, state_root: str | None = None):
        self.name = validate_name(name)
        root = state_root or os.environ.get("SEEDOPS_LAB_STATE") or os.path.join(REPO_ROOT, ".lab")
        self.state_dir = os.path.join(os.path.abspath(root), self.name)
        self.network = name

    # -- helpers -------------------------------------------------------------------------------

    @contextlib.contextmanager
    def locked(self):
        """One lab command at a time per lab; the lock file goes when the lab has no state."""
        root = os.path.dirname(self.state_dir)
        created_root = not os.path.isdir(root)
        os.makedirs(root, exist_ok=True)
        lock = os.path.join(root, f".{self.name}.lock")
        with open(lock, "w") as f:
            try:
                fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError:
                say(f"another lab command is working on {self.name}; waiting for it")
                fcntl.flock(f, fcntl.LOCK_EX)
            try:
                yield
            finally:
                if not os.path.isdir(self.state_dir):
                    with contextlib.suppress(OSError):
                        os.unlink(lock)
                    if created_root:
                        with contextlib.suppress(OSError):
                            os.rmdir(root)

    def containers(self, client) -> dict:
        found = client.containers.list(all=True, filters={"label": f"{LABEL}={self.name}"})
        return {c.name: c for c in found}

    def check_ports(self, client, hosts: list[HostSpec]) -> None:
        """Every port the fleet needs is free or already held by this lab; else name the holders."""
        ours = self.containers(client)
        held_by_ours = set()
        holders = {}
        for c in client.containers.list():
            for bindings in (c.attrs.get("HostConfig", {}).get("PortBindings") or {}).values():
                for b in bindings or []:
                    if b.get("HostPort"):
                        port = int(b["HostPort"])
                        if c.name in ours:
                            held_by_ours.add(port)
                        else:
                            holders[port] = c.name
        problems = []
        for host in hosts:
            for inner, port in host.ports.items():
                if port in held_by_ours:
                    continue
                if port in holders:
                    problems.append(f"127.0.0.1:{port} (for {host.name} {inner}) is published by container {holders[port]}")
                elif not port_is_free(port):
                    problems.append(f"127.0.0.1:{port} (for {host.name} {inner}) is in use by another program")
        if problems:
            raise LabError(
                "cannot bring the lab up, ports are taken:\n  - " + "\n  - ".join(problems)
                + "\nFree them, or pick other ports with --base-port N (or SEEDOPS_LAB_BASE_PORT). Nothing was changed.",
                2,
            )

    def ensure_network(self, client):
        docker = _import_docker()
        try:
            net = client.networks.get(self.network)
        except docker.errors.NotFound:
            say(f"created network {self.network}")
            return client.networks.create(self.network, driver="bridge", labels={LABEL: self.name})
        if (net.attrs.get("Labels") or {}).get(LABEL) != self.name:
            raise LabError(
                f"a Docker network named {self.network} exists and was not made by this lab; remove it "
                f"(docker network rm {self.network}) or use another --name", 2
            )
        return net

    def run_host(self, client, host: HostSpec, image, spec: str):
        return client.containers.run(
            image.id,
            name=host.container,
            hostname=host.name,
            detach=True,
            labels={LABEL: self.name, SPEC_LABEL: spec, f"{LABEL}.host": host.name, f"{LABEL}.group": host.group},
            network=self.network,
            ports={inner: ("127.0.0.1", port) for inner, port in host.ports.items()},
            cap_add=["SYS_ADMIN", "NET_ADMIN"],
            cgroupns="host",
            volumes={"/sys/fs/cgroup": {"bind": "/sys/fs/cgroup", "mode": "rw"}},
            tmpfs={"/run": "", "/run/lock": ""},
            security_opt=["seccomp=unconfined", "apparmor=unconfined"],
            environment={"container": "docker"},
            restart_policy={"Name": "unless-stopped"},
            stop_signal="SIGRTMIN+3",
            command=["/lib/systemd/systemd"],
        )

    @staticmethod
    def wait_booted(container, timeout: int = 90) -> None:
        # Until systemd listens on its private socket, systemctl says "Failed to connect to bus". The socket's file is
        # not enough: a container that dockerd restarted at its own start once had the file and still refused the
        # connection for a while (ENOENT). Before systemd (PID 1 here) has made /run/systemd/system on the fresh /run,
        # systemctl says "offline" at once (seen in CI: a host recreated on other ports, exit 1 after 0 s). So ask
        # again until systemd answers with another state, within the timeout.
        script = (
            f"end=$(( $(date +%s) + {timeout} )); "
            "while :; do "
            f"out=$(timeout {timeout} systemctl is-system-running --wait 2>&1); code=$?; "
            'case "$out" in *"Failed to connect to bus"*|offline) [ "$(date +%s)" -lt "$end" ] || break; sleep 0.2;; '
            "*) break;; esac; "
            'done; echo "$out"; exit $code'
        )
        started = time.monotonic()
        code, out = container.exec_run(["sh", "-c", script])
        # The exit code decides: `is-system-running --wait` exits 0 only once the state is running. The output of an
        # exec that ends quickly may be lost on its way back (moby/moby#27289; seen twice in one CI run: exit 0, no
        # output), so it is only what the error below shows.
        if code == 0:
            return
        state = out.decode(errors="replace").strip().splitlines()[-1:] or ["?"]
        # What the next look needs: how the wait ended, the state now, the jobs systemd still has queued.
        container.reload()
        now = container.exec_run(["systemctl", "is-system-running"]).output.decode(errors="replace").strip()
        jobs = container.exec_run(["systemctl", "list-jobs", "--no-legend", "--plain"]).output
        failed = container.exec_run(["systemctl", "--failed", "--no-legend", "--plain"])
        raise LabError(
            f"{container.name}: systemd did not reach 'running' (state: {state[0]}, wait exit {code} after "
            f"{time.monotonic() - started:.0f} s; container {container.status}, restarts "
            f"{container.attrs.get('RestartCount')}; state now: {now or '?'}); queued jobs:\n"
            + (jobs.decode(errors="replace").strip() or "(none)") + "\nfailed units:\n"
            + (failed.output.decode(errors="replace").strip() or "(none listed)")
        )

    @staticmethod
    def authorize(container, public_key: str) -> str:
        script = (
            f'install -d -m 0700 -o {LOGIN_USER} -g {LOGIN_USER} /home/{LOGIN_USER}/.ssh && '
            f'printf "%s" "$KEY" > /home/{LOGIN_USER}/.ssh/authorized_keys && '
            f'chown {LOGIN_USER}:{LOGIN_USER} /home/{LOGIN_USER}/.ssh/authorized_keys && '
            f'chmod 0600 /home/{LOGIN_USER}/.ssh/authorized_keys && '
            'for i in $(seq 1 100); do [ -s /etc/ssh/ssh_host_ed25519_key.pub ] && break; sleep 0.1; done && '
            'test -s /etc/ssh/ssh_host_ed25519_key.pub'
        )
        code, out = container.exec_run(["sh", "-c", script], environment={"KEY": public_key})
        if code != 0:
            raise LabError(f"{container.name}: could not install the lab key or find the host key (exit {code}, "
                           f"container {container.status}): {out.decode(errors='replace').strip() or 'no output'}")
        # The host key is read through the archive API, not from the exec's output, which a quick exec may lose.
        text = " ".join(read_file(container, "/etc/ssh/ssh_host_ed25519_key.pub").split()[:2])
        if not text.startswith("ssh-ed25519 "):
            raise LabError(f"{container.name}: its host key /etc/ssh/ssh_host_ed25519_key.pub is not an ed25519 key: "
                           f"{text or 'empty'}")
        return text

    def ensure_keypair(self) -> str:
        key = os.path.join(self.state_dir, "id_ed25519")
        if not (os.path.exists(key) and os.path.exists(key + ".pub")):
            private, public = generate_keypair()
            write_atomic(key, private, 0o600)
            write_atomic(key + ".pub", public, 0o644)
            say(f"generated the lab's SSH key {key}")
        with open(key + ".pub") as f:
            return f.read().strip()

    def check_ssh(self, hosts: list[HostSpec], timeout: float = 30) -> None:
        if not shutil.which("ssh"):
            raise LabError("the ssh client is missing: install openssh-client (Ansible needs it too)")
        config = os.path.join(self.state_dir, "ssh_config")

        def probe(host):
            deadline = time.monotonic() + timeout
            while True:
                r = subprocess.run(
                    ["ssh", "-F", config, "-o", "BatchMode=yes", "-o", "ConnectTimeout=5", host.name,
                     "sudo -n true && python3 -c 'pass'"],
                    stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, stdin=subprocess.DEVNULL, check=False,
                )
                if r.returncode == 0:
                    return None
                if time.monotonic() > deadline:
                    return f"{host.name} (127.0.0.1:{host.ssh_port}): {r.stdout.strip() or 'exit %d' % r.returncode}"
                time.sleep(0.5)

        with ThreadPoolExecutor(max_workers=8) as pool:
            failures = [f for f in pool.map(probe, hosts) if f]
        if failures:
            raise LabError("SSH to some hosts failed:\n  - " + "\n  - ".join(failures))

    # -- commands ------------------------------------------------------------------------------

    def up(self, apps: int, base_port: int, pull: bool, mirror: str | None, verbose: bool, arm64: int = 0) -> None:
        started = time.monotonic()
        hosts = plan_hosts(self.name, apps, base_port, arm64)
        with self.locked():
            client = connect()
            # Every port this lab could publish at its largest, so growing it later finds them free too.
            low, high = port_span(self.name, base_port)
            if not reserve_ports(low, high):
                say(f"could not reserve ports {low}-{high} for the lab ({RESERVED_PORTS}); a client's "
                    "connection may hold one of them when the lab grows")
            self.check_ports(client, hosts)
            base = ensure_base_image(client, pull, mirror)
            images = {"amd64": ensure_host_image(client, base, verbose)}
            if arm64:
                images["arm64"] = ensure_host_image(client, ensure_arm64_base_image(client, mirror), verbose, "arm64")
            self.ensure_network(client)
            existing = self.containers(client)
            wanted = {h.container for h in hosts}
            for cname, container in sorted(existing.items()):
                if cname not in wanted:
                    container.remove(force=True)
                    say(f"removed {cname}: the fleet now has {apps} app host(s)")
            # A container of the same name not made by the lab: never touch it.
            docker = _import_docker()
            for host in hosts:
                if host.container in existing:
                    continue
                with contextlib.suppress(docker.errors.NotFound):
                    client.containers.get(host.container)
                    raise LabError(
                        f"a container named {host.container} exists and was not made by this lab; remove it "
                        f"(docker rm -f {host.container}) or use another --name", 2
                    )
            containers, reused = {}, set()
            for host in hosts:
                image = images[host.arch]
                spec = spec_hash(host, image.id, self.network)
                current = existing.get(host.container)
                if current is not None and current.labels.get(SPEC_LABEL) != spec:
                    current.remove(force=True)
                    say(f"recreating {host.name}: its image or ports changed")
                    current = None
                if current is None:
                    current = self.run_host(client, host, image, spec)
                    say(f"created {host.name} ({host.group}) ssh 127.0.0.1:{host.ssh_port}"
                        + (f", http 127.0.0.1:{host.http_port}" if host.http_port else ""))
                else:
                    reused.add(host.name)
                    if current.status != "running":
                        current.start()
                        say(f"started {host.name} (it was {current.status})")
                containers[host.name] = current
            os.makedirs(self.state_dir, exist_ok=True)
            public_key = self.ensure_keypair()
            first = next(iter(containers.values()))
            first.reload()
            weigh_hosts(first)

            def prepare(host):
                c = containers[host.name]
                # An emulated host boots several times slower.
                self.wait_booted(c, 90 if host.arch == "amd64" else 300)
                return host.name, self.authorize(c, public_key)

            with ThreadPoolExecutor(max_workers=8) as pool:
                host_keys = dict(pool.map(prepare, hosts))
            addresses = {}
            for host in hosts:
                c = containers[host.name]
                c.reload()
                addresses[host.name] = c.attrs["NetworkSettings"]["Networks"][self.network]["IPAddress"]
            # dockerd hands out the network's addresses again when it restarts, in another order: the hosts' state
            # (the load balancer's servers, firewall rules) names the old ones, so such a lab is made afresh.
            was = {h["name"]: h.get("address") for h in self.state().get("hosts", [])}
            moved = sorted(n for n in reused if was.get(n) and was[n] != addresses[n])
            if moved:
                say(f"recreating the lab: the addresses of {', '.join(moved)} changed since it was made (dockerd "
                    "restarted), and what its hosts were set up with names the old ones")
                for c in containers.values():
                    c.remove(force=True)
            else:
                self.write_state(hosts, addresses, host_keys, apps, base_port)
                self.check_ssh(hosts, 30 if not arm64 else 120)
        if moved:
            self.up(apps, base_port, pull, mirror, verbose, arm64)
            return
        say(f"lab {self.name} is up: {len(hosts)} hosts ({apps} app{f', {arm64} arm64' if arm64 else ''}) "
            f"in {time.monotonic() - started:.1f} s")
        say(f"inventory: {os.path.join(self.state_dir, 'inventory.yml')}")

    def write_state(self, hosts, addresses, host_keys, apps, base_port) -> None:
        import yaml

        inventory = render_inventory(self.name, hosts, addresses, self.state_dir)
        header = f"# Written by tests/lab/lab.py for lab {self.name!r}; rewritten on every `up`.\n"
        write_atomic(os.path.join(self.state_dir, "inventory.yml"), header + yaml.safe_dump(inventory, sort_keys=False))
        link_group_vars(self.state_dir)
        write_atomic(os.path.join(self.state_dir, "known_hosts"), render_known_hosts(hosts, host_keys))
        write_atomic(os.path.join(self.state_dir, "ssh_config"), render_ssh_config(hosts, self.state_dir))
        doc = {
            "name": self.name, "apps": apps, "base_port": base_port, "network": self.network,
            "hosts": [
                {"name": h.name, "group": h.group, "container": h.container, "address": addresses[h.name],
                 "ports": dict(h.ports), "arch": h.arch}
                for h in hosts
            ],
        }
        write_atomic(os.path.join(self.state_dir, "lab.json"), json.dumps(doc, indent=2) + "\n")

    def state(self) -> dict:
        """lab.json as the last `up` wrote it, or {} before one."""
        try:
            with open(os.path.join(self.state_dir, "lab.json"), encoding="utf-8") as f:
                return json.load(f)
        except (OSError, ValueError):
            return {}

    def down(self) -> None:
        docker = _import_docker()
        with self.locked():
            try:
                client = connect(start_engine=False)
            except LabError:
                client = None  # no engine: nothing of the lab runs, only its state is left to remove
            removed = []
            if client is not None:
                for cname, container in sorted(self.containers(client).items()):
                    container.remove(force=True)
                    removed.append(cname)
                with contextlib.suppress(docker.errors.NotFound):
                    net = client.networks.get(self.network)
                    if (net.attrs.get("Labels") or {}).get(LABEL) == self.name:
                        net.remove()
                        removed.append(f"network {self.network}")
            if os.path.isdir(self.state_dir):
                shutil.rmtree(self.state_dir)
                removed.append(f"state {self.state_dir}")
        say(("removed " + ", ".join(removed)) if removed else f"lab {self.name}: nothing to remove")

    def status(self, as_json: bool) -> int:
        try:
            client = connect(start_engine=False)
        except LabError as exc:
            say(f"lab {self.name}: {exc}")
            return 1
        rows = []
        for cname, c in sorted(self.containers(client).items(), key=lambda kv: _host_order(kv[1])):
            ports = {}
            for inner, bindings in (c.attrs.get("NetworkSettings", {}).get("Ports") or {}).items():
                if bindings:
                    ports[inner] = int(bindings[0]["HostPort"])
            nets = c.attrs.get("NetworkSettings", {}).get("Networks") or {}
            rows.append({
                "host": c.labels.get(f"{LABEL}.host", cname), "group": c.labels.get(f"{LABEL}.group", "?"),
                "container": cname, "state": c.status,
                "address": (nets.get(self.network) or {}).get("IPAddress", ""), "ports": ports,
            })
        if as_json:
            print(json.dumps({"name": self.name, "state_dir": self.state_dir, "hosts": rows}, indent=2))
            return 0
        if not rows:
            say(f"lab {self.name} is not up (no containers); bring it up with: lab.py up")
            return 0
        print(f"{'HOST':<8} {'GROUP':<6} {'STATE':<10} {'ADDRESS':<16} PORTS (on 127.0.0.1)")
        for r in rows:
            ports = ", ".join(f"{k.split('/')[0]}->{v}" for k, v in sorted(r["ports"].items()))
            print(f"{r['host']:<8} {r['group']:<6} {r['state']:<10} {r['address']:<16} {ports}")
        inv = os.path.join(self.state_dir, "inventory.yml")
        print(f"inventory: {inv}" + ("" if os.path.exists(inv) else " (missing: run up)"))
        return 0


def _host_order(container) -> tuple:
    group = container.labels.get(f"{LABEL}.group", "")
    host = container.labels.get(f"{LABEL}.host", container.name)
    digits = "".join(ch for ch in host if ch.isdigit())
    return ({"lb": 0, "repo": 1, "app": 2}.get(group, 3), host.startswith("arm"), int(digits or 0), host)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="lab.py", description="Bare Debian 12 servers as systemd containers, reached over real SSH."
    )
    parser.add_argument("--name", default=os.environ.get("SEEDOPS_LAB_NAME", DEFAULT_NAME),
                        help=f"lab name: container and network prefix (default {DEFAULT_NAME}; env SEEDOPS_LAB_NAME)")
    sub = parser.add_subparsers(dest="command", metavar="{up,down,status}")
    sub.required = True
    up = sub.add_parser("up", help="bring the fleet up and write its inventory (idempotent)")
    up.add_argument("--apps", type=int, default=int(os.environ.get("SEEDOPS_LAB_APPS", DEFAULT_APPS)),
                    help=f"number of app hosts, 1-{MAX_APPS} (default {DEFAULT_APPS}; env SEEDOPS_LAB_APPS)")
    up.add_argument("--base-port", type=int,
                    default=int(os.environ.get("SEEDOPS_LAB_BASE_PORT", DEFAULT_BASE_PORT)),
                    help=f"published ports start here (default {DEFAULT_BASE_PORT}; env SEEDOPS_LAB_BASE_PORT)")
    up.add_argument("--pull", action="store_true",
                    help=f"pull {BASE_IMAGE} from the registry when it is not present (default: build it with debootstrap)")
    up.add_argument("--mirror", default=os.environ.get("SEEDOPS_LAB_MIRROR"),
                    help="Debian archive for debootstrap (default: the one in this machine's apt sources)")
    up.add_argument("--arm64", type=int, default=int(os.environ.get("SEEDOPS_LAB_ARM64", 0)),
                    help=f"arm64 app hosts arm1..armN under qemu-user emulation, 0-{MAX_ARM64} (default 0; env "
                         "SEEDOPS_LAB_ARM64): slow, and without nftables")
    up.add_argument("-v", "--verbose", action="store_true", help="show the image build output")
    sub.add_parser("down", help="remove the fleet's containers, network and state")
    st = sub.add_parser("status", help="list hosts, addresses and ports")
    st.add_argument("--json", action="store_true", help="print JSON")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        lab = Lab(args.name)
        if args.command == "up":
            lab.up(args.apps, args.base_port, args.pull, args.mirror, args.verbose, args.arm64)
        elif args.command == "down":
            lab.down()
        else:
            return lab.status(args.json)
    except LabError as exc:
        print(f"lab: error: {exc}", file=sys.stderr, flush=True)
        return exc.status
    except KeyboardInterrupt:
        print("lab: interrupted", file=sys.stderr)
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())
