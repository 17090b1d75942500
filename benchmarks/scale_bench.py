"""The scale suite of benchmarks/run.py: what the deploy costs as the fleet grows, at each lab size given (3, 8, 16 app
hosts), in one run, side by side with the smallest size as ratios.

At each size (lab.py up --apps N, site.yml for the hosts that are new, then 1.0.0 everywhere), under 60 requests/s
through the load balancer: a rolling v1 -> v2 (2.0.0 forgotten on every host first, so it downloads, unpacks and
restarts everywhere), its version-skew window as the load client saw it (versions answered side by side), a no-op
rerun, a scale-in of the last app host (scale_in.yml) and its return (the haproxy role: it joins in maintenance;
deploy.yml without a version). And what each host costs the controller: CPU seconds of ansible-playbook and every
process it waited for (its forks), the peak memory of that process tree, and the peak of SSH client processes on the
machine - each for the rolling deploy and the no-op rerun, divided by the hosts. Then the same fleet with two
instances per host (deploy_beside_ports): a rolling deploy back to the staged 1.0.0, its time and its window.
Not in `all`: it resizes the lab (benchmarks/run.py --suite scale --scale-sizes 3,8,16).
"""

from __future__ import annotations

import json
import os
import resource
import statistics
import threading
import time

from deploy_bench import BESIDE, Runner, build_sample_packages, forget, load_client

SUMS = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "tests", "fixtures", "app", "dist",
                    "2.0.0", "SHA256SUMS")


def _procs():
    """{pid: (ppid, comm, rss KiB)} of every process on the machine, from /proc."""
    out = {}
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        try:
            with open(f"/proc/{name}/status", encoding="utf-8") as f:
                fields = dict(line.split(":", 1) for line in f if ":" in line)
        except OSError:
            continue
        rss = int(fields.get("VmRSS", "0 kB").split()[0]) if "VmRSS" in fields else 0
        out[int(name)] = (int(fields["PPid"]), fields["Name"].strip(), rss)
    return out


class Sampler:
    """While a playbook runs: the peak RSS of the process tree under this process (ansible-playbook and its forks)
    and the peak number of ssh client processes on the machine, every 0.2 s."""

    def __init__(self):
        self.rss_kib = 0
        self.ssh = 0
        self.done = threading.Event()
        self.thread = threading.Thread(target=self.run, daemon=True)

    def run(self):
        me = os.getpid()
        while not self.done.wait(0.2):
            procs = _procs()
            children = {}
            for pid, (ppid, _comm, _rss) in procs.items():
                children.setdefault(ppid, []).append(pid)
            tree, todo = [], list(children.get(me, []))
            while todo:
                pid = todo.pop()
                tree.append(pid)
                todo.extend(children.get(pid, []))
            self.rss_kib = max(self.rss_kib, sum(procs[p][2] for p in tree if p in procs))
            self.ssh = max(self.ssh, sum(1 for _pp, comm, _r in procs.values() if comm == "ssh"))

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.done.set()
        self.thread.join(5)


def measured(work):
    """Run work() and return (its result, {cpu_s, peak_rss_mib, peak_ssh}) for the controller."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    with Sampler() as sampler:
        result = work()
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return result, {"cpu_s": round(cpu, 2), "peak_rss_mib": round(sampler.rss_kib / 1024, 1), "peak_ssh": sampler.ssh}


def one_size(runner, apps):
    """Every measure at one lab size."""
    runner.playbook("playbooks/site.yml", "-e", "deploy_version=1.0.0")
    forget(runner, apps, "2.0.0", SUMS)
    rolling = ("playbooks/deploy.yml", "-e", "deploy_version=2.0.0")
    (rolling_s, load), rolling_cost = measured(lambda: runner.under_load(*rolling))
    noops = []
    for _i in range(2):
        (seconds, _r), cost = measured(lambda: runner.playbook("playbooks/deploy.yml", "-e", "deploy_version=2.0.0"))
        noops.append((seconds, cost))
    leaving = apps[-1]
    scale_in_s, scale_in_load = runner.under_load("playbooks/scale_in.yml", "-e", f"scale_in_hosts={leaving}")
    started = time.monotonic()
    runner.ssh(leaving, "sudo systemctl enable --quiet seedops-app")
    (_s, _r), load_back = _return(runner)
    return_s = time.monotonic() - started
    # Start beside, then flip (deploy_beside_ports): the fleet moved to two instances per host, then a rolling deploy
    # back to 1.0.0, which every host holds staged - every new instance starts before the first batch, and the batches
    # only flip - under the same load; then the fleet moves back to one instance.
    runner.playbook("tests/integration/playbooks/beside.yml", "-e", BESIDE)
    beside_s, beside_load = runner.under_load("playbooks/deploy.yml", "-e", "deploy_version=1.0.0", "-e", BESIDE)
    runner.playbook("tests/integration/playbooks/beside.yml")
    noop_s = statistics.median(s for s, _c in noops)
    noop_cost = min((c for _s, c in noops), key=lambda c: c["cpu_s"])
    n = len(apps)
    return {
        "hosts": n,
        "rolling_s": round(rolling_s, 2), "rolling_failed": load["all"]["failed"], "rolling_sent": load["all"]["sent"],
        "skew_window_s": load.get("mixed_s"),
        "noop_s": round(noop_s, 2),
        "scale_in_s": round(scale_in_s, 2), "scale_in_failed": scale_in_load["all"]["failed"],
        "return_s": round(return_s, 2), "return_failed": load_back["all"]["failed"],
        "beside_s": round(beside_s, 2), "beside_failed": beside_load["all"]["failed"],
        "beside_skew_window_s": beside_load.get("mixed_s"),
        "controller": {
            "rolling": dict(rolling_cost, cpu_s_per_host=round(rolling_cost["cpu_s"] / n, 2)),
            "noop": dict(noop_cost, cpu_s_per_host=round(noop_cost["cpu_s"] / n, 2)),
        },
    }


def _return(runner):
    """The host that left comes back: the haproxy role adds it in maintenance, deploy.yml without a version restarts
    it on the fleet's release behind the health gate; both under one load client."""
    def work():
        runner.playbook("tests/integration/playbooks/lb.yml")
        return runner.playbook("playbooks/deploy.yml")

    load = load_client.Load(load_client.lab_url(runner.lab_name, os.path.dirname(runner.state_dir)), 60, 0.1, "1s", 15)
    return load.around(work, margin=2.0)


def suite_scale(lab_up, lab_name, sizes, report_dir):
    """`lab_up(name, apps)` brings the lab to a size and returns its state directory."""
    per_size = []
    build_sample_packages()
    for size in sizes:
        state = lab_up(lab_name, size)
        runner = Runner(state, lab_name, report_dir)
        apps = [f"app{i}" for i in range(1, size + 1)]
        per_size.append(one_size(runner, apps))
        # Each size's figures as soon as they are measured, so a failure at a larger size keeps the smaller ones.
        os.makedirs(report_dir, exist_ok=True)
        with open(os.path.join(report_dir, "scale-sizes.json"), "w", encoding="utf-8") as f:
            json.dump(per_size, f, indent=1)
    base = per_size[0]
    data = {"sizes": per_size}
    rows = []
    for entry in per_size[1:]:
        tag = f"{entry['hosts']} vs {base['hosts']} hosts"
        rows += [
            (f"rolling v1 -> v2 under load (s), {tag}", entry["rolling_s"], base["rolling_s"],
             entry["rolling_s"] / base["rolling_s"]),
            (f"no-op rerun (s), {tag}", entry["noop_s"], base["noop_s"], entry["noop_s"] / base["noop_s"]),
            (f"two versions answered (s), {tag}", entry["skew_window_s"], base["skew_window_s"], None),
            (f"controller CPU per host, rolling (s), {tag}", entry["controller"]["rolling"]["cpu_s_per_host"],
             base["controller"]["rolling"]["cpu_s_per_host"], None),
            (f"controller peak memory, rolling (MiB), {tag}", entry["controller"]["rolling"]["peak_rss_mib"],
             base["controller"]["rolling"]["peak_rss_mib"], None),
            (f"scale in one host under load (s), {tag}", entry["scale_in_s"], base["scale_in_s"], None),
            (f"its return under load (s), {tag}", entry["return_s"], base["return_s"], None),
            (f"rolling beside, release staged, under load (s), {tag}", entry["beside_s"], base["beside_s"],
             entry["beside_s"] / base["beside_s"]),
            (f"two versions answered, beside (s), {tag}", entry["beside_skew_window_s"], base["beside_skew_window_s"],
             None),
        ]
    if len(per_size) == 1:
        rows = [(f"{k} ({base['hosts']} hosts)", v, "-", None) for k, v in base.items()
                if k.endswith("_s") or k.endswith("_failed")]
    failed = sum(e[k] for e in per_size for k in ("rolling_failed", "scale_in_failed", "return_failed", "beside_failed"))
    rows.append(("failed requests, every run of every size", failed, "-", None))
    largest = per_size[-1]
    data["targets"] = {
        "0 failed requests in every run": failed == 0,
        f"rolling at {largest['hosts']} hosts at most 1.5x of {base['hosts']}": largest["rolling_s"] <= 1.5 * base["rolling_s"],
        f"no-op at {largest['hosts']} hosts at most 1.3x of {base['hosts']}": largest["noop_s"] <= 1.3 * base["noop_s"],
        f"two versions answered at most 6 s at {largest['hosts']} hosts": (largest["skew_window_s"] or 0) <= 6,
        f"beside: two versions answered at most 6 s at {largest['hosts']} hosts":
            (largest["beside_skew_window_s"] or 0) <= 6,
    }
    return data, rows
