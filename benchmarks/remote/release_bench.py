"""Runs on a lab host (copied there by benchmarks/run.py with _archive.py and _releases.py).

  python3 release_bench.py switch N WORKDIR   -> JSON: our switch vs `ln -sfn`, latencies and dangling reads
  python3 release_bench.py unpack ARCHIVE WORKDIR REPEAT -> JSON: our unpack vs `tar -xzf`, seconds
"""

import json
import os
import shutil
import statistics
import subprocess
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import _archive  # noqa: E402  pylint: disable=wrong-import-position
import _releases  # noqa: E402  pylint: disable=wrong-import-position


def percentile(values, p):
    values = sorted(values)
    k = max(0, min(len(values) - 1, int(round(p / 100.0 * len(values) + 0.5)) - 1))
    return values[k]


def watch(current, stop, counts):
    """Reads through `current` in a loop, counting reads that found it missing or dangling."""
    while not stop.is_set():
        counts["reads"] += 1
        try:
            with open(os.path.join(current, "id")) as f:
                f.read()
        except OSError:
            counts["dangling"] += 1


def bench_switch(n, work):
    layout = _releases.Layout(work)
    layout.ensure()
    for rid in ("a", "b"):
        os.makedirs(layout.release_dir(rid), exist_ok=True)
        with open(os.path.join(layout.release_dir(rid), "id"), "w") as f:
            f.write(rid)
    _releases.switch_current(layout, "a")
    results = {}
    for name in ("seedops", "ln -sfn"):
        latencies = []
        counts = {"reads": 0, "dangling": 0}
        stop = threading.Event()
        reader = threading.Thread(target=watch, args=(layout.current, stop, counts))
        reader.start()
        for i in range(n):
            target = "b" if i % 2 == 0 else "a"
            t0 = time.perf_counter()
            if name == "seedops":
                _releases.switch_current(layout, target)
            else:
                subprocess.run(["ln", "-sfn", os.path.join("releases", target), layout.current], check=True)
            while os.path.basename(os.path.realpath(layout.current)) != target:
                pass
            latencies.append((time.perf_counter() - t0) * 1000.0)
        stop.set()
        reader.join()
        results[name] = {
            "switches": n,
            "p50_ms": round(statistics.median(latencies), 3),
            "p99_ms": round(percentile(latencies, 99), 3),
            "max_ms": round(max(latencies), 3),
            "reads": counts["reads"],
            "dangling_reads": counts["dangling"],
        }
    shutil.rmtree(work)
    return results


def bench_unpack(archive, work, repeat):
    runs = {"seedops": [], "tar -xzf": []}
    for _round in range(repeat):
        for name in runs:
            dest = os.path.join(work, "dest")
            shutil.rmtree(dest, ignore_errors=True)
            os.makedirs(dest)
            subprocess.run(["sync"], check=True)
            t0 = time.perf_counter()
            if name == "seedops":
                info = _archive.unpack(archive, dest, "auto")
            else:
                subprocess.run(["tar", "-xzf", archive, "-C", dest], check=True)
            runs[name].append(time.perf_counter() - t0)
    shutil.rmtree(work)
    size = os.path.getsize(archive)
    out = {}
    for name, times in runs.items():
        best = min(times)
        out[name] = {"runs": [round(t, 3) for t in times], "best_s": round(best, 3),
                     "median_s": round(statistics.median(times), 3),
                     "archive_mb_per_s": round(size / best / 1e6, 1),
                     "unpacked_mb_per_s": round(info["bytes"] / best / 1e6, 1)}
    out["archive_bytes"] = size
    out["unpacked_bytes"] = info["bytes"]
    out["members"] = info["members"]
    return out


def main():
    if sys.argv[1] == "switch":
        print(json.dumps(bench_switch(int(sys.argv[2]), sys.argv[3])))
    else:
        print(json.dumps(bench_unpack(sys.argv[2], sys.argv[3], int(sys.argv[4]))))


if __name__ == "__main__":
    main()
