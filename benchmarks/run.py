"""seedops.deploy benchmarks: side by side with what a user would otherwise pick, in one run,
on the lab. Not pass/fail: prints a table and writes JSON to benchmarks/results/.

  make bench                      (all suites)
  .venv/bin/python benchmarks/run.py --suite release [--host app1] [--switches 1000]

Suites:
  release  switch latency of `current` (p50/p99 over N switches, and reads that found `current`
           dangling) for seedops.deploy's rename-over switch vs `ln -sfn` as hand-written playbooks
           use it; unpack throughput of the release module's safe Python unpack vs `tar -xzf` of the
           same archive on the same host.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import subprocess
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
REPO_ROOT = os.path.dirname(HERE)
RESULTS = os.path.join(HERE, "results")
REMOTE = "/var/tmp/seedops-bench"


class Host:
    def __init__(self, state_dir, name):
        self.config = os.path.join(state_dir, "ssh_config")
        self.name = name

    def run(self, command, timeout=1800):
        r = subprocess.run(["ssh", "-F", self.config, "-o", "BatchMode=yes", self.name, command],
                           capture_output=True, text=True, timeout=timeout, check=False)
        if r.returncode != 0:
            raise SystemExit(f"bench: on {self.name}: {command}\n{r.stdout}{r.stderr}")
        return r.stdout

    def put(self, paths, dest):
        r = subprocess.run(["scp", "-q", "-F", self.config, *paths, f"{self.name}:{dest}/"], capture_output=True,
                           text=True, check=False)
        if r.returncode != 0:
            raise SystemExit(f"bench: copying to {self.name} failed: {r.stderr}")


def lab_up(name):
    r = subprocess.run([sys.executable, os.path.join(REPO_ROOT, "tests", "lab", "lab.py"), "--name", name, "up"],
                       capture_output=True, text=True, check=False)
    if r.returncode != 0:
        raise SystemExit(f"bench: the lab did not come up:\n{r.stdout}{r.stderr}")
    return os.path.join(os.environ.get("SEEDOPS_LAB_STATE") or os.path.join(REPO_ROOT, ".lab"), name)


def suite_release(host, switches, unpack_mb, repeat):
    host.run(f"sudo rm -rf {REMOTE} && mkdir -p {REMOTE}")
    utils = os.path.join(REPO_ROOT, "plugins", "module_utils")
    host.put([os.path.join(HERE, "remote", "release_bench.py"), os.path.join(utils, "_archive.py"),
              os.path.join(utils, "_releases.py")], REMOTE)
    switch = json.loads(host.run(f"sudo python3 {REMOTE}/release_bench.py switch {switches} {REMOTE}/switch"))
    # A release-like archive: some large binaries (incompressible) and many small text files.
    files = max(1, unpack_mb // 8)
    host.run(
        f"set -e; d={REMOTE}/src; mkdir -p $d/bin $d/static; "
        f"for i in $(seq 1 {files}); do head -c 4M /dev/urandom > $d/bin/blob$i; "
        f"base64 -w 76 < $d/bin/blob$i | head -c 4M > $d/static/page$i.txt; done; "
        f"for i in $(seq 1 2000); do echo \"config $i\" > $d/static/small$i.conf; done; "
        f"tar -C $d -czf {REMOTE}/release.tar.gz . && rm -rf $d")
    unpack = json.loads(host.run(f"sudo python3 {REMOTE}/release_bench.py unpack {REMOTE}/release.tar.gz "
                                 f"{REMOTE}/unpack {repeat}"))
    host.run(f"sudo rm -rf {REMOTE}")
    ours, ln = switch["seedops"], switch["ln -sfn"]
    tar = unpack["tar -xzf"]
    mine = unpack["seedops"]
    rows = [
        ("switch p50 (ms)", ours["p50_ms"], ln["p50_ms"], ours["p50_ms"] / ln["p50_ms"]),
        ("switch p99 (ms)", ours["p99_ms"], ln["p99_ms"], ours["p99_ms"] / ln["p99_ms"]),
        ("reads finding current dangling", ours["dangling_reads"], ln["dangling_reads"], None),
        ("unpack best (s)", mine["best_s"], tar["best_s"], mine["best_s"] / tar["best_s"]),
        ("unpack throughput (MB/s unpacked)", mine["unpacked_mb_per_s"], tar["unpacked_mb_per_s"],
         mine["unpacked_mb_per_s"] / tar["unpacked_mb_per_s"]),
    ]
    targets = {
        "switch_p99_ms<=5": ours["p99_ms"] <= 5,
        "unpack_throughput>=0.8x_tar": mine["unpacked_mb_per_s"] >= 0.8 * tar["unpacked_mb_per_s"],
    }
    return {"switch": switch, "unpack": unpack, "targets": targets}, rows, ("seedops.deploy", "alternative")


def print_table(title, header, rows):
    print(f"\n{title}")
    print(f"  {'measure':<36} {header[0]:>16} {header[1]:>16} {'ratio':>8}")
    for name, a, b, ratio in rows:
        r = f"{ratio:.2f}x" if ratio is not None else "-"
        print(f"  {name:<36} {a:>16} {b:>16} {r:>8}")


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n", maxsplit=1)[0])
    parser.add_argument("--suite", choices=["release", "all"], default="all")
    parser.add_argument("--lab", default=os.environ.get("SEEDOPS_LAB_NAME", "seedops-lab"))
    parser.add_argument("--host", default="app1", help="lab host to measure on (default app1)")
    parser.add_argument("--switches", type=int, default=1000)
    parser.add_argument("--unpack-mb", type=int, default=256, help="size of the unpack benchmark's payload")
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args(argv)
    state = lab_up(args.lab)
    host = Host(state, args.host)
    report = {"started": datetime.datetime.now(datetime.timezone.utc).isoformat(), "host": args.host, "suites": {}}
    if args.suite in ("release", "all"):
        data, rows, header = suite_release(host, args.switches, args.unpack_mb, args.repeat)
        report["suites"]["release"] = data
        print_table(f"release: {args.switches} switches on {args.host}; unpack of a "
                    f"{data['unpack']['archive_bytes'] / 1e6:.0f} MB tar.gz "
                    f"({data['unpack']['unpacked_bytes'] / 1e6:.0f} MB, {data['unpack']['members']} members), "
                    f"best of {args.repeat}; alternative: ln -sfn / tar -xzf", header, rows)
        print("  targets: " + ", ".join(f"{k} {'met' if v else 'NOT met'}" for k, v in data["targets"].items()))
    os.makedirs(RESULTS, exist_ok=True)
    stamp = datetime.datetime.now().strftime("%Y%m%d-%H%M%S")
    for name in (f"bench-{stamp}.json", "latest.json"):
        with open(os.path.join(RESULTS, name), "w", encoding="utf-8") as f:
            json.dump(report, f, indent=2)
    print(f"\nresults: {os.path.join(RESULTS, 'latest.json')}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
