"""Unit tests for the deploy-planning filters: checksum_for and fleet_rollback."""

import pytest
from ansible.errors import AnsibleFilterError

from ansible_collections.seedops.deploy.plugins.filter import deploy as plugin

A = "a" * 64
B = "b" * 64
SUMS = f"{A}  app-1.0.0-linux-amd64.tar.gz\n{B} *./dist/app-1.0.0-linux-arm64.tar.gz\n"


def test_checksum_for_finds_text_and_binary_mode_lines():
    assert plugin.checksum_for(SUMS, "app-1.0.0-linux-amd64.tar.gz") == f"sha256:{A}"
    assert plugin.checksum_for(SUMS, "app-1.0.0-linux-arm64.tar.gz") == f"sha256:{B}"


def test_checksum_for_a_missing_name_fails_listing_what_is_there_unless_missing_is_given():
    with pytest.raises(AnsibleFilterError) as err:
        plugin.checksum_for(SUMS, "app-1.0.0-plan9-mips.tar.gz")
    assert "app-1.0.0-plan9-mips.tar.gz is not listed" in str(err.value)
    assert "app-1.0.0-linux-amd64.tar.gz" in str(err.value)
    assert plugin.checksum_for(SUMS, "app-1.0.0-plan9-mips.tar.gz", missing="") == ""


def test_checksum_for_conflicting_lines_fail_even_with_missing():
    text = f"{A}  app.tar.gz\n{B}  app.tar.gz\n"
    with pytest.raises(AnsibleFilterError, match="different checksums"):
        plugin.checksum_for(text, "app.tar.gz", missing="")


@pytest.mark.parametrize("text,name", [(None, "x"), ({"a": 1}, "x"), (SUMS, ""), (SUMS, None)])
def test_checksum_for_rejects_bad_input(text, name):
    with pytest.raises(AnsibleFilterError, match="checksum_for"):
        plugin.checksum_for(text, name)


def info(current, target, *releases):
    """A release_info result: releases as (id, activated) pairs, all on disk."""
    return {"current": current, "rollback_target": target,
            "releases": [{"id": rid, "activated": at, "exists": True} for rid, at in releases]}


def test_fleet_rollback_goes_to_the_common_previous_release():
    infos = {h: info("2.0.0", "1.0.0", ("2.0.0", "2026-11-27T10:00:0%d" % i), ("1.0.0", "2026-11-26T10:00:00"))
             for i, h in enumerate(["app1", "app2", "app3"])}
    assert plugin.fleet_rollback(infos) == {"target": "1.0.0", "switch": ["app1", "app2", "app3"], "errors": []}


def test_fleet_rollback_undoes_a_rollout_that_stopped_halfway():
    infos = {
        "app1": info("2.0.0", "1.0.0", ("2.0.0", "2026-11-27T10:00:00"), ("1.0.0", "2026-11-26T10:00:00")),
        "app2": info("1.0.0", "0.9.0", ("1.0.0", "2026-11-26T10:00:01"), ("0.9.0", "2026-11-25T10:00:00")),
    }
    assert plugin.fleet_rollback(infos) == {"target": "1.0.0", "switch": ["app1"], "errors": []}


def test_fleet_rollback_refuses_when_hosts_disagree_or_have_no_previous_release():
    disagree = {
        "app1": info("2.0.0", "1.0.0", ("2.0.0", "t2"), ("1.0.0", "t1")),
        "app2": info("2.0.0", "1.5.0", ("2.0.0", "t2"), ("1.5.0", "t1")),
    }
    plan = plugin.fleet_rollback(disagree)
    assert plan["target"] is None and plan["switch"] == []
    assert "would roll back to different releases (1.0.0, 1.5.0)" in plan["errors"][0]
    none = {"app1": info("2.0.0", None, ("2.0.0", "t2"))}
    assert "app1 on 2.0.0 have no previous healthy release" in plugin.fleet_rollback(none)["errors"][0]
    empty = {"app1": info(None, None)}
    assert "no host has a live release" in plugin.fleet_rollback(empty)["errors"][0]


def test_fleet_rollback_to_a_named_version_needs_it_staged_everywhere():
    infos = {
        "app1": info("2.0.0", "1.0.0", ("2.0.0", "t2"), ("1.0.0", "t1")),
        "app2": info("2.0.0", "1.0.0", ("2.0.0", "t2")),
        "app3": info("1.0.0", None, ("1.0.0", "t1")),
    }
    plan = plugin.fleet_rollback(infos, "1.0.0")
    assert plan["target"] == "1.0.0" and plan["switch"] == ["app1", "app2"]
    assert plan["errors"] == ["release 1.0.0 is not staged on app2; deploy it there with playbooks/deploy.yml "
                              "-e deploy_version=... (it stages, then switches)"]


def test_fleet_rollback_rejects_a_non_mapping():
    with pytest.raises(AnsibleFilterError, match="mapping of host"):
        plugin.fleet_rollback([])


def _hosts(*pairs, **extra):
    return [{"host": h, "current": c, **extra} for h, c in pairs]


def test_batch_sizes_follow_ansible_serial():
    assert plugin.batch_sizes([1, "34%", "100%"], 3) == [1, 1, 1]
    assert plugin.batch_sizes([1, "34%", "100%"], 10) == [1, 3, 6]
    assert plugin.batch_sizes(2, 5) == [2, 2, 1]
    assert plugin.batch_sizes([], 4) == [4]
    assert plugin.batch_sizes(["10%"], 3) == [1, 1, 1]
    with pytest.raises(AnsibleFilterError, match="neither a number nor a percentage"):
        plugin.batch_sizes(["many"], 3)


def test_deploy_plan_orders_by_inventory_and_skips_hosts_already_on_the_release():
    plan = plugin.deploy_plan(_hosts(("app1", "1.0"), ("app2", "2.0"), ("app3", "1.0"), ("app4", None)), "2.0")
    assert plan["order"] == ["app1", "app3", "app4"]
    assert plan["batches"] == [["app1"], ["app3"], ["app4"]]
    assert plan["serial"] == [1, 1, 1]
    assert plan["hosts"]["app2"]["action"] == "unchanged" and plan["hosts"]["app2"]["batch"] is None
    assert plan["hosts"]["app2"]["reason"] == "runs 2.0 already"
    assert (plan["hosts"]["app1"]["action"], plan["hosts"]["app1"]["batch"]) == ("switch", 1)
    assert plan["hosts"]["app4"]["reason"] == "has no live release yet"
    assert plan["hosts"]["app3"]["target"] == "2.0"


def test_deploy_plan_is_the_same_whatever_order_the_hosts_answered_in():
    hosts = _hosts(*[(f"app{i}", "1.0") for i in range(1, 8)])
    plan = plugin.deploy_plan(hosts, "2.0", serial=[1, "34%", "100%"])
    assert plan["batches"] == [["app1"], ["app2", "app3"], ["app4", "app5", "app6", "app7"]]


def test_deploy_plan_named_canary_hosts_form_the_first_batch():
    hosts = _hosts(*[(f"app{i}", "1.0") for i in range(1, 6)])
    plan = plugin.deploy_plan(hosts, "2.0", serial=[1, 2], canary=["app4", "app2"])
    assert plan["batches"] == [["app4", "app2"], ["app1", "app3"], ["app5"]]
    assert plan["order"] == ["app4", "app2", "app1", "app3", "app5"]
    with pytest.raises(AnsibleFilterError, match="deploy_canary_hosts names app9, not among"):
        plugin.deploy_plan(hosts, "2.0", canary=["app9"])


def test_deploy_plan_restart_and_together_and_rollback():
    hosts = [{"host": "app1", "current": "2.0", "restart": True}, {"host": "app2", "current": "1.0"},
             {"host": "app3", "current": "2.0"}]
    plan = plugin.deploy_plan(hosts, "2.0", switch="together")
    assert plan["batches"] == [["app1", "app2"]] and plan["serial"] == [2]
    assert plan["hosts"]["app1"]["action"] == "restart" and plan["hosts"]["app1"]["batch"] == "all"
    assert "restart" not in plan["hosts"]["app1"]
    back = plugin.deploy_plan(_hosts(("app1", "2.0"), ("app2", "1.0")), "1.0", mode="rollback")
    assert back["hosts"]["app1"]["reason"] == "rolls back from 2.0" and back["order"] == ["app1"]
    assert back["mode"] == "rollback"
    empty = plugin.deploy_plan(_hosts(("app1", "1.0")), "1.0")
    assert empty["order"] == [] and empty["batches"] == [] and empty["serial"] == [1]
    with pytest.raises(AnsibleFilterError, match="rolling or together"):
        plugin.deploy_plan(hosts, "2.0", switch="sideways")


def test_deploy_plan_summary_says_every_host_and_the_batches():
    plan = plugin.deploy_plan(_hosts(("app1", "1.0"), ("app2", "2.0")), "2.0")
    assert plan["summary"] == ["deploy 2.0 (rolling): [app1]", "app1: switch in batch 1 - runs 1.0",
                               "app2: unchanged - runs 2.0 already"]


def _lb(**states):
    up = {"admin": "ready", "op": "up", "weight": 1, "in_rotation": True}
    return {h: dict(up, **st, in_rotation=st.get("admin", "ready") == "ready" and st.get("op", "up") == "up"
                    and st.get("weight", 1) > 0) for h, st in states.items()}


def test_deploy_plan_repairs_a_host_left_drained_and_notes_it_for_one_that_switches():
    hosts = _hosts(("app1", "2.0"), ("app2", "2.0"), ("app3", "1.0"), ("app4", "2.0"))
    lb1 = _lb(app1={}, app2={"admin": "drain"}, app3={"admin": "maint"}, app4={})
    lb2 = _lb(app1={}, app2={}, app3={}, app4={"admin": "maint"})
    plan = plugin.deploy_plan(hosts, "2.0", lb=[lb1, lb2])
    actions = {h: e["action"] for h, e in plan["hosts"].items()}
    assert actions == {"app1": "unchanged", "app2": "repair", "app3": "switch", "app4": "repair"}
    assert "is in drain in the load balancer" in plan["hosts"]["app2"]["reason"]
    assert plan["hosts"]["app3"]["reason"] == "runs 1.0; in maint in the load balancer, back into rotation after the switch"
    assert plan["order"] == ["app2", "app3", "app4"] and plan["in_rotation"] == ["app1"]
    assert plan["hosts"]["app4"]["lb"]["admin"] == "maint", "the load balancer that keeps it out counts"


def test_deploy_plan_repairs_a_host_left_at_weight_0():
    plan = plugin.deploy_plan(_hosts(("app1", "2.0"), ("app2", "2.0")), "2.0",
                              lb=[_lb(app1={"weight": 0}, app2={})])
    assert plan["hosts"]["app1"]["action"] == "repair" and "at weight 0 in the load balancer" in plan["hosts"]["app1"]["reason"]
    assert plan["hosts"]["app2"]["action"] == "unchanged"


def test_deploy_plan_repairs_a_canary_left_at_a_traffic_weight_step():
    plan = plugin.deploy_plan(_hosts(("app1", "2.0"), ("app2", "2.0")), "2.0",
                              lb=[_lb(app1={"weight": 11, "initial_weight": 100}, app2={"weight": 100, "initial_weight": 100})])
    assert plan["hosts"]["app1"]["action"] == "repair"
    assert "at weight 11 instead of its configured 100 in the load balancer" in plan["hosts"]["app1"]["reason"]
    assert plan["hosts"]["app2"]["action"] == "unchanged" and plan["in_rotation"] == ["app1", "app2"]


def _service(release, state="active", healthy=True):
    return {"name": "app", "state": state, "release": release, "healthy": healthy}


def test_deploy_plan_finishes_hosts_a_dead_run_left_half_way():
    hosts = _hosts(("app1", "2.0"), ("app2", "2.0"), ("app3", "2.0"), ("app4", "2.0"), ("app5", "2.0"), ("app6", "1.0"))
    services = {"app1": _service("1.0"), "app2": _service(None, "failed", None), "app3": _service("2.0", healthy=False),
                "app4": _service("2.0"), "app5": _service(None), "app6": _service("1.0")}
    for host in hosts:
        host["service"] = services[host["host"]]
    plan = plugin.deploy_plan(hosts, "2.0", lb=[_lb(app1={"admin": "drain"}, app2={}, app3={}, app4={}, app5={}, app6={})])
    actions = {h: e["action"] for h, e in plan["hosts"].items()}
    assert actions == {"app1": "finish", "app2": "finish", "app3": "finish", "app4": "unchanged", "app5": "unchanged",
                       "app6": "switch"}
    reasons = {h: e["reason"] for h, e in plan["hosts"].items()}
    assert reasons["app1"].startswith("its live release is 2.0 but its service still runs 1.0 (switched, not restarted)")
    assert reasons["app2"].startswith("its service is failed") and "rolled back" in reasons["app2"]
    assert reasons["app3"].startswith("its service does not answer its health check")
    assert plan["batches"] == [["app1"], ["app2"], ["app3", "app6"]]
    assert plan["hosts"]["app4"]["service"]["release"] == "2.0", "the measured service travels with the plan"


def test_deploy_plan_a_host_the_load_balancer_does_not_know_is_out_of_rotation_and_without_lb_nothing_is_judged():
    plan = plugin.deploy_plan(_hosts(("app1", "2.0")), "2.0", lb=[{}])
    assert plan["hosts"]["app1"]["lb"]["admin"] == "absent" and plan["in_rotation"] == []
    assert plan["hosts"]["app1"]["action"] == "unchanged"
    plain = plugin.deploy_plan(_hosts(("app1", "2.0")), "2.0")
    assert plain["hosts"]["app1"]["lb"] is None and plain["in_rotation"] is None


def test_rotation_of_names_the_load_balancer_that_keeps_a_server_out():
    lb1, lb2 = _lb(app1={}), _lb(app1={"admin": "drain"})
    assert plugin.rotation_of([lb1, lb2], "app1")["admin"] == "drain"
    assert plugin.rotation_of([lb1], "app1")["in_rotation"] is True
    assert plugin.rotation_of([], "app1") is None
    with pytest.raises(AnsibleFilterError, match="rotation_of: expected a list"):
        plugin.rotation_of({"app1": {}}, "app1")


def _info(current, previous=None, by=None, **times):
    releases = [{"id": current, "state": "active", "activated": times.get("activated", "2026-12-01T10:00:00Z"),
                 "deployed_by": by or {"controller": "ctl", "controller_user": "ops", "job_id": 42}}]
    if previous:
        releases.append({"id": previous, "state": "previous", "activated": "2026-11-30T10:00:00Z",
                         "deactivated": times.get("activated", "2026-12-01T10:00:00Z")})
    return {"current": current, "rollback_target": previous, "releases": releases, "lock": None}


def test_the_last_deploy_names_who_switched_not_who_staged():
    info = _info("2.0")
    info["releases"][0]["activated_by"] = {"controller": "awx", "user": "alice", "job_id": "7"}
    (row,) = plugin.fleet_status({"app1": info})["hosts"]
    assert row["last"]["who"] == "alice@awx (job 7)"


def test_fleet_status_prints_every_host_its_rotation_and_last_deploy():
    up = {"admin": "ready", "op": "up", "weight": 1, "in_rotation": True}
    lb = [{"app1": up, "app2": dict(up, admin="drain", in_rotation=False)}]
    status = plugin.fleet_status({"app1": _info("2.0", "1.0"), "app2": _info("1.0"),
                                  "app3": {"unreachable": True, "msg": "ssh: timed out"}}, lb)
    rows = {r["host"]: r for r in status["hosts"]}
    assert (rows["app1"]["release"], rows["app1"]["previous"], rows["app1"]["lb"]["admin"]) == ("2.0", "1.0", "ready")
    assert rows["app1"]["last"] == {"release": "2.0", "result": "went live", "when": "2026-12-01T10:00:00Z",
                                    "who": "ops@ctl (job 42)"}
    assert rows["app3"]["error"] == "ssh: timed out" and rows["app3"]["release"] is None
    table = "\n".join(status["table"])
    assert "drain/up, 1  OUT OF ROTATION" in table and "unreachable: ssh: timed out" in table
    assert "fleet: 1.0 on app2; 2.0 on app1" in table and "deploy lock: free" in table
    lock = {"holder": {"user": "ana", "playbook": "deploy.yml"}, "since_iso": "2026-12-01T11:00:00Z"}
    held = plugin.fleet_status({"app1": _info("2.0")}, lock=lock)
    assert held["table"][-1] == "deploy lock: held by user ana, playbook deploy.yml, since 2026-12-01T11:00:00Z"
    # The holder's process on the controller: not shown; whether it ended (fleet_lock's holder_ended) is.
    lock["holder"]["controller_process"] = "b pid:[1] 4242 1"
    held = plugin.fleet_status({"app1": _info("2.0")}, lock=dict(lock, holder_ended=True))
    assert held["table"][-1] == ("deploy lock: held by user ana, playbook deploy.yml, since 2026-12-01T11:00:00Z (its "
                                 "controller process has ended: it will not renew the lease)")
    held = plugin.fleet_status({"app1": _info("2.0")}, lock=dict(lock, holder_ended=None))
    assert held["table"][-1].endswith("since 2026-12-01T11:00:00Z")


def test_fleet_status_says_what_each_service_runs_and_whether_it_is_healthy():
    def info(service):
        return dict(_info("2.0", "1.0"), service=dict({"name": "app", "state": "active", "release": "2.0",
                                                       "healthy": True, "reports": None}, **service))
    status = plugin.fleet_status({"app1": info({}), "app2": info({"release": "1.0"}), "app3": info({"healthy": False}),
                                  "app4": info({"state": "failed", "release": None}), "app5": info({"reports": "2.1"}),
                                  "app6": _info("2.0"), "app7": info({"boot": "disabled"})})
    health = {r["host"]: r["health"] for r in status["hosts"]}
    assert health == {"app1": "healthy", "app2": "healthy, runs 1.0, NOT RESTARTED", "app3": "UNHEALTHY",
                      "app4": "failed", "app5": "healthy, says 2.1", "app6": None, "app7": "healthy, DISABLED AT BOOT"}
    assert status["table"][0].split() == ["host", "live", "previous", "service", "lb", "(admin/health,", "weight)",
                                          "last", "deploy"]
    # A service that runs beside itself: the port of the live instance, and its server's state.
    up = {"admin": "ready", "op": "up", "weight": 100, "in_rotation": True}
    beside = plugin.fleet_status({"app1": dict(info({}), live_port=8081)}, [{"app1-8081": up}], {"app1": "app1-8081"})
    assert beside["hosts"][0]["port"] == 8081 and "healthy :8081  ready/up, 100" in beside["table"][2]


def test_smoke_failures_say_what_each_failed_check_got():
    results = [
        {"item": {"path": "/"}, "status": 200, "content": "hello version=2.0.0"},
        {"item": {"path": "/nope"}, "status": 404, "msg": "Status code was 404 and not [200]: HTTP Error 404"},
        {"item": {"path": "/", "contains": "version=3"}, "status": 200, "content": "hello version=2.0.0"},
        {"item": {"path": "/version", "json": {"version": "2.0.0", "goos": "linux"}}, "status": 200,
         "json": {"version": "1.0.0", "goos": "linux"}},
        {"item": {"path": "/down", "status": [200, 503]}, "status": 503},
        {"item": {"path": "/x"}, "status": -1, "msg": "Connection refused"},
    ]
    assert plugin.smoke_failures(results, "http://lb") == [
        "http://lb/nope: answered 404 (Status code was 404 and not [200]: HTTP Error 404), not 200",
        'http://lb/: the body does not contain "version=3"',
        'http://lb/version: version is "1.0.0", not "2.0.0"',
        "http://lb/x: answered nothing (Connection refused), not 200",
    ]
    assert plugin.smoke_failures([]) == []
    with pytest.raises(AnsibleFilterError, match="every check is a mapping"):
        plugin.smoke_failures([{"item": "/"}])


def test_fanout_waves_double_and_the_origin_serves_each_digest_seeds_times():
    hosts = [{"host": "app%d" % i, "digest": "sha256:aa"} for i in range(1, 17)]
    waves = plugin.fanout_waves(hosts, 2)
    assert [len(w) for w in waves] == [2, 2, 4, 8]
    assert waves[0] == {"app1": None, "app2": None} and waves[1] == {"app3": "app1", "app4": "app2"}
    assert sum(1 for w in waves for source in w.values() if source is None) == 2
    held = set()
    for wave in waves:
        assert all(source in held for source in wave.values() if source), "a source holds the artifact already"
        assert len(set(wave.values()) - {None}) == len([s for s in wave.values() if s]), "one receiver per source"
        held |= set(wave)
    assert held == {h["host"] for h in hosts}


def test_fanout_waves_keep_each_platform_to_its_own_build():
    hosts = [{"host": "a1", "digest": "sha256:amd"}, {"host": "r1", "digest": "sha256:arm"},
             {"host": "a2", "digest": "sha256:amd"}, {"host": "r2", "digest": "sha256:arm"}]
    assert plugin.fanout_waves(hosts, 1) == [{"a1": None, "r1": None}, {"a2": "a1", "r2": "r1"}]
    assert plugin.fanout_waves([], 2) == []
    with pytest.raises(AnsibleFilterError, match="seeds is the number of hosts"):
        plugin.fanout_waves(hosts, 0)


def _beside(host, current, live_port, running=("8080",), healthy=True, release=None):
    """A host whose service runs beside itself on 8080 and 8081, as decide.yml notes it from release_info."""
    instances = {port: {"name": f"app@{port}", "state": "active" if port in running else "inactive",
                        "release": release or current, "healthy": healthy if port in running else None}
                 for port in ("8080", "8081")}
    return {"host": host, "current": current, "lb_server": host,
            "beside": {"ports": [8080, 8081], "live_port": live_port, "instances": instances}}


def test_deploy_plan_beside_flips_a_live_healthy_host_to_its_idle_port_and_names_both_servers():
    hosts = [_beside("app1", "1.0", 8080), _beside("app2", "1.0", 8081, running=("8081",))]
    lb = [_lb(**{"app1-8080": {}, "app1-8081": {"admin": "maint"}, "app2-8080": {"admin": "maint"}, "app2-8081": {}})]
    plan = plugin.deploy_plan(hosts, "2.0", lb=lb)
    one, two = plan["hosts"]["app1"], plan["hosts"]["app2"]
    assert (one["path"], one["live_port"], one["idle_port"], one["lb_server"], one["idle_server"]) == (
        "flip", 8080, 8081, "app1-8080", "app1-8081")
    assert (two["path"], two["live_port"], two["idle_port"], two["lb_server"]) == ("flip", 8081, 8080, "app2-8081")
    assert one["service"]["name"] == "app@8080" and not one["tidy"] and not two["tidy"]
    assert plan["in_rotation"] == ["app1", "app2"] and "beside" not in one
    assert "start beside on 8081, then flip" in plan["summary"][1]


def test_deploy_plan_beside_trusts_the_load_balancer_over_the_live_port_file_after_a_flip_cut_short():
    # A run flipped app1 to 8081 and died before it wrote the live-port file and stopped the old instance.
    hosts = [_beside("app1", "2.0", 8080, running=("8080", "8081"), release="2.0")]
    lb = [_lb(**{"app1-8080": {"admin": "drain"}, "app1-8081": {}})]
    entry = plugin.deploy_plan(hosts, "2.0", lb=lb)["hosts"]["app1"]
    assert (entry["live_port"], entry["lb_server"], entry["idle_server"]) == (8081, "app1-8081", "app1-8080")
    assert entry["tidy"] is True and entry["action"] == "repair" and entry["path"] == "restart"
    assert "second instance (port 8080) still runs" in entry["reason"]


def test_deploy_plan_beside_restarts_in_place_when_the_live_instance_is_down_or_there_is_no_load_balancer_and_rolls_back_by_flip():
    down = _beside("app1", "1.0", 8080, running=())
    sick = _beside("app2", "1.0", 8080, healthy=False)
    lb = [_lb(**{"app1-8080": {"op": "down"}, "app2-8080": {}})]
    plan = plugin.deploy_plan([down, sick], "2.0", lb=lb)
    assert [plan["hosts"][h]["path"] for h in ("app1", "app2")] == ["restart", "restart"]
    assert plan["hosts"]["app1"]["tidy"] is False, "an idle server the load balancer does not know is left alone"
    assert plugin.deploy_plan([_beside("app1", "1.0", 8080)], "2.0")["hosts"]["app1"]["path"] == "restart"
    lb = [_lb(**{"app1-8080": {}})]
    assert plugin.deploy_plan([_beside("app1", "2.0", 8080)], "1.0", mode="rollback", lb=lb)["hosts"]["app1"]["path"] == "flip"
    with pytest.raises(AnsibleFilterError, match="two different ports"):
        plugin.deploy_plan([dict(_beside("app1", "1.0", 8080), beside={"ports": [8080, 8080]})], "2.0")


def test_deploy_plan_beside_prestart_starts_the_hosts_that_flip_before_the_first_batch_but_not_one_left_mid_flip():
    # app1 and app2 flip; app3 runs the target with a second instance left by a dead run (repair, tidy); app4 is down
    # (restart in place); app5 runs the target already.
    hosts = [_beside("app1", "1.0", 8080), _beside("app2", "1.0", 8080), _beside("app3", "2.0", 8080, running=("8080", "8081")),
             _beside("app4", "1.0", 8080, running=()), _beside("app5", "2.0", 8080)]
    lb = [_lb(**{f"app{i}-8080": {} for i in range(1, 6)}, **{f"app{i}-8081": {"admin": "maint"} for i in range(1, 6)})]
    plan = plugin.deploy_plan(hosts, "2.0", serial=[1], lb=lb, prestart=True)
    assert plan["prestart"] == ["app1", "app2"]
    assert {h: e["prestart"] for h, e in plan["hosts"].items()} == {
        "app1": True, "app2": True, "app3": False, "app4": False, "app5": False}
    assert plan["batches"] == [["app1"], ["app2"], ["app3"], ["app4"]], "the batches stay as serial cuts them"
    assert "app2: switch in batch 2 (start beside on 8081 ahead of the batches, then flip)" in plan["summary"][2]
    # Off by default, off for together (it starts every host first anyway), and nothing to start without a flip.
    assert plugin.deploy_plan(hosts, "2.0", lb=lb)["prestart"] == []
    assert plugin.deploy_plan(hosts, "2.0", lb=lb, switch="together", prestart=True)["prestart"] == []
    assert plugin.deploy_plan(hosts, "2.0", prestart=True)["prestart"] == []
    # A rollback to 1.0 flips app5 and app3 too, but app3 has a second instance left running: it starts in its batch.
    assert plugin.deploy_plan(hosts, "1.0", lb=lb, mode="rollback", prestart=True)["prestart"] == ["app5"]


def test_fleet_release_gives_new_hosts_what_every_serving_host_runs():
    got = plugin.fleet_release({"app1": "1.4.0", "app2": None, "app3": "1.4.0"})
    assert got == {"release": "1.4.0", "serving": {"1.4.0": ["app1", "app3"]}, "new": ["app2"], "problem": None}


def test_fleet_release_names_every_release_and_its_hosts_when_the_fleet_is_mixed():
    got = plugin.fleet_release({"app1": "2.0.0", "app2": "1.4.0", "app3": "2.0.0", "app4": None})
    assert got["release"] is None and got["new"] == ["app4"]
    assert got["problem"] == "the fleet runs more than one release: 1.4.0 on app2; 2.0.0 on app1, app3"


def test_fleet_release_has_nothing_to_follow_on_a_fleet_where_nothing_is_live():
    got = plugin.fleet_release({"app1": None, "app2": ""})
    assert got["release"] is None and got["new"] == ["app1", "app2"]
    assert got["problem"] == "no host of this run has a live release to follow"


def test_fleet_release_refuses_what_is_not_a_mapping():
    with pytest.raises(AnsibleFilterError, match="expected a mapping of host to its live release"):
        plugin.fleet_release(["app1"])


def _verified(release, state="active", healthy=True, in_rotation=True, lb=True):
    return {"release": release, "live": release, "service": {"state": state, "healthy": healthy, "release": release},
            "lb": {"admin": "ready", "in_rotation": in_rotation} if lb else None}


def test_deploy_stats_is_complete_when_every_host_runs_the_release_healthy_and_in_rotation():
    got = plugin.deploy_stats({"app1": _verified("2.0.0"), "app2": _verified("2.0.0")},
                              {"release": "2.0.0", "mode": "deploy"}, report="/r/deploy-1.json")
    assert got == {"mode": "deploy", "release": "2.0.0", "hosts": ["app1", "app2"], "runs": {"2.0.0": ["app1", "app2"]},
                   "unhealthy": [], "out_of_rotation": [], "unverified": [], "result": "complete",
                   "report": "/r/deploy-1.json"}


def test_deploy_stats_says_what_was_measured_not_what_was_planned():
    got = plugin.deploy_stats({"app1": _verified("2.0.0"), "app2": _verified("1.0.0"),
                               "app3": _verified("2.0.0", state="failed"), "app4": _verified("2.0.0", in_rotation=False),
                               "app5": None},
                              {"release": "2.0.0", "mode": "deploy"})
    assert got["runs"] == {"2.0.0": ["app1", "app3", "app4"], "1.0.0": ["app2"]}
    assert (got["unhealthy"], got["out_of_rotation"], got["unverified"]) == (["app3"], ["app4"], ["app5"])
    assert got["result"] == "incomplete" and got["report"] is None


def test_deploy_stats_without_load_balancers_and_with_nothing_running():
    got = plugin.deploy_stats({"app1": _verified("1.0.0", lb=False), "app2": {"release": None, "live": None}},
                              {"release": "1.0.0", "mode": "rollback"})
    assert got["runs"] == {"1.0.0": ["app1"], "nothing": ["app2"]} and got["mode"] == "rollback"
    assert got["out_of_rotation"] == [] and got["result"] == "incomplete"


def test_deploy_stats_of_a_run_that_stopped_keeps_what_was_measured_and_says_why():
    got = plugin.deploy_stats({"app1": _verified("2.0.0"), "app2": None, "app3": None},
                              {"release": "2.0.0", "mode": "deploy"}, stopped="app2: the drain\n  failed.")
    assert (got["result"], got["message"]) == ("stopped", "app2: the drain failed.")
    assert got["runs"] == {"2.0.0": ["app1"]} and got["unverified"] == ["app2", "app3"]
    assert "message" not in plugin.deploy_stats({}, {"release": "2.0.0"})


def test_deploy_stats_refuses_what_is_not_a_mapping_and_a_plan():
    with pytest.raises(AnsibleFilterError, match="expected a mapping of host to its deploy_verified fact"):
        plugin.deploy_stats(["app1"], {})
    with pytest.raises(AnsibleFilterError, match="expected deploy_plan"):
        plugin.deploy_stats({}, None)


def test_a_survey_answer_gives_the_same_batches_as_the_list():
    assert plugin.serial_entries("1, 34%,100% ") == ["1", "34%", "100%"]
    assert plugin.serial_entries([1, "34%"]) == [1, "34%"] and plugin.serial_entries(2) == [2]
    assert plugin.serial_entries(None) == [] and plugin.serial_entries("") == []
    assert plugin.batch_sizes("1, 34%, 100%", 10) == plugin.batch_sizes([1, "34%", "100%"], 10) == [1, 3, 6]
    with pytest.raises(AnsibleFilterError, match="serial entry 'x' is neither a number nor a percentage"):
        plugin.batch_sizes("1, x", 4)


def test_named_canary_hosts_take_the_first_batch_of_a_survey_serial_too():
    hosts = [{"host": f"app{i}", "current": "1.0"} for i in range(1, 6)]
    as_text = plugin.deploy_plan(hosts, "2.0", serial="1, 2, 100%", canary=["app3"])
    assert as_text["batches"] == plugin.deploy_plan(hosts, "2.0", serial=[1, 2, "100%"], canary=["app3"])["batches"]
    assert as_text["batches"] == [["app3"], ["app1", "app2"], ["app4", "app5"]]


def _servers(**admins):
    return {f"app1-{port[1:]}": {"admin": admin, "op": "up", "weight": 100, "in_rotation": admin == "ready"}
            for port, admin in admins.items()}


def test_live_instance_trusts_the_load_balancers_then_the_file_then_the_first_port():
    ports = [8080, 8081]
    # The one server out of maintenance is live, whatever the file says; drained by a failed run still counts.
    assert plugin.live_instance([_servers(p8080="maint", p8081="ready")], "app1", ports, "8080\n") == \
        {"server": "app1-8081", "port": 8081}
    assert plugin.live_instance([_servers(p8080="drain", p8081="maint")], "app1", ports, "") == \
        {"server": "app1-8080", "port": 8080}
    # A load balancer that keeps one out wins over another that has it ready (rotation_of's rule).
    assert plugin.live_instance([_servers(p8080="ready", p8081="ready"), _servers(p8080="maint", p8081="ready")], "app1",
                                ports, "8080") == {"server": "app1-8081", "port": 8081}
    # Both or neither out of maintenance (a flip cut short), or no load balancer: the file, else the first port.
    assert plugin.live_instance([_servers(p8080="ready", p8081="ready")], "app1", ports, "8081\n")["port"] == 8081
    assert plugin.live_instance([], "app1", ports, 8081)["port"] == 8081
    assert plugin.live_instance([], "app1", ports, "")["port"] == 8080
    assert plugin.live_instance([], "app1", ports, "9999")["port"] == 8080
    assert plugin.live_instance([], "app1", ["8080", "8081"], None) == {"server": "app1-8080", "port": 8080}


def test_live_instance_and_health_at_port_refuse_bad_input():
    with pytest.raises(AnsibleFilterError, match="two different ports"):
        plugin.live_instance([], "app1", [8080], "")
    with pytest.raises(AnsibleFilterError, match="lb_info"):
        plugin.live_instance("lb1", "app1", [8080, 8081], "")
    with pytest.raises(AnsibleFilterError, match="health check mapping"):
        plugin.health_at_port("http://127.0.0.1:8080/", 8081)


def test_health_at_port_moves_the_url_or_the_tcp_port():
    health = {"url": "http://127.0.0.1:8080/healthz?deep=1", "successes": 3}
    assert plugin.health_at_port(health, 8081) == {"url": "http://127.0.0.1:8081/healthz?deep=1", "successes": 3}
    assert plugin.health_at_port(health, None) == health
    assert plugin.health_at_port({"host": "127.0.0.1", "port": 8080}, "8081") == {"host": "127.0.0.1", "port": 8081}


def test_failure_reason_is_a_failed_loop_items_own_message_as_a_sentence():
    loop = {"msg": "One or more items failed", "changed": False,
            "results": [{"failed": False, "msg": "ok"}, {"failed": True, "msg": "lb2: no such\n  server app1"},
                        {"failed": True, "msg": "lb3 refused"}]}
    assert plugin.failure_reason(loop) == "lb2: no such server app1."
    assert plugin.failure_reason({"msg": "unhealthy; rolled back."}) == "unhealthy; rolled back."
    assert plugin.failure_reason({"results": [{"failed": True}]}, "the switch failed") == "the switch failed."
    assert plugin.failure_reason(None) == "see above."


def test_out_of_range_names_each_setting_its_value_and_its_bounds_in_the_limits_order():
    limits = {"deploy_keep": ">=1", "deploy_canary_interval": ">0", "deploy_canary_max_error_ratio": ">=0 <=1",
              "deploy_fanout_port": ">=1 <=65535", "deploy_smoke_timeout": ">0 <600", "deploy_absent": ">0"}
    values = {"deploy_canary_max_error_ratio": 1.5, "deploy_keep": 0, "deploy_canary_interval": "0",
              "deploy_fanout_port": 8099, "deploy_smoke_timeout": 600.0}
    assert plugin.out_of_range(values, limits) == [
        "deploy_keep 0 must be 1 or more.", "deploy_canary_interval 0 must be above 0.",
        "deploy_canary_max_error_ratio 1.5 must be from 0 to 1.", "deploy_smoke_timeout 600 must be above 0 and below 600."]
    # Each bound is inclusive or not as written: the edges themselves.
    assert plugin.out_of_range({"deploy_keep": 1, "deploy_canary_max_error_ratio": 0, "deploy_fanout_port": "65535",
                                "deploy_smoke_timeout": 0.5}, limits) == []
    assert plugin.out_of_range({}, limits) == []


@pytest.mark.parametrize("value, shown", [("x", '"x"'), (True, "true"), (None, "null"), ([1], "[1]"), ("nan", '"nan"')])
def test_out_of_range_names_a_value_that_is_no_number(value, shown):
    assert plugin.out_of_range({"deploy_keep": value}, {"deploy_keep": ">=1"}) == [f"deploy_keep {shown} must be a number."]


def test_out_of_range_refuses_a_bound_it_cannot_read():
    with pytest.raises(AnsibleFilterError, match="'=1' is not a bound"):
        plugin.out_of_range({"deploy_keep": 1}, {"deploy_keep": "=1"})
    with pytest.raises(AnsibleFilterError, match="a dict of settings"):
        plugin.out_of_range([1], {"deploy_keep": ">=1"})


@pytest.mark.parametrize("serial", [[1, "34%", "100%"], "1, 34%, 100%", 2, "50%", ["5 %", "+3"], [], None])
def test_serial_problems_takes_what_a_plays_serial_takes(serial):
    assert plugin.serial_problems(serial) == []


def test_serial_problems_names_the_setting_and_each_entry_serial_cannot_take():
    assert plugin.serial_problems([1, "abc", "x%", True, 1.5], "os_patch_serial") == [
        'os_patch_serial [1, "abc", "x%", true, 1.5] holds "abc", "x%", true, 1.5, which is neither a number of hosts '
        "nor a percentage such as 34%."]
    assert plugin.serial_problems("1, ten") == [
        "deploy_serial \"1, ten\" holds \"ten\", which is neither a number of hosts nor a percentage such as 34%."]
