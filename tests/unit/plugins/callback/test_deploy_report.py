"""Unit tests for the deploy_report callback's bookkeeping: results in, table, JSON and HTML out."""

import json
import os

import pytest

from ansible_collections.seedops.deploy.plugins.callback import deploy_report as plugin
from ansible_collections.seedops.deploy.plugins.filter import deploy as deploy_filters


class Host:
    def __init__(self, name):
        self.name = name

    def get_name(self):
        return self.name


class Task:
    count = 0

    def __init__(self, action, path=""):
        Task.count += 1
        self.action = self.resolved_action = action
        self._uuid = f"task-{Task.count}"
        self.path = path

    def get_path(self):
        return self.path


class Result:
    def __init__(self, host, task, result):
        self._host, self._task, self._result = host, task, result


class Play:
    def __init__(self, name, serial):
        self.name, self.serial = name, serial

    def get_name(self):
        return self.name


class Stats:
    def __init__(self, unreachable=(), failures=()):
        self.unreachable, self.failures = unreachable, failures

    def summarize(self, host):
        return {"unreachable": 1 if host in self.unreachable else 0, "failures": 1 if host in self.failures else 0}


@pytest.fixture
def callback(tmp_path, monkeypatch):
    cb = plugin.CallbackModule()
    options = {"report_dir": str(tmp_path), "write_files": True}
    monkeypatch.setattr(cb, "get_option", options.get)
    return cb


def run(cb, host, action, result, status="ok", path="", **args):
    task = Task(action, path)
    cb.v2_runner_on_start(Host(host), task)
    res = Result(Host(host), task, {**({"invocation": {"module_args": args}} if args else {}), **result})
    if status == "ok":
        cb.v2_runner_on_ok(res)
    elif status == "failed":
        cb.v2_runner_on_failed(res)
    else:
        cb.v2_runner_on_unreachable(res)


def plan(cb, hosts, old, new, serial=(1, "34%", "100%"), restart=(), switch="rolling"):
    """The plan step as the deploy role runs it: release_info on every host, then the deploy_plan fact."""
    entries = []
    for host in hosts:
        run(cb, host, "seedops.deploy.release_info", {"current": old})
        entries.append({"host": host, "current": old, "restart": host in restart})
    deploy_plan = deploy_filters.deploy_plan(entries, new, serial=list(serial), switch=switch)
    run(cb, hosts[0], "ansible.builtin.set_fact", {"ansible_facts": {"deploy_plan": deploy_plan}})
    return deploy_plan


def batch(cb, host, old, new, healthy=True, acted=100.0):
    """One host's batch as activate.yml runs it: drain, then one staged_restart that switches and restarts."""
    run(cb, host, "seedops.deploy.lb_member", {"results": [{"invocation": {"module_args": {"state": "drain"}}}]})
    times = {"start": acted - 0.3, "switched": acted - 0.2, "acted": acted}
    if healthy:
        run(cb, host, "seedops.deploy.staged_restart", {"release": new, "switched": True, "previous": old,
                                                        "health": {"healthy": True}, "times": times}, release_id=new)
        run(cb, host, "seedops.deploy.lb_member", {"results": [{"invocation": {"module_args": {"state": "ready"}}}]})
    else:
        run(cb, host, "seedops.deploy.staged_restart", {"release": old, "switched": True, "health": {"healthy": False},
                                                        "rolled_back": True, "msg": "unhealthy; rolled back"},
            status="failed", release_id=new)


def test_a_rollout_that_stopped_at_the_canary_is_reported_host_by_host(callback, tmp_path, capsys):
    callback.v2_playbook_on_play_start(Play("stage", None))
    plan(callback, ["app1", "app2", "app3"], "1.0.0", "2.0.0")
    callback.v2_playbook_on_play_start(Play("activate", [1, "34%", "100%"]))
    batch(callback, "app1", "1.0.0", "2.0.0", healthy=False)
    callback.v2_playbook_on_stats(Stats())
    out = capsys.readouterr().out
    assert "app1  1      1.0.0 -> 2.0.0" in out and "rolled back" in out
    assert "runs now: 1.0.0 on app1, app2, app3" in out
    assert "app1: unhealthy; rolled back" in out
    doc = json.loads((tmp_path / "latest.json").read_text())
    results = {row["host"]: (row["result"], row["runs"], row["batch"]) for row in doc["hosts"]}
    # Hosts of later batches keep the batch the plan gave them, and were not reached.
    assert results == {"app1": ("rolled back", "1.0.0", 1), "app2": ("not reached", "1.0.0", 2),
                       "app3": ("not reached", "1.0.0", 3)}
    html = (tmp_path / "latest.html").read_text()
    assert html.startswith("<!DOCTYPE html>") and "<svg" in html and "app1  (batch 1)" in html


def test_batches_come_from_the_plan_and_the_skew_spans_the_new_processes(callback, tmp_path):
    callback.v2_playbook_on_play_start(Play("plan", None))
    plan(callback, ["app1", "app2"], "1.0.0", "2.0.0", serial=[1, "100%"])
    # The report reads the plan's batches, not the order or number of plays or results.
    for number, host in enumerate(["app2", "app1"]):
        callback.v2_playbook_on_play_start(Play("activate", [1, 1]))
        batch(callback, host, "1.0.0", "2.0.0", acted=100.0 + 2.5 * number)
    for host in ("app1", "app2"):
        run(callback, host, "ansible.builtin.set_fact", {"ansible_facts": {"deploy_verified": {"release": "2.0.0"}}})
    callback.v2_playbook_on_stats(Stats())
    doc = json.loads((tmp_path / "latest.json").read_text())
    assert [(b["label"], b["hosts"]) for b in doc["batches"]] == [(1, ["app1"]), (2, ["app2"])]
    assert {row["host"]: row["batch"] for row in doc["hosts"]} == {"app1": 1, "app2": 2}
    assert doc["skew_s"] == 2.5
    assert {row["result"] for row in doc["hosts"]} == {"switched"}
    assert {row["action"] for row in doc["hosts"]} == {"switch"}
    assert all(set(row["phases"]) == {"drain", "switch", "health", "ready"} for row in doc["hosts"])
    assert len([n for n in os.listdir(tmp_path) if n.startswith("deploy-")]) == 2


def test_one_staged_restart_that_switches_gives_a_switch_and_a_health_phase(callback, tmp_path):
    plan(callback, ["app1"], "1.0.0", "2.0.0", serial=[1])
    times = {"start": 5000.0, "switched": 5000.4, "acted": 5000.6, "end": 5001.0}
    task = Task("seedops.deploy.staged_restart")
    callback.v2_runner_on_start(Host("app1"), task)
    result = {"invocation": {"module_args": {"release_id": "2.0.0"}}, "release": "2.0.0", "switched": True,
              "health": {"healthy": True}, "times": times}
    callback.v2_runner_on_ok(Result(Host("app1"), task, result))
    callback.v2_playbook_on_stats(Stats())
    row = json.loads((tmp_path / "latest.json").read_text())["hosts"][0]
    assert row["result"] == "switched" and row["runs"] == "2.0.0"
    phases = row["phases"]
    # The host's clock splits the one task: the switch took 0.4 s of it, the rest is the restart and its health gate.
    switch_s = phases["switch"]["end"] - phases["switch"]["start"]
    assert phases["switch"]["end"] == phases["health"]["start"] and 0 <= switch_s <= 0.4 + 1e-6
    assert not phases["switch"]["failed"] and not phases["health"]["failed"]


def test_a_refused_switch_fails_the_switch_phase_and_a_batch_taken_back_is_rolled_back(callback, tmp_path):
    plan(callback, ["app1", "app2"], "1.0.0", "2.0.0", serial=[1, 1])
    refused = {"switched": False, "release": "1.0.0", "msg": "could not switch /srv/app to release 2.0.0"}
    run(callback, "app1", "seedops.deploy.staged_restart", refused, status="failed", release_id="2.0.0")
    batch(callback, "app2", "1.0.0", "2.0.0")
    # abort.yml: the canary's judgement failed, app2 goes back to 1.0.0 and 2.0.0 is marked failed there.
    back = {"release": "1.0.0", "switched": True, "health": {"healthy": True},
            "times": {"start": 1.0, "switched": 1.1, "acted": 1.2}}
    run(callback, "app2", "seedops.deploy.staged_restart", back, release_id="1.0.0", previous_state="failed")
    callback.v2_playbook_on_stats(Stats())
    rows = {row["host"]: row for row in json.loads((tmp_path / "latest.json").read_text())["hosts"]}
    assert rows["app1"]["result"] == "failed" and set(rows["app1"]["phases"]) == {"switch"}
    assert rows["app1"]["phases"]["switch"]["failed"] and rows["app1"]["message"].startswith("could not switch")
    assert (rows["app2"]["result"], rows["app2"]["runs"]) == ("rolled back", "1.0.0")


def test_runs_now_is_what_verify_read_not_what_the_modules_said(callback, tmp_path):
    plan(callback, ["app1"], "1.0.0", "2.0.0")
    batch(callback, "app1", "1.0.0", "2.0.0")
    run(callback, "app1", "ansible.builtin.set_fact", {"ansible_facts": {"deploy_verified": {"release": "1.0.0"}}})
    callback.v2_playbook_on_stats(Stats())
    doc = json.loads((tmp_path / "latest.json").read_text())
    assert doc["runs"] == {"1.0.0": ["app1"]}


def test_reconfigure_without_a_plan_numbers_batches_by_play(callback, tmp_path):
    for number, host in enumerate(["app1", "app2"]):
        callback.v2_playbook_on_play_start(Play("reconfigure", [1, "100%"]))
        run(callback, host, "seedops.deploy.staged_restart", {"release": "2.0.0", "times": {"acted": 10.0 + number}},
            mode="reload")
    callback.v2_playbook_on_stats(Stats())
    doc = json.loads((tmp_path / "latest.json").read_text())
    assert [(b["label"], b["hosts"]) for b in doc["batches"]] == [(1, ["app1"]), (2, ["app2"])]
    assert {row["host"]: row["result"] for row in doc["hosts"]} == {"app1": "reloaded", "app2": "reloaded"}


def test_an_unreachable_host_runs_an_unknown_release(callback, tmp_path):
    callback.v2_playbook_on_play_start(Play("stage", None))
    plan(callback, ["app1", "app2"], "1.0.0", "2.0.0")
    callback.v2_playbook_on_play_start(Play("activate", [1, 2]))
    batch(callback, "app1", "1.0.0", "2.0.0")
    callback.v2_playbook_on_play_start(Play("activate", [1, 2]))
    run(callback, "app2", "seedops.deploy.release_info", {"msg": "ssh timed out"}, status="unreachable")
    callback.v2_playbook_on_stats(Stats(unreachable=("app2",)))
    doc = json.loads((tmp_path / "latest.json").read_text())
    assert doc["runs"] == {"2.0.0": ["app1"], "unknown (was 1.0.0)": ["app2"]}


def test_runs_without_deploy_tasks_print_and_write_nothing(callback, tmp_path, capsys):
    callback.v2_playbook_on_play_start(Play("other", None))
    run(callback, "app1", "ansible.builtin.copy", {"changed": True})
    callback.v2_playbook_on_stats(Stats())
    assert "DEPLOY REPORT" not in capsys.readouterr().out
    assert not os.listdir(tmp_path)


def test_an_unchanged_host_and_a_restarted_one(callback, tmp_path):
    callback.v2_playbook_on_play_start(Play("plan", None))
    plan(callback, ["app1", "app2"], "2.0.0", "2.0.0", restart=("app2",))
    callback.v2_playbook_on_play_start(Play("activate", [1]))
    batch(callback, "app2", "2.0.0", "2.0.0")
    callback.v2_playbook_on_stats(Stats())
    doc = json.loads((tmp_path / "latest.json").read_text())
    assert {row["host"]: row["result"] for row in doc["hosts"]} == {"app1": "unchanged", "app2": "restarted"}
    assert {row["host"]: row["batch"] for row in doc["hosts"]} == {"app1": None, "app2": 1}


def test_a_first_deploy_is_switched_from_nothing_whatever_verify_reads_later(callback, tmp_path):
    plan(callback, ["app1"], None, "1.0.0")
    batch(callback, "app1", None, "1.0.0")
    # verify's release_info reads the new live release; it is not what the host ran before.
    run(callback, "app1", "seedops.deploy.release_info", {"current": "1.0.0"})
    run(callback, "app1", "ansible.builtin.set_fact", {"ansible_facts": {"deploy_verified": {"release": "1.0.0"}}})
    callback.v2_playbook_on_stats(Stats())
    (row,) = json.loads((tmp_path / "latest.json").read_text())["hosts"]
    assert (row["old"], row["result"], row["runs"]) == (None, "switched", "1.0.0")


def test_downloads_and_drains_alone_are_no_deploy_and_write_nothing(callback, tmp_path, capsys):
    callback.v2_playbook_on_start(type("Book", (), {"_file_name": "prepare.yml"})())
    run(callback, "app1", "seedops.deploy.artifact", {"changed": True, "dest": "/var/cache/jdk.tar.gz"})
    run(callback, "app1", "seedops.deploy.lb_member", {"changed": True}, state="drain")
    callback.v2_playbook_on_stats(Stats())
    assert "DEPLOY REPORT" not in capsys.readouterr().out
    assert not os.listdir(tmp_path)


def test_a_repaired_host_and_one_left_out_of_rotation_are_said(callback, tmp_path, capsys):
    up = {"admin": "ready", "op": "up", "weight": 1, "in_rotation": True}
    drained = dict(up, admin="drain", in_rotation=False)
    entries = [{"host": "app1", "current": "2.0.0"}, {"host": "app2", "current": "2.0.0"}]
    deploy_plan = deploy_filters.deploy_plan(entries, "2.0.0", lb=[{"app1": drained, "app2": up}])
    run(callback, "app1", "ansible.builtin.set_fact", {"ansible_facts": {"deploy_plan": deploy_plan}})
    run(callback, "app1", "seedops.deploy.lb_member", {"results": [{"invocation": {"module_args": {"state": "ready"}}}]})
    run(callback, "app1", "ansible.builtin.set_fact", {"ansible_facts": {"deploy_verified": {"release": "2.0.0", "lb": up}}})
    run(callback, "app2", "ansible.builtin.set_fact",
        {"ansible_facts": {"deploy_verified": {"release": "2.0.0", "lb": dict(drained, op="down")}}})
    callback.v2_playbook_on_stats(Stats())
    out = capsys.readouterr().out
    assert "repaired: app1 - runs 2.0.0 healthily but is in drain in the load balancer" in out
    assert "WARNING: app2 is out of rotation in the load balancer (drain/down)" in out
    doc = json.loads((tmp_path / "latest.json").read_text())
    rows = {row["host"]: row for row in doc["hosts"]}
    assert (rows["app1"]["result"], rows["app1"]["rotation"], rows["app1"]["lb_before"]["admin"]) == ("repaired", "ready/up", "drain")
    assert (rows["app2"]["result"], rows["app2"]["rotation"]) == ("unchanged", "drain/down")


def test_a_finished_host_and_what_the_services_really_run(callback, tmp_path, capsys):
    """runs now is the service's measured release; a service that was not restarted, is down or says another
    version is a warning."""
    def svc(release, state="active", reports=None, boot="enabled"):
        return {"name": "app", "state": state, "release": release, "healthy": state == "active", "reports": reports,
                "boot": boot}
    entries = [{"host": h, "current": "2.0.0", "service": svc("2.0.0")} for h in ("app2", "app3", "app4")]
    entries.insert(0, {"host": "app1", "current": "2.0.0", "service": svc("1.0.0")})
    deploy_plan = deploy_filters.deploy_plan(entries, "2.0.0")
    assert deploy_plan["hosts"]["app1"]["action"] == "finish"
    run(callback, "app1", "ansible.builtin.set_fact", {"ansible_facts": {"deploy_plan": deploy_plan}})
    run(callback, "app1", "seedops.deploy.staged_restart", {"changed": True, "release": "2.0.0"})
    verified = {"app1": svc("2.0.0", reports="2.0.0"), "app2": svc("1.0.0"), "app3": svc(None, "failed"),
                "app4": svc("2.0.0", reports="2.0.0-dirty", boot="disabled")}
    for host, service in verified.items():
        run(callback, host, "ansible.builtin.set_fact", {"ansible_facts": {"deploy_verified": {
            "release": service["release"] or "2.0.0", "live": "2.0.0", "service": service}}})
    callback.v2_playbook_on_stats(Stats())
    out = capsys.readouterr().out
    assert "finished: app1 - its live release is 2.0.0 but its service still runs 1.0.0" in out
    assert "WARNING: app2 runs 1.0.0 (live link says 2.0.0: not restarted)" in out
    assert "WARNING: app3 runs 2.0.0 (service failed)" in out
    assert "WARNING: app4 runs 2.0.0 (it says 2.0.0-dirty)" in out
    assert ("WARNING: app4: app is disabled at boot, so it would not come back after a reboot; enable it (systemctl "
            "enable app, or rerun the app_service role)") in out
    assert "WARNING: app1" not in out and out.count("at boot") == 1
    rows = {row["host"]: row for row in json.loads((tmp_path / "latest.json").read_text())["hosts"]}
    assert (rows["app1"]["result"], rows["app1"]["runs"], rows["app1"]["service"]["reports"]) == ("finished", "2.0.0", "2.0.0")
    assert {host: row["not_at_boot"] for host, row in rows.items()} == {
        "app1": None, "app2": None, "app3": None, "app4": "disabled"}


def test_the_canary_verdict_and_the_traffic_that_decided_it(callback, tmp_path, capsys):
    plan(callback, ["app1", "app2"], "1.0.0", "2.0.0")
    verdict = {"verdict": "fail", "reasons": ["app1: error ratio 100.0% (40 of 40 requests) is above 1.0%"],
               "elapsed": 2.0, "window": 20.0, "early": True,
               "canary": {"servers": ["app1"], "requests": 40, "errors": 40, "error_ratio": 1.0, "rtime_ms": 1.0},
               "baseline": {"servers": ["app2"], "requests": 80, "errors": 0, "error_ratio": 0.0, "rtime_ms": 2.0},
               "servers": {"app1": {"requests": 40, "errors": 40, "error_ratio": 1.0, "rtime_ms": 1},
                           "app2": {"requests": 80, "errors": 0, "error_ratio": 0.0, "rtime_ms": 2}}}
    run(callback, "app1", "seedops.deploy.traffic_check", dict(verdict, msg="canary fail: ..."))
    callback.v2_playbook_on_stats(Stats())
    out = capsys.readouterr().out
    assert "canary: FAIL after 2.0 s of traffic (stopped early) - app1: error ratio 100.0% (40 of 40" in out
    assert "  traffic app1 (canary): 40 requests, 40 failed (100.0%), 1 ms" in out
    assert "  traffic app2 (baseline): 80 requests, 0 failed (0.0%), 2 ms" in out
    doc = json.loads((tmp_path / "latest.json").read_text())
    assert doc["canary"]["verdict"] == "fail" and doc["canary"]["servers"]["app1"]["errors"] == 40
    assert "bake" in rows_of(doc)["app1"]["phases"]
    assert "#805ad5" in (tmp_path / "latest.html").read_text(), "the bake window is drawn in the timeline"


def test_weight_steps_and_a_later_batch_judged(callback, tmp_path, capsys):
    plan(callback, ["app1", "app2", "app3"], "1.0.0", "2.0.0")
    group = {"servers": ["app1"], "requests": 30, "errors": 0, "error_ratio": 0.0, "rtime_ms": 1.0}
    base = {"servers": ["app2", "app3"], "requests": 270, "errors": 0, "error_ratio": 0.0, "rtime_ms": 1.0}
    steps = [dict(share=10.0, weight=22, expected_share=9.9, seen_share=10.0, verdict="pass", started=0.0,
                  canary=group, baseline=base, reasons=["ok"], elapsed=5.0, early=False),
             dict(share=50.0, weight=200, expected_share=50.0, seen_share=49.1, verdict="pass", started=5.0,
                  canary=group, baseline=base, reasons=["ok"], elapsed=5.0, early=False)]
    run(callback, "app1", "seedops.deploy.traffic_check", {
        "verdict": "pass", "reasons": ["at 50.0% of the traffic (weight 200): fine"], "elapsed": 10.0, "window": 10.0,
        "early": False, "canary": group, "baseline": base, "servers": {}, "steps": steps})
    later = dict(group, servers=["app2"])
    run(callback, "app2", "seedops.deploy.traffic_check", {
        "verdict": "fail", "reasons": ["app2: error ratio 5.0%"], "elapsed": 3.0, "window": 3.0, "early": True,
        "canary": later, "baseline": dict(base, servers=["app3"]), "servers": {}, "steps": []}, status="failed")
    callback.v2_playbook_on_stats(Stats())
    out = capsys.readouterr().out
    assert "canary: PASS after 10.0 s of traffic - at 50.0% of the traffic (weight 200): fine" in out
    assert "  step 10.0% (weight 22, expected 9.9%): pass, the canary served 10.0% of 300 requests" in out
    assert "batch 2: FAIL after 3.0 s of traffic (stopped early) - app2: error ratio 5.0%" in out
    doc = json.loads((tmp_path / "latest.json").read_text())
    judged = [(j["batch"], j["verdict"], j["hosts"]) for j in doc["analysis"]]
    assert judged == [(1, "pass", ["app1"]), (2, "fail", ["app2"])]
    assert doc["canary"]["steps"][1]["weight"] == 200
    assert rows_of(doc)["app2"]["phases"]["bake"]["failed"] is True
    page = (tmp_path / "latest.html").read_text()
    assert "50%</text>" in page and "10% of the traffic" not in page and "10.0% of the traffic (weight 22)" in page


def rows_of(doc):
    return {row["host"]: row for row in doc["hosts"]}


def test_the_report_says_who_deployed_from_the_fleet_lock(callback, tmp_path, capsys):
    holder = {"controller": "ops1", "controller_user": "deploy", "user": "ana", "job_id": 42, "playbook": "deploy.yml"}
    run(callback, "app1", "seedops.deploy.fleet_lock", {"held": True, "holder": holder, "run_id": "R1"}, state="held")
    plan(callback, ["app1"], "1.0.0", "2.0.0")
    batch(callback, "app1", "1.0.0", "2.0.0")
    # A later renewal by another holder record does not change who deployed; it adds what was not known (the version
    # a plan that followed the fleet found). Another run's lock says nothing about this one.
    run(callback, "app1", "seedops.deploy.fleet_lock", {"held": True, "holder": {"user": "bob", "version": "2.0.0"},
                                                        "run_id": "R1"})
    run(callback, "app1", "seedops.deploy.fleet_lock", {"held": True, "holder": {"job_id": 7}, "run_id": "R2"})
    callback.v2_playbook_on_stats(Stats())
    assert ("deployed by: user ana, controller ops1 as deploy, job 42, playbook deploy.yml, version 2.0.0, run_id R1"
            in capsys.readouterr().out)
    doc = json.loads((tmp_path / "latest.json").read_text())
    assert (doc["deployed_by"]["user"], doc["deployed_by"]["version"], doc["deployed_by"]["run_id"]) == ("ana", "2.0.0", "R1")


def test_a_lock_alone_is_no_deploy(callback, tmp_path, capsys):
    run(callback, "app1", "seedops.deploy.fleet_lock", {"held": True, "holder": {"user": "ana"}, "run_id": "R1"})
    callback.v2_playbook_on_stats(Stats())
    assert "DEPLOY REPORT" not in capsys.readouterr().out and not os.listdir(tmp_path)


def test_a_fetch_made_good_by_the_origin_does_not_fail_the_host(callback, tmp_path, capsys):
    plan(callback, ["app1", "app2"], "1.0.0", "2.0.0", serial=[1, "100%"])
    run(callback, "app2", "seedops.deploy.artifact", {"msg": "connection refused by app1:8099"}, status="failed")
    run(callback, "app2", "seedops.deploy.artifact", {"changed": True})
    for host in ("app1", "app2"):
        batch(callback, host, "1.0.0", "2.0.0")
    callback.v2_playbook_on_stats(Stats())
    out = capsys.readouterr().out
    assert "app2: fetched the artifact again (from the origin) after: connection refused by app1:8099" in out
    rows = rows_of(json.loads((tmp_path / "latest.json").read_text()))
    assert (rows["app2"]["result"], rows["app2"]["phases"]["stage"]["failed"]) == ("switched", False)
    assert rows["app2"]["refetched"] == ["connection refused by app1:8099"] and rows["app1"]["refetched"] == []


def test_hosts_that_flip_have_a_flip_phase_their_port_and_the_skew_of_their_flips(callback, tmp_path, capsys):
    plan(callback, ["app1", "app2"], "1.0.0", "2.0.0", switch="together")
    callback.v2_playbook_on_play_start(Play("together", None))
    for number, host in enumerate(["app1", "app2"]):
        run(callback, host, "seedops.deploy.release", {"release_id": "2.0.0", "current": "2.0.0", "previous": "1.0.0"},
            state="active")
        # The new instances started 3 s apart; the load balancers flipped them 0.25 s apart.
        run(callback, host, "seedops.deploy.staged_restart", {"release": "2.0.0", "times": {"acted": 100.0 + 3 * number}})
        # Every new server warmed (checked in drain) before the flips: part of the flip, no drain of the host.
        run(callback, host, "seedops.deploy.lb_member",
            {"results": [{"invocation": {"module_args": {"server": f"{host}-8081", "state": "drain", "wait_up": True}}}]})
        run(callback, host, "seedops.deploy.lb_member",
            {"results": [{"invocation": {"module_args": {"server": f"{host}-8081", "replaces": f"{host}-8080"}},
                          "flipped_at": 110.0 + 0.25 * number}]})
        up = {"admin": "ready", "op": "up", "weight": 100, "in_rotation": True}
        run(callback, host, "ansible.builtin.set_fact",
            {"ansible_facts": {"deploy_verified": {"release": "2.0.0", "lb": up, "port": 8081}}})
    callback.v2_playbook_on_stats(Stats())
    doc = json.loads((tmp_path / "latest.json").read_text())
    assert doc["skew_s"] == 0.25
    for row in doc["hosts"]:
        assert set(row["phases"]) == {"switch", "health", "warm", "flip"} and row["result"] == "switched"
        assert row["port"] == 8081 and row["rotation"] == "ready/up :8081"
    assert "version skew: 0.250 s between the first and the last host taking the new release" in capsys.readouterr().out


def test_hosts_a_stopped_rollout_took_back_are_rolled_back_each_by_its_own_delegated_result(callback, tmp_path):
    """prestart.yml started 2.0.0 beside the old instance on every host; app1's batch flipped, then the rollout
    stopped, and stop.yml (run once, on app1) took app2 and app3 back in one loop delegated to each of them."""
    plan(callback, ["app1", "app2", "app3"], "1.0.0", "2.0.0")
    callback.v2_playbook_on_play_start(Play("prestart", None))
    for host in ("app1", "app2", "app3"):
        run(callback, host, "seedops.deploy.staged_restart", {"release": "2.0.0", "switched": True, "previous": "1.0.0",
                                                              "health": {"healthy": True}, "times": {"acted": 100.0}},
            release_id="2.0.0", rollback=False, instance=8081)
    callback.v2_playbook_on_play_start(Play("activate", [1, "34%", "100%"]))
    run(callback, "app1", "seedops.deploy.lb_member",
        {"results": [{"invocation": {"module_args": {"server": "app1-8081", "replaces": "app1-8080"}}, "flipped_at": 101.0}]})
    back = [{"invocation": {"module_args": {"state": "rolled_back", "release_id": "2.0.0", "rollback_to": "1.0.0"}},
             "current": "1.0.0", "item": host} for host in ("app2", "app3")]
    back[1].update(failed=True, msg="app3: the release store is locked")
    task = Task("seedops.deploy.release")
    task.delegate_to = "{{ item }}"
    callback.v2_runner_on_start(Host("app1"), task)
    callback.v2_runner_on_ok(Result(Host("app1"), task, {"results": back}))
    callback.v2_playbook_on_stats(Stats(failures=("app1",)))
    rows = {row["host"]: row for row in json.loads((tmp_path / "latest.json").read_text())["hosts"]}
    assert (rows["app1"]["result"], rows["app1"]["runs"]) == ("switched", "2.0.0"), rows["app1"]
    assert (rows["app2"]["result"], rows["app2"]["runs"]) == ("rolled back", "1.0.0"), rows["app2"]
    # app3 could not be taken back: its new instance started but never took traffic (no flip), and it says why.
    assert rows["app3"]["result"] == "started" and "store is locked" in rows["app3"]["message"], rows["app3"]
    # The skew counts the hosts whose users met the new release: app1 alone.
    assert json.loads((tmp_path / "latest.json").read_text())["skew_s"] is None


def test_a_batch_flipped_in_one_task_gives_each_of_its_hosts_a_flip_phase_and_its_moment(callback, tmp_path):
    """flip.yml's batch flip: one lb_member task, run once (on app2) for the batch app2 and app3, over both load
    balancers; each flip's new server names its host. A later batch's flip that failed in lb2 says why on both its
    hosts, which stay started (what takes them back decides their result)."""
    hosts = ["app1", "app2", "app3", "app4", "app5"]
    plan(callback, hosts, "1.0.0", "2.0.0")
    beside = {"hosts": {h: {"current": "1.0.0", "target": "2.0.0", "action": "switch", "batch": 1 + (h > "app1")
                            + (h > "app3"), "lb_server": f"{h}-8080", "idle_server": f"{h}-8081", "path": "flip"}
                        for h in hosts},
              "batches": [["app1"], ["app2", "app3"], ["app4", "app5"]]}
    callback.planned = False
    run(callback, "app1", "ansible.builtin.set_fact", {"ansible_facts": {"deploy_plan": beside}})
    callback.v2_playbook_on_play_start(Play("activate", [1, "34%", "100%"]))
    for host in hosts:
        run(callback, host, "seedops.deploy.staged_restart", {"release": "2.0.0", "switched": True, "previous": "1.0.0",
                                                              "health": {"healthy": True}, "times": {"acted": 100.0}},
            release_id="2.0.0", rollback=False, instance=8081)

    def flips(on, names, moments, failed=None):
        args = {"flips": [{"server": f"{h}-8081", "replaces": f"{h}-8080"} for h in names], "wait": False}
        results = [{"invocation": {"module_args": args}, "flipped_at": m, "item": [lb, ""]}
                   for lb, m in zip(("lb1", "lb2"), moments)]
        if failed:
            results[1].update(failed=True, msg=failed)
        run(callback, on, "seedops.deploy.lb_member", {"results": results, **({"failed": True} if failed else {})},
            status="failed" if failed else "ok")

    flips("app2", ["app2", "app3"], [110.0, 110.02])
    flips("app4", ["app4", "app5"], [120.0, None], failed="app4-8081 (down) is not up in HAProxy's health checks")
    callback.v2_playbook_on_stats(Stats())
    rows = {row["host"]: row for row in json.loads((tmp_path / "latest.json").read_text())["hosts"]}
    for host in ("app2", "app3"):
        assert "flip" in rows[host]["phases"] and rows[host]["restart_times"]["flipped"] == 110.02, rows[host]
        assert rows[host]["result"] == "switched", rows[host]
    for host in ("app4", "app5"):
        assert rows[host]["result"] == "started" and "is not up" in rows[host]["message"], rows[host]
        assert rows[host]["restart_times"]["flipped"] == 120.0, rows[host]
    assert "flip" not in rows["app1"]["phases"]


def test_a_host_that_cannot_run_the_build_is_in_the_printed_report_and_the_json(callback, tmp_path, capsys):
    from ansible_collections.seedops.deploy.plugins.filter.build import build_fit

    for host in ("app1", "app2"):
        run(callback, host, "seedops.deploy.release_info", {"current": "1.0.0"})
    fit = build_fit([{"host": "app1", "platform": "linux/amd64", "env_keys": ["DB"]},
                     {"host": "app2", "platform": "linux/amd64", "env_keys": []}], {"env": ["DB"]})
    run(callback, "app1", "ansible.builtin.set_fact", {"ansible_facts": {"deploy_fit": fit}})
    callback.v2_playbook_on_stats(Stats())
    out = capsys.readouterr().out
    assert "the build cannot run on every host (nothing was changed):" in out
    assert "NO: its service environment lacks DB" in out
    doc = json.loads((tmp_path / "latest.json").read_text())
    assert doc["fit"]["problems"] == ["app2: its service environment lacks DB"]
    assert [row["ok"] for row in doc["fit"]["rows"]] == [True, False]


def test_a_fleet_that_fits_says_so_in_one_line(callback, tmp_path, capsys):
    from ansible_collections.seedops.deploy.plugins.filter.build import build_fit

    plan(callback, ["app1"], "1.0.0", "1.0.0")
    fit = build_fit([{"host": "app1", "platform": "linux/amd64"}], {"platforms": ["linux/amd64"]})
    run(callback, "app1", "ansible.builtin.set_fact", {"ansible_facts": {"deploy_fit": fit}})
    callback.v2_playbook_on_stats(Stats())
    assert "fit: every host can run the build (needs: linux/amd64; libc any; java -; env -)" in capsys.readouterr().out


def test_host_ranges_are_compact_and_in_natural_order():
    assert plugin.host_ranges(["app10", "app2", "app1", "app3", "app5", "lb1", "web", "db01", "db02"]) == (
        "app[1-3,5,10], db01, db02, lb1, web")
    assert plugin.host_ranges(["app7"]) == "app7"
    assert plugin.host_ranges([]) == ""


def test_a_big_fleet_is_printed_in_groups_and_the_json_keeps_every_host(tmp_path, monkeypatch, capsys):
    cb = plugin.CallbackModule()
    options = {"report_dir": str(tmp_path), "write_files": True, "group_above": 20}
    monkeypatch.setattr(cb, "get_option", options.get)
    hosts = ["app%d" % n for n in range(1, 31)]
    cb.v2_playbook_on_play_start(Play("plan", None))
    plan(cb, hosts, "1.0.0", "2.0.0", serial=[1, 10, "100%"])
    cb.v2_playbook_on_play_start(Play("activate", [1, 10, "100%"]))
    batch(cb, "app1", "1.0.0", "2.0.0", acted=100.0)
    for number, host in enumerate(hosts[1:11]):
        cb.v2_playbook_on_play_start(Play("activate", [1, 10, "100%"]))
        batch(cb, host, "1.0.0", "2.0.0", healthy=host != "app7", acted=101.0 + number)
    cb.v2_playbook_on_stats(Stats())
    out = capsys.readouterr().out
    assert "DEPLOY REPORT (run, " in out and ", 30 hosts in groups; longest times)" in out
    table = out.split("-----  ", 1)[1].splitlines()[1:5]
    assert [line.split()[:3] for line in table] == [
        ["1", "1:", "app1"], ["2", "9:", "app[2-6,8-11]"], ["2", "1:", "app7"], ["3", "19:", "app[12-30]"]], out
    assert ["  switched  " in table[0], "  switched  " in table[1], "  rolled back  " in table[2],
            "  not reached  " in table[3]] == [True] * 4, out
    assert "runs now: 1.0.0 on app[7,12-30]; 2.0.0 on app[1-6,8-11]" in out
    # The host that needs a word still gets its own line.
    assert "app7: unhealthy; rolled back" in out
    doc = json.loads((tmp_path / "latest.json").read_text())
    assert len(doc["hosts"]) == 30


def test_the_timeline_of_a_hundred_hosts_is_in_batch_order_with_thin_rows(callback, tmp_path):
    hosts = ["app%d" % n for n in range(1, 101)]
    plan(callback, hosts, "1.0.0", "2.0.0", serial=[1, 10, "100%"])
    for number, host in enumerate(hosts[:11]):
        callback.v2_playbook_on_play_start(Play("activate", [1, 10, "100%"]))
        batch(callback, host, "1.0.0", "2.0.0", acted=100.0 + number)
    callback.v2_playbook_on_stats(Stats())
    doc = json.loads((tmp_path / "latest.json").read_text())
    assert [row["host"] for row in doc["hosts"]][:3] == ["app1", "app2", "app3"], "natural order, not app1, app10"
    page = (tmp_path / "latest.html").read_text()
    svg = page[page.index("<svg"):page.index("</svg>")]
    assert 'height="1470"' in svg, "14 px a row for 100 hosts"
    labels = [part.split("<", 1)[0] for part in svg.split('font-size="10">')[1:]]
    assert labels[:3] == ["app1  (batch 1)", "app2  (batch 2)", "app3  (batch 2)"]
    assert labels[10:12] == ["app11  (batch 2)", "app12  (batch 3)"] and len(labels) == 100
    # One line between batch 1 and 2, one between 2 and 3.
    assert svg.count('stroke="#a0aec0"') == 2


class Playbook:
    _file_name = "/somewhere/deploy.yml"


def test_the_report_file_is_named_at_the_start_and_published_for_set_stats(callback, tmp_path, monkeypatch):
    monkeypatch.setenv(plugin.REPORT_FILE_ENV, "restored to absent after the test")
    callback.v2_playbook_on_start(Playbook())
    named = os.environ[plugin.REPORT_FILE_ENV]
    assert os.path.dirname(named) == str(tmp_path) and named.endswith(".json")
    plan(callback, ["app1"], "1.0.0", "2.0.0")
    run(callback, "app1", "seedops.deploy.release", {"changed": True, "current": "2.0.0", "previous": "1.0.0"})
    callback.v2_playbook_on_stats(Stats())
    assert json.loads(open(named, encoding="utf-8").read())["playbook"] == "deploy.yml"


def test_no_report_file_is_published_when_files_are_off(callback, monkeypatch):
    monkeypatch.setenv(plugin.REPORT_FILE_ENV, "/left/over/from/before.json")
    monkeypatch.setattr(callback, "get_option", {"report_dir": None, "write_files": False}.get)
    callback.v2_playbook_on_start(Playbook())
    assert plugin.REPORT_FILE_ENV not in os.environ


def test_an_ansible_runner_job_gets_its_report_in_the_job_artifacts(callback, tmp_path, monkeypatch):
    monkeypatch.setenv("AWX_ISOLATED_DATA_DIR", str(tmp_path / "artifacts" / "42"))
    monkeypatch.setenv(plugin.REPORT_FILE_ENV, "restored to absent after the test")
    monkeypatch.setattr(callback, "get_option", {"report_dir": None, "write_files": True}.get)
    callback.v2_playbook_on_start(Playbook())
    assert os.environ[plugin.REPORT_FILE_ENV].startswith(str(tmp_path / "artifacts" / "42" / "deploy-reports") + "/")
    monkeypatch.setattr(callback, "get_option", {"report_dir": "/configured", "write_files": True}.get)
    callback.v2_playbook_on_start(Playbook())
    assert os.environ[plugin.REPORT_FILE_ENV].startswith("/configured/")


PLAN_YML = "/c/ansible_collections/seedops/deploy/roles/deploy/tasks/plan.yml:180"


def test_a_run_refused_in_the_plan_step_reports_no_plan_not_unchanged(callback, capsys):
    for host in ("app1", "app2"):
        run(callback, host, "seedops.deploy.release_info", {"current": "2.0.0"})
    why = "Cannot fetch the checksum list of seedops-app 9.9.9: ... answered: HTTP Error 404. Nothing was changed."
    run(callback, "app1", "ansible.builtin.assert", {"msg": why, "failed": True}, status="failed", path=PLAN_YML)
    callback.v2_playbook_on_stats(Stats())
    out = capsys.readouterr().out
    doc = json.loads(open(callback.report_base() + ".json", encoding="utf-8").read())
    assert [(r["host"], r["old"], r["new"], r["result"], r["runs"]) for r in doc["hosts"]] == [
        ("app1", "2.0.0", None, "no plan", "2.0.0"), ("app2", "2.0.0", None, "no plan", "2.0.0")]
    assert doc["refused"] == why
    assert "2.0.0 -> -" in out and "unchanged" not in out
    assert "stopped before a plan, so nothing was changed: " + why in out


def test_a_failure_after_the_plan_or_outside_the_plan_step_is_no_refusal(callback):
    plan(callback, ["app1"], "1.0.0", "2.0.0")
    run(callback, "app1", "ansible.builtin.assert", {"msg": "later", "failed": True}, status="failed",
        path=PLAN_YML.replace("plan.yml", "lock.yml"))
    callback.v2_playbook_on_stats(Stats())
    doc = json.loads(open(callback.report_base() + ".json", encoding="utf-8").read())
    assert doc["refused"] is None and doc["hosts"][0]["result"] == "not reached"


def test_a_run_refused_before_it_read_any_host_still_says_why(callback, capsys):
    """The fleet lock held by another run: no host was read, so no rows, but the report, its JSON and its HTML say
    why the run stopped. A failure the play ignores is no refusal."""
    callback.v2_playbook_on_start(Playbook())
    why = ("the fleet deploy lock /var/lib/seedops/deploy.lock is held by run live-run (playbook deploy.yml, "
           "version 9); wait for it, or set deploy_lock_break=true")
    task = Task("ansible.builtin.assert", PLAN_YML.replace("plan.yml", "decide.yml"))
    callback.v2_runner_on_failed(Result(Host("app1"), task, {"msg": "ignored", "failed": True}), ignore_errors=True)
    run(callback, "app1", "seedops.deploy.fleet_lock", {"msg": why, "failed": True, "held": False}, status="failed",
        path=PLAN_YML.replace("plan.yml", "lock.yml"))
    callback.v2_playbook_on_stats(Stats())
    out = capsys.readouterr().out
    doc = json.loads(open(callback.report_base() + ".json", encoding="utf-8").read())
    assert doc["hosts"] == [] and doc["refused"] == why and doc["deployed_by"] is None
    assert "no host was read" in out and "stopped before it changed anything: " + why in out
    assert "stopped before a plan" not in out
    assert "old -> new" not in out
    assert "Stopped before it changed anything: the fleet deploy lock" in open(
        callback.report_base() + ".html", encoding="utf-8").read()


def test_a_run_that_neither_deployed_nor_was_refused_prints_no_report(callback, capsys):
    run(callback, "app1", "seedops.deploy.artifact", {"changed": True})
    run(callback, "app1", "ansible.builtin.assert", {"msg": "elsewhere", "failed": True}, status="failed",
        path="/c/playbooks/other.yml:3")
    callback.v2_playbook_on_stats(Stats())
    assert "DEPLOY REPORT" not in capsys.readouterr().out


def test_a_failed_loop_reports_its_failed_items_own_message(callback, tmp_path):
    plan(callback, ["app1"], "1.0.0", "2.0.0")
    # A drain over two load balancers: lb1 drained the server, lb2 refused. Ansible's own msg says only that an item
    # failed.
    items = [{"invocation": {"module_args": {"state": "drain"}}, "item": ["lb1", "app1"], "failed": False},
             {"invocation": {"module_args": {"state": "drain"}}, "item": ["lb2", "app1"], "failed": True,
              "msg": "app1 still has 3 sessions after 60 s of drain (drain_timeout); it stays in drain"}]
    run(callback, "app1", "seedops.deploy.lb_member", {"results": items, "msg": "One or more items failed"},
        status="failed")
    callback.v2_playbook_on_stats(Stats())
    row = json.loads((tmp_path / "latest.json").read_text())["hosts"][0]
    assert row["message"] == "app1 still has 3 sessions after 60 s of drain (drain_timeout); it stays in drain"


def test_a_host_that_failed_before_the_plan_is_named_left_out(callback, capsys):
    """site.yml: app2 failed setting up its service and lb1 failed a task it then recovered from, both before the
    deploy step's plan. The plan has app1 and app3 only; the report names app2 (failed at the end) and not lb1."""
    why = "app2: setting up the service failed at the task Check the variables: app_service_exec must be absolute."
    run(callback, "app2", "ansible.builtin.assert", {"msg": "first", "failed": True}, status="failed")
    run(callback, "app2", "ansible.builtin.fail", {"msg": why, "failed": True}, status="failed")
    run(callback, "lb1", "ansible.builtin.uri", {"msg": "Status code was 503", "failed": True}, status="failed")
    plan(callback, ["app1", "app3"], "2.0.0", "2.0.0")
    callback.v2_playbook_on_stats(Stats(failures=("app2",)))
    out = capsys.readouterr().out
    doc = json.loads(open(callback.report_base() + ".json", encoding="utf-8").read())
    assert [r["host"] for r in doc["hosts"]] == ["app1", "app3"]
    assert doc["failed_before_plan"] == {"app2": why}
    assert "WARNING: app2 failed before the deploy's plan and is not in it: " + why in out
    assert "<p>app2 failed before the deploy's plan and is not in it: app2: setting up the service" in open(
        callback.report_base() + ".html", encoding="utf-8").read()
    assert "lb1" not in out


def test_a_failure_after_the_plan_is_no_failure_before_it(callback):
    plan(callback, ["app1"], "1.0.0", "2.0.0")
    run(callback, "app1", "ansible.builtin.assert", {"msg": "later", "failed": True}, status="failed")
    callback.v2_playbook_on_stats(Stats(failures=("app1",)))
    doc = json.loads(open(callback.report_base() + ".json", encoding="utf-8").read())
    assert doc["failed_before_plan"] == {}


def test_a_run_in_check_mode_says_what_each_host_would_do(callback, monkeypatch, capsys):
    """ansible-playbook --check (or an AWX job of type check): the plan's switches and restarts were not done, and
    the report says so rather than calling the hosts not reached."""
    monkeypatch.setattr(plugin.context, "CLIARGS", {"check": True})
    callback.v2_playbook_on_start(Playbook())
    # The lock in check mode is only read; its result names this run as the holder it would be.
    run(callback, "app1", "seedops.deploy.fleet_lock", {"held": True, "holder": {"user": "ana"}, "run_id": "R1"},
        state="held")
    plan(callback, ["app1", "app2", "app3"], "2.0.0", "1.0.0", restart=("app3",))
    callback.v2_playbook_on_stats(Stats())
    out = capsys.readouterr().out
    assert "checked by (check mode, nothing deployed): user ana, run_id R1" in out and "deployed by" not in out
    doc = json.loads(open(callback.report_base() + ".json", encoding="utf-8").read())
    assert doc["check_mode"] is True
    assert [r["result"] for r in doc["hosts"]] == ["would switch (check mode)"] * 3
    assert "DEPLOY REPORT (deploy.yml, " in out and ", check mode: nothing was changed)" in out
    assert "not reached" not in out
    assert ", check mode: nothing was changed</p>" in open(callback.report_base() + ".html", encoding="utf-8").read()


def test_a_run_not_in_check_mode_calls_a_planned_host_it_never_reached_so(callback, monkeypatch):
    monkeypatch.setattr(plugin.context, "CLIARGS", {"check": False})
    callback.v2_playbook_on_start(Playbook())
    plan(callback, ["app1"], "2.0.0", "1.0.0")
    callback.v2_playbook_on_stats(Stats())
    doc = json.loads(open(callback.report_base() + ".json", encoding="utf-8").read())
    assert doc["check_mode"] is False and doc["hosts"][0]["result"] == "not reached"


def test_status_yml_reads_are_no_deploy_and_write_nothing(callback, tmp_path, capsys):
    """status.yml prints its own table (with each host's state in the load balancers); its release_info reads alone
    made a deploy report that called every host unchanged with its load balancer state unknown."""
    status = "/c/ansible_collections/seedops/deploy/roles/deploy/tasks/status.yml:12"
    for host in ("app1", "app2"):
        run(callback, host, "seedops.deploy.release_info", {"current": "2.0.0"}, path=status)
    run(callback, "app1", "seedops.deploy.fleet_lock", {"held": False, "holder": None}, path=status)
    callback.v2_playbook_on_stats(Stats())
    assert "DEPLOY REPORT" not in capsys.readouterr().out and not os.listdir(tmp_path)


def test_a_reconfigure_in_check_mode_would_reload(callback, monkeypatch, tmp_path):
    monkeypatch.setattr(plugin.context, "CLIARGS", {"check": True})
    callback.v2_playbook_on_start(Playbook())
    callback.v2_playbook_on_play_start(Play("reconfigure", [1, "100%"]))
    run(callback, "app1", "seedops.deploy.staged_restart", {"release": "2.0.0", "changed": True, "healthy": True},
        mode="reload")
    callback.v2_playbook_on_stats(Stats())
    doc = json.loads((tmp_path / "latest.json").read_text())
    assert doc["hosts"][0]["result"] == "would reload (check mode)"


def test_every_new_server_warmed_in_one_task_gives_each_host_its_warm_phase(callback, tmp_path):
    """prestart.yml's warm-up: one lb_member task (servers), run once on app1 over lb1 and lb2. app3's server did not
    come up in lb2: its warm phase failed, the others' did not."""
    hosts = ["app1", "app2", "app3"]
    plan(callback, hosts, "1.0.0", "2.0.0")
    beside = {"hosts": {h: {"current": "1.0.0", "target": "2.0.0", "action": "switch", "batch": 1,
                            "lb_server": f"{h}-8080", "idle_server": f"{h}-8081", "path": "flip"} for h in hosts},
              "batches": [hosts]}
    callback.planned = False
    run(callback, "app1", "ansible.builtin.set_fact", {"ansible_facts": {"deploy_plan": beside}})
    callback.v2_playbook_on_play_start(Play("prestart", None))
    args = {"servers": [f"{h}-8081" for h in hosts], "state": "drain", "wait_up": True, "wait": False}
    results = [{"invocation": {"module_args": args}, "item": lb,
                "servers": [{"server": f"{h}-8081", "state": "drain", "up": lb == "lb1" or h != "app3"} for h in hosts]}
               for lb in ("lb1", "lb2")]
    results[1].update(failed=True, msg="app/app3-8081 not up in HAProxy's health checks after 6 s (up_timeout)")
    run(callback, "app1", "seedops.deploy.lb_member", {"results": results, "failed": True}, status="failed")
    callback.v2_playbook_on_stats(Stats())
    rows = {row["host"]: row for row in json.loads((tmp_path / "latest.json").read_text())["hosts"]}
    assert {h: rows[h]["phases"]["warm"]["failed"] for h in hosts} == {"app1": False, "app2": False, "app3": True}
