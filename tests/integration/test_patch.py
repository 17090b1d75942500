"""os_patch and playbooks/patch.yml on the lab: tiny .deb packages built here with dpkg-deb, served as flat apt
repositories (a main and a security suite) by nginx on repo1, installed at 1.0 on the app hosts; then newer
versions are published. Check mode, bad input, security-only, held packages, a required reboot (the host container
restarts and comes back), a rerun that changes nothing, and patch.yml rolling across app1-3 behind HAProxy under
load with no failed request; a host whose patching fails stops the rollout and stays drained."""

import gzip
import hashlib
import json
import shlex
import shutil
import subprocess
import time
from concurrent.futures import ThreadPoolExecutor
from email.utils import formatdate

import pytest

from conftest import answering, copy_to, file_sha256, flat, load_client, refused, run_module, run_playbook, sh

pytestmark = pytest.mark.lab

APPS = ["app1", "app2", "app3"]
HOST = "app1"  # the role's own tests; the rolling tests use every app host
WEB_DIR = "seedops-os-patch"  # under the repo host's served root
SOURCES = "/etc/apt/sources.list.d/seedops-os-patch.list"
PATCHME, SECFIX, KEEPME = "seedops-lab-patchme", "seedops-lab-secfix", "seedops-lab-keepme"
PACKAGES = (PATCHME, SECFIX, KEEPME)
# (package, version): does installing it request a reboot (as a kernel or libc update does)?
BUILDS = {(PATCHME, "1.0"): False, (PATCHME, "1.1"): True, (PATCHME, "1.2"): True, (PATCHME, "1.3"): False,
          (SECFIX, "1.0"): False, (SECFIX, "1.1"): False, (KEEPME, "1.0"): False, (KEEPME, "1.1"): False}
HEALTH = {"url": "http://127.0.0.1:8080/healthz", "successes": 2, "interval": 0.25, "timeout": 60}
PLAYBOOK = "tests/integration/playbooks/os_patch.yml"
MARKER = "/run/seedops-os-patch-test"  # /run is a tmpfs: a reboot empties it
RPS = 60


# -- packages and repositories ------------------------------------------------------------------------------------

def build_deb(out, package, version, reboot):
    root = out / f"{package}-{version}"
    (root / "DEBIAN").mkdir(parents=True)
    doc = root / "usr" / "share" / "doc" / package
    doc.mkdir(parents=True)
    (doc / "VERSION").write_text(version + "\n")
    (root / "DEBIAN" / "control").write_text(
        f"Package: {package}\nVersion: {version}\nArchitecture: all\nMaintainer: seedops lab <lab@example.invalid>\n"
        "Section: misc\nPriority: optional\nDescription: seedops.deploy os_patch test package\n"
        " A tiny package for the os_patch lab tests; it installs one file.\n")
    if reboot:
        postinst = root / "DEBIAN" / "postinst"
        postinst.write_text("#!/bin/sh\nset -e\ntouch /var/run/reboot-required\n"
                            f"echo {package} >> /var/run/reboot-required.pkgs\n")
        postinst.chmod(0o755)
    deb = out / f"{package}_{version}_all.deb"
    subprocess.run(["dpkg-deb", "--root-owner-group", "-Zgzip", "--build", str(root), str(deb)], check=True,
                   capture_output=True)
    return deb


def write_suite(directory, suite, debs):
    """A flat repository (deb URL ./): the .deb files, Packages, Packages.gz and a Release with their hashes."""
    directory.mkdir(parents=True)
    stanzas = []
    for deb in debs:
        shutil.copy(deb, directory / deb.name)
        data = deb.read_bytes()
        control = subprocess.run(["dpkg-deb", "-f", str(deb)], check=True, capture_output=True, text=True).stdout
        stanzas.append(control.rstrip("\n") + f"\nFilename: ./{deb.name}\nSize: {len(data)}\n"
                       f"MD5sum: {hashlib.md5(data).hexdigest()}\nSHA256: {hashlib.sha256(data).hexdigest()}\n")
    packages = "\n".join(stanzas).encode()
    (directory / "Packages").write_bytes(packages)
    (directory / "Packages.gz").write_bytes(gzip.compress(packages, mtime=0))
    sums = "".join(f" {file_sha256(directory / n)} {(directory / n).stat().st_size} {n}\n"
                   for n in ("Packages", "Packages.gz"))
    (directory / "Release").write_text(
        f"Origin: seedops-lab\nLabel: seedops-lab\nSuite: {suite}\nCodename: {suite}\n"
        f"Date: {formatdate(usegmt=True)}\nArchitectures: all\nSHA256:\n{sums}")


class Repo:
    """The two suites on repo1; publish() replaces what they offer."""

    def __init__(self, lab, work):
        self.lab = lab
        self.work = work
        self.debs = {key: build_deb(work / "debs", *key, reboot) for key, reboot in BUILDS.items()}
        self.url = f"http://{lab.host('repo1')['address']}/{WEB_DIR}"
        self.round = 0

    def publish(self, main, security):
        self.round += 1
        tree = self.work / f"publish-{self.round}"
        write_suite(tree / "main", "lab", [self.debs[k] for k in main])
        write_suite(tree / "security", "lab-security", [self.debs[k] for k in security])
        copy_to(self.lab, "repo1", f"{tree}/", f"/srv/artifacts/{WEB_DIR}/", mode="u=rwX,g=rX,o=rX",
                directory_mode="0755")


# -- reading the hosts ----------------------------------------------------------------------------------------------

def versions(lab, host):
    # dpkg-query exits 1 when a package is unknown: that one is left out.
    out = sh(lab, host, "dpkg-query -W -f '${Package} ${Version} ${db:Status-Status}\\n' " + " ".join(PACKAGES), check=False)
    return {f[0]: f[1] for f in (line.split() for line in out.splitlines()) if len(f) == 3 and f[2] == "installed"}


def boot(lab, host):
    """(start time of PID 1 in ticks since the kernel booted, whether the /run marker is still there)."""
    out = sh(lab, host, f"sed 's/.*) //' /proc/1/stat | cut -d ' ' -f 20; test -e {MARKER} && echo marker || true")
    lines = out.splitlines()
    return lines[0], "marker" in lines[1:]


def mark(lab, hosts):
    for host in hosts:
        sh(lab, host, f"sudo touch {MARKER}")


def lb_servers(lab):
    """HAProxy's view of the backend on lb1: {server: {op, admin, addr}} (op 2 = up; admin bit 0x08 = drain)."""
    script = ("import socket\ns = socket.socket(socket.AF_UNIX)\ns.connect('/run/haproxy/admin.sock')\n"
              "s.sendall(b'show servers state app\\n')\nd = b''\nwhile True:\n    c = s.recv(65536)\n"
              "    if not c:\n        break\n    d += c\nprint(d.decode())\n")
    out = sh(lab, "lb1", f"sudo python3 -c {shlex.quote(script)}")
    header, servers = None, {}
    for line in out.splitlines():
        if line.startswith("#"):
            header = line.lstrip("# ").split()
        elif header and len(line.split()) >= len(header):
            row = dict(zip(header, line.split()))
            servers[row["srv_name"]] = {"op": int(row["srv_op_state"]), "admin": int(row["srv_admin_state"]),
                                        "addr": row["srv_addr"]}
    return servers


def wait_answering(port, hosts, timeout=60):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if answering(port, 12) == set(hosts):
            return True
        time.sleep(0.5)
    return False


def service_ready(lab, port):
    for host in APPS:
        state = lab.ssh(host, "systemctl is-enabled seedops-app; systemctl is-active seedops-app").stdout.split()
        if state != ["enabled", "active"]:
            return False
    return answering(port) == set(APPS)


def task_result(stdout, task):
    """The first result line after the role task named `task` in a playbook's output."""
    lines = stdout.splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith(f"TASK [seedops.deploy.os_patch : {task}]"))
    return next(line for line in lines[start + 1:] if line.strip()).strip()


def patch(lab, *args, check=False, host=HOST):
    extra = ["--check"] if check else []
    return run_playbook(PLAYBOOK, lab.inventory, "-e", f"target_hosts={host}", *extra, *args)


def ev(**values):
    return ("-e", json.dumps(values))


# -- the lab --------------------------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def fleet(lab, demo_packages, tmp_path_factory):
    """The sample service behind HAProxy on app1-3 (site.yml without the host-preparation roles, which have tests of
    their own and take most of a fresh fleet's site run, unless the service already runs there), the test repository on
    repo1 with every package at 1.0, installed on app1-3; then 1.1 published (patchme 1.1 requests a reboot, secfix
    1.1 comes from the security suite). Afterwards: the packages, the source and the repository are removed, and
    every host is back in the load balancer."""
    if shutil.which("dpkg-deb") is None:
        pytest.skip("dpkg-deb is needed on the controller to build the test packages")
    port = lab.host("lb1")["ports"]["80/tcp"]
    if not service_ready(lab, port):
        reports = tmp_path_factory.mktemp("reports")
        result, recap = run_playbook("playbooks/site.yml", lab.inventory, "-e", "deploy_version=1.0.0",
                                     "-e", '{"prepare_roles": []}', env={"SEEDOPS_DEPLOY_REPORT_DIR": str(reports)})
        assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-2000:]
        assert wait_answering(port, APPS), "the sample service does not answer from every app host"
    repo = Repo(lab, tmp_path_factory.mktemp("os-patch-repo"))
    repo.publish(main=[(PATCHME, "1.0"), (KEEPME, "1.0")], security=[(SECFIX, "1.0")])
    sources = f"deb [trusted=yes] {repo.url}/main ./\\ndeb [trusted=yes] {repo.url}/security ./\\n"

    def install_1_0(host):
        sh(lab, host, f"printf '{sources}' | sudo tee {SOURCES} >/dev/null && "
                      f"sudo apt-get update -q -o Dir::Etc::sourcelist={SOURCES} -o Dir::Etc::sourceparts=- "
                      "-o APT::Get::List-Cleanup=0 >/dev/null && "
                      f"sudo apt-mark unhold {' '.join(PACKAGES)} >/dev/null && "
                      "sudo DEBIAN_FRONTEND=noninteractive apt-get install -q -y --allow-downgrades "
                      + " ".join(f"{p}=1.0" for p in PACKAGES) + " >/dev/null")
        return versions(lab, host)

    with ThreadPoolExecutor(max_workers=3) as pool:
        installed = dict(zip(APPS, pool.map(install_1_0, APPS)))
    assert installed == {host: {p: "1.0" for p in PACKAGES} for host in APPS}
    repo.publish(main=[(PATCHME, "1.1"), (KEEPME, "1.1")], security=[(SECFIX, "1.1")])
    yield {"repo": repo, "port": port}
    for host in APPS:
        lab.ssh(host, f"sudo dpkg --purge {' '.join(PACKAGES)} >/dev/null; sudo rm -f {SOURCES} {MARKER} "
                      "/var/lib/apt/lists/*_seedops-os-patch_*; "
                      "grep -qv seedops-lab /var/run/reboot-required.pkgs 2>/dev/null "
                      "|| sudo rm -f /var/run/reboot-required /var/run/reboot-required.pkgs")
        run_module(lab, "lb1", "seedops.deploy.lb_member", {"backend": "app", "server": host, "state": "ready"})
    lab.ssh("repo1", f"sudo rm -rf /srv/artifacts/{WEB_DIR}")
    assert wait_answering(port, APPS), "every app host answers through the lb again"


# -- the role on one host -------------------------------------------------------------------------------------------

def test_check_mode_lists_the_updates_and_changes_nothing(lab, fleet):
    mark(lab, [HOST])
    before = boot(lab, HOST)
    result, recap = patch(lab, *ev(os_patch_refresh_in_check_mode=True, os_patch_hold=[KEEPME]), check=True)
    assert result.returncode == 0, result.stdout[-3000:]
    out = result.stdout
    assert f"{HOST} (check mode, scope all): 2 package(s) would be upgraded" in out
    assert f"{PATCHME} 1.0 -> 1.1'" in out and f"{SECFIX} 1.0 -> 1.1 [security]" in out
    assert f"held (os_patch_hold): {KEEPME} stays at 1.0, 1.1 available" in out
    assert recap[HOST]["changed"] == 1, "the would-be upgrade is reported as a change"
    assert versions(lab, HOST) == {p: "1.0" for p in PACKAGES}
    assert boot(lab, HOST) == before
    assert sh(lab, HOST, "apt-mark showhold") == ""
    assert sh(lab, HOST, "ls /tmp | grep -c os_patch.pref || true") == "0", "the run's pin file is gone"


def test_bad_input_fails_before_any_change(lab, fleet):
    result, recap = patch(lab, *ev(os_patch_os_family="Suse"))
    refused(result, recap, HOST, f"os_patch cannot patch {HOST}: its OS family is Suse (Debian 12",
            "supported OS families: Debian (apt), RedHat (dnf, untested). Nothing was changed.")
    assert recap[HOST]["failed"] == 1

    # The family decides the package manager: RedHat means dnf, which a Debian host does not have.
    refused(*patch(lab, *ev(os_patch_os_family="RedHat")), HOST,
            f"{HOST} is patched as RedHat, with dnf, but /usr/bin/dnf is missing there. Nothing was changed.")
    refused(*patch(lab, *ev(os_patch_scope="everything")), HOST, "os_patch_scope", "everything", "all, security")
    assert versions(lab, HOST) == {p: "1.0" for p in PACKAGES}


def test_security_scope_installs_only_security_updates(lab, fleet):
    mark(lab, [HOST])
    before = boot(lab, HOST)
    result, recap = patch(lab, *ev(os_patch_scope="security"))
    assert result.returncode == 0, result.stdout[-3000:]
    assert versions(lab, HOST) == {PATCHME: "1.0", SECFIX: "1.1", KEEPME: "1.0"}
    assert f"{HOST} (scope security): 1 package(s) changed" in result.stdout
    assert f"{SECFIX} 1.0 -> 1.1 [security]" in result.stdout
    assert f"not from a security archive, left alone: {KEEPME}, {PATCHME}" in result.stdout
    assert boot(lab, HOST) == before, "no reboot: nothing asked for one"


def test_everything_with_a_hold_and_the_required_reboot(lab, fleet):
    mark(lab, [HOST])
    pid1_start, marked = boot(lab, HOST)
    assert marked
    result, recap = patch(lab, *ev(os_patch_hold=[KEEPME], os_patch_health=HEALTH))
    assert result.returncode == 0, result.stdout[-3000:]
    assert versions(lab, HOST) == {PATCHME: "1.1", SECFIX: "1.1", KEEPME: "1.0"}
    assert sh(lab, HOST, "apt-mark showhold") == "", "the hold was for this run only"
    out = result.stdout
    assert f"{HOST} (scope all): 1 package(s) changed" in out and f"{PATCHME} 1.0 -> 1.1" in out
    assert f"held (os_patch_hold): {KEEPME} stays at 1.0, 1.1 available" in out
    assert "reboot: required, done (back after" in out and "health: healthy" in out
    # The host restarted: PID 1 is new and the tmpfs /run lost the marker and the reboot-required flag.
    # (/proc/sys/kernel/random/boot_id stays the same in the lab: it belongs to the kernel the containers share.)
    pid1_now, marker = boot(lab, HOST)
    assert pid1_now != pid1_start, "PID 1 was started again"
    assert not marker, "/run was emptied"
    assert lab.ssh(HOST, "test -e /var/run/reboot-required").returncode != 0
    assert sh(lab, HOST, "systemctl is-enabled seedops-app ssh; systemctl is-active seedops-app ssh").split() == \
        ["enabled", "enabled", "active", "active"]
    assert sh(lab, HOST, "hostname -I").split()[0] == lab.host(HOST)["address"], "same address after the reboot"


def test_rerun_changes_nothing_and_does_not_reboot(lab, fleet):
    mark(lab, [HOST])
    before = boot(lab, HOST)
    for check in (False, True):
        result, recap = patch(lab, *ev(os_patch_hold=[KEEPME], os_patch_cache_valid_time=3600), check=check)
        assert result.returncode == 0, result.stdout[-3000:]
        assert recap[HOST]["changed"] == 0, (check, result.stdout[-3000:])
        assert "reboot: not required" in result.stdout
        assert task_result(result.stdout, "Refresh the package lists") == f"skipping: [{HOST}]", "the lists are fresh"
    assert boot(lab, HOST) == before

    # A reboot that is required but not allowed is reported, and not done.
    sh(lab, HOST, "sudo touch /var/run/reboot-required")
    result, recap = patch(lab, *ev(os_patch_hold=[KEEPME], os_patch_reboot=False, os_patch_cache_valid_time=3600))
    assert result.returncode == 0 and recap[HOST]["changed"] == 0, result.stdout[-3000:]
    assert "reboot: REQUIRED but not done (os_patch_reboot is false)" in result.stdout
    assert boot(lab, HOST) == before
    sh(lab, HOST, "sudo rm -f /var/run/reboot-required")


# -- rolling, behind the load balancer ------------------------------------------------------------------------------

def test_rolling_patch_behind_the_lb_fails_no_request(lab, fleet):
    fleet["repo"].publish(main=[(PATCHME, "1.2"), (KEEPME, "1.1")], security=[(SECFIX, "1.1")])
    mark(lab, APPS)
    starts = {host: boot(lab, host)[0] for host in APPS}

    # Check mode (one host, to keep it short): says what it would do, drains nothing, changes nothing.
    result, recap = run_playbook("playbooks/patch.yml", lab.inventory, "--check",
                                 *ev(os_patch_hosts="app2", os_patch_refresh_in_check_mode=True))
    assert result.returncode == 0, result.stdout[-3000:]
    assert recap["app2"]["changed"] > 0 and "app2 (check mode, scope all): 3 package(s) would be upgraded" in result.stdout
    assert versions(lab, "app2") == {p: "1.0" for p in PACKAGES} and boot(lab, "app2") == (starts["app2"], True)
    assert all(s["admin"] == 0 for s in lb_servers(lab).values()), "nothing was drained"
    load = load_client().Load(f"http://127.0.0.1:{fleet['port']}/", RPS, 0.1, "1s", 15)

    def rollout():
        started = time.monotonic()
        return run_playbook("playbooks/patch.yml", lab.inventory), time.monotonic() - started

    ((result, recap), seconds), summary = load.around(rollout)
    assert result.returncode == 0, result.stdout[-4000:]
    assert summary["all"]["failed"] == 0, summary["errors"]
    # The load went on at its rate for the whole rollout (drains and reboots included), slow requests among it.
    assert summary["during"]["sent"] >= RPS * 10 and summary["during"]["slow_sent"] > 0, (seconds, summary["during"])
    for host in APPS:
        assert versions(lab, host) == {PATCHME: "1.2", SECFIX: "1.1", KEEPME: "1.1"}, host
        start, marker = boot(lab, host)
        assert start != starts[host] and not marker, f"{host} rebooted"
        assert f"{host} (scope all):" in result.stdout
    assert f"{PATCHME} 1.1 -> 1.2" in result.stdout and f"{PATCHME} 1.0 -> 1.2" in result.stdout
    # One host at a time: each was drained, patched and ready again before the next one was drained.
    steps = [line for line in result.stdout.splitlines()
             if line.startswith(("TASK [Drain the host", "TASK [Put the host back"))]
    # "Put the host back" waits until the load balancer's health checks see the host up (lb_member wait_up).
    assert [line.split()[1] for line in steps] == ["[Drain", "[Put"] * 3, steps
    servers = lb_servers(lab)
    assert {h: (s["op"], s["admin"], s["addr"]) for h, s in servers.items()} == \
        {h: (2, 0, lab.host(h)["address"]) for h in APPS}, "every server is up, ready, at its address"
    assert answering(fleet["port"]) == set(APPS)

    # Nothing left to do: a rerun changes nothing and reboots nothing.
    mark(lab, APPS)
    result, recap = run_playbook("playbooks/patch.yml", lab.inventory, *ev(os_patch_cache_valid_time=3600))
    assert result.returncode == 0, result.stdout[-3000:]
    assert all(boot(lab, host)[1] for host in APPS), "no host rebooted"
    assert {h: recap[h]["changed"] for h in APPS} == {h: 0 for h in APPS}, "nothing drained, nothing changed"
    for host in APPS:
        assert f"{host} (scope all): nothing changed" in result.stdout


def test_a_failing_host_stops_the_rollout_and_stays_drained(lab, fleet):
    # 1.3 is pending everywhere; app1 installs it, then its health check fails (nothing listens on port 9).
    fleet["repo"].publish(main=[(PATCHME, "1.3"), (KEEPME, "1.1")], security=[(SECFIX, "1.1")])
    later = {h: versions(lab, h)[PATCHME] for h in ("app2", "app3")}
    result, recap = run_playbook("playbooks/patch.yml", lab.inventory,
                                 *ev(os_patch_health={"url": "http://127.0.0.1:9/", "timeout": 2}))
    try:
        assert result.returncode != 0
        # app2 and app3 only took part in taking the fleet's deploy lock: nothing changed or failed there.
        assert recap["app1"]["failed"] == 1, recap
        assert all((recap[h]["changed"], recap[h]["failed"]) == (0, 0) for h in ("app2", "app3") if h in recap), recap
        assert lab.ssh("lb1", "sudo test -e /var/lib/seedops-deploy/locks/seedops-app-app.json").returncode != 0, \
            "the failed run gave the fleet's deploy lock back"
        out = flat(result)
        assert "app1: patching failed: http://127.0.0.1:9/ is not healthy" in out, out[-3000:]
        assert "It stays drained in lb1 (backend app)" in out and "The rollout stops here" in out
        servers = lb_servers(lab)
        assert servers["app1"]["admin"] & 0x08, "app1 stays drained"
        assert servers["app2"]["admin"] == servers["app3"]["admin"] == 0, "later hosts were not touched"
        assert answering(fleet["port"]) == {"app2", "app3"}
        assert versions(lab, "app1")[PATCHME] == "1.3"
        assert {h: versions(lab, h)[PATCHME] for h in ("app2", "app3")} == later, "later hosts kept their packages"
    finally:
        run_module(lab, "lb1", "seedops.deploy.lb_member", {"backend": "app", "server": "app1", "state": "ready"})
    assert wait_answering(fleet["port"], APPS)


def test_a_setting_a_batch_refuses_gives_the_lock_back(lab):
    """With deploy_beside_ports each batch first finds its host's live instance (live_instance, under the lock). A
    setting refused there stops the rollout inside the batch's block: the lock is given back, nothing is drained."""
    result, recap = run_playbook("playbooks/patch.yml", lab.inventory, *ev(deploy_beside_ports=[8081, "x"]))
    assert result.returncode != 0 and recap["app1"]["failed"] == 1, recap
    out = flat(result)
    assert "deploy_beside_ports" in out and "cannot be converted to an int" in out, out[-2000:]
    assert lab.ssh("lb1", "sudo test -e /var/lib/seedops-deploy/locks/seedops-app-app.json").returncode != 0, \
        "the refused run gave the fleet's deploy lock back"
    assert {h: s["admin"] for h, s in lb_servers(lab).items()} == {h: 0 for h in APPS}, "nothing was drained"
