"""A bounded HTTP load client for the lab: constant request rate against the load balancer's 127.0.0.1
port, some requests slow, every outcome counted.

    python tests/lab/load.py [--lab NAME | --url URL] [--rps 60] [--slow-share 0.1] [--slow 1s]
                             [--duration S | -- COMMAND ...] [--json FILE]

With a COMMAND, the load runs from one second before it starts until one second after it ends, and the
exit status is the command's. The summary (requests sent, failed, latency percentiles before, during
and after, and which versions answered when) is printed and, with --json, written as JSON.

Only loopback addresses are accepted, the rate is capped at 500 requests/s, the concurrency at 128
and the duration at 30 minutes.
"""

from __future__ import annotations

import argparse
import ipaddress
import json
import os
import random
import re
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from concurrent.futures import ThreadPoolExecutor

SEED = 20261202
MAX_RPS = 500
MAX_WORKERS = 128
MAX_SECONDS = 1800
VERSION = re.compile(r"version=(\S+)")
HERE = os.path.dirname(os.path.abspath(__file__))


def loopback_only(url: str) -> str:
    host = urllib.parse.urlsplit(url).hostname or ""
    try:
        ok = ipaddress.ip_address(host).is_loopback
    except ValueError:
        ok = host == "localhost"
    if not ok:
        raise SystemExit(f"load.py: {url} is not a loopback address; the load client only talks to 127.0.0.1 / ::1")
    return url


def lab_url(name: str, state_root: str | None = None) -> str:
    root = state_root or os.environ.get("SEEDOPS_LAB_STATE") or os.path.join(HERE, "..", "..", ".lab")
    with open(os.path.join(root, name, "lab.json"), encoding="utf-8") as f:
        doc = json.load(f)
    lb = next(h for h in doc["hosts"] if h["group"] == "lb")
    return f"http://127.0.0.1:{lb['ports']['80/tcp']}/"


def percentile(values: list, q: float):
    if not values:
        return None
    ordered = sorted(values)
    return round(ordered[min(len(ordered) - 1, int(round(q * (len(ordered) - 1))))], 4)


class Load:
    """Open-loop load: requests are sent on schedule whether or not earlier ones have answered."""

    def __init__(self, url: str, rps: float, slow_share: float, slow: str, timeout: float):
        self.url = loopback_only(url)
        self.rps = min(rps, MAX_RPS)
        self.slow_share = slow_share
        self.slow = slow
        self.timeout = timeout
        self.results = []  # (sent, latency, ok, version or error, slow)
        self.lock = threading.Lock()
        self.stop_event = threading.Event()
        self.thread = None
        self.pool = ThreadPoolExecutor(max_workers=MAX_WORKERS)
        self.started = None

    def one(self, scheduled: float, slow: bool) -> None:
        url = self.url + (("&" if "?" in self.url else "?") + "delay=" + self.slow if slow else "")
        sent = time.time()
        try:
            with urllib.request.urlopen(url, timeout=self.timeout) as response:
                body = response.read().decode("utf-8", "replace")
                match = VERSION.search(body)
                outcome = (response.status == 200, match.group(1) if match else "?")
        except urllib.error.HTTPError as exc:
            outcome = (False, f"HTTP {exc.code}")
        except Exception as exc:  # pylint: disable=broad-except
            outcome = (False, type(exc).__name__ + ": " + str(exc)[:80])
        done = time.time()
        with self.lock:
            self.results.append((scheduled, done - sent, outcome[0], outcome[1], slow, done))

    def run(self) -> None:
        interval = 1.0 / self.rps
        # Each request is slow with probability slow_share, drawn from a seeded generator (runs repeat). Not every
        # n-th request: a fixed period aliases with weighted round robin and hands one server every slow request
        # (a canary at weight 22 beside two at 100 gets about every 10th request).
        draw = random.Random(SEED)
        self.started = time.time()
        next_at = time.monotonic()
        deadline = next_at + MAX_SECONDS
        while not self.stop_event.is_set() and time.monotonic() < deadline:
            now = time.monotonic()
            if now < next_at:
                self.stop_event.wait(next_at - now)
                continue
            self.pool.submit(self.one, time.time(), draw.random() < self.slow_share)
            next_at += interval

    def start(self) -> None:
        self.thread = threading.Thread(target=self.run, daemon=True)
        self.thread.start()

    def stop(self) -> None:
        self.stop_event.set()
        if self.thread:
            self.thread.join()
        self.pool.shutdown(wait=True)

    def around(self, work, margin: float = 1.0):
        """Load from `margin` seconds before `work()` until `margin` seconds after it; returns (its result,
        the summary with before / during / after windows)."""
        self.start()
        time.sleep(margin)
        marks = {"start": time.time()}
        try:
            value = work()
        finally:
            marks["end"] = time.time()
            time.sleep(margin)
            self.stop()
        return value, self.summary(marks)

    def summary(self, marks: dict | None = None) -> dict:
        """Counts and latencies, overall and per window between marks (before / during / after)."""
        with self.lock:
            rows = list(self.results)
        marks = marks or {}
        windows = {"all": (0, float("inf"))}
        if "start" in marks and "end" in marks:
            windows.update(before=(0, marks["start"]), during=(marks["start"], marks["end"]),
                           after=(marks["end"], float("inf")))
        out = {"url": self.url, "rps": self.rps, "slow": self.slow, "slow_share": self.slow_share}
        for name, (lo, hi) in windows.items():
            sel = [r for r in rows if lo <= r[0] < hi]
            fast = [r[1] for r in sel if r[2] and not r[4]]
            out[name] = {
                "sent": len(sel), "failed": sum(1 for r in sel if not r[2]),
                "p50_ms": None if not fast else round(percentile(fast, 0.5) * 1000, 1),
                "p99_ms": None if not fast else round(percentile(fast, 0.99) * 1000, 1),
                "slow_sent": sum(1 for r in sel if r[4]), "slow_failed": sum(1 for r in sel if r[4] and not r[2]),
            }
        errors = {}
        for r in rows:
            if not r[2]:
                errors[r[3]] = errors.get(r[3], 0) + 1
        out["errors"] = errors
        versions = {}
        for r in rows:
            if r[2]:
                v = versions.setdefault(r[3], {"first": r[5], "last": r[5], "count": 0})
                v["first"], v["last"], v["count"] = min(v["first"], r[5]), max(v["last"], r[5]), v["count"] + 1
        out["versions"] = versions
        out["mixed_s"] = mixed_window(rows)
        return out


def mixed_window(rows: list):
    """Seconds during which answers of more than one version arrived: from the first answer of the
    newest version to the last answer of any older one (None when only one version answered)."""
    ok = sorted((r[5], r[3]) for r in rows if r[2])
    if not ok:
        return None
    first_seen = {}
    for t, v in ok:
        first_seen.setdefault(v, t)
    if len(first_seen) < 2:
        return None
    newest = max(first_seen, key=first_seen.get)
    last_old = max((t for t, v in ok if v != newest), default=None)
    if last_old is None or last_old < first_seen[newest]:
        return 0.0
    return round(last_old - first_seen[newest], 3)


def print_summary(s: dict) -> None:
    print(f"load: {s['rps']:.0f} requests/s to {s['url']}, 1 in {round(1 / s['slow_share']) if s['slow_share'] else 0} "
          f"slow ({s['slow']})")
    print(f"{'window':8} {'sent':>6} {'failed':>6} {'slow':>5} {'p50 ms':>8} {'p99 ms':>8}")
    for name in ("before", "during", "after", "all"):
        if name in s:
            w = s[name]
            print(f"{name:8} {w['sent']:6d} {w['failed']:6d} {w['slow_sent']:5d} {str(w['p50_ms']):>8} {str(w['p99_ms']):>8}")
    for version, v in sorted(s["versions"].items(), key=lambda kv: kv[1]["first"]):
        print(f"version {version}: {v['count']} answers")
    if s["mixed_s"] is not None:
        print(f"versions answered side by side for {s['mixed_s']:.3f} s")
    for error, count in s["errors"].items():
        print(f"failed: {count} x {error}")


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n", maxsplit=1)[0])
    where = parser.add_mutually_exclusive_group()
    where.add_argument("--lab", default="seedops-lab", help="lab whose load balancer to load (default seedops-lab)")
    where.add_argument("--url", help="URL to load instead (loopback only)")
    parser.add_argument("--rps", type=float, default=60.0)
    parser.add_argument("--slow-share", type=float, default=0.1, help="share of slow requests (default 0.1)")
    parser.add_argument("--slow", default="1s", help="delay of a slow request (default 1s)")
    parser.add_argument("--timeout", type=float, default=15.0)
    parser.add_argument("--duration", type=float, help="seconds of load (without a command)")
    parser.add_argument("--json", help="write the summary here")
    parser.add_argument("command", nargs=argparse.REMAINDER, help="-- COMMAND: load while it runs")
    args = parser.parse_args(argv)
    command = args.command[1:] if args.command[:1] == ["--"] else args.command
    if not command and not args.duration:
        parser.error("give --duration or -- COMMAND")
    load = Load(args.url or lab_url(args.lab), args.rps, args.slow_share, args.slow, args.timeout)
    if command:
        rc, summary = load.around(lambda: subprocess.run(command, check=False).returncode)
    else:
        rc, summary = load.around(lambda: time.sleep(min(args.duration, MAX_SECONDS)) or 0)
    summary["command_rc"] = rc
    print_summary(summary)
    if args.json:
        with open(args.json, "w", encoding="utf-8") as f:
            json.dump(summary, f, indent=2)
    return rc


if __name__ == "__main__":
    sys.exit(main())
