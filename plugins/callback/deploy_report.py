# -*- coding: utf-8 -*-
# Copyright: seedops.deploy contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
name: deploy_report
type: aggregate
short_description: One report per deploy - a table, a JSON file and an HTML timeline of the batches
version_added: 0.1.0
author: Seedops Maintainers (@seedops-maintainers)
description:
  - Reads the documented results of seedops.deploy's deploy, rollback and reconfigure playbooks - the plan
    (the fact C(deploy_plan) - each host's current and target release, action and batch), the results of the
    modules M(seedops.deploy.artifact), M(seedops.deploy.release), M(seedops.deploy.lb_member) and
    M(seedops.deploy.staged_restart), and what the verify step read on each host at the end (the fact
    C(deploy_verified)), who deploys (the holder M(seedops.deploy.fleet_lock) recorded) and the plan's dev/prod
    consistency check (the fact C(deploy_fit) - what the build needs and what each host has) - and at the end of the run
    prints one table - host, old and new release, batch, stage,
    switch and health durations, result - and writes the same as JSON plus an HTML timeline.
  - The table also says what every host runs when the run ends (as verified on the host where the run got that far -
    the release its service's main process was started from, with a warning when that is not the live release, the
    service is not active or not healthy, or it reports another version - otherwise as the last module on it
    returned), so a rollout that stopped halfway is plain to see, and the
    version-skew window (the spread between the first and the last host starting the new release - or, for hosts
    that start it beside the old one, the moments the load balancers flipped their traffic to it).
  - A run that fails in the deploy role's plan step, before there is a plan (a version missing from the
    repository, a fleet on more than one release when no version is given), shows every host it read as C(no plan)
    and prints why it stopped (C(refused) in the JSON), instead of calling the hosts unchanged. One refused before
    it read any host (the fleet lock held by another run, deploy settings that fail their checks, an AWX slice; so
    also a refused patch or reconfigure run) prints C(no host was read) and C(stopped before it changed anything)
    with the reason, and no host rows.
  - Runs in which neither M(seedops.deploy.release), M(seedops.deploy.release_info) nor
    M(seedops.deploy.staged_restart) ran print and write nothing (a runtime download with
    M(seedops.deploy.artifact), or a drain for patching, is no deploy), so the callback can stay enabled for
    every playbook.
  - Enable it with C(callbacks_enabled = seedops.deploy.deploy_report) in C(ansible.cfg) or
    E(ANSIBLE_CALLBACKS_ENABLED).
requirements:
  - enabled in callbacks_enabled
options:
  report_dir:
    description:
      - Directory the JSON and HTML files are written to (created when missing).
      - When not set, C(deploy-reports) in the job's artifacts directory when the run is an ansible-runner or AWX job
        (E(AWX_ISOLATED_DATA_DIR), which ansible-runner sets), else C(./deploy-reports).
      - At the start of every playbook the callback puts the path of the JSON file it will write in the controller's
        environment as E(SEEDOPS_DEPLOY_REPORT_FILE), so that the deploy role's C(set_stats) can name it for the next
        job of an AWX workflow.
    type: path
    env:
      - name: SEEDOPS_DEPLOY_REPORT_DIR
    ini:
      - section: seedops_deploy_report
        key: report_dir
  group_above:
    description:
      - With more hosts than this, the printed table has one line per group of hosts that share their batch, their
        old and new release, their result, what they run now and their state in the load balancers, with the hosts
        as ranges (C(app[1-40,42])) and the longest stage, switch and health times of the group. Hosts whose result
        needs a word (failed, rolled back, repaired, out of rotation) still get their own lines below it.
      - The JSON and HTML files always keep every host.
    type: int
    default: 20
    env:
      - name: SEEDOPS_DEPLOY_REPORT_GROUP_ABOVE
    ini:
      - section: seedops_deploy_report
        key: group_above
  write_files:
    description: Write the JSON and HTML files (the table is always printed).
    type: bool
    default: true
    env:
      - name: SEEDOPS_DEPLOY_REPORT_FILES
    ini:
      - section: seedops_deploy_report
        key: write_files
"""

import datetime
import html
import json
import os
import re
import time
from dataclasses import dataclass, field

from ansible import context
from ansible.plugins.callback import CallbackBase

from ansible_collections.seedops.deploy.plugins.module_utils import _lease
from ansible_collections.seedops.deploy.plugins.module_utils import _results
from ansible_collections.seedops.deploy.plugins.module_utils import _releases
from ansible_collections.seedops.deploy.plugins.module_utils import _service
from ansible_collections.seedops.deploy.plugins.plugin_utils import _controller

REPORT_FILE_ENV = "SEEDOPS_DEPLOY_REPORT_FILE"

WATCHED = {
    "seedops.deploy.artifact": "artifact",
    "seedops.deploy.release": "release",
    "seedops.deploy.release_info": "release_info",
    "seedops.deploy.lb_member": "lb_member",
    "seedops.deploy.staged_restart": "staged_restart",
    "seedops.deploy.fleet_lock": "fleet_lock",
    "seedops.deploy.traffic_check": "traffic_check",
}
# The deploy role's plan step (deploy.yml, rollback.yml and site.yml run it first): a task that fails in these files
# before deploy_plan is published stops the run before a plan - nothing was decided for any host, nothing changed.
PLAN_STEP = re.compile(r"[/\\]roles[/\\]deploy[/\\]tasks[/\\]"
                       r"(plan|lock|refuse_slice|follow|read_fleet|decide|rollback_plan)\.yml:\d+$")
# status.yml's step: read-only, and it prints its own table of what it read (with the load balancers' states, which
# a deploy report of its reads alone would show as unknown). No deploy report for it.
STATUS_STEP = re.compile(r"[/\\]roles[/\\]deploy[/\\]tasks[/\\]status\.yml:\d+$")
PHASES = ("stage", "drain", "switch", "health", "warm", "flip", "ready", "bake")
# A result in check mode is what the host would do: "would reload (check mode)".
WOULD = {"switched": "switch", "restarted": "restart", "reloaded": "reload", "repaired": "repair",
         "finished": "finish"}
COLOURS = {"stage": "#9aa5b1", "drain": "#f0a202", "switch": "#2b6cb0", "health": "#2f855a", "ready": "#319795",
           "warm": "#ed64a6", "flip": "#d53f8c", "bake": "#805ad5",
           "failed": "#c53030"}


def still_failed(summary):
    """A host's recap (AggregateStats.summarize) counts a failure or an unreachable task not made good."""
    return bool(summary.get("failures") or summary.get("unreachable"))


def _name_key(name):
    """'app10' -> ('app', 10): names in natural order, so app2 comes before app10."""
    stem = name.rstrip("0123456789")
    digits = name[len(stem):]
    return (stem, int(digits) if digits else -1, name)


def refusal(doc):
    """The words before why a refused run stopped: a run that read hosts stopped in the plan step; one that read none
    (the fleet lock held, bad settings, an AWX slice - also patch.yml and reconfigure.yml, which make no plan) stopped
    before anything."""
    return "stopped before a plan, so nothing was changed" if doc["hosts"] else "stopped before it changed anything"


def host_ranges(names):
    """Host names as compact ranges: app1, app2, app3, app5, lb1 -> 'app[1-3,5], lb1'. Numbers with leading zeros
    keep their own spelling."""
    stems = {}
    for name in sorted(set(names), key=_name_key):
        stem, number, _name = _name_key(name)
        digits = name[len(stem):]
        if number < 0 or (len(digits) > 1 and digits.startswith("0")):
            stems.setdefault(name, [])
            continue
        stems.setdefault(stem, []).append(number)
    parts = []
    for stem, numbers in stems.items():
        if not numbers:
            parts.append(stem)
            continue
        if len(numbers) == 1:
            parts.append("%s%d" % (stem, numbers[0]))
            continue
        spans, first, last = [], numbers[0], numbers[0]
        for number in numbers[1:] + [None]:
            if number is not None and number == last + 1:
                last = number
                continue
            spans.append("%d-%d" % (first, last) if last > first else "%d" % first)
            if number is not None:
                first = last = number
        parts.append("%s[%s]" % (stem, ",".join(spans)))
    return ", ".join(parts)


def _batch_key(batch):
    if isinstance(batch, int):
        return (0, batch, "")
    return (1, 0, str(batch)) if batch is not None else (2, 0, "")


def group_rows(rows):
    """The report's host rows grouped by what they share - batch, old and new release, result, what they run now and
    their load balancer state - in batch order; each group with its hosts and the longest phase times."""
    groups = {}
    for row in sorted(rows, key=lambda r: _name_key(r["host"])):
        key = (row["batch"], row["old"], row["new"], row["result"], row["runs"], row["rotation"])
        group = groups.setdefault(key, {"batch": row["batch"], "old": row["old"], "new": row["new"],
                                        "result": row["result"], "runs": row["runs"], "rotation": row["rotation"],
                                        "hosts": [], "stage_s": None, "switch_s": None, "health_s": None})
        group["hosts"].append(row["host"])
        for phase in ("stage_s", "switch_s", "health_s"):
            if row.get(phase) is not None:
                group[phase] = max(group[phase] or 0.0, row[phase])
    return sorted(groups.values(), key=lambda g: (_batch_key(g["batch"]), _name_key(g["hosts"][0])))


@dataclass
class HostRecord:
    """What one host went through in this run: its plan entry, what the modules returned, what verify read."""

    name: str
    old: str = None
    new: str = None
    now: str = None
    verified: str = None
    live: str = None
    service: dict = None
    action: str = None
    reason: str = None
    batch: object = None
    outcome: str = None
    message: str = None
    times: dict = None
    lb_before: dict = None
    lb: dict = None
    # With deploy_beside_ports, the port of the instance that serves at the end (verify).
    port: int = None
    phases: dict = field(default_factory=dict)
    # Artifact fetches that failed and were made good by a later fetch (a fan-out peer, then the origin).
    refetched: list = field(default_factory=list)
    # The run stopped in the plan step, before there was a plan: this host was read, nothing was decided for it.
    refused: bool = False
    # A run in check mode (ansible-playbook --check, an AWX job of type check): the plan's actions were not done.
    check: bool = False

    def phase(self, phase, start, end, failed=False):
        span = self.phases.setdefault(phase, {"start": start, "end": end, "failed": False})
        span["start"] = min(span["start"], start)
        span["end"] = max(span["end"], end)
        span["failed"] = span["failed"] or failed

    def seconds(self, *phases):
        spans = [self.phases[p] for p in phases if p in self.phases]
        return round(sum(s["end"] - s["start"] for s in spans), 2) if spans else None

    def result(self):
        verdict = self.measured_result()
        # Check mode: the modules said what they would do (or nothing, for the plan's switches), and nothing was done.
        if self.check and (verdict in WOULD or verdict == "not reached"):
            return "would %s (check mode)" % WOULD.get(verdict, self.action)
        return verdict

    def measured_result(self):
        if self.outcome == "switched" and self.old is not None and self.old == self.new:
            return "restarted"
        if self.outcome:
            return self.outcome
        if self.refused:
            return "no plan"
        if self.action in ("switch", "restart", "finish"):
            return "not reached"
        if self.action == "unchanged" or (self.old is not None and self.new in (None, self.old)):
            return "unchanged"
        return "staged" if self.new else "-"

    def runs(self):
        if self.outcome == "unreachable":
            return "unknown (was %s)" % (self.now or self.old or "-")
        runs = self.verified or self.now or self.old or "-"
        problem = self.service_problem()
        return "%s (%s)" % (runs, problem) if problem else runs

    def service_problem(self):
        """What verify measured on the service that the live release does not say, or None."""
        if not self.service:
            return None
        seen = _service.findings(self.service, self.live)
        if seen["down"]:
            return "service %s" % seen["down"]
        if seen["stale"] and self.live:
            return "live link says %s: not restarted" % self.live
        if seen["unhealthy"]:
            return "unhealthy"
        if seen["says"]:
            return "it says %s" % seen["says"]
        return None

    def rotation(self):
        """The server's state in the load balancers as verify read it at the end: 'ready/up', 'drain/up', ..."""
        if not self.lb:
            return "-"
        return ("%s/%s" % (self.lb.get("admin"), self.lb.get("op")) + ("" if self.lb.get("weight", 1) else " w0")
                + (" :%s" % self.port if self.port else ""))

    def as_dict(self):
        new = self.old if self.new is None and self.result() == "unchanged" else self.new
        return {"host": self.name, "old": self.old, "new": new, "runs": self.runs(), "batch": self.batch,
                "action": self.action, "reason": self.reason, "result": self.result(),
                "lb": self.lb, "lb_before": self.lb_before, "rotation": self.rotation(), "live": self.live,
                "service": self.service, "not_at_boot": _service.findings(self.service, self.live)["not_at_boot"],
                "stage_s": self.seconds("stage"), "switch_s": self.seconds("drain", "switch", "flip"),
                "health_s": self.seconds("health"), "flip_s": self.seconds("flip"), "port": self.port, "message": self.message, "restart_times": self.times,
                "phases": self.phases, "refetched": self.refetched}


@dataclass
class _ItemResult:
    """One item of a loop's result, as Event reads a task result."""

    _result: dict


class Event:
    """One finished task of a watched module on one host."""

    def __init__(self, result, status, start, end):
        self.res = result._result
        self.failed = status != "ok"
        self.status = status
        self.start, self.end = start, end
        invocation = self.res.get("invocation")
        if invocation is None and self.res.get("results"):
            # A loop (lb_member over the load balancers): every item ran the same module with the same state.
            invocation = self.res["results"][0].get("invocation")
        self.args = (invocation or {}).get("module_args") or {}


class CallbackModule(CallbackBase):
    CALLBACK_VERSION = 2.0
    CALLBACK_TYPE = "aggregate"
    CALLBACK_NAME = "seedops.deploy.deploy_report"
    CALLBACK_NEEDS_ENABLED = True

    def __init__(self, display=None):
        super().__init__(display=display)
        self.hosts = {}
        self.starts = {}
        self.play_starts = {}
        self.batch = None
        self.playbook = None
        self.started = time.time()
        self.base = None  # the report's path without extension (report_base)
        self.seen = False
        self.deployed = False  # a release module ran (or the deploy plan): artifact or lb_member alone is no deploy
        self.planned = False
        self.batches = []
        self.deployer = None  # who runs this deploy: the holder the fleet lock recorded
        self.analysis = []  # each judged batch's verdict, its steps and the traffic that decided it (traffic_check)
        self.fit = None  # the plan's dev/prod consistency check (deploy_fit): what the build needs, what each host has
        self.servers = {}  # load balancer server name -> host, from the plan
        self.refused = None  # why the run stopped in the plan step before it made a plan (the first failure there)
        self.check_mode = False  # ansible-playbook --check: nothing the plan says was done
        # Hosts that failed, or could not be reached, before the plan (in site.yml's plays that come before its deploy
        # step): the last message of each. The plan never sees them; the report names them.
        self.failed_early = {}
        self.plan_hosts = set()

    # -- bookkeeping ---------------------------------------------------------------------------------

    def host(self, name):
        if name not in self.hosts:
            self.hosts[name] = HostRecord(name)
        return self.hosts[name]

    def v2_playbook_on_start(self, playbook):
        self.playbook = os.path.basename(getattr(playbook, "_file_name", "") or "")
        self.started = time.time()
        self.check_mode = bool((context.CLIARGS or {}).get("check"))
        self.base = None
        if self.get_option("write_files"):
            # The forks that run the playbook's tasks inherit it: the deploy role's set_stats reads it.
            os.environ[REPORT_FILE_ENV] = os.path.abspath(self.report_base()) + ".json"
        else:
            os.environ.pop(REPORT_FILE_ENV, None)

    def report_base(self):
        """The report's files without their extension: the same for the whole run, fixed when it starts."""
        if not self.base:
            directory = _controller.report_dir(self.get_option("report_dir"), os.environ)
            stamp = datetime.datetime.fromtimestamp(self.started, datetime.timezone.utc).strftime("%Y%m%dT%H%M%SZ")
            self.base = os.path.join(directory, "deploy-%s-%d" % (stamp, os.getpid()))
        return self.base

    def v2_playbook_on_play_start(self, play):
        name = play.get_name().strip()
        self.play_starts[name] = self.play_starts.get(name, 0) + 1
        serial = play.serial if isinstance(play.serial, list) else [play.serial]
        self.batch = {"play": name, "number": self.play_starts[name], "start": time.time(), "hosts": [],
                      "serial": bool(serial and serial != [0] and serial != [None])}

    def v2_runner_on_start(self, host, task):
        self.starts[(host.get_name(), task._uuid)] = time.time()

    def v2_runner_on_ok(self, result):
        self.record(result, "ok")

    def v2_runner_on_failed(self, result, ignore_errors=False):
        self.record(result, "failed", ignored=ignore_errors)

    def v2_runner_on_unreachable(self, result):
        self.record(result, "unreachable")
        if self.seen:
            rec = self.host(result._host.get_name())
            rec.outcome = "unreachable"
            rec.message = result._result.get("msg")

    def v2_runner_on_skipped(self, result):
        self.starts.pop((result._host.get_name(), result._task._uuid), None)

    def record(self, result, status, ignored=False):
        """Route one task result: the documented facts deploy_plan and deploy_verified, or a watched module."""
        task = result._task
        name = result._host.get_name()
        end = time.time()
        start = self.starts.pop((name, task._uuid), end)
        if STATUS_STEP.search(task.get_path() or ""):
            return
        kind = WATCHED.get(getattr(task, "resolved_action", None) or task.action)
        if (status == "failed" and not ignored and not self.planned and self.refused is None
                and PLAN_STEP.search(task.get_path() or "")):
            self.refused = " ".join(str(result._result.get("msg") or "failed").split())
        if status in ("failed", "unreachable") and not ignored and not self.planned:
            self.failed_early[name] = " ".join(str(result._result.get("msg") or status).split())
        if kind is None:
            facts = (result._result.get("ansible_facts") or {}) if status == "ok" else {}
            if isinstance(facts.get("deploy_plan"), dict):
                self.on_plan(facts["deploy_plan"])
            if isinstance(facts.get("deploy_fit"), dict) and self.fit is None:
                self.fit = facts["deploy_fit"]
            if isinstance(facts.get("deploy_verified"), dict):
                rec = self.host(name)
                verified = facts["deploy_verified"]
                rec.verified, rec.live = verified.get("release"), verified.get("live")
                rec.service = verified.get("service") if isinstance(verified.get("service"), dict) else None
                rec.lb = verified.get("lb") or None
                rec.port = verified.get("port") or None
            return
        self.seen = True
        self.deployed = self.deployed or kind in ("release", "release_info", "staged_restart")
        for owner, event in self.events(result, name, status, start, end):
            rec = self.host(owner)
            getattr(self, "on_" + kind)(rec, event)
            if event.failed and rec.outcome is None and event.status == "failed":
                rec.outcome = "failed"
            if event.failed and not rec.message:
                rec.message = _results.failed_message(event.res)

    def events(self, result, name, status, start, end):
        """The (host, Event) pairs of one task result: the task's host, or - for a delegated loop over other hosts of
        the plan (stop.yml taking back the hosts a stopped rollout did not reach: each item a host's name, the task
        delegated to it) - each item's host. ansible-core does not keep the delegated host in a loop's item results,
        so the item names it."""
        items = result._result.get("results") if isinstance(result._result.get("results"), list) else []
        owners = [item.get("item") if isinstance(item, dict) and isinstance(item.get("item"), str) else None
                  for item in items]
        if (not items or not getattr(result._task, "delegate_to", None)
                or not all(owner in self.plan_hosts and owner != name for owner in owners)):
            return [(name, Event(result, status, start, end))]
        pairs = []
        for owner, item in zip(owners, items):
            if item.get("skipped"):
                continue
            failed = item.get("failed") or item.get("unreachable")
            pairs.append((owner, Event(_ItemResult(item), "failed" if failed else "ok", start, end)))
        return pairs

    def on_plan(self, plan):
        """deploy_plan (roles/deploy/tasks/decide.yml): every host's release, action and batch."""
        if self.planned:
            return
        self.planned = self.seen = self.deployed = True
        for name, entry in (plan.get("hosts") or {}).items():
            self.plan_hosts.add(name)
            rec = self.host(name)
            rec.old, rec.new = entry.get("current"), entry.get("target")
            rec.action, rec.reason, rec.batch = entry.get("action"), entry.get("reason"), entry.get("batch")
            rec.lb_before = entry.get("lb")
            self.servers[entry.get("lb_server") or name] = name
            if entry.get("idle_server"):
                self.servers[entry["idle_server"]] = name
        together = plan.get("switch") == "together"
        self.batches = [{"label": "all" if together else number, "hosts": list(hosts)}
                        for number, hosts in enumerate(plan.get("batches") or [], 1)]

    def on_fleet_lock(self, rec, event):
        """The fleet lock's holder as the lock host recorded it: who deploys (user, controller, job id). The first
        take says who; a later renewal by the same run only adds what was not known then (the version, when the
        plan followed the fleet's release)."""
        holder = event.res.get("holder")
        if event.failed or not event.res.get("held") or not isinstance(holder, dict):
            return
        if self.deployer is None:
            self.deployer = dict(holder, run_id=event.res.get("run_id"))
        elif self.deployer.get("run_id") == event.res.get("run_id"):
            self.deployer = dict(holder, **self.deployer)

    def on_traffic_check(self, rec, event):
        """A batch's bake (the canary's, or a later batch's with deploy_batch_bake): the verdict, its reasons, each
        traffic-weight step and the traffic the load balancer counted per server. Every judged host gets the bake
        phase."""
        res = event.res
        verdict = res.get("verdict") or "not judged"
        keys = ("reasons", "elapsed", "window", "early", "canary", "baseline", "servers")
        judged = {key: res.get(key) for key in keys}
        judged.update(verdict=verdict, batch=rec.batch, at=round(event.start, 3), steps=res.get("steps") or [])
        if not res.get("reasons") and res.get("msg"):
            judged["reasons"] = [res["msg"]]
        servers = (res.get("canary") or {}).get("servers") or []
        judged["hosts"] = [self.servers.get(server, server) for server in servers] or [rec.name]
        for host in judged["hosts"]:
            self.host(host).phase("bake", event.start, event.end, verdict != "pass")
        self.analysis.append(judged)

    def on_artifact(self, rec, event):
        """A fetch into the store. One that failed and was made good by a later fetch (the fan-out's fallback from a
        peer to the origin) does not fail the host: it is noted instead."""
        if not event.failed and rec.phases.get("stage", {}).get("failed") and rec.outcome == "failed":
            rec.refetched.append(rec.message)
            rec.outcome = rec.message = None
            rec.phases["stage"]["failed"] = False
        rec.phase("stage", event.start, event.end, event.failed)

    def on_release_info(self, rec, event):
        # With a plan, old is what it said the host ran before (None: no live release yet); nothing later fills it in.
        if rec.old is None and not self.planned:
            rec.old = event.res.get("current")

    def on_release(self, rec, event):
        state = event.args.get("state", "active")
        if rec.old is None and not self.planned and "previous" in event.res:
            rec.old = event.res.get("previous")
        if state == "staged":
            rec.phase("stage", event.start, event.end, event.failed)
            rec.new = rec.new or event.res.get("release_id") or event.args.get("release_id")
            return
        rec.phase("switch", event.start, event.end, event.failed)
        self.assign_batch(rec)
        if not event.failed:
            rec.now = event.res.get("current")
            if rec.new is None:
                rec.new = event.args.get("rollback_to") if state == "rolled_back" else event.res.get("release_id")
            if state == "rolled_back" and rec.outcome in ("switched", "started"):
                rec.outcome = "rolled back"

    def on_lb_member(self, rec, event):
        if event.args.get("flips"):
            # A batch's flips in one task (flip.yml, run once for the batch): each flip's new server names its host,
            # which gets the failure's message as the task's own host would (record).
            for flip in event.args["flips"]:
                owner = self.servers.get((flip or {}).get("server"))
                if owner is not None:
                    host = self.host(owner)
                    self.flipped(host, event)
                    if event.failed:
                        host.message = host.message or _results.failed_message(event.res)
            return
        if event.args.get("replaces"):
            self.flipped(rec, event)
            return
        if event.args.get("servers") and event.args.get("state") == "drain" and event.args.get("wait_up") is True:
            # Every new server warmed in one task (prestart.yml, run once): each server names its host, whose warm
            # phase failed when its row says the checks did not see it up (or the task failed without rows). Why it
            # failed is said by the run's stop message, which prestart.yml writes for each host.
            rows = {row.get("server"): row for item in event.res.get("results") or [event.res]
                    for row in item.get("servers") or []}
            for server in event.args["servers"]:
                owner = self.servers.get(server)
                if owner is not None:
                    self.host(owner).phase("warm", event.start, event.end,
                                           event.failed and not rows.get(server, {}).get("up", False))
            return
        state = event.args.get("state")
        if state == "drain" and event.args.get("wait_up") is True:
            # A drain that waits for the server's checks is the warm-up of a flip (together.yml, prestart.yml), not a
            # host going out of rotation: the new instance's server, checked in drain before it takes the traffic. Its
            # own phase: a host started before the first batch waits for its batch between the two.
            rec.phase("warm", event.start, event.end, event.failed)
            return
        if state in ("drain", "ready"):
            rec.phase(state, event.start, event.end, event.failed)
            if state == "drain":
                self.assign_batch(rec)
            elif rec.action == "repair" and not event.failed:
                rec.outcome = "repaired"

    @staticmethod
    def flipped(rec, event):
        """Start beside, then flip: the load balancers moved the host's traffic to its new instance (the moment is the
        last load balancer's). A failed flip leaves the host's outcome to what takes it back (flip_failed.yml)."""
        rec.phase("flip", event.start, event.end, event.failed)
        moments = [r.get("flipped_at") for r in event.res.get("results") or [event.res]]
        moments = [m for m in moments if isinstance(m, (int, float))]
        if moments:
            rec.times = dict(rec.times or {}, flipped=max(moments))
        if not event.failed and rec.outcome == "started":
            rec.outcome = "switched"

    def on_staged_restart(self, rec, event):
        res = event.res
        if event.args.get("mode") == "reload":
            rec.phase("health", event.start, event.end, event.failed)
            self.assign_batch(rec)
            rec.outcome = "failed" if event.failed else "reloaded"
            if res.get("release"):
                rec.old = rec.new = rec.now = res["release"]
            return
        health_from = event.start
        if event.args.get("release_id") is not None:
            # The task switched current first (the switch phase), then restarted: the host's own times split it.
            times = res.get("times") or {}
            restarted = "health" in res
            split = times.get("switched", times.get("start", 0)) - times.get("start", 0) if restarted else None
            health_from = event.start + max(0.0, min(split, event.end - event.start)) if restarted else event.end
            rec.phase("switch", event.start, health_from, event.failed and not restarted)
            self.assign_batch(rec)
            if rec.new is None and not event.failed:
                rec.new = event.args["release_id"]
            if not restarted:
                return
        rec.phase("health", health_from, event.end, event.failed and not res.get("rolled_back"))
        rec.times = res.get("times")
        rec.now = res.get("release") or rec.now
        if res.get("rolled_back"):
            rec.outcome = "rolled back"
        elif event.failed:
            rec.outcome = "failed"
        elif rec.action == "finish":
            rec.outcome = "finished"
        elif rec.outcome is None:
            # A release started beside the live instance (rollback false, an instance port) takes traffic only once
            # the load balancers flip to it: until then the host is `started`, and its flip makes it `switched`.
            beside = event.args.get("rollback") is False and event.args.get("instance") is not None
            rec.outcome = "started" if beside else "switched"
        elif rec.outcome == "switched" and event.args.get("previous_state") == "failed":
            # A batch taken back (a canary that failed its judgement): switched back, the new release marked failed.
            rec.outcome = "rolled back"

    def assign_batch(self, rec):
        """Runs without a plan (reconfigure.yml): the batch is the count of the play's serial batches."""
        if self.planned or rec.batch is not None or self.batch is None:
            return
        label = self.batch["number"] if self.batch["serial"] else "all"
        rec.batch = label
        if not self.batches or self.batches[-1]["label"] != label:
            self.batches.append({"label": label, "hosts": []})
        self.batches[-1]["hosts"].append(rec.name)

    # -- the report ----------------------------------------------------------------------------------

    def skew(self):
        # The moment each host's users met the new release: its load balancers' flip, else its restart.
        acted = [r.times.get("flipped") or r.times["acted"] for r in self.hosts.values()
                 if r.times and r.times.get("acted") and r.outcome in ("switched", "reloaded")]
        if len(acted) < 2:
            return None
        return round(max(acted) - min(acted), 3)

    def v2_playbook_on_stats(self, stats):
        # A run refused before it read any host (the fleet lock held by another run, settings that fail their
        # checks, an AWX slice) still says why, with no host rows: nothing was read, nothing changed.
        if not self.deployed and not self.refused:
            return
        ended = time.time()
        for rec in self.hosts.values():
            rec.refused = bool(self.refused) and not self.planned
            rec.check = self.check_mode
        # Not deployed (refused before any host was read): a host seen only running the lock step says nothing.
        rows = [self.hosts[n].as_dict() for n in sorted(self.hosts, key=_name_key)] if self.deployed else []
        for row in rows:
            summary = stats.summarize(row["host"])
            if summary.get("unreachable") and row["result"] not in ("unreachable",):
                row["result"] = "unreachable"
                row["runs"] = "unknown (was %s)" % (row["old"] or "-")
        doc = {
            "playbook": self.playbook,
            "started": datetime.datetime.fromtimestamp(self.started, datetime.timezone.utc).isoformat(),
            "seconds": round(ended - self.started, 2),
            "skew_s": self.skew(),
            "batches": self.batches,
            "hosts": rows,
            "runs": {},
            "deployed_by": self.deployer,
            # The first judgement is the canary's; "analysis" has every batch judged.
            "canary": self.analysis[0] if self.analysis else None,
            "analysis": self.analysis,
            "fit": self.fit,
            "refused": None if self.planned else self.refused,
            "check_mode": self.check_mode,
            # Failed (or unreachable) before the plan and still failed at the end: left out of the deploy.
            "failed_before_plan": {
                name: why for name, why in sorted(self.failed_early.items(), key=lambda item: _name_key(item[0]))
                if self.planned and name not in self.plan_hosts and still_failed(stats.summarize(name))},
        }
        for row in rows:
            doc["runs"].setdefault(row["runs"], []).append(row["host"])
        self.print_table(doc)
        if self.get_option("write_files"):
            self.write_files(doc)

    def print_table(self, doc):
        grouped = len(doc["hosts"]) > (self.get_option("group_above") or 0) > 0
        if grouped:
            head = ["batch", "hosts", "old -> new", "stage s", "switch s", "health s", "result", "runs now", "lb now"]
            lines = [[str(g["batch"] or "-"), "%d: %s" % (len(g["hosts"]), host_ranges(g["hosts"])),
                      "%s -> %s" % (g["old"] or "-", g["new"] or "-"), self.num(g["stage_s"]), self.num(g["switch_s"]),
                      self.num(g["health_s"]), g["result"], g["runs"], g["rotation"]]
                     for g in group_rows(doc["hosts"])]
        else:
            head = ["host", "batch", "old -> new", "stage s", "switch s", "health s", "result", "runs now", "lb now"]
            lines = []
            for row in doc["hosts"]:
                lines.append([row["host"], str(row["batch"] or "-"),
                              "%s -> %s" % (row["old"] or "-", row["new"] or "-"),
                              self.num(row["stage_s"]), self.num(row["switch_s"]), self.num(row["health_s"]),
                              row["result"], row["runs"], row["rotation"]])
        widths = [max(len(h), *(len(line[i]) for line in lines)) if lines else len(h) for i, h in enumerate(head)]
        in_groups = ", %d hosts in groups; longest times" % len(doc["hosts"]) if grouped else ""
        in_check = ", check mode: nothing was changed" if doc["check_mode"] else ""
        out = ["DEPLOY REPORT (%s, %.1f s%s%s)" % (doc["playbook"] or "run", doc["seconds"], in_groups, in_check)]
        if lines:
            out += ["  ".join(h.ljust(w) for h, w in zip(head, widths)), "  ".join("-" * w for w in widths)]
            out += ["  ".join(c.ljust(w) for c, w in zip(line, widths)) for line in lines]
            runs = "; ".join("%s on %s" % (rel, host_ranges(hosts) if grouped else ", ".join(hosts))
                             for rel, hosts in sorted(doc["runs"].items()))
            out.append("runs now: " + runs)
        else:
            out.append("no host was read")
        if doc["deployed_by"]:
            # In check mode the lock was only read: the holder is this run as it would have taken it.
            label = "checked by (check mode, nothing deployed)" if doc["check_mode"] else "deployed by"
            out.append("%s: %s" % (label, _lease.who(doc["deployed_by"])))
        if doc["skew_s"] is not None:
            out.append("version skew: %.3f s between the first and the last host taking the new release" % doc["skew_s"])
        for judged in doc["analysis"]:
            out.extend(self.canary_lines(judged))
        if doc["refused"]:
            out.append(refusal(doc) + ": " + doc["refused"][:600])
        if doc["fit"]:
            if doc["fit"].get("problems"):
                out.append("the build cannot run on every host (nothing was changed):")
                out.extend("  " + line for line in str(doc["fit"].get("table") or "").splitlines())
            else:
                needs = str(doc["fit"].get("table") or "").split("\n", maxsplit=1)[0]
                out.append("fit: every host can run the build (%s)" % needs)
        for name, why in doc["failed_before_plan"].items():
            out.append("WARNING: %s failed before the deploy's plan and is not in it: %s" % (name, why[:600]))
        for row in doc["hosts"]:
            for why in row["refetched"]:
                out.append("%s: fetched the artifact again (from the origin) after: %s" % (
                    row["host"], " ".join(str(why).split())[:300]))
        for row in doc["hosts"]:
            if row["message"] and row["result"] not in ("switched", "unchanged", "reloaded"):
                out.append("%s: %s" % (row["host"], " ".join(str(row["message"]).split())[:600]))
        for row in doc["hosts"]:
            if row["lb"] and not row["lb"].get("in_rotation"):
                out.append("WARNING: %s is out of rotation in the load balancer (%s)" % (row["host"], row["rotation"]))
            if row["result"] in ("repaired", "finished"):
                out.append("%s: %s - %s" % (row["result"], row["host"], row["reason"]))
            if "(" in row["runs"] and row["result"] != "unreachable":
                out.append("WARNING: %s runs %s" % (row["host"], row["runs"]))
            if row["not_at_boot"]:
                unit = (row["service"] or {}).get("name") or "its service"
                out.append("WARNING: %s: %s is %s at boot, so it would not come back after a reboot; enable it "
                           "(systemctl enable %s, or rerun the app_service role)" % (row["host"], unit, row["not_at_boot"],
                                                                                     unit))
        self._display.banner("SEEDOPS.DEPLOY REPORT")
        self._display.display("\n".join(out))

    @staticmethod
    def canary_lines(canary):
        """One judged batch: the verdict with its reasons, each traffic-weight step, then each server's traffic
        over the (last) window."""
        if not canary:
            return []
        what = "canary" if canary.get("batch") in (None, 1) else "batch %s" % canary["batch"]
        lines = ["%s: %s after %s s of traffic%s - %s" % (
            what, canary["verdict"].upper(), canary.get("elapsed"), " (stopped early)" if canary.get("early") else "",
            "; ".join(canary.get("reasons") or []))]
        for step in canary.get("steps") or []:
            if step.get("share") is None:
                continue
            lines.append("  step %s%% (weight %s, expected %s%%): %s, the canary served %s%% of %d requests" % (
                step["share"], step.get("weight"), step.get("expected_share"), step.get("verdict"),
                step.get("seen_share"), (step.get("canary") or {}).get("requests", 0)
                + (step.get("baseline") or {}).get("requests", 0)))
        canary_servers = (canary.get("canary") or {}).get("servers") or []
        baseline_servers = (canary.get("baseline") or {}).get("servers") or []
        for server, seen in sorted((canary.get("servers") or {}).items()):
            role = "canary" if server in canary_servers else "baseline" if server in baseline_servers else "other"
            ratio = "-" if seen.get("error_ratio") is None else "%.1f%%" % (100 * seen["error_ratio"])
            lines.append("  traffic %s (%s): %d requests, %d failed (%s), %s ms" % (
                server, role, seen.get("requests", 0), seen.get("errors", 0), ratio, seen.get("rtime_ms")))
        return lines

    @staticmethod
    def num(value):
        return "-" if value is None else "%.2f" % value

    def write_files(self, doc):
        base = self.report_base()
        directory = os.path.dirname(base)
        try:
            os.makedirs(directory, exist_ok=True)
            for ext, text in (("json", json.dumps(doc, indent=2, sort_keys=True) + "\n"), ("html", self.render_html(doc))):
                _releases.write_text_atomic("%s.%s" % (base, ext), text)
                _releases.write_text_atomic(os.path.join(directory, "latest.%s" % ext), text)
        except OSError as exc:
            self._display.warning("deploy_report: could not write the report to %s: %s" % (directory, exc))
            return
        self._display.display("report: %s.json and %s.html" % (base, base))

    def render_html(self, doc):
        t0 = self.started
        spans = [s for row in doc["hosts"] for s in row["phases"].values()]
        t1 = max([s["end"] for s in spans] + [t0 + 1])
        # Rows in batch order, a line between batches; on a big fleet (over 20 hosts) thinner rows, so that 100 hosts
        # stay on about two screens.
        ordered = sorted(doc["hosts"], key=lambda r: (_batch_key(r["batch"]), _name_key(r["host"])))
        compact = len(ordered) > 20
        width, label_w, row_h = 900, 150, 14 if compact else 26
        scale = (width - label_w - 20) / max(t1 - t0, 0.001)
        height = 40 + row_h * len(ordered) + 30
        svg = ['<svg xmlns="http://www.w3.org/2000/svg" width="%d" height="%d" font-family="sans-serif" '
               'font-size="12">' % (width, height)]
        step = max(1, int((t1 - t0) / 10) or 1)
        for sec in range(0, int(t1 - t0) + 1, step):
            x = label_w + sec * scale
            svg.append('<line x1="%.1f" y1="25" x2="%.1f" y2="%d" stroke="#e2e8f0"/>' % (x, x, height - 25))
            svg.append('<text x="%.1f" y="18" fill="#4a5568" text-anchor="middle">%ds</text>' % (x, sec))
        for i, row in enumerate(ordered):
            y = 30 + i * row_h
            if i and row["batch"] != ordered[i - 1]["batch"]:
                svg.append('<line x1="0" y1="%d" x2="%d" y2="%d" stroke="#a0aec0"/>' % (y, width, y))
            label = "%s  (batch %s)" % (row["host"], row["batch"] or "-")
            svg.append('<text x="4" y="%d" fill="#1a202c"%s>%s</text>'
                       % (y + (11 if compact else 15), ' font-size="10"' if compact else "", html.escape(label)))
            for phase in PHASES:
                span = row["phases"].get(phase)
                if not span:
                    continue
                x = label_w + (span["start"] - t0) * scale
                w = max(2.0, (span["end"] - span["start"]) * scale)
                colour = COLOURS["failed"] if span["failed"] else COLOURS[phase]
                svg.append('<rect x="%.1f" y="%d" width="%.1f" height="%d" fill="%s"><title>%s %s: %.2f s</title></rect>'
                           % (x, y + 3, w, row_h - (5 if compact else 8), colour, html.escape(row["host"]), phase, span["end"] - span["start"]))
            # Traffic-weight steps: a mark and the share where each step of the bake began.
            for judged in doc.get("analysis") or []:
                if row["host"] not in judged.get("hosts", []):
                    continue
                for step in judged.get("steps") or []:
                    if step.get("share") is None:
                        continue
                    x = label_w + (judged["at"] + step.get("started", 0) - t0) * scale
                    svg.append('<line x1="%.1f" y1="%d" x2="%.1f" y2="%d" stroke="#1a202c"><title>%s%% of the traffic '
                               '(weight %s): %s</title></line>' % (x, y + 1, x, y + row_h - 3, step["share"],
                                                                   step.get("weight"), html.escape(step["verdict"])))
                    svg.append('<text x="%.1f" y="%d" font-size="9" fill="#ffffff">%g%%</text>'
                               % (x + 2, y + (11 if compact else 16), step["share"]))
        legend_y = height - 8
        for i, phase in enumerate(PHASES + ("failed",)):
            x = label_w + i * 110
            svg.append('<rect x="%d" y="%d" width="12" height="12" fill="%s"/>' % (x, legend_y - 11, COLOURS[phase]))
            svg.append('<text x="%d" y="%d">%s</text>' % (x + 16, legend_y, phase))
        svg.append("</svg>")
        cells = "".join(
            "<tr><td>%s</td><td>%s</td><td>%s &rarr; %s</td><td>%s</td><td>%s</td><td>%s</td><td>%s</td><td>%s</td></tr>"
            % tuple(html.escape(str(v)) for v in (row["host"], row["batch"] or "-", row["old"] or "-", row["new"] or "-",
                                                  self.num(row["stage_s"]), self.num(row["switch_s"]),
                                                  self.num(row["health_s"]), row["result"], row["runs"]))
            for row in doc["hosts"])
        skew = "" if doc["skew_s"] is None else "<p>Version skew: %.3f s</p>" % doc["skew_s"]
        if doc["refused"]:
            skew += "<p>%s: %s</p>" % (html.escape(refusal(doc).capitalize()), html.escape(doc["refused"]))
        for name, why in doc["failed_before_plan"].items():
            skew += "<p>%s failed before the deploy's plan and is not in it: %s</p>" % (html.escape(name),
                                                                                        html.escape(why))
        return ("<!DOCTYPE html><html><head><meta charset=\"utf-8\"><title>seedops.deploy report</title>"
                "<style>body{font-family:sans-serif;margin:2em}table{border-collapse:collapse}"
                "td,th{border:1px solid #cbd5e0;padding:4px 8px;text-align:left}</style></head><body>"
                "<h1>Deploy report</h1><p>%s, started %s, %.1f s%s</p>%s%s"
                "<table><tr><th>host</th><th>batch</th><th>old &rarr; new</th><th>stage s</th><th>switch s</th>"
                "<th>health s</th><th>result</th><th>runs now</th></tr>%s</table></body></html>\n"
                % (html.escape(doc["playbook"] or "run"), html.escape(doc["started"]), doc["seconds"],
                   ", check mode: nothing was changed" if doc["check_mode"] else "", skew, "\n".join(svg), cells))
