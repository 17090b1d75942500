"""The deploy suite of benchmarks/run.py: deploy.yml against the lab, side by side in one run with a
baseline playbook of builtin modules (benchmarks/playbooks/builtin_rolling.yml: get_url with checksum,
unarchive, file, systemd, uri; no drain), every run under the same load from tests/lab/load.py.

  zero downtime  requests sent and failed, p50/p99 before, during and after, ours vs the baseline; again with
                 the service's stop timeout (SHUTDOWN_TIMEOUT) cut to 100 ms, shorter than its slow requests,
                 so a restart without drain cuts the requests in flight
  wall time      v1 -> v2 on the app hosts, the artifact not yet on them; target <= 0.6x the baseline. Twice: with
                 the sample service's package (about 3 MB) and with a package of realistic size (the same
                 service plus --big-mb MiB of incompressible data, published as version 2.0.1)
  version skew   deploy_switch=together vs rolling: the report's window between the first and the last
                 host starting v2, and the window in which the load client saw both versions answer
  no-op rerun    deploy.yml with nothing to do vs a trivial 4-task playbook (with and without facts)
  beside         the wall time and together again with deploy_beside_ports: the fleet moved to two instances per
                 host (tests/integration/playbooks/beside.yml), every deploy starting the new release beside the
                 old and flipping the load balancer, then moved back
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import statistics
import subprocess
import sys
import tarfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
REPO_ROOT = os.path.dirname(HERE)
sys.path.insert(0, os.path.join(REPO_ROOT, "tests", "lab"))

import load as load_client  # noqa: E402  pylint: disable=wrong-import-position

BASE = "/srv/seedops-app"
BESIDE = json.dumps({"seedops_demo_beside_ports": [8080, 8081]})


class Runner:
    def __init__(self, state_dir, lab_name, report_dir):
        self.inventory = os.path.join(state_dir, "inventory.yml")
        self.state_dir = state_dir
        self.lab_name = lab_name
        self.report_dir = report_dir
        self.env = {**os.environ, "ANSIBLE_COLLECTIONS_PATH": os.path.join(REPO_ROOT, ".venv", "collections"),
                    "ANSIBLE_CONFIG": os.path.join(REPO_ROOT, "ansible.cfg"), "SEEDOPS_DEPLOY_REPORT_DIR": report_dir}

    def playbook(self, path, *args, check=True):
        cmd = [os.path.join(os.path.dirname(sys.executable), "ansible-playbook"), "-i", self.inventory, path, *args]
        started = time.monotonic()
        r = subprocess.run(cmd, capture_output=True, text=True, cwd=REPO_ROOT, env=self.env, check=False)
        seconds = time.monotonic() - started
        if check and r.returncode != 0:
            # The whole output is kept: the tail alone rarely shows the first host that failed.
            os.makedirs(self.report_dir, exist_ok=True)
            log = os.path.join(self.report_dir, f"failed-{time.strftime('%Y%m%dT%H%M%S')}-{os.path.basename(path)}.log")
            with open(log, "w", encoding="utf-8") as f:
                f.write(f"$ {' '.join(cmd)}\n{r.stdout}\n--- stderr\n{r.stderr}")
            raise SystemExit(f"bench: {' '.join(cmd[3:])} failed (whole output: {log}):\n{r.stdout[-4000:]}{r.stderr[-2000:]}")
        return seconds, r

    def under_load(self, path, *args, rps=60, check=True):
        load = load_client.Load(load_client.lab_url(self.lab_name, os.path.dirname(self.state_dir)), rps, 0.1, "1s", 15)
        (seconds, _r), summary = load.around(lambda: self.playbook(path, *args, check=check), margin=2.0)
        return seconds, summary

    def ssh(self, host, command):
        return subprocess.run(["ssh", "-F", os.path.join(self.state_dir, "ssh_config"), "-o", "BatchMode=yes", host,
                               command], capture_output=True, text=True, check=False)

    def latest_report(self):
        with open(os.path.join(self.report_dir, "latest.json"), encoding="utf-8") as f:
            return json.load(f)


def forget(runner, hosts, version, sums):
    """Remove every trace of `version` from the app hosts (ours and the baseline's), so the next deploy of it
    downloads and unpacks from scratch. `sums`: its SHA256SUMS file on the controller."""
    with open(sums, encoding="utf-8") as f:
        digests = " ".join(f"{BASE}/store/sha256/{line.split()[0]}" for line in f if line.strip())
    for host in hosts:
        runner.ssh(host, f"sudo rm -rf {BASE}/releases/{version} {BASE}/releases/{version}.json "
                         f"{BASE}/releases/bl-{version} {BASE}/store/seedops-app-{version}-linux-amd64.tar.gz {digests}")


def publish_big(runner, work, big_mb):
    """Version 2.0.1: the 2.0.0 package's files plus big_mb MiB of random data, on the repo host."""
    version = "2.0.1"
    out = os.path.join(work, version)
    os.makedirs(out, exist_ok=True)
    name = f"seedops-app-{version}-linux-amd64.tar.gz"
    src = os.path.join(REPO_ROOT, "tests", "fixtures", "app", "dist", "2.0.0", "seedops-app-2.0.0-linux-amd64.tar.gz")
    with tarfile.open(src, "r:gz") as old, tarfile.open(os.path.join(out, name), "w:gz", compresslevel=1) as new:
        for member in old.getmembers():
            new.addfile(member, old.extractfile(member) if member.isfile() else None)
        info = tarfile.TarInfo("share/padding.bin")
        info.size = big_mb << 20
        info.mode = 0o644
        new.addfile(info, io.BytesIO(os.urandom(info.size)))
    digest = hashlib.sha256()
    with open(os.path.join(out, name), "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    with open(os.path.join(out, "SHA256SUMS"), "w", encoding="utf-8") as f:
        f.write(f"{digest.hexdigest()}  {name}\n")
    subprocess.run(["scp", "-q", "-F", os.path.join(runner.state_dir, "ssh_config"), os.path.join(out, name),
                    os.path.join(out, "SHA256SUMS"), "repo1:/tmp/"], check=True)
    runner.ssh("repo1", f"sudo mkdir -p /srv/artifacts/seedops-app/{version} && sudo mv /tmp/{name} /tmp/SHA256SUMS "
                        f"/srv/artifacts/seedops-app/{version}/ && sudo chmod 0644 /srv/artifacts/seedops-app/{version}/*")
    return version, os.path.join(out, "SHA256SUMS"), os.path.getsize(os.path.join(out, name))


def median_time(runner, times, path, *args):
    return statistics.median(runner.playbook(path, *args)[0] for _i in range(times))


def window(summary, name):
    w = summary[name]
    return f"{w['failed']}/{w['sent']} failed, p50 {w['p50_ms']} ms, p99 {w['p99_ms']} ms"


def build_sample_packages():
    """The sample service's 1.0.0 and 2.0.0 packages (tests/fixtures/app/dist), which site.yml publishes on the repo
    host; a fresh checkout has none."""
    for version in ("1.0.0", "2.0.0"):
        subprocess.run([os.path.join(REPO_ROOT, "tests", "fixtures", "app", "build.sh"), version], check=True,
                       stdout=subprocess.DEVNULL)


def suite_deploy(state_dir, lab_name, hosts, repeat, report_dir, big_mb=128):
    runner = Runner(state_dir, lab_name, report_dir)
    build_sample_packages()
    runner.playbook("playbooks/site.yml", "-e", "deploy_version=1.0.0")
    dist = os.path.join(REPO_ROOT, "tests", "fixtures", "app", "dist")
    big_version, big_sums, big_bytes = publish_big(runner, os.path.join(os.path.dirname(report_dir), "big"), big_mb)
    sizes = {"sample": ("2.0.0", os.path.join(dist, "2.0.0", "SHA256SUMS"),
                        os.path.getsize(os.path.join(dist, "2.0.0", "seedops-app-2.0.0-linux-amd64.tar.gz"))),
             "big": (big_version, big_sums, big_bytes)}
    data = {size: {"ours": [], "builtin": [], "bytes": sizes[size][2]} for size in sizes}
    for size, (version, sums, _bytes) in sizes.items():
        for _i in range(repeat):
            for name, path, args in (("ours", "playbooks/deploy.yml", ("-e", f"deploy_version={version}")),
                                     ("builtin", "benchmarks/playbooks/builtin_rolling.yml", ("-e", f"version={version}"))):
                runner.playbook("playbooks/deploy.yml", "-e", "deploy_version=1.0.0")
                forget(runner, hosts, version, sums)
                seconds, summary = runner.under_load(path, *args)
                data[size][name].append({"seconds": round(seconds, 2), "load": summary})
    # A service that stops faster than its slowest requests: the drain is what keeps them whole.
    runner.playbook("playbooks/deploy.yml", "-e", "deploy_version=1.0.0")
    runner.playbook("playbooks/reconfigure.yml", "-e", "seedops_demo_shutdown_timeout=100ms")
    harsh = {}
    try:
        for name, path, args in (("ours", "playbooks/deploy.yml", ("-e", "deploy_version=2.0.0")),
                                 ("builtin", "benchmarks/playbooks/builtin_rolling.yml", ("-e", "version=2.0.0"))):
            runner.playbook("playbooks/deploy.yml", "-e", "deploy_version=1.0.0")
            _seconds, harsh[name] = runner.under_load(path, *args)
    finally:
        runner.playbook("playbooks/deploy.yml", "-e", "deploy_version=1.0.0")
        runner.playbook("playbooks/reconfigure.yml")
    # Back to our layout, then the skew: rolling vs together, v1 -> v2 with v2 already staged.
    runner.playbook("playbooks/deploy.yml", "-e", "deploy_version=1.0.0")
    skew = {}
    for mode in ("rolling", "together"):
        runner.playbook("playbooks/deploy.yml", "-e", "deploy_version=1.0.0")
        _seconds, summary = runner.under_load("playbooks/deploy.yml", "-e", "deploy_version=2.0.0",
                                              "-e", f"deploy_switch={mode}")
        skew[mode] = {"report_skew_s": runner.latest_report()["skew_s"], "client_mixed_s": summary["mixed_s"],
                      "failed": summary["during"]["failed"], "sent": summary["during"]["sent"]}
    # Start beside, then flip: the same v1 -> v2 runs and the together switch with two instances per host.
    runner.playbook("tests/integration/playbooks/beside.yml", "-e", BESIDE)
    try:
        for size, (version, sums, _bytes) in sizes.items():
            data[size]["beside"] = []
            for _i in range(repeat):
                runner.playbook("playbooks/deploy.yml", "-e", "deploy_version=1.0.0", "-e", BESIDE)
                forget(runner, hosts, version, sums)
                seconds, summary = runner.under_load("playbooks/deploy.yml", "-e", f"deploy_version={version}",
                                                     "-e", BESIDE)
                data[size]["beside"].append({"seconds": round(seconds, 2), "load": summary})
        runner.playbook("playbooks/deploy.yml", "-e", "deploy_version=1.0.0", "-e", BESIDE)
        _seconds, summary = runner.under_load("playbooks/deploy.yml", "-e", "deploy_version=2.0.0",
                                              "-e", "deploy_switch=together", "-e", BESIDE)
        skew["together_beside"] = {"report_skew_s": runner.latest_report()["skew_s"],
                                   "client_mixed_s": summary["mixed_s"], "failed": summary["during"]["failed"],
                                   "sent": summary["during"]["sent"]}
    finally:
        runner.playbook("tests/integration/playbooks/beside.yml")
    # No-op rerun: everything is on 2.0.0 now.
    noop = {
        "deploy_rerun_s": median_time(runner, 3, "playbooks/deploy.yml", "-e", "deploy_version=2.0.0"),
        "trivial_facts_s": median_time(runner, 3, "benchmarks/playbooks/trivial.yml"),
        "trivial_no_facts_s": median_time(runner, 3, "benchmarks/playbooks/trivial.yml", "-e", "trivial_gather_facts=false"),
    }
    wall = {size: (statistics.median(r["seconds"] for r in data[size]["ours"]),
                   statistics.median(r["seconds"] for r in data[size]["builtin"])) for size in data}
    beside = {size: statistics.median(r["seconds"] for r in data[size]["beside"]) for size in data}
    o_load, b_load = data["sample"]["ours"][-1]["load"], data["sample"]["builtin"][-1]["load"]
    rows = [
        ("failed requests during (of sent)", f"{o_load['during']['failed']} of {o_load['during']['sent']}",
         f"{b_load['during']['failed']} of {b_load['during']['sent']}", None),
        ("latency before", window(o_load, "before"), window(b_load, "before"), None),
        ("latency during", window(o_load, "during"), window(b_load, "during"), None),
        ("latency after", window(o_load, "after"), window(b_load, "after"), None),
        ("failed requests, stop timeout 100 ms (of sent)",
         f"{harsh['ours']['during']['failed']} of {harsh['ours']['during']['sent']}",
         f"{harsh['builtin']['during']['failed']} of {harsh['builtin']['during']['sent']}", None),
        ("latency during, stop timeout 100 ms", window(harsh["ours"], "during"), window(harsh["builtin"], "during"), None),
    ]
    for size, (ours, base) in wall.items():
        rows.append((f"wall time v1 -> v2, {data[size]['bytes'] / 1e6:.0f} MB package, median (s)", round(ours, 2),
                     round(base, 2), ours / base))
    for size, (_ours, base) in wall.items():
        rows.append((f"wall time v1 -> v2, {data[size]['bytes'] / 1e6:.0f} MB, start beside + flip, median (s)",
                     round(beside[size], 2), round(base, 2), beside[size] / base))
    b_load = data["sample"]["beside"][-1]["load"]
    rows.append(("failed requests during, start beside + flip (of sent)",
                 f"{b_load['during']['failed']} of {b_load['during']['sent']}", "", None))
    rows += [
        ("version skew, together + flip (report / client, s)",
         f"{skew['together_beside']['report_skew_s']} / {skew['together_beside']['client_mixed_s']}", "", None),
        ("failed requests, together + flip",
         f"{skew['together_beside']['failed']} of {skew['together_beside']['sent']}", "", None),
        ("version skew, together (report / client, s)",
         f"{skew['together']['report_skew_s']} / {skew['together']['client_mixed_s']}", "", None),
        ("version skew, rolling (report / client, s)",
         f"{skew['rolling']['report_skew_s']} / {skew['rolling']['client_mixed_s']}", "", None),
        ("failed requests, together / rolling",
         f"{skew['together']['failed']} of {skew['together']['sent']} / "
         f"{skew['rolling']['failed']} of {skew['rolling']['sent']}", "", None),
        ("no-op rerun vs trivial playbook (s)", round(noop["deploy_rerun_s"], 2), round(noop["trivial_facts_s"], 2),
         noop["deploy_rerun_s"] / noop["trivial_facts_s"]),
        ("no-op rerun vs trivial, no facts (s)", round(noop["deploy_rerun_s"], 2),
         round(noop["trivial_no_facts_s"], 2), noop["deploy_rerun_s"] / noop["trivial_no_facts_s"]),
    ]
    targets = {
        "zero_failed_requests": all(r["load"]["all"]["failed"] == 0 for size in data for r in data[size]["ours"])
        and harsh["ours"]["all"]["failed"] == 0,
        "wall_time<=0.6x_builtin (sample package)": wall["sample"][0] <= 0.6 * wall["sample"][1],
        "wall_time<=0.6x_builtin (big package)": wall["big"][0] <= 0.6 * wall["big"][1],
        "together_skew<=1s": skew["together"]["report_skew_s"] is not None and skew["together"]["report_skew_s"] <= 1.0,
        "beside: zero_failed_requests": all(r["load"]["all"]["failed"] == 0 for size in data for r in data[size]["beside"]),
        "beside: wall_time<=0.6x_builtin (sample package)": beside["sample"] <= 0.6 * wall["sample"][1],
        "beside: wall_time<=0.6x_builtin (big package)": beside["big"] <= 0.6 * wall["big"][1],
        "together+flip: zero_failed and client skew<=1s": skew["together_beside"]["failed"] == 0
        and skew["together_beside"]["client_mixed_s"] is not None and skew["together_beside"]["client_mixed_s"] <= 1.0,
        "noop<=1.5x_trivial": noop["deploy_rerun_s"] <= 1.5 * noop["trivial_facts_s"],
    }
    return {"runs": data, "short_stop_timeout": harsh, "skew": skew, "noop": noop, "targets": targets}, rows
