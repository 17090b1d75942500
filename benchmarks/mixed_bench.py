"""The mixed suite of benchmarks/run.py: the deploy's wall time on a fleet with an arm64 host (lab.py up --arm64 1: an
emulated host beside the amd64 ones) against the amd64 hosts alone, side by side in one run, under the same load.

Each run deploys 2.0.0 from 1.0.0 with 2.0.0 forgotten on every host first (deploy_bench.forget), so it downloads,
unpacks, and restarts each host in its batch; "amd64 only" is the same deploy with --limit '!arm*'. The load
client's failed requests and the report's stage, switch and health times of the arm64 host are kept beside it.
Not in `all`: it needs the lab's arm64 host (`benchmarks/run.py --suite mixed` brings the lab up with it).
"""

from __future__ import annotations

import os
import statistics

from deploy_bench import Runner, forget

SUMS = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "tests", "fixtures", "app", "dist",
                    "2.0.0", "SHA256SUMS")


def one(runner, hosts, limit):
    """v1 -> v2 on the hosts of `limit` (None: all), under load: (seconds, load summary, report)."""
    runner.playbook("playbooks/deploy.yml", "-e", "deploy_version=1.0.0")
    forget(runner, hosts, "2.0.0", SUMS)
    args = ["-e", "deploy_version=2.0.0"] + (["--limit", limit] if limit else [])
    seconds, summary = runner.under_load("playbooks/deploy.yml", *args)
    return seconds, summary, runner.latest_report()


def suite_mixed(state_dir, lab_name, hosts, report_dir, repeat=2):
    runner = Runner(state_dir, lab_name, report_dir)
    arm = [h for h in hosts if h.startswith("arm")]
    if not arm:
        raise SystemExit("bench: the mixed suite needs an arm64 host: benchmarks/run.py --suite mixed --arm64 1")
    runner.playbook("playbooks/site.yml", "-e", "deploy_version=1.0.0")
    sides = {"mixed": None, "amd64": "!arm*"}
    runs = {side: [] for side in sides}
    for _i in range(repeat):
        for side, limit in sides.items():
            runs[side].append(one(runner, hosts, limit))
    data = {"hosts": hosts, "repeat": repeat, "runs": {
        side: [{"seconds": round(s, 2), "failed": load["all"]["failed"], "sent": load["all"]["sent"],
                "arm64_phases": {row["host"]: {k: row.get(k) for k in ("stage_s", "switch_s", "health_s")}
                                 for row in report["hosts"] if row["host"] in arm}}
               for s, load, report in results] for side, results in runs.items()}}
    mixed = statistics.median(s for s, _l, _r in runs["mixed"])
    amd64 = statistics.median(s for s, _l, _r in runs["amd64"])
    failed = {side: sum(load["all"]["failed"] for _s, load, _r in results) for side, results in runs.items()}
    rows = [
        ("deploy v1 -> v2 under load, median (s)", round(mixed, 2), round(amd64, 2), mixed / amd64),
        ("failed requests, all runs", failed["mixed"], failed["amd64"], None),
    ]
    data["targets"] = {"0 failed requests on the mixed fleet": failed["mixed"] == 0}
    return data, rows
