"""seedops.deploy benchmarks: side by side with what a user would otherwise pick, in one run,
on the lab. Not pass/fail: prints a table and writes JSON to benchmarks/results/.

  make bench                      (all suites)
  .venv/bin/python benchmarks/run.py --suite release [--host app1] [--switches 1000]

Suites:
  artifact pull of 256 MiB and 1 GiB files from nginx on the repo host to app1: seedops.deploy.artifact
           vs ansible.builtin.get_url with checksum vs curl -o + sha256sum on the host (wall time, time
           of the processes on the host, bytes those processes read beyond the file itself); push of
           256 MiB to the app hosts: artifact src= vs ansible.builtin.copy (wall time, controller CPU
           seconds and peak RSS), and a rerun with the artifact already present.
  deploy   deploy.yml v1 -> v2 under load vs a builtin-modules rolling playbook (zero downtime, wall
           time), version skew of deploy_switch=together vs rolling, no-op rerun vs a trivial playbook
           (see benchmarks/deploy_bench.py).
  release  switch latency of `current` (p50/p99 over N switches, and reads that found `current`
           dangling) for seedops.deploy's rename-over switch vs `ln -sfn` as hand-written playbooks
           use it; unpack throughput of the release module's safe Python unpack vs `tar -xzf` of the
           same archive on the same host.
  canary   releases whose /healthz passes while they fail every request, 5% of requests, or answer 3x slower,
           deployed with canary analysis (deploy_canary_bake) vs the same deploy without it (failed share of
           all requests, hosts that ended on the bad release); a good release N times: false aborts and the
           time the analysis adds (see benchmarks/canary_bench.py).
  fanout   bytes the origin (nginx on the repo host) sends to stage one package on every app host, with the peer
           fan-out (deploy_fanout) vs every host pulling from the origin, and the deploy's wall time each way, on
           a lab of --apps N app hosts (3, 8 or 16; see benchmarks/fanout_bench.py). Not in `all`: it takes a lab
           of the size to measure. Every suite brings the lab up with --apps (default 3), adding or removing hosts.
  mixed    deploy.yml v1 -> v2 under load on a fleet with an emulated arm64 host (lab.py up --arm64 1) vs the amd64
           hosts alone, side by side (see benchmarks/mixed_bench.py). Not in `all`: it needs the arm64 host.
  build    the sample service built per platform (linux/amd64, linux/arm64, then both) by playbooks/build.yml vs
           tests/fixtures/app/build.sh (go build, tar, sha256sum), each with a cold and a warm Go build cache
           (see benchmarks/build_bench.py). Controller only: no host is asked.
  scale    the deploy at each lab size of --scale-sizes (default 3,8,16 app hosts), each against the first: rolling
           v1 -> v2 and its version-skew window under load, the no-op rerun, a scale-in and the host's return under
           load, and the controller's CPU seconds, peak memory and SSH clients per host (see
           benchmarks/scale_bench.py). Not in `all`: it resizes the lab.
  container deploy.yml v1 -> v2 under load with deploy_kind=container (images pulled by digest from a registry on
           repo1) vs the package deploy on the same fleet (see benchmarks/container_bench.py). Not in `all`: it
           installs the Docker engine on the app hosts.
"""

from __future__ import annotations

import argparse
import datetime
import hashlib
import json
import os
import subprocess
import sys
import time

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


def ansible(state_dir, pattern, module, args, extra=(), interpreter=None):
    """Run one ad-hoc module through the ansible CLI; returns (seconds, controller cpu s, peak RSS MiB, rc, out)."""
    cmd = [os.path.join(os.path.dirname(sys.executable), "ansible"), pattern, "-i",
           os.path.join(state_dir, "inventory.yml"), "-b", "-m", module, "-a", json.dumps(args), *extra]
    if interpreter:
        cmd += ["-e", json.dumps({"ansible_python_interpreter": interpreter})]
    env = {**os.environ, "ANSIBLE_COLLECTIONS_PATH": os.path.join(REPO_ROOT, ".venv", "collections"),
           "ANSIBLE_CONFIG": os.path.join(REPO_ROOT, "ansible.cfg"), "ANSIBLE_CALLBACK_RESULT_FORMAT": "json"}
    started = time.monotonic()
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env, cwd=REPO_ROOT)
    out = proc.stdout.read()
    _pid, status, usage = os.wait4(proc.pid, 0)
    seconds = time.monotonic() - started
    rc = os.waitstatus_to_exitcode(status)
    if rc != 0:
        raise SystemExit(f"bench: ansible -m {module} failed:\n{out[-3000:]}")
    return seconds, usage.ru_utime + usage.ru_stime, usage.ru_maxrss / 1024.0, rc, out


def io_log(host):
    lines = host.run(f"sudo sh -c 'cat {REMOTE}/io.jsonl 2>/dev/null; rm -f {REMOTE}/io.jsonl'").splitlines()
    return [json.loads(line) for line in lines if line.strip()]


def suite_artifact(host, state_dir, repo_address, sizes_mb, push_mb, hosts):
    wrap = f"{REMOTE}/iowrap"  # an executable, to serve as ansible_python_interpreter
    host.run(f"sudo rm -rf {REMOTE} && sudo mkdir -p {REMOTE} && sudo chmod 0777 {REMOTE}")
    host.put([os.path.join(HERE, "remote", "iowrap.py")], REMOTE)
    host.run(f"printf '#!/bin/sh\\nexec /usr/bin/python3 {REMOTE}/iowrap.py \"$@\"\\n' > {wrap} && chmod 0755 {wrap}")
    host.run("command -v curl >/dev/null || (sudo apt-get update -qq && "
             "sudo DEBIAN_FRONTEND=noninteractive apt-get install -y -qq curl >/dev/null)")
    repo = Host(state_dir, "repo1")
    rows, data = [], {"pull": {}, "push": {}}
    for mb in sizes_mb:
        name = f"b{mb}.bin"
        digest = repo.run(f"sudo mkdir -p /srv/artifacts/bench && (test -s /srv/artifacts/bench/{name} || sudo sh -c "
                          f"'head -c {mb}M /dev/urandom > /srv/artifacts/bench/{name}') && "
                          f"sha256sum /srv/artifacts/bench/{name}").split()[0]
        url = f"http://{repo_address}/bench/{name}"
        size = mb << 20
        results = {}
        modules = (("seedops.deploy.artifact", {"store": f"{REMOTE}/store"}, f"{REMOTE}/store"),
                   ("ansible.builtin.get_url", {"dest": f"{REMOTE}/get_url.bin"}, f"{REMOTE}/get_url.bin"))
        for module, target, written in modules:
            host.run("sync")
            wall = ansible(state_dir, host.name, module, {"url": url, "checksum": "sha256:" + digest, **target},
                           interpreter=wrap)[0]
            proc = io_log(host)[-1]
            results[module] = {"wall_s": wall, "host_s": proc["seconds"], "reread_bytes": max(0, proc["rchar"] - size)}
            host.run(f"sudo rm -rf {written}")
        # curl -o + sha256sum on the host
        host.run("sync")
        started = time.monotonic()
        host.run(f"sudo {wrap} --cmd curl -sS -o {REMOTE}/curl.bin {url} && sudo {wrap} --cmd sha256sum {REMOTE}/curl.bin")
        wall = time.monotonic() - started
        curl, sha = io_log(host)[-2:]
        results["curl -o + sha256sum"] = {"wall_s": wall, "host_s": curl["seconds"] + sha["seconds"],
                                          "reread_bytes": sha["rchar"]}
        host.run(f"sudo rm -f {REMOTE}/curl.bin")
        data["pull"][f"{mb}MiB"] = results
        ours, gu, cu = (results[k] for k in ("seedops.deploy.artifact", "ansible.builtin.get_url", "curl -o + sha256sum"))
        rows.append((f"pull {mb} MiB: host time (s)", f"{ours['host_s']:.2f}",
                     f"get_url {gu['host_s']:.2f} / curl {cu['host_s']:.2f}",
                     f"{ours['host_s'] / gu['host_s']:.2f}x / {ours['host_s'] / cu['host_s']:.2f}x"))
        rows.append((f"pull {mb} MiB: wall time (s)", f"{ours['wall_s']:.2f}",
                     f"get_url {gu['wall_s']:.2f} / curl {cu['wall_s']:.2f}",
                     f"{ours['wall_s'] / gu['wall_s']:.2f}x / {ours['wall_s'] / cu['wall_s']:.2f}x"))
        rows.append((f"pull {mb} MiB: bytes re-read (MiB)", f"{ours['reread_bytes'] / 2**20:.1f}",
                     f"get_url {gu['reread_bytes'] / 2**20:.1f} / curl {cu['reread_bytes'] / 2**20:.1f}", "-"))
    # push
    local = os.path.join(RESULTS, ".push-%d.bin" % push_mb)
    os.makedirs(RESULTS, exist_ok=True)
    if not os.path.exists(local) or os.path.getsize(local) != push_mb << 20:
        with open(local, "wb") as f:
            for _i in range(push_mb):
                f.write(os.urandom(1 << 20))
    digest = hashlib.sha256(open(local, "rb").read()).hexdigest()
    pattern = ",".join(hosts)
    for h in hosts:
        Host(state_dir, h).run(f"sudo rm -rf {REMOTE}/pushstore {REMOTE}/copy.bin; sudo mkdir -p {REMOTE}")
    push = {}
    wall, cpu, rss, _rc, _out = ansible(state_dir, pattern, "seedops.deploy.artifact",
                                        {"src": local, "checksum": "sha256:" + digest, "store": f"{REMOTE}/pushstore"})
    push["seedops.deploy.artifact"] = {"wall_s": wall, "controller_cpu_s": cpu, "controller_peak_rss_mib": rss}
    wall2 = ansible(state_dir, pattern, "seedops.deploy.artifact",
                    {"src": local, "checksum": "sha256:" + digest, "store": f"{REMOTE}/pushstore"})[0]
    push["seedops.deploy.artifact"]["rerun_wall_s"] = wall2
    wall, cpu, rss, _rc, _out = ansible(state_dir, pattern, "ansible.builtin.copy",
                                        {"src": local, "dest": f"{REMOTE}/copy.bin"})
    push["ansible.builtin.copy"] = {"wall_s": wall, "controller_cpu_s": cpu, "controller_peak_rss_mib": rss}
    wall2 = ansible(state_dir, pattern, "ansible.builtin.copy", {"src": local, "dest": f"{REMOTE}/copy.bin"})[0]
    push["ansible.builtin.copy"]["rerun_wall_s"] = wall2
    for h in hosts:
        Host(state_dir, h).run(f"sudo rm -rf {REMOTE}")
    push["floor: ansible ping"] = {"wall_s": ansible(state_dir, pattern, "ansible.builtin.ping", {"data": "pong"})[0]}
    data["push"][f"{push_mb}MiB to {len(hosts)} hosts"] = push
    ours, cp = push["seedops.deploy.artifact"], push["ansible.builtin.copy"]
    for key, label in (("wall_s", "wall time (s)"), ("controller_cpu_s", "controller CPU (s)"),
                       ("controller_peak_rss_mib", "controller peak RSS (MiB)"), ("rerun_wall_s", "rerun, present (s)")):
        rows.append((f"push {push_mb} MiB x{len(hosts)}: {label}", f"{ours[key]:.2f}", f"copy {cp[key]:.2f}",
                     f"{ours[key] / cp[key]:.2f}x"))
    rows.append((f"floor: ansible -m ping, {len(hosts)} hosts (s)", "-", f"{push['floor: ansible ping']['wall_s']:.2f}",
                 None))
    data["targets"] = {
        "pull_host_time<=1.1x_curl+sha256sum": all(
            r["seedops.deploy.artifact"]["host_s"] <= 1.1 * r["curl -o + sha256sum"]["host_s"] for r in data["pull"].values()),
        "pull_zero_bytes_reread(<1MiB)": all(
            r["seedops.deploy.artifact"]["reread_bytes"] < 2**20 for r in data["pull"].values()),
        "push_wall<=0.7x_copy": ours["wall_s"] <= 0.7 * cp["wall_s"],
        "push_rerun<=2s": ours["rerun_wall_s"] <= 2.0,
    }
    return data, rows


def lab_up(name, apps, arm64=0):
    r = subprocess.run([sys.executable, os.path.join(REPO_ROOT, "tests", "lab", "lab.py"), "--name", name, "up",
                        "--apps", str(apps), "--arm64", str(arm64)],
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
    cells = [(str(name), str(a), str(b), f"{ratio:.2f}x" if isinstance(ratio, float) else str(ratio or "-"))
             for name, a, b, ratio in rows]
    widths = [max(len(c[i]) for c in cells + [("measure", header[0], header[1], "ratio")]) for i in range(4)]
    print(f"  {'measure':<{widths[0]}}  {header[0]:>{widths[1]}}  {header[1]:>{widths[2]}}  {'ratio':>{widths[3]}}")
    for name, a, b, ratio in cells:
        print(f"  {name:<{widths[0]}}  {a:>{widths[1]}}  {b:>{widths[2]}}  {ratio:>{widths[3]}}")


def lab_apps(state_dir):
    """The lab's app hosts, by name."""
    with open(os.path.join(state_dir, "lab.json"), encoding="utf-8") as f:
        return [h["name"] for h in json.load(f)["hosts"] if h["group"] == "app"]


def show(report, suite, title, header, data, rows):
    """Keep a suite's data in the report, print its table and whether its targets were met."""
    report["suites"][suite] = data
    print_table(title, header, rows)
    print("  targets: " + ", ".join(f"{k} {'met' if v else 'NOT met'}" for k, v in data["targets"].items()))


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n", maxsplit=1)[0])
    suites = ["artifact", "release", "deploy", "canary", "fanout", "build", "mixed", "scale", "container", "all"]
    parser.add_argument("--suite", choices=suites, default="all")
    parser.add_argument("--sizes", default="256,1024", help="pull file sizes in MiB (default 256,1024)")
    parser.add_argument("--push-mb", type=int, default=256)
    parser.add_argument("--lab", default=os.environ.get("SEEDOPS_LAB_NAME", "seedops-lab"))
    parser.add_argument("--host", default="app1", help="lab host to measure on (default app1)")
    parser.add_argument("--apps", type=int, default=int(os.environ.get("SEEDOPS_LAB_APPS", "3")),
                        help="app hosts the lab is brought up with (default 3; the fanout suite takes 3, 8 or 16)")
    parser.add_argument("--arm64", type=int, default=None,
                        help="arm64 hosts the lab is brought up with (default 0; 1 for the mixed suite)")
    parser.add_argument("--switches", type=int, default=1000)
    parser.add_argument("--unpack-mb", type=int, default=256, help="size of the unpack benchmark's payload")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--deploy-repeat", type=int, default=2, help="v1 -> v2 runs of each side in the deploy suite")
    parser.add_argument("--big-mb", type=int, default=128, help="padding of the deploy suite's realistic package")
    parser.add_argument("--canary-bake", type=int, default=10, help="deploy_canary_bake of the canary suite (s)")
    parser.add_argument("--build-repeat", type=int, default=3, help="runs of each side and case in the build suite")
    parser.add_argument("--scale-sizes", default="3,8,16",
                        help="app hosts of the lab at each step of the scale suite (default 3,8,16)")
    parser.add_argument("--canary-runs", type=int, default=5, help="good-release runs of each side in the canary suite")
    args = parser.parse_args(argv)
    state = lab_up(args.lab, args.apps, args.arm64 if args.arm64 is not None else int(args.suite == "mixed"))
    host = Host(state, args.host)
    report = {"started": datetime.datetime.now(datetime.timezone.utc).isoformat(), "host": args.host, "suites": {}}
    if args.suite in ("artifact", "all"):
        with open(os.path.join(state, "lab.json"), encoding="utf-8") as f:
            lab = json.load(f)
        address = next(h["address"] for h in lab["hosts"] if h["name"] == "repo1")
        apps = [h["name"] for h in lab["hosts"] if h["group"] == "app"]
        data, rows = suite_artifact(host, state, address, [int(x) for x in args.sizes.split(",")], args.push_mb, apps)
        report["suites"]["artifact"] = data
        print_table(f"artifact: pull to {args.host} from nginx on repo1; push to {', '.join(apps)}",
                    ("seedops.deploy", "alternatives"), rows)
        print("  targets: " + ", ".join(f"{k} {'met' if v else 'NOT met'}" for k, v in data["targets"].items()))
    if args.suite in ("release", "all"):
        data, rows, header = suite_release(host, args.switches, args.unpack_mb, args.repeat)
        report["suites"]["release"] = data
        print_table(f"release: {args.switches} switches on {args.host}; unpack of a "
                    f"{data['unpack']['archive_bytes'] / 1e6:.0f} MB tar.gz "
                    f"({data['unpack']['unpacked_bytes'] / 1e6:.0f} MB, {data['unpack']['members']} members), "
                    f"best of {args.repeat}; alternative: ln -sfn / tar -xzf", header, rows)
        print("  targets: " + ", ".join(f"{k} {'met' if v else 'NOT met'}" for k, v in data["targets"].items()))
    if args.suite in ("deploy", "all"):
        import deploy_bench  # pylint: disable=import-outside-toplevel

        with open(os.path.join(state, "lab.json"), encoding="utf-8") as f:
            apps = [h["name"] for h in json.load(f)["hosts"] if h["group"] == "app"]
        os.makedirs(RESULTS, exist_ok=True)
        data, rows = deploy_bench.suite_deploy(state, args.lab, apps, args.deploy_repeat,
                                               os.path.join(RESULTS, "deploy-reports"), args.big_mb)
        report["suites"]["deploy"] = data
        print_table(f"deploy: v1 -> v2 on {', '.join(apps)} under 60 requests/s (1 in 10 slow, 1 s); "
                    "alternative: builtin modules (get_url, unarchive, file, systemd, uri), no drain",
                    ("seedops.deploy", "alternative"), rows)
        print("  targets: " + ", ".join(f"{k} {'met' if v else 'NOT met'}" for k, v in data["targets"].items()))
    if args.suite in ("canary", "all"):
        import canary_bench  # pylint: disable=import-outside-toplevel

        os.makedirs(RESULTS, exist_ok=True)
        data, rows = canary_bench.suite_canary(state, args.lab, os.path.join(RESULTS, "deploy-reports"),
                                               bake=args.canary_bake, runs=args.canary_runs)
        report["suites"]["canary"] = data
        print_table(f"canary: bad releases and a good one from 2.0.0 under 60 requests/s (1 in 10 slow, 1 s), "
                    f"deploy_canary_bake={args.canary_bake}; alternative: the same rolling, health-gated deploy "
                    "without analysis", ("with analysis", "without"), rows)
        print("  targets: " + ", ".join(f"{k} {'met' if v else 'NOT met'}" for k, v in data["targets"].items()))
    if args.suite in ("build", "all"):
        import build_bench  # pylint: disable=import-outside-toplevel

        data, rows = build_bench.suite_build(state, args.build_repeat)
        report["suites"]["build"] = data
        print_table(f"build: the sample service per platform with {data['go']} on {data['cpus']} CPUs, median of "
                    f"{args.build_repeat}; alternative: tests/fixtures/app/build.sh", ("build.yml", "build.sh"), rows)
    if args.suite in ("mixed", "container"):
        apps = lab_apps(state)
        os.makedirs(RESULTS, exist_ok=True)
        reports = os.path.join(RESULTS, "deploy-reports")
        if args.suite == "mixed":
            import mixed_bench  # pylint: disable=import-outside-toplevel

            data, rows = mixed_bench.suite_mixed(state, args.lab, apps, reports, args.deploy_repeat)
            title = (f"mixed: v1 -> v2 on {', '.join(apps)} (arm64 emulated) under 60 requests/s; alternative: the "
                     "amd64 hosts alone")
            header = ("mixed fleet", "amd64 only")
        else:
            import container_bench  # pylint: disable=import-outside-toplevel

            data, rows = container_bench.suite_container(state, args.lab, apps, reports, args.deploy_repeat)
            title = (f"container: v1 -> v2 on {', '.join(apps)} as images pulled by digest from repo1's registry, "
                     "under 60 requests/s (1 in 10 slow, 1 s); alternative: the package deploy on the same fleet")
            header = ("container", "package")
        show(report, args.suite, title, header, data, rows)
    if args.suite == "scale":
        import scale_bench  # pylint: disable=import-outside-toplevel

        os.makedirs(RESULTS, exist_ok=True)
        sizes = [int(x) for x in args.scale_sizes.split(",")]
        data, rows = scale_bench.suite_scale(lab_up, args.lab, sizes,
                                             os.path.join(RESULTS, "deploy-reports"))
        report["suites"]["scale"] = data
        print_table(f"scale: the deploy at {', '.join(map(str, sizes))} app hosts under 60 requests/s (1 in 10 slow, 1 s), "
                    f"each size against {sizes[0]}", ("larger fleet", f"{sizes[0]} hosts"), rows)
        for entry in data["sizes"]:
            c = entry["controller"]
            print(f"  controller at {entry['hosts']} hosts: rolling {c['rolling']['cpu_s']} CPU s "
                  f"({c['rolling']['cpu_s_per_host']}/host), peak {c['rolling']['peak_rss_mib']} MiB, "
                  f"{c['rolling']['peak_ssh']} ssh; no-op {c['noop']['cpu_s']} CPU s ({c['noop']['cpu_s_per_host']}/host), "
                  f"peak {c['noop']['peak_rss_mib']} MiB")
        print("  targets: " + ", ".join(f"{k} {'met' if v else 'NOT met'}" for k, v in data["targets"].items()))
    if args.suite == "fanout":
        import fanout_bench  # pylint: disable=import-outside-toplevel

        with open(os.path.join(state, "lab.json"), encoding="utf-8") as f:
            apps = [h["name"] for h in json.load(f)["hosts"] if h["group"] == "app"]
        os.makedirs(RESULTS, exist_ok=True)
        data, rows = fanout_bench.suite_fanout(state, args.lab, apps, os.path.join(RESULTS, "deploy-reports"),
                                               args.big_mb, args.deploy_repeat)
        report["suites"]["fanout"] = data
        print_table(f"fanout: staging a {data['package_bytes'] / 1e6:.0f} MB package on {len(apps)} app hosts; "
                    "alternative: every host pulls from the origin", ("deploy_fanout", "from the origin"), rows)
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
