"""The canary suite of benchmarks/run.py: releases that misbehave only on real traffic (their /healthz answers 200),
deployed under load with canary analysis (deploy_canary_bake) and, side by side in the same run, without it - what
a health-gated rolling deploy alone does with them.

  bad releases   4.0.0 fails every request, 4.0.5 fails 5% of them, 4.1.0 answers about 3x slower on average than
                 2.0.0 under the bench's load (1 in 10 requests takes 1 s, so the mean is about 100 ms; --extra-latency
                 200ms triples it): the share of all requests sent during the deploy that failed, how many hosts
                 ended on the bad release, and the canary's verdict; 4.0.0 once more with the canary at 5% and then
                 25% of the traffic (deploy_canary_weights)
  good release   2.0.0 -> 1.0.0 -> 2.0.0 with analysis, --canary-runs times: false aborts, and the time the analysis
                 adds to the same deploy without it (target: at most the bake plus 2 s)
"""

from __future__ import annotations

import os
import statistics
import subprocess

from deploy_bench import REPO_ROOT, Runner

BUILD = os.path.join(REPO_ROOT, "tests", "fixtures", "app", "build.sh")
DIST = os.path.join(REPO_ROOT, "tests", "fixtures", "app", "dist")
# name: (version, build.sh options)
BAD = {
    "fails every request": ("4.0.0", ["--fail-share", "1"]),
    "fails 5% of requests": ("4.0.5", ["--fail-share", "0.05"]),
    "answers about 3x slower": ("4.1.0", ["--extra-latency", "{latency}"]),
}


# The canary's traffic-weight steps in the steps case (deploy_canary_weights).
STEPS = [5, 25]


def publish(runner, version, options):
    """Build `version` (amd64) into the dist directory the repo host serves, and copy it there."""
    subprocess.run([BUILD, "-p", "linux/amd64", *options, version], check=True, stdout=subprocess.DEVNULL)
    out = os.path.join(DIST, version)
    files = [os.path.join(out, name) for name in os.listdir(out)]
    subprocess.run(["scp", "-q", "-F", os.path.join(runner.state_dir, "ssh_config"), *files, "repo1:/tmp/"], check=True)
    names = " ".join("/tmp/" + os.path.basename(f) for f in files)
    runner.ssh("repo1", f"sudo mkdir -p /srv/artifacts/seedops-app/{version} && sudo mv {names} "
                        f"/srv/artifacts/seedops-app/{version}/ && sudo chmod 0644 /srv/artifacts/seedops-app/{version}/*")


def measure(runner, version, bake, rps, weights=None):
    """One deploy of `version` from 2.0.0 under load (with traffic-weight steps when `weights` are given): (seconds,
    failed share of all requests, stopped at the canary, the canary verdict or None)."""
    runner.playbook("playbooks/deploy.yml", "-e", "deploy_version=2.0.0")
    args = ["-e", f"deploy_version={version}"] + (["-e", f"deploy_canary_bake={bake}"] if bake else [])
    if weights:
        args += ["-e", '{"deploy_canary_weights": %s}' % list(weights)]
    seconds, summary = runner.under_load("playbooks/deploy.yml", *args, rps=rps, check=False)
    report = runner.latest_report()
    reached = [row["host"] for row in report["hosts"] if row["runs"] == version]
    sent = summary["during"]["sent"] or 1
    return {"seconds": round(seconds, 2), "failed": summary["during"]["failed"], "sent": summary["during"]["sent"],
            "failed_share": round(summary["during"]["failed"] / float(sent), 4), "hosts_on_release": reached,
            "verdict": (report.get("canary") or {}).get("verdict"), "reasons": (report.get("canary") or {}).get("reasons")}


def suite_canary(state_dir, lab_name, report_dir, bake=10, runs=5, rps=60, latency="200ms"):
    runner = Runner(state_dir, lab_name, report_dir)
    for version in ("1.0.0", "2.0.0"):
        subprocess.run([BUILD, version], check=True, stdout=subprocess.DEVNULL)
    runner.playbook("playbooks/site.yml", "-e", "deploy_version=2.0.0")
    bad = {}
    for name, (version, options) in BAD.items():
        publish(runner, version, [o.format(latency=latency) for o in options])
        bad[name] = {"version": version, "with": measure(runner, version, bake, rps),
                     "without": measure(runner, version, 0, rps)}
    # The canary at 5% of the traffic first: fewer requests meet a release that fails them all.
    steps = measure(runner, "4.0.0", bake, rps, weights=STEPS)
    good = {"with": [], "without": []}
    for _i in range(runs):
        for side, side_bake in (("with", bake), ("without", 0)):
            runner.playbook("playbooks/deploy.yml", "-e", "deploy_version=2.0.0")
            args = ["-e", "deploy_version=1.0.0"] + (["-e", f"deploy_canary_bake={side_bake}"] if side_bake else [])
            seconds, summary = runner.under_load("playbooks/deploy.yml", *args, rps=rps)
            report = runner.latest_report()
            good[side].append({"seconds": round(seconds, 2), "failed": summary["during"]["failed"],
                               "aborted": any(row["runs"] != "1.0.0" for row in report["hosts"]),
                               "verdict": (report.get("canary") or {}).get("verdict")})
    runner.playbook("playbooks/deploy.yml", "-e", "deploy_version=2.0.0")
    med = {side: statistics.median(r["seconds"] for r in good[side]) for side in good}
    false_aborts = sum(1 for r in good["with"] if r["aborted"])
    rows = []
    for name, entry in bad.items():
        w, wo = entry["with"], entry["without"]
        rows.append((f"{entry['version']} {name}: failed requests (share of all sent)",
                     f"{w['failed']} of {w['sent']} ({100 * w['failed_share']:.1f}%)",
                     f"{wo['failed']} of {wo['sent']} ({100 * wo['failed_share']:.1f}%)", None))
        rows.append((f"{entry['version']} {name}: hosts that ended on it / verdict",
                     f"{len(w['hosts_on_release'])} / {w['verdict']}", f"{len(wo['hosts_on_release'])} / -", None))
    rows.append((f"4.0.0 fails every request, canary at {STEPS} %: failed requests",
                 f"{steps['failed']} of {steps['sent']} ({100 * steps['failed_share']:.1f}%)",
                 f"{bad['fails every request']['without']['failed']} of {bad['fails every request']['without']['sent']}",
                 None))
    rows.append((f"good release, {runs} runs: false aborts", false_aborts, "-", None))
    rows.append((f"good release: wall time, median (s), bake {bake} s", round(med["with"], 2), round(med["without"], 2),
                 med["with"] / med["without"]))
    targets = {
        "fails every request: <=1% of requests failed": bad["fails every request"]["with"]["failed_share"] <= 0.01,
        "every bad release stopped at the canary": all(not e["with"]["hosts_on_release"] for e in bad.values())
        and not steps["hosts_on_release"],
        "good release: 0 false aborts": false_aborts == 0,
        "analysis adds <= bake + 2 s": med["with"] - med["without"] <= bake + 2,
    }
    return {"bake_s": bake, "rps": rps, "latency": latency, "bad": bad, "weight_steps": dict(steps, weights=STEPS),
            "good": good, "targets": targets}, rows
