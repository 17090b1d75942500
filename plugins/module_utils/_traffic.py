# -*- coding: utf-8 -*-
# Copyright: seedops.deploy contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The traffic a release really serves, as the load balancer counts it, and the canary's verdict
(private to seedops.deploy).

HAProxy's `show stat` keeps, per server, cumulative counters of the responses it got (by status class), the
responses that failed (eresp) and the connections that failed (econ), plus a moving mean of the response time
(rtime, documented as the mean of the last 1024 requests; HAProxy keeps it as a sliding-window average over 512
samples, each response moving it by 1/512 of the difference - for a server that has served fewer than 512 requests
in all, the average of those).
Two samples give each server's requests and errors over the window between them, and - undoing that moving mean
with the number of responses in between - the mean response time of the window alone; the canary servers are
judged against absolute limits and against the baseline servers (those still on the old release), the way
Flagger's success-rate and latency checks and Kayenta's baseline comparison do it.
"""

from __future__ import annotations

import time

from ansible_collections.seedops.deploy.plugins.module_utils import _haproxy as hap

RESPONSES = ("hrsp_1xx", "hrsp_2xx", "hrsp_3xx", "hrsp_4xx", "hrsp_5xx", "hrsp_other")
FAILURES = ("hrsp_5xx", "eresp", "econ")
COUNTERS = RESPONSES + ("eresp", "econ", "wretr", "wredis")
VERDICTS = ("pass", "fail", "inconclusive")
# Below this many milliseconds, response times are too close to noise to be compared as a ratio.
RESPONSE_FLOOR_MS = 5.0
# The samples of HAProxy's moving mean of response times (rtime, ttime, ...): its TIME_STATS_SAMPLES.
RTIME_SAMPLES = 512.0
# The confidence with which a canary that has not served min_requests yet is failed on its errors alone: the
# lower end of the error ratio's 99% Wilson interval is above the limit.
EARLY_Z = 2.576
# HAProxy's highest server weight.
MAX_WEIGHT = 256


def others_weight(states, backend, canary):
    """The summed weight of the servers of `backend` that take traffic besides the `canary` servers (ready, up,
    weight above 0), from parse_servers_state's answer."""
    return sum(entry["weight"] for (proxy, server), entry in states.items()
               if proxy == backend and server not in canary and hap.admin_name(entry["admin_state"]) == "ready"
               and hap.op_name(entry["op_state"]) == "up" and entry["weight"] > 0)


def weight_for_share(share, canaries, others):
    """The weight each of `canaries` canary servers needs for `share` percent of the backend's traffic when the
    other servers in rotation weigh `others` together (HAProxy shares traffic by weight):
    {weight, share (percent that weight really gives), note (why that differs from the share asked, or None)}.
    Weights are whole numbers from 1 to 256, so coarse weights on the other servers give a coarse share."""
    if not 0 < share < 100:
        raise ValueError("a canary share is a percentage above 0 and below 100, got %s" % share)
    if others <= 0:
        return {"weight": None, "share": 100.0,
                "note": "no other server takes traffic, so the canary takes all of it"}
    exact = share / (100.0 - share) * others / canaries
    weight = min(MAX_WEIGHT, max(1, int(round(exact))))
    got = round(100.0 * canaries * weight / (canaries * weight + others), 1)
    note = None
    if abs(got - share) > max(1.0, 0.2 * share):
        note = ("%s%% needs weight %.1f on each canary server against the other servers' %d; HAProxy's weights (1 to "
                "%d) give %s%% - give the servers larger weights (the haproxy role's haproxy_server_weight) for finer "
                "steps" % (share, exact, others, MAX_WEIGHT, got))
    return {"weight": weight, "share": got, "note": note}


def seen_share(traffic, canary):
    """The percentage of the window's requests the canary servers served, or None without requests."""
    total = sum(entry["requests"] for entry in traffic.values())
    mine = sum(traffic[s]["requests"] for s in canary if s in traffic)
    return round(100.0 * mine / total, 1) if total else None


def window_mean(start_ms, end_ms, samples, start_count=0, end_count=0, n=RTIME_SAMPLES):
    """The mean of the `samples` values that moved HAProxy's moving mean from `start_ms` to `end_ms`. HAProxy keeps
    a decaying sum (each sample adds itself and takes 1/n of the sum away) and shows it divided by n - or, for a
    server that has served fewer than n requests in all (`start_count`, `end_count`: its req_tot at each end; 0
    when unknown), by that number, so a server new to traffic shows the plain mean of what it served. The window's
    samples then weigh n * (1 - r) in the sum, with r = (1 - 1/n) ** samples; where both ends show the sum over n,
    this is end = start * r + mean * (1 - r). None without samples."""
    if samples <= 0:
        return None
    keep = (1.0 - 1.0 / n) ** samples
    start_sum = start_ms * (min(start_count, n) if start_count > 0 else n)
    end_sum = end_ms * (min(end_count, n) if end_count > 0 else n)
    return round(max(0.0, (end_sum - start_sum * keep) / (n * (1.0 - keep))), 1)


def wilson_lower(errors, requests, z=EARLY_Z):
    """The lower end of the Wilson score interval of an error ratio: with `errors` of `requests` failed, the true
    ratio is at least this, with the confidence `z` stands for (2.576: 99%, two-sided). 0 without requests."""
    if requests <= 0 or errors <= 0:
        return 0.0
    p = errors / float(requests)
    z2n = z * z / requests
    centre = p + z2n / 2
    spread = z * ((p * (1 - p) + z2n / 4) / requests) ** 0.5
    return max(0.0, (centre - spread) / (1 + z2n))


def _int(value):
    try:
        return int(value or 0)
    except (TypeError, ValueError):
        return 0


def counters(stat_text, backend):
    """{server: {counter: int, rtime: ms, served: requests in all}} of `backend` from a `show stat` answer."""
    servers = {}
    for (proxy, server), row in hap.parse_stat(stat_text).items():
        if proxy != backend or server in ("FRONTEND", "BACKEND"):
            continue
        entry = {name: _int(row.get(name)) for name in COUNTERS}
        entry["rtime"] = _int(row.get("rtime"))
        # The requests the server served in all, which HAProxy divides its sum of response times by below n.
        entry["served"] = _int(row.get("req_tot"))
        servers[server] = entry
    return servers


def delta(before, after, seconds):
    """Each server's traffic between two `counters` samples: requests, errors, error_ratio, rps, rtime_ms.
    When a counter went down (HAProxy restarted in between, or counters were cleared), the server's counters
    count from zero."""
    out = {}
    for server, now in after.items():
        then = before.get(server, {})
        reset = any(now[name] < then.get(name, 0) for name in COUNTERS)
        if reset:
            then = {}
        moved = {name: now[name] - then.get(name, 0) for name in COUNTERS}
        requests = sum(moved[name] for name in RESPONSES) + moved["eresp"] + moved["econ"]
        errors = sum(moved[name] for name in FAILURES)
        answered = sum(moved[name] for name in RESPONSES)
        out[server] = {
            "requests": requests, "errors": errors, "5xx": moved["hrsp_5xx"],
            "connection_errors": moved["econ"], "response_errors": moved["eresp"], "retries": moved["wretr"],
            "error_ratio": round(errors / float(requests), 4) if requests else None,
            "rps": round(requests / seconds, 2) if seconds > 0 else None,
            # The window's own mean response time; after a reset of the counters, HAProxy's moving mean as it is.
            "rtime_ms": now["rtime"] if reset else window_mean(then.get("rtime", 0), now["rtime"], answered,
                                                               then.get("served", 0), now.get("served", 0)),
            "rtime_moving_ms": now["rtime"],
        }
    return out


def group(traffic, servers):
    """The sum of `servers`' traffic; response time weighted by requests."""
    rows = [traffic[s] for s in servers if s in traffic]
    requests = sum(r["requests"] for r in rows)
    errors = sum(r["errors"] for r in rows)
    timed = [(r["rtime_ms"], r["requests"]) for r in rows if r["requests"] and r["rtime_ms"] is not None]
    weight = sum(n for _ms, n in timed)
    return {"servers": [s for s in servers if s in traffic], "requests": requests, "errors": errors,
            "error_ratio": round(errors / float(requests), 4) if requests else None,
            "rtime_ms": round(sum(ms * n for ms, n in timed) / float(weight), 1) if weight else None}


def judge(traffic, canary, baseline, limits, timed=None):
    """The verdict on the canary servers: {verdict, reasons, canary, baseline}.

    limits: max_error_ratio, max_response_ratio (to the baseline's response time; 0 turns it off),
    max_response_ms (absolute; 0 turns it off), min_requests (per canary server, before any judgement),
    min_timed_requests (per canary server, before the response-time limits apply: a mean of a few dozen responses
    swings with every slow one). Response times come from `timed` - the traffic since the analysis began, across
    traffic-weight steps - and default to `traffic`.
    Every canary server is judged on its own too, so one bad host among several canaries fails the group.
    A canary fails on evidence (enough requests and a limit crossed); it is inconclusive while any canary
    server has had fewer than min_requests; otherwise it passes.
    """
    timed = traffic if timed is None else timed
    missing = [s for s in canary if s not in traffic]
    reasons = ["the load balancer has no server %s" % s for s in missing]
    canary_group = group(traffic, canary)
    base_group = group(traffic, baseline)
    base_timed = group(timed, baseline)
    verdict = "fail" if missing else "pass"
    base_ms = base_timed["rtime_ms"] if base_timed["requests"] else None
    short = []
    untimed = []
    for server in [s for s in canary if s in traffic]:
        seen = traffic[server]
        if seen["requests"] < max(1, limits["min_requests"]):
            # Too few requests to judge - unless its errors alone prove it: a release that fails every request
            # is stopped after a handful of them, not after min_requests.
            if wilson_lower(seen["errors"], seen["requests"]) > limits["max_error_ratio"]:
                verdict = "fail"
                reasons.append("%s: %d of its first %d requests failed - its error ratio is above %.1f%% with 99%% "
                               "confidence" % (server, seen["errors"], seen["requests"], 100 * limits["max_error_ratio"]))
                continue
            short.append("%s served %d requests, fewer than the %d needed to judge it"
                         % (server, seen["requests"], limits["min_requests"]))
            continue
        if (seen["error_ratio"] or 0) > limits["max_error_ratio"]:
            verdict = "fail"
            reasons.append("%s: error ratio %.1f%% (%d of %d requests) is above %.1f%%" % (
                server, 100 * seen["error_ratio"], seen["errors"], seen["requests"], 100 * limits["max_error_ratio"]))
        clocked = timed.get(server) or seen
        if clocked["rtime_ms"] is None:
            continue
        if clocked["requests"] < limits.get("min_timed_requests", 0):
            untimed.append("%s %d" % (server, clocked["requests"]))
            continue
        if limits["max_response_ms"] and clocked["rtime_ms"] > limits["max_response_ms"]:
            verdict = "fail"
            reasons.append("%s: response time %d ms is above %d ms" % (
                server, clocked["rtime_ms"], limits["max_response_ms"]))
        if limits["max_response_ratio"] and base_ms is not None:
            allowed = limits["max_response_ratio"] * max(base_ms, RESPONSE_FLOOR_MS)
            if clocked["rtime_ms"] > allowed:
                verdict = "fail"
                reasons.append("%s: response time %d ms is above %.1fx the baseline's %.1f ms (%d responses)" % (
                    server, clocked["rtime_ms"], limits["max_response_ratio"], base_ms, clocked["requests"]))
    if verdict == "pass" and short:
        verdict = "inconclusive"
        reasons.extend(short)
    if verdict == "pass":
        canary_timed = group(timed, canary)
        reasons.append("%s: error ratio %s over %d requests, response time %s ms over %d%s" % (
            ", ".join(canary_group["servers"]), _pct(canary_group["error_ratio"]), canary_group["requests"],
            canary_timed["rtime_ms"], canary_timed["requests"], "" if base_ms is None else
            "; baseline %s ms, error ratio %s" % (base_ms, _pct(base_group["error_ratio"]))))
        if untimed and (limits["max_response_ms"] or limits["max_response_ratio"]):
            reasons.append("response time not judged yet (responses: %s; it needs %d)"
                           % (", ".join(untimed), limits["min_timed_requests"]))
    return {"verdict": verdict, "reasons": reasons, "canary": canary_group, "baseline": base_group}


def _pct(ratio):
    return "-" if ratio is None else "%.2f%%" % (100 * ratio)


def set_states(path, backend, states):
    """Set servers' administrative states ([(server, state)], ready or drain) through the runtime API, in that order,
    in one call."""
    lines = ["set server %s/%s state %s" % (hap.check_name("backend", backend), hap.check_name("server", server), state)
             for server, state in states]
    if lines:
        hap.check_answer(hap.commands(path, lines), "; ".join(lines))


def set_weight(path, backend, weights):
    """Set each server's weight ({server: weight}) through the runtime API, one command each."""
    for server, weight in sorted(weights.items()):
        target = "%s/%s" % (hap.check_name("backend", backend), hap.check_name("server", server))
        line = "set server %s weight %d" % (target, weight)
        hap.check_answer(hap.command(path, line), line)


class Observer:
    """Samples `show stat` of one backend over a window and judges the canary, stopping early on a failure.
    `on_start()` runs right after the first read (to put the canary into rotation only once it is watched) and
    `on_fail()` the moment the verdict fails (to take it out before anything else happens)."""

    def __init__(self, socket_path, backend, read=None, clock=time.monotonic, sleep=time.sleep):
        hap.check_name("backend", backend)
        self.path = socket_path
        self.backend = backend
        self.read = read or (lambda: hap.command(self.path, "show stat"))
        self.clock = clock
        self.sleep = sleep
        self.origin = None  # the first read of all: response times are judged over everything since

    def sample(self):
        servers = counters(self.read(), self.backend)
        if not servers:
            raise hap.HAProxyError("HAProxy has no backend %s with servers (see `show stat` on %s)"
                                   % (self.backend, self.path))
        return servers

    def observe(self, canary, baseline, limits, window, interval=1.0, on_start=None, on_fail=None):
        """Watch up to `window` seconds: the judgement of the traffic since the start, every `interval`; ends at
        once on a failure, else at the end of the window. Returns judge()'s result plus window, elapsed, samples
        and the per-server traffic."""
        first = self.sample()
        if self.origin is None:
            self.origin = first
        if on_start:
            on_start()
        start = self.clock()
        samples = 1
        while True:
            remaining = window - (self.clock() - start)
            self.sleep(max(0.0, min(interval, remaining)))
            now = self.sample()
            samples += 1
            elapsed = self.clock() - start
            traffic = delta(first, now, elapsed)
            result = judge(traffic, canary, baseline, limits, delta(self.origin, now, elapsed))
            if result["verdict"] == "fail" and on_fail:
                on_fail()
            if result["verdict"] == "fail" or elapsed >= window:
                result.update(window=window, elapsed=round(elapsed, 2), samples=samples, servers=traffic,
                              early=elapsed < window)
                return result
