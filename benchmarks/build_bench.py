"""The build suite of benchmarks/run.py: the time to build the sample service (tests/fixtures/app) per platform with
playbooks/build.yml (the build role: go build, the package module, SHA256SUMS, the build record), side by side in one
run with the hand-written alternative a user would keep, tests/fixtures/app/build.sh (go build, tar | gzip -n,
sha256sum), for the same platforms and the same Go.

  cold   a build cache of its own for every run (GOCACHE in a new directory): what a fresh build machine pays
  warm   the cache the side's previous run left: what a rebuild of one revision pays
  each platform alone (linux/amd64, linux/arm64), then every platform in one run

build_platforms is given, so no host is asked: the numbers are the controller's alone. The medians of --repeat runs.
"""

from __future__ import annotations

import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
REPO_ROOT = os.path.dirname(HERE)
SOURCE = os.path.join(REPO_ROOT, "tests", "fixtures", "app")
PLATFORMS = ("linux/amd64", "linux/arm64")


def timed(cmd, env):
    started = time.monotonic()
    r = subprocess.run(cmd, capture_output=True, text=True, cwd=REPO_ROOT, env=env, check=False)
    seconds = time.monotonic() - started
    if r.returncode != 0:
        raise SystemExit(f"bench: {' '.join(cmd)} failed:\n{r.stdout[-4000:]}{r.stderr[-2000:]}")
    return seconds


def ours(state_dir, platforms, out, env):
    playbook = os.path.join(os.path.dirname(sys.executable), "ansible-playbook")
    return timed([playbook, "-i", os.path.join(state_dir, "inventory.yml"), "playbooks/build.yml",
                  "-e", "build_app=seedops-app", "-e", f"build_source={SOURCE}", "-e", "build_version=7.7.7",
                  "-e", f"build_output_dir={out}", "-e", json.dumps({"build_platforms": list(platforms)})], env)


def alternative(platforms, out, env):
    return timed([os.path.join(SOURCE, "build.sh"), "-o", out, "-p", " ".join(platforms), "7.7.7"], env)


def run_side(side, state_dir, platforms, cache, work, env):
    out = tempfile.mkdtemp(dir=work)
    side_env = {**env, "GOCACHE": cache}
    if side == "seedops.deploy":
        return ours(state_dir, platforms, out, side_env)
    return alternative(platforms, out, side_env)


def suite_build(state_dir, repeat=3):
    env = {**os.environ, "ANSIBLE_COLLECTIONS_PATH": os.path.join(REPO_ROOT, ".venv", "collections"),
           "ANSIBLE_CONFIG": os.path.join(REPO_ROOT, "ansible.cfg")}
    work = tempfile.mkdtemp(prefix="seedops-bench-build-")
    cases = [(p,) for p in PLATFORMS] + [PLATFORMS]
    sides = ("seedops.deploy", "build.sh")
    runs = {}
    try:
        for platforms in cases:
            label = " + ".join(platforms)
            for side in sides:
                cold, warm = [], []
                for _i in range(repeat):
                    cache = tempfile.mkdtemp(dir=work)
                    cold.append(run_side(side, state_dir, platforms, cache, work, env))
                    warm.append(run_side(side, state_dir, platforms, cache, work, env))
                    shutil.rmtree(cache, ignore_errors=True)
                runs[(label, side)] = {"cold": [round(s, 2) for s in cold], "warm": [round(s, 2) for s in warm]}
    finally:
        shutil.rmtree(work, ignore_errors=True)
    go = subprocess.run(["go", "env", "GOVERSION"], capture_output=True, text=True, check=False).stdout.strip()
    data = {"go": go, "repeat": repeat, "cpus": os.cpu_count(), "runs": [
        {"platforms": label, "side": side, **times} for (label, side), times in runs.items()]}
    rows = []
    for platforms in cases:
        label = " + ".join(platforms)
        for kind in ("cold", "warm"):
            a = statistics.median(runs[(label, sides[0])][kind])
            b = statistics.median(runs[(label, sides[1])][kind])
            rows.append((f"{label}, {kind} cache, median (s)", round(a, 2), round(b, 2), a / b))
    warm_one = statistics.median(runs[(PLATFORMS[0], sides[0])]["warm"])
    warm_alt = statistics.median(runs[(PLATFORMS[0], sides[1])]["warm"])
    data["ansible_overhead_warm_s"] = round(warm_one - warm_alt, 2)
    return data, rows
