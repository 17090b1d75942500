"""The fanout suite of benchmarks/run.py: how many bytes the origin (the repo host's nginx) sends to stage one
package on every app host, with the peer fan-out (deploy_fanout) and, side by side in the same run, with every host
pulling from the origin - and the wall time of the same deploy each way.

  origin egress  the bytes nginx logged for the package during the deploy ($body_bytes_sent of the access log),
                 as a multiple of the package's size (target: at most 2x from 3 hosts up, against N x without)
  wall time      the whole deploy (plan, stage, rolling activate, verify) and its stage phase alone, from the report

Each run starts from hosts that hold neither the release nor its store entry (deploy_bench.forget). The package is
deploy_bench's 2.0.1: the 2.0.0 files padded with --big-mb MiB of random data. The lab's size is run.py's --apps
(the lab goes to 16): run the suite once per size, `benchmarks/run.py --suite fanout --apps 8`.
"""

from __future__ import annotations

import os
import statistics

from deploy_bench import Runner, forget, publish_big


def served_bytes(runner, since, package):
    """Bytes nginx on repo1 sent for `package` after line `since` of its access log (combined format)."""
    lines = runner.ssh("repo1", f"sudo tail -n +{since + 1} /var/log/nginx/access.log").stdout.splitlines()
    total = 0
    for line in lines:
        request, _sep, rest = line.partition('" ')
        if f"/{package} " in request and rest.split()[:1] == ["200"]:
            total += int(rest.split()[1])
    return total


def log_length(runner):
    return int(runner.ssh("repo1", "sudo cat /var/log/nginx/access.log | wc -l").stdout.strip() or 0)


def deploy_once(runner, hosts, version, sums, package, fanout):
    """Deploy `version` fresh from 2.0.0: (wall s, stage s, origin bytes)."""
    runner.playbook("playbooks/deploy.yml", "-e", "deploy_version=2.0.0")
    forget(runner, hosts, version, sums)
    since = log_length(runner)
    seconds, _r = runner.playbook("playbooks/deploy.yml", "-e", f"deploy_version={version}",
                                  "-e", f"deploy_fanout={str(fanout).lower()}")
    report = runner.latest_report()
    spans = [row["phases"]["stage"] for row in report["hosts"] if "stage" in row["phases"]]
    stage = max(s["end"] for s in spans) - min(s["start"] for s in spans) if spans else None
    return seconds, stage, served_bytes(runner, since, package)


def suite_fanout(state_dir, lab_name, hosts, report_dir, big_mb=128, repeat=2):
    runner = Runner(state_dir, lab_name, report_dir)
    runner.playbook("playbooks/site.yml", "-e", "deploy_version=2.0.0")
    version, sums, size = publish_big(runner, os.path.join(os.path.dirname(report_dir), "big"), big_mb)
    package = f"seedops-app-{version}-linux-amd64.tar.gz"
    sides = {"fanout": [], "origin": []}
    for _i in range(repeat):
        for side in sides:
            sides[side].append(deploy_once(runner, hosts, version, sums, package, side == "fanout"))
    runner.playbook("playbooks/deploy.yml", "-e", "deploy_version=2.0.0")
    med = {side: [statistics.median(run[i] for run in runs) for i in range(3)] for side, runs in sides.items()}
    data = {"hosts": len(hosts), "package_bytes": size, "repeat": repeat,
            "runs": {side: [{"seconds": round(s, 2), "stage_s": round(st, 2), "origin_bytes": b} for s, st, b in runs]
                     for side, runs in sides.items()}}
    fan, origin = med["fanout"], med["origin"]
    rows = [
        (f"origin egress, {len(hosts)} hosts (x package size)", round(fan[2] / size, 2), round(origin[2] / size, 2),
         fan[2] / origin[2] if origin[2] else None),
        ("deploy wall time, median (s)", round(fan[0], 2), round(origin[0], 2), fan[0] / origin[0]),
        ("stage phase, median (s)", round(fan[1], 2), round(origin[1], 2), fan[1] / origin[1]),
    ]
    data["targets"] = {"origin egress <= 2x the package from 3 hosts up": fan[2] <= 2 * size}
    return data, rows
