#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: seedops.deploy contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
module: traffic_check
short_description: Judge canary servers by the real traffic the load balancer sees, against limits and a baseline
version_added: 0.1.0
author: Seedops Maintainers (@seedops-maintainers)
description:
  - Samples HAProxy's per-server counters (C(show stat) through the runtime API - responses by status class,
    response and connection errors, mean response time) every O(interval) seconds for up to O(window) seconds, and
    judges the traffic the O(canary) servers served since the start against absolute limits and against the
    O(baseline) servers (those still on the old release).
  - Errors are the server's 5xx answers plus the responses and connections that failed. The response time is the
    mean of the window's own responses, worked back from HAProxy's moving mean (C(rtime), a sliding average over 512
    samples) at both ends of the window and the number of responses in between, so what the old release served
    before the window does not dilute it.
  - The verdict is V(fail) as soon as a canary server has served at least O(min_requests) requests and crossed a
    limit, or - before that - as soon as its errors alone prove it is above O(max_error_ratio) (the lower end of the
    99% Wilson interval of its error ratio is above it); the module stops early then. V(inconclusive) when a
    canary server served fewer than O(min_requests) by the end of the window; otherwise V(pass). Each canary server is judged on its own. With O(shares), each
    traffic-weight step is watched and judged in turn.
  - The module fails on V(fail), and on V(inconclusive) when O(inconclusive=fail); its result carries the figures
    either way. Runs on the load balancer (C(delegate_to), C(run_once)); it only reads.
options:
  canary:
    description: The servers running the release under judgement.
    type: list
    elements: str
    required: true
  baseline:
    description:
      - The servers to compare with (still on the old release). Empty - the canary is judged against the absolute
        limits only.
    type: list
    elements: str
    default: []
  window:
    description: Seconds to watch (the bake time) - of each step with O(shares).
    type: float
    required: true
  interval:
    description: Seconds between samples; a failure is seen within one interval.
    type: float
    default: 0.5
  max_error_ratio:
    description: The highest share of failed requests a canary server may have (V(0.01) is 1%, a 99% success rate).
    type: float
    default: 0.01
  max_response_ratio:
    description:
      - The highest response time of a canary server as a multiple of the baseline's (below 5 ms the baseline
        counts as 5 ms). V(0) turns the comparison off; so does an empty or idle baseline.
    type: float
    default: 2.0
  max_response_ms:
    description: The highest response time of a canary server in milliseconds; V(0) turns it off.
    type: float
    default: 0
  min_requests:
    description: The requests each canary server must serve before it is judged (at least 1).
    type: int
    default: 20
  min_timed_requests:
    description:
      - The responses each canary server must have served, since the check began (every step together), before
        the response-time limits apply to it - a mean of a few dozen responses swings with each slow one. Until
        then its response time is reported as not judged yet; a canary that never reaches it is judged on its
        errors alone, and the reasons say so.
    type: int
    default: 100
  inconclusive:
    description: What too little traffic means - V(fail) the check, or V(pass) it (the verdict stays V(inconclusive)).
    type: str
    choices: [fail, pass]
    default: fail
  ready_first:
    description:
      - Put the O(canary) servers into rotation (state V(ready)) right after the first read of the counters, so
        that every request they serve is watched - none slips in before the window opens.
      - Before that, a canary server out of rotation waits in V(drain) (one in V(maint) is moved there), where
        HAProxy checks it without sending it traffic, until a check of it passed - HAProxy counts a server that
        leaves maintenance as up before any check, and a check that failed while its instance restarted leaves it
        at C(rise). The task fails after O(up_timeout), with the server still in V(drain), before any window.
    type: bool
    default: false
  up_timeout:
    description: Seconds each canary server may take to pass a check with O(ready_first) (see there).
    type: float
    default: 60
    version_added: 0.1.0
  drain_on_fail:
    description:
      - Drain the O(canary) servers the moment the verdict fails (or, with O(inconclusive=fail), ends
        inconclusive), before the module returns - fewer requests reach a bad release than when a later task
        drains them.
    type: bool
    default: false
  fallback:
    description:
      - Servers that O(drain_on_fail) puts into rotation (state V(ready)) in the same runtime API call, just before it
        drains the O(canary) servers - the old instances a flip kept running beside the canary - so that the canary's
        host goes on serving on this load balancer without waiting for a flip back. HAProxy counts a server that
        leaves maintenance as up at once (its checks start from C(rise) and run right away), so it takes the
        requests from that call on; a server whose instance is not running is taken out again after C(fall) checks.
      - Needs O(drain_on_fail); none of them may be a canary server.
    type: list
    elements: str
    default: []
  shares:
    description:
      - Traffic-weight steps - percentages of the backend's traffic the O(canary) servers take together, one after
        the other. Each step sets the canary servers' weight to give that share against the other servers that take
        traffic (ready, up, weight above 0), is watched for O(window) seconds and judged on its own; the first step
        that fails (or ends inconclusive with O(inconclusive=fail)) ends the check.
      - HAProxy's weights are whole numbers from 1 to 256, so the share a weight really gives is returned per step,
        with a warning when it is far from the one asked (the other servers' weights are too small, or too large).
      - Afterwards, passed or not, the canary servers get their weight from the configuration back.
      - Empty - one window at the canary servers' weights as they are.
    type: list
    elements: float
    default: []
extends_documentation_fragment:
  - seedops.deploy.haproxy
  - seedops.deploy.attributes
  - ansible.builtin.action_common_attributes
attributes:
  check_mode:
    support: full
    details: It reads and waits the same in check mode, and changes no server state there (O(ready_first), O(drain_on_fail)).
  diff_mode:
    support: none
seealso:
  - module: seedops.deploy.lb_info
  - module: seedops.deploy.lb_member
"""

EXAMPLES = r"""
- name: Bake the canary for 30 s and judge it against the hosts still on the old release
  seedops.deploy.traffic_check:
    backend: app
    canary: [app1]
    baseline: [app2, app3]
    window: 30
    max_error_ratio: 0.01
    max_response_ratio: 2
  delegate_to: "{{ groups['lb'][0] }}"
  run_once: true
  become: true
  register: canary

- name: Give the canary 5%, then 25%, then 50% of the traffic, 20 s each, judged at every step
  seedops.deploy.traffic_check:
    backend: app
    canary: [app1]
    baseline: [app2, app3]
    shares: [5, 25, 50]
    window: 20
    ready_first: true
    drain_on_fail: true
  delegate_to: "{{ groups['lb'][0] }}"
  run_once: true
  become: true
"""

RETURN = r"""
verdict:
  description: V(pass), V(fail) or V(inconclusive).
  returned: always
  type: str
  sample: fail
reasons:
  description: Why, with the figures that decided it.
  returned: always
  type: list
  elements: str
  sample: ["app1: error ratio 100.0% (212 of 212 requests) is above 1.0%"]
canary:
  description: The canary servers together - servers, requests, errors, error_ratio, rtime_ms.
  returned: always
  type: dict
baseline:
  description: The baseline servers together, the same fields.
  returned: always
  type: dict
servers:
  description:
    - Every server of the backend over the window - requests, errors, 5xx, connection_errors, response_errors,
      retries, error_ratio, rps, rtime_ms (the window's mean response time), rtime_moving_ms (HAProxy's moving mean
      at the end).
  returned: always
  type: dict
steps:
  description:
    - Each step watched, in order - verdict, reasons, canary, baseline, elapsed, early, started (seconds after the
      check began) and seen_share (the percentage of the backend's requests the canary servers served); with
      O(shares) also share (asked), weight (set on each canary server) and expected_share (what that weight gives).
  returned: always
  type: list
  elements: dict
weights:
  description: The weights from the configuration the canary servers got back after O(shares).
  returned: always
  type: dict
window:
  description: The window asked for, in seconds (times the number of steps).
  returned: always
  type: float
elapsed:
  description: The seconds actually watched, every step together (less than RV(window) when a failure ended it early).
  returned: always
  type: float
early:
  description: Whether a failure ended the window early.
  returned: always
  type: bool
samples:
  description: How many times the counters were read.
  returned: always
  type: int
readied:
  description: The servers O(ready_first) put into rotation.
  returned: always
  type: list
  elements: str
drained:
  description: The servers O(drain_on_fail) took out of rotation.
  returned: always
  type: list
  elements: str
fell_back:
  description: The O(fallback) servers put into rotation when the canary was drained.
  returned: always
  type: list
  elements: str
warmed:
  description:
    - With O(ready_first), the canary servers that were out of rotation, each with the seconds it waited in drain
      for a check that passed (see O(ready_first)).
  returned: always
  type: dict
  sample: {"app4": 0.91}
"""

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.seedops.deploy.plugins.module_utils import _haproxy as hap
from ansible_collections.seedops.deploy.plugins.module_utils import _lb
from ansible_collections.seedops.deploy.plugins.module_utils import _traffic

LIMITS = ("max_error_ratio", "max_response_ratio", "max_response_ms", "min_requests", "min_timed_requests")


def main():
    module = AnsibleModule(
        argument_spec=dict(
            hap.RUNTIME_API_SPEC,
            canary=dict(type="list", elements="str", required=True),
            baseline=dict(type="list", elements="str", default=[]),
            window=dict(type="float", required=True),
            interval=dict(type="float", default=0.5),
            max_error_ratio=dict(type="float", default=0.01),
            max_response_ratio=dict(type="float", default=2.0),
            max_response_ms=dict(type="float", default=0),
            min_requests=dict(type="int", default=20),
            min_timed_requests=dict(type="int", default=100),
            inconclusive=dict(type="str", choices=["fail", "pass"], default="fail"),
            ready_first=dict(type="bool", default=False),
            up_timeout=dict(type="float", default=60),
            drain_on_fail=dict(type="bool", default=False),
            fallback=dict(type="list", elements="str", default=[]),
            shares=dict(type="list", elements="float", default=[]),
        ),
        supports_check_mode=True,
    )
    p = module.params
    problems = []
    if not p["canary"]:
        problems.append("canary names no server")
    if p["window"] <= 0 or p["interval"] <= 0:
        problems.append("window and interval must be above 0 seconds")
    if not 0 <= p["max_error_ratio"] <= 1:
        problems.append("max_error_ratio is a share from 0 to 1 (0.01 is 1%%), got %s" % p["max_error_ratio"])
    if p["max_response_ratio"] < 0 or p["max_response_ms"] < 0 or p["min_requests"] < 1 or p["min_timed_requests"] < 1:
        problems.append("max_response_ratio and max_response_ms must be 0 or more, min_requests and min_timed_requests "
                        "1 or more")
    bad_shares = [share for share in p["shares"] if not 0 < share < 100]
    if bad_shares:
        problems.append("shares are percentages of the backend's traffic above 0 and below 100, got %s"
                        % ", ".join("%g" % share for share in bad_shares))
    overlap = sorted(set(p["canary"]) & set(p["baseline"]))
    if overlap:
        problems.append("%s cannot be canary and baseline at once" % ", ".join(overlap))
    overlap = sorted(set(p["canary"]) & set(p["fallback"]))
    if overlap:
        problems.append("%s cannot be canary and fallback at once" % ", ".join(overlap))
    if p["fallback"] and not p["drain_on_fail"]:
        problems.append("fallback servers are put into rotation when drain_on_fail drains the canary: set "
                        "drain_on_fail: true, or leave fallback out")
    if problems:
        module.fail_json(msg="traffic_check: " + "; ".join(problems))
    try:
        for name in p["canary"] + p["baseline"] + p["fallback"]:
            hap.check_name("server", name)
        result = run(module, p)
    except hap.HAProxyError as exc:
        module.fail_json(msg=str(exc))
    except _lb.LbError as exc:
        module.fail_json(msg=exc.msg)
    if result["verdict"] == "fail" or (result["verdict"] == "inconclusive" and p["inconclusive"] == "fail"):
        module.fail_json(msg="canary %s: %s" % (result["verdict"], "; ".join(result["reasons"])), **result)
    module.exit_json(**result)


def weight_steps(p):
    """The weight steps asked (shares): [{share, weight, expected_share, note}] plus each canary server's weight from
    the configuration, read from `show servers state`; [None] and {} without shares."""
    if not p["shares"]:
        return [None], {}
    states = hap.parse_servers_state(hap.command(p["socket"], "show servers state %s" % p["backend"]))
    missing = [s for s in p["canary"] if (p["backend"], s) not in states]
    if missing:
        raise hap.HAProxyError("HAProxy has no server %s in backend %s" % (", ".join(missing), p["backend"]))
    others = _traffic.others_weight(states, p["backend"], p["canary"])
    steps = []
    for share in p["shares"]:
        step = _traffic.weight_for_share(share, len(p["canary"]), others)
        steps.append({"share": share, "weight": step["weight"], "expected_share": step["share"], "note": step["note"]})
    return steps, {s: states[(p["backend"], s)]["initial_weight"] for s in p["canary"]}


def checked(p):
    """Each canary server out of rotation waits in drain until a check of it passed (lb_member's wait_up): none
    takes a request before its load balancer's checks saw it answer. LbError, the server left in drain, when none
    passes within up_timeout."""
    waited = {}
    for server in p["canary"]:
        member = _lb.Member({"backend": p["backend"], "server": server, "socket": p["socket"],
                             "up_timeout": p["up_timeout"], "poll_interval": 0.25})
        admin = hap.admin_name(member.read()["admin_state"])
        if admin != "ready":
            seen = {}
            member.warm(seen, admin)
            waited[server] = seen["waited"]
    return waited


def run(module, p):
    """Watch and judge each step (one without shares); stop at the first that does not pass. The result is the
    last step's judgement, with every step in `steps`."""
    observer = _traffic.Observer(p["socket"], p["backend"])
    acts = not module.check_mode
    readied, drained, fell_back = [], [], []

    def ready():
        if acts and p["ready_first"]:
            _traffic.set_states(p["socket"], p["backend"], [(server, "ready") for server in p["canary"]])
            readied.extend(p["canary"])

    def drain():
        if acts and p["drain_on_fail"] and not drained:
            # The fallback servers take the host's traffic first, then the canary leaves: one call.
            _traffic.set_states(p["socket"], p["backend"], [(server, "ready") for server in p["fallback"]]
                                + [(server, "drain") for server in p["canary"]])
            drained.extend(p["canary"])
            fell_back.extend(p["fallback"])

    warmed = checked(p) if acts and p["ready_first"] else {}
    steps, configured = weight_steps(p)
    begin = observer.clock()
    done = []
    for index, step in enumerate(steps):
        if step and step["note"]:
            module.warn("canary step %s%%: %s" % (step["share"], step["note"]))
        if step and step["weight"] is not None and acts:
            _traffic.set_weight(p["socket"], p["backend"], {s: step["weight"] for s in p["canary"]})
        started = round(observer.clock() - begin, 2)
        result = observer.observe(p["canary"], p["baseline"], {k: p[k] for k in LIMITS}, p["window"], p["interval"],
                                  on_start=ready if index == 0 else None, on_fail=drain)
        if step:
            result["reasons"] = ["at %s%% of the traffic (weight %s): %s" % (step["share"], step["weight"], reason)
                                 for reason in result["reasons"]]
        done.append(dict(step or {}, started=started, seen_share=_traffic.seen_share(result["servers"], p["canary"]),
                         **{k: result[k] for k in ("verdict", "reasons", "canary", "baseline", "elapsed", "early")}))
        if result["verdict"] == "fail" or (result["verdict"] == "inconclusive" and p["inconclusive"] == "fail"):
            drain()
            break
    restored = {}
    if acts and configured:
        # Back to the configuration's weight, passed or not: a canary that goes on takes its full share, and one that
        # is taken back comes back with its own weight.
        _traffic.set_weight(p["socket"], p["backend"], configured)
        restored = configured
    result.update(changed=bool(readied or drained or restored), readied=readied, drained=drained, fell_back=fell_back,
                  weights=restored, warmed=warmed,
                  steps=done, elapsed=round(observer.clock() - begin, 2), window=p["window"] * len(steps))
    return result


if __name__ == "__main__":
    main()
