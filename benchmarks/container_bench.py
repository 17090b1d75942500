"""The container suite of benchmarks/run.py: a container deploy (deploy_kind: container - the image index resolved
once in the plan, each host's engine pulling its platform's image by digest from repo1's registry, the container unit
restarted behind the same drain and health gate) against the package deploy (download, verify, unpack) on the same
fleet, side by side in one run, under the same load.

Each run first brings the fleet to v1 of its kind (the unit moved to that kind with
tests/integration/playbooks/container.yml), then forgets v2 on every host - the package's release and store entry
(deploy_bench.forget), or the image and its release - so that v2 is fetched and staged from scratch, then deploys v2
under load. The images are versions 8.0.0 and 9.0.0 of the sample service (amd64, the lab's app hosts), the packages
1.0.0 and 2.0.0. Not in `all`: it installs the Docker engine on the app hosts (`benchmarks/run.py --suite container`).
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import tempfile

from deploy_bench import BASE, REPO_ROOT, Runner, build_sample_packages, forget

sys.path.insert(0, os.path.join(REPO_ROOT, "tests", "lab"))

import registry as lab_registry  # noqa: E402  pylint: disable=wrong-import-position

SUMS = os.path.join(REPO_ROOT, "tests", "fixtures", "app", "dist", "2.0.0", "SHA256SUMS")
USER = {"name": "ci", "password": "lab-bench-secret"}
IMAGES = ("8.0.0", "9.0.0")
MOVE = "tests/integration/playbooks/container.yml"


def push_images(runner, work, outside, ca):
    """Build the sample service's IMAGES for linux/amd64 and push each as an image index, tagged by its version."""
    for version in IMAGES:
        out = os.path.join(work, version)
        subprocess.run([os.path.join(REPO_ROOT, "tests", "fixtures", "app", "build.sh"), "-o", out, "-p",
                        "linux/amd64", version], check=True, stdout=subprocess.DEVNULL)
        image = {"registry": outside, "repository": "seedops-app", "tag": version, "username": USER["name"],
                 "password": USER["password"], "ca_path": ca, "entrypoint": ["/app/bin/seedops-app"], "ports": [8080],
                 "packages": [{"platform": "linux/amd64",
                               "path": os.path.join(out, f"seedops-app-{version}-linux-amd64.tar.gz")}]}
        runner.playbook("benchmarks/playbooks/push_image.yml", "-e", json.dumps({"seedops_bench_image": image}))


def one(runner, hosts, kind, extra):
    """v1 -> v2 of one kind under load, v2 forgotten first: (seconds, load summary, report)."""
    v1, v2 = IMAGES if kind == "container" else ("1.0.0", "2.0.0")
    runner.playbook(MOVE, *extra)
    runner.playbook("playbooks/deploy.yml", "-e", f"deploy_version={v1}", *extra)
    if kind == "container":
        for host in hosts:
            # Every image no container runs (v2's, if an earlier run pulled it), and v2's release.
            runner.ssh(host, f"sudo rm -rf {BASE}/releases/{v2} {BASE}/releases/{v2}.json; "
                             "sudo docker image prune --all --force >/dev/null")
    else:
        forget(runner, hosts, v2, SUMS)
    seconds, summary = runner.under_load("playbooks/deploy.yml", "-e", f"deploy_version={v2}", *extra)
    return seconds, summary, runner.latest_report()


def suite_container(state_dir, lab_name, hosts, report_dir, repeat=2):
    runner = Runner(state_dir, lab_name, report_dir)
    with open(os.path.join(state_dir, "lab.json"), encoding="utf-8") as f:
        repo = next(h for h in json.load(f)["hosts"] if h["name"] == "repo1")
    build_sample_packages()
    runner.playbook("playbooks/site.yml", "-e", "deploy_version=1.0.0")
    work = tempfile.mkdtemp(prefix="seedops-bench-container-")
    made = lab_registry.registry_vars(work, repo["address"], [USER])
    runner.playbook("playbooks/registry.yml", "-e", f"@{made['vars']}")
    push_images(runner, work, f"https://127.0.0.1:{repo['ports']['5000/tcp']}", made["ca"])
    container_vars = os.path.join(work, "container.json")
    lab_registry.container_vars(container_vars, repo["address"], made["ca"], USER)
    sides = {"container": ("-e", f"@{container_vars}"), "package": ()}
    runs = {side: [] for side in sides}
    for _i in range(repeat):
        for side, extra in sides.items():
            runs[side].append(one(runner, hosts, side, extra))
    # The fleet ends on the package release and the native unit (the last run is a package run).

    def phase(report, key):
        """The median over the hosts of one phase's seconds in a run's report (stage_s, health_s)."""
        return statistics.median(row[key] for row in report["hosts"] if row.get(key) is not None)

    data = {"hosts": hosts, "repeat": repeat, "runs": {
        side: [{"seconds": round(s, 2), "failed": load["all"]["failed"], "sent": load["all"]["sent"],
                "stage_s": phase(report, "stage_s"), "health_s": phase(report, "health_s"),
                "skew_s": report.get("skew_s")} for s, load, report in results]
        for side, results in runs.items()}}
    median = {side: statistics.median(s for s, _l, _r in results) for side, results in runs.items()}
    staged, healthy = ({side: statistics.median(phase(r, key) for _s, _l, r in results) for side, results in runs.items()}
                       for key in ("stage_s", "health_s"))
    failed = {side: sum(load["all"]["failed"] for _s, load, _r in results) for side, results in runs.items()}
    rows = [
        ("deploy v1 -> v2 under load, median (s)", round(median["container"], 2), round(median["package"], 2),
         median["container"] / median["package"]),
        ("stage per host, median (s)", round(staged["container"], 2), round(staged["package"], 2),
         staged["container"] / staged["package"]),
        ("restart until healthy per host, median (s)", round(healthy["container"], 2), round(healthy["package"], 2),
         healthy["container"] / healthy["package"]),
        ("failed requests, all runs", failed["container"], failed["package"], None),
    ]
    data["targets"] = {"0 failed requests in the container deploys": failed["container"] == 0}
    return data, rows
