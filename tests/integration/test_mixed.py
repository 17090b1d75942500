"""A mixed fleet (issue #16): amd64 and arm64 app hosts behind one load balancer, each given its own platform's build.

A small lab of its own (lb1, repo1, app1 and arm1, an arm64 Debian host run under qemu-user emulation: lab.py up
--arm64), so that the other tests keep their three amd64 app hosts. It runs the README's main command on it
(tests/lab/demo.py: site.yml, then 2.0.0 rolling under 60 requests/s). Host preparation (prepare_roles: the
firewall, access and fail2ban, env_config) is left out here: each role has its own tests on amd64, and on the
emulated host their package installs are the slowest part of the job by far.
"""

import json
import os

import pytest

from conftest import MIXED_BASE_PORT, answering, lab_cmd, load_lab, run_demo, service_version

pytestmark = pytest.mark.lab

NAME = "seedops-mixed"
BASE = MIXED_BASE_PORT
HOSTS = {"app1": "linux/amd64", "arm1": "linux/arm64"}


@pytest.fixture(scope="module")
def mixed(docker_engine, demo_packages, tmp_path_factory):  # pylint: disable=unused-argument
    """The mixed lab, up, with the main job run on it; brought down afterwards (the arm64 images stay cached)."""
    up = lab_cmd("--name", NAME, "up", "--apps", "1", "--arm64", "1", "--base-port", str(BASE), check=True)
    print(up.stdout + up.stderr)
    lab = load_lab(NAME)
    reports = tmp_path_factory.mktemp("mixed-reports")
    summary = reports / "load.json"
    result = run_demo(NAME, reports, summary, '{"prepare_roles": []}', timeout=1800)
    yield lab, result, summary, reports
    lab_cmd("--name", NAME, "down")


def test_the_main_job_deploys_a_mixed_fleet_rolling_under_load_each_host_its_own_platform(mixed):
    lab, result, summary, reports = mixed
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-2000:]
    with open(summary, encoding="utf-8") as f:
        load = json.load(f)
    assert load["all"]["failed"] == 0 and load["all"]["sent"] > 0, load
    # What each host really runs, read on the host: 2.0.0, built for its own platform.
    assert lab.ssh("arm1", "uname -m").stdout.strip() == "aarch64"
    served = {h: service_version(lab, h, timeout=10) for h in HOSTS}
    assert {h: (doc.get("version"), doc.get("platform")) for h, doc in served.items()} == {
        h: ("2.0.0", platform) for h, platform in HOSTS.items()}
    for host, platform in HOSTS.items():
        # The ELF header's e_machine (offset 18) of the binary the live release holds: 62 x86-64, 183 AArch64.
        binary = lab.ssh(host, "readlink -f /srv/seedops-app/current/bin/seedops-app && "
                               "sudo od -An -tu2 -j18 -N2 /srv/seedops-app/current/bin/seedops-app").stdout.split()
        assert binary[0].startswith("/srv/seedops-app/releases/2.0.0/"), binary
        assert int(binary[1]) == {"linux/amd64": 62, "linux/arm64": 183}[platform], (host, binary)
    # The rolling deploy's report: both hosts switched to 2.0.0; both serve through the load balancer.
    rolling = sorted(p for p in os.listdir(reports) if p.startswith("deploy-") and p.endswith(".json"))[-1]
    with open(reports / rolling, encoding="utf-8") as f:
        rows = {row["host"]: row for row in json.load(f)["hosts"]}
    assert {h: (rows[h]["old"], rows[h]["result"], rows[h]["runs"]) for h in HOSTS} == {
        h: ("1.0.0", "switched", "2.0.0") for h in HOSTS}, rows
    assert answering(lab.host("lb1")["ports"]["80/tcp"]) == set(HOSTS)
