"""The messages that stop a rollout, rendered from the task files themselves: activate.yml's rescue (with
flip_failed.yml) for each way a switch or a flip can end: back in the load balancer, the old instance serving (with
or without load balancers that moved the host's traffic and moved it back), and a host split between its two
instances (which the lab cannot make: it needs a load balancer that fails between a flip and its flip back); and
abort.yml's, for a batch that could not be taken back and for where each host of a batch taken back ends."""
import os

import jinja2
import pytest
import yaml

from ansible_collections.seedops.deploy.plugins.filter import deploy as deploy_filters

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
FLIP = {"path": "flip", "idle_server": "app1-8081", "lb_server": "app1-8080"}
BASE = {"inventory_hostname": "app1", "deploy_activate_why": "why.", "deploy_lb_hosts": ["lb1", "lb2"],
        "deploy_activate_unswitched": False, "deploy_activate_restart": {}, "deploy_host_plan": FLIP,
        "deploy_activate_flipped_on": []}
END = " The rollout stops here: hosts of later batches were not touched and keep their release."


def tasks(name):
    with open(os.path.join(ROOT, "roles", "deploy", "tasks", name), encoding="utf-8") as handle:
        return yaml.safe_load(handle)


def render(text, facts):
    """The text as a task would template it: plain Jinja with the collection's filter by its FQCN and a stand-in for
    Ansible's bool (the messages use no other Ansible filter), so that every supported ansible-core renders it the
    same way."""
    env = jinja2.Environment(undefined=jinja2.StrictUndefined)
    env.filters["seedops.deploy.failure_reason"] = deploy_filters.failure_reason
    # Ansible's bool, as it reads the strings a task's vars template to.
    env.filters["bool"] = lambda value: value if isinstance(value, bool) else str(value).lower() in ("true", "yes", "1", "on")
    return " ".join(env.from_string(text).render(**facts).split())


def stop_message(task_file="activate.yml", block_name="Activate - switch, restart and check health", **facts):
    """activate.yml's stop message (or flip_batch.yml's), with flip_failed.yml's sentence on where a flipping host
    ends."""
    facts = {**BASE, **facts}
    outcome = next(t for t in tasks("flip_failed.yml") if t["name"].endswith("for the message"))
    facts["deploy_flip_outcome"] = render(outcome["ansible.builtin.set_fact"]["deploy_flip_outcome"], facts)
    block = next(t for t in tasks(task_file) if t.get("name") == block_name)
    stop = next(t for t in block["rescue"] if t["name"].endswith("stop the rollout"))
    return render(stop["vars"]["deploy_stop_msg"], facts)


@pytest.mark.parametrize("facts, says", [
    ({"deploy_activate_unswitched": True, "deploy_host_plan": {**FLIP, "path": "restart"}},
     "It is back in the load balancer."),
    ({"deploy_activate_unflipped": True},
     "Its old instance still serves it: the new one was stopped and current switched back."),
    ({"deploy_activate_unflipped": True, "deploy_activate_flipped_on": ["lb1", "lb2"]},
     "Its old instance still serves it: lb1, lb2 had moved its traffic to the new one and moved it back; the new one "
     "was stopped and current switched back."),
    ({"deploy_activate_flipped_on": ["lb1", "lb2"], "deploy_activate_split": ["lb1"],
      "deploy_activate_split_why": "lb1 did not answer."},
     "It is split between its two instances, which both run: lb1 still sends its traffic to the new one (app1-8081), "
     "the other load balancers to the old one (app1-8080); moving it back failed: lb1 did not answer. Set app1-8080 "
     "ready and app1-8081 to maint there (lb_member), then run the deploy again: its plan stops the second instance."),
])
def test_the_stop_message_says_where_the_host_ends(facts, says):
    assert stop_message(**facts) == "app1: why. " + says + END


@pytest.mark.parametrize("facts", [
    {"deploy_activate_unflipped": True},
    {"deploy_activate_unflipped": True, "deploy_activate_flipped_on": ["lb1"]},
    {"deploy_activate_flipped_on": ["lb1", "lb2"], "deploy_activate_split": ["lb1"],
     "deploy_activate_split_why": "lb1 did not answer."},
])
def test_a_flip_only_batch_stops_with_the_same_message_as_activate(facts):
    """flip_batch.yml (a batch of hosts started ahead that only flips) says what activate.yml says for a failed flip."""
    said = stop_message("flip_batch.yml", "Flip batch - move the batch's traffic to its new instances", **facts)
    assert said == stop_message(**facts) and said.startswith("app1: why. ") and said.endswith(END)


def test_a_flip_only_batch_fails_each_host_naming_the_load_balancers_whose_flip_failed():
    """flip_batch.yml: one lb_member run per load balancer flips the batch (flip_call.yml, flip.yml's too); each host
    fails on its result, inside the block whose rescue takes it back."""
    block = next(t for t in tasks("flip_batch.yml") if t.get("name") == "Flip batch - move the batch's traffic to its new instances")
    assert [t.get("ansible.builtin.import_tasks") for t in block["block"]][0] == "flip_call.yml"
    assert any(t.get("ansible.builtin.import_tasks") == "flip_call.yml" for t in tasks("flip.yml"))
    check = next(t for t in tasks("flip_call.yml") if t["name"].endswith("no host of the batch keeps it"))
    result = {"results": [{"item": ["lb1", "app1-8081"], "failed": False},
                          {"item": ["lb2", "app1-8081"], "failed": True, "msg": "app/app1-8081 (down) is not up."},
                          {"item": ["lb3", "app1-8081"], "failed": True}]}
    said = render(check["ansible.builtin.fail"]["msg"], {"deploy_rotation_result": result})
    assert said == "lb2: app/app1-8081 (down) is not up. lb3: the flip failed"


def test_a_batch_that_could_not_be_taken_back_says_why_and_where_to_look():
    """abort.yml's rescue: the flip back (or the drain, restart or ready) of a batch that failed its checks failed."""
    block = next(t for t in tasks("abort.yml") if t.get("name") == "Abort - take the host back to the release it ran")
    stop = block["rescue"][0]
    failed = {"msg": "One or more items failed",
              "results": [{"failed": False}, {"failed": True, "msg": "app1-8080 is not up in HAProxy's health checks"}]}
    said = render(stop["vars"]["deploy_stop_msg"],
                  {**BASE, "deploy_abort_msg": "The canary app1 failed its judgement.", "ansible_failed_result": failed,
                   "deploy_host_plan": {**FLIP, "current": "1.0.0"}})
    assert said == ("The canary app1 failed its judgement. app1 could not be taken back to 1.0.0: app1-8080 is not up "
                    "in HAProxy's health checks. Look at it before the next run: the report and seedops.deploy.status "
                    "say what it runs and where its load balancers send its traffic. Later batches were not touched.")


@pytest.mark.parametrize("plan, drained, says", [
    ({"action": "switch", "current": "1.0.0"}, [],
     "app1 is back on 1.0.0 and in rotation; 2.0.0 is marked failed there."),
    ({"action": "switch", "current": None}, ["app1"],
     "app1 runs 2.0.0, with no earlier release to go back to in this run (it is new), and is out of rotation: the "
     "canary drained it."),
    ({"action": "finish", "current": "1.0.0"}, [],
     "app1 runs 2.0.0, with no earlier release to go back to in this run (it did not switch: finish), and stays in "
     "rotation."),
])
def test_a_batch_taken_back_says_where_each_host_ends(plan, drained, says):
    """abort.yml's last message, for each host of the batch: back on its release, or (a new host, one the plan did not
    switch) left on the new release, out of rotation only when the canary drained it. The lab takes hosts back; a new
    host that fails a canary and a host that only finished are rendered here."""
    first = tasks("abort.yml")[0]["vars"]["deploy_abort_has_release"]
    facts = {**BASE, "deploy_host_plan": {**FLIP, **plan}, "deploy_plan": {"release": "2.0.0"},
             "deploy_host_server": "app1", "deploy_canary_verdict": {"drained": drained},
             "deploy_abort_msg": "The canary app1 failed its judgement."}
    facts["deploy_abort_back"] = render(first, facts) == "True"
    stop = next(t for t in tasks("abort.yml") if t.get("name") == "Abort - give the fleet's deploy lock back and stop the rollout")
    assert render(stop["vars"]["deploy_stop_msg"], facts) == (
        "The canary app1 failed its judgement. " + says + " Later batches were not touched.")


def together_message(hosts, hostvars, failed, at_flip=True):
    """together.yml's stop message with the facts each host left (hostvars), rendered as on any host of the play.
    `extract` and `zip` are Ansible's filters; they are given here as Ansible defines them (a missing key is
    undefined, zip pairs up its arguments)."""
    block = next(t for t in tasks("together.yml") if t.get("name") == "Together - switch and restart")["block"]
    back = next(t for t in block if t.get("name") == "Together - take every host back to its old release")
    stop = next(t for t in back["block"] if t["name"].startswith("Together - give the fleet's deploy lock back"))
    # Ansible's undefined allows an attribute of an undefined value (seen.deploy_activate_restart.failed | default).
    env = jinja2.Environment(undefined=jinja2.ChainableUndefined)
    env.filters["seedops.deploy.failure_reason"] = deploy_filters.failure_reason
    # Ansible's bool, as it reads the strings a task's vars template to.
    env.filters["bool"] = lambda value: value if isinstance(value, bool) else str(value).lower() in ("true", "yes", "1", "on")
    env.filters["extract"] = lambda item, container, key=None: (
        container[item] if key is None else container[item].get(key, env.undefined(name=key)))
    env.filters["zip"] = lambda first, *others: list(zip(first, *others))
    plans = {h: {"lb_server": f"{h}-8080", "idle_server": f"{h}-8081"} for h in hostvars}
    hostvars = {host: {**seen, "inventory_hostname": host} for host, seen in hostvars.items()}
    facts = {"ansible_play_hosts": hosts, "hostvars": hostvars, "deploy_together_failed": failed,
             "deploy_together_at_flip": at_flip,
             "deploy_plan": {"release": "2.0.0", "hosts": plans}}
    # Each var of the include as Ansible templates it: lazily, in the order the message needs them.
    for name in ("deploy_together_why", "deploy_together_back_note", "deploy_together_split"):
        facts[name] = env.from_string(stop["vars"][name]).render(**facts)
    return " ".join(env.from_string(stop["vars"]["deploy_stop_msg"]).render(**facts).split())


FLIP_FAILED = {"deploy_together_flip_why": "app/app1-8081 serves now, but app/app1-8080 still has 2 sessions.",
               "deploy_flip_outcome": "Its old instance still serves it: the new one was stopped and current switched back."}
HEAD = ("app1 could not flip to 2.0.0, so every host was switched back to the release it ran before (see the report). "
        "app1: its flip "
        "failed: app/app1-8081 serves now, but app/app1-8080 still has 2 sessions. Its old instance still serves it: the "
        "new one was stopped and current switched back.")


def test_together_names_the_hosts_whose_flip_passed_and_were_moved_back():
    said = together_message(["app1", "app2", "app3"], {
        "app1": FLIP_FAILED, "app2": {"deploy_activate_flipped": True}, "app3": {"deploy_activate_flipped": True}},
        ["app1"])
    assert said == HEAD + (" app2, app3 had moved their traffic to 2.0.0 and were moved back to their old instances, "
                           "which never stopped.")


def test_together_names_the_hosts_whose_flips_failed_in_the_same_call_once():
    """together.yml flips every host in one lb_member run per load balancer: when it fails there, every host fails
    on the same result, and the message says it once for all of them (a host that failed otherwise on its own)."""
    flip = {"deploy_together_flip_why": "repo1: the new servers serve now, but sessions stay after 3 s (drain_timeout) "
                                        "on app/app1-8080 (2): it stays in drain, so its old instance must not be "
                                        "stopped yet.",
            "deploy_flip_outcome": "Its old instance still serves it: lb1, repo1 had moved its traffic to the new one "
                                   "and moved it back; the new one was stopped and current switched back."}
    said = together_message(["app1", "app2", "app3"], {"app1": flip, "app2": flip, "app3": flip},
                            ["app1", "app2", "app3"])
    assert said == (
        "app1, app2, app3 could not flip to 2.0.0, so every host was switched back to the release it ran before (see "
        "the report). app1, app2, app3: their flips, in one call per load balancer, failed: " + flip[
            "deploy_together_flip_why"] + " " + flip["deploy_flip_outcome"])
    said = together_message(["app1", "app2"], {"app1": flip, "app2": {}}, ["app1", "app2"])
    assert "app1: its flip failed: repo1: the new servers" in said and said.endswith(
        "; app2: it dropped out of the run (unreachable, or a task failed)")


def test_together_names_the_hosts_whose_new_server_a_load_balancer_did_not_see_up_with_the_warm_ups_reason():
    """together.yml warms every new server in one call per load balancer (warm.yml); a host whose server failed there
    is named with the reason warm.yml noted, apart from one whose start failed."""
    warm = {"deploy_warm_why": "server app2-8081 of backend app is drain, but HAProxy's checks do not see it up in lb1."}
    start = {"deploy_together_start": {"failed": True, "msg": "app3's new instance answers 500 at /health."}}
    said = together_message(["app1", "app2", "app3"], {"app1": {}, "app2": warm, "app3": start}, ["app2", "app3"],
                            at_flip=False)
    assert said.startswith("app2, app3 did not become healthy in 2.0.0 (at the host, or in the load balancers' "
                           "checks), so every host was switched back")
    assert said.endswith("(see the report). app2: " + warm["deploy_warm_why"] + "; app3: " +
                         start["deploy_together_start"]["msg"])


def test_together_names_a_host_that_could_not_be_moved_back_and_what_to_set():
    """A host whose flip passed and whose flip back failed (the lab cannot make it: it needs a load balancer that
    fails between the flips) is split between its two instances; a host that dropped out is named as such."""
    said = together_message(["app1", "app2", "app3"], {
        "app1": FLIP_FAILED, "app2": {"deploy_activate_flipped": True},
        "app3": {"deploy_activate_flipped": True, "deploy_together_back_why": "lb2 did not answer."},
        "app4": {}}, ["app4", "app1"])
    assert said == HEAD.replace("app1 could not", "app4, app1 could not").replace(
        "(see the report). app1:", "(see the report). app4: it dropped out of the run (unreachable, or a task failed); "
        "app1:") + (
        " app2 had moved its traffic to 2.0.0 and was moved back to its old instance, which never stopped. app3 could "
        "not be moved back to its old instance (app3-8080, still running): lb2 did not answer. Check where each load "
        "balancer sends it (lb_info), set app3-8080 ready and app3-8081 to maint there, then run the deploy again.")


def stage_stop(hosts_all, hosts, planned):
    """stage.yml's check that every planned host staged the release: (passes, message)."""
    block = next(t for t in tasks("stage.yml") if "block" in t)["block"]
    task = next(t for t in block if t["name"] == "Stage - stop unless every host staged the release")
    facts = {"ansible_play_hosts_all": hosts_all, "ansible_play_hosts": hosts,
             "deploy_plan": {"release": "2.0.0", "hosts": {h: {} for h in planned}}}
    facts["deploy_stage_lost"] = yaml.safe_load(render(task["vars"]["deploy_stage_lost"], facts))
    return (render("{{ " + task["ansible.builtin.assert"]["that"] + " }}", facts) == "True",
            render(task["ansible.builtin.assert"]["fail_msg"], facts))


def test_stage_names_the_planned_hosts_that_dropped_out_not_one_left_out_before_the_plan():
    """site.yml: app2 failed setting up its service, so the plan has app1 and app3; app3 then fails to stage."""
    assert stage_stop(["app1", "app2", "app3"], ["app1", "app3"], ["app1", "app3"])[0]
    passes, says = stage_stop(["app1", "app2", "app3"], ["app1"], ["app1", "app3"])
    assert not passes
    assert says.startswith("app3 could not stage 2.0.0 (see above). Nothing was switched on any host.")


# One lb_member run per load balancer for every host (servers): each host reads its own server's row.


def warm_result(lb, rows=None, failed=False, msg=None, unreachable=False):
    result = {"item": lb, "failed": failed}
    if rows is not None:
        result["servers"] = rows
    if msg:
        result["msg"] = msg
    if unreachable:
        result["unreachable"] = True
    return result


def prestart_why(host, results):
    """warm.yml's reason for a host whose new server a load balancer does not see up ('' when it is up): the warm-up
    of prestart.yml and together.yml, which both import it."""
    for name in ("prestart.yml", "together.yml"):
        found = [t for t in tasks(name) + next(t for t in tasks(name) if "block" in t)["block"]
                 if t.get("ansible.builtin.import_tasks") == "warm.yml"]
        assert len(found) == 1, name
    task = next(t for t in tasks("warm.yml") if t["name"].endswith("a load balancer does not see up"))
    plan = {h: {"idle_server": f"{h}-8081", "lb_server": f"{h}-8080"} for h in ("app1", "app2")}
    return render(task["vars"]["deploy_warm_failed_why"],
                  {"deploy_warm": {"results": results}, "deploy_host_plan": plan[host],
                   "deploy_lb_backend": "app", "deploy_lb_up_timeout": 6})


def test_a_host_whose_new_server_one_load_balancer_does_not_see_up_is_the_only_one_that_fails_the_warm_up():
    rows = [{"server": "app1-8081", "state": "drain", "op_state": "up", "up": True},
            {"server": "app2-8081", "state": "drain", "op_state": "down", "up": False}]
    results = [warm_result("lb1", [dict(row, up=True) for row in rows]),
               warm_result("lb2", rows, failed=True, msg="app/app2-8081 not up in HAProxy's health checks")]
    assert prestart_why("app1", results) == ""
    assert prestart_why("app2", results) == (
        "server app2-8081 of backend app is drain, but HAProxy's checks do not see it up in lb2 after 6 s "
        "(deploy_lb_up_timeout; its operational state is down). It stays in drain, where it takes no traffic: look at "
        "the new instance (its port, the health check's path).")


def test_a_load_balancer_that_fails_without_rows_fails_every_hosts_warm_up_with_its_message():
    results = [warm_result("lb1", [], failed=True, msg="cannot talk to HAProxy's runtime API at /run/haproxy/admin.sock"),
               warm_result("lb2", unreachable=True, msg="Failed to connect to the host via ssh")]
    for host in ("app1", "app2"):
        assert prestart_why(host, results) == ("lb1: cannot talk to HAProxy's runtime API at /run/haproxy/admin.sock "
                                               "lb2: Failed to connect to the host via ssh")


def retire_kept(hosts, results):
    task = next(t for t in tasks("retire.yml") if t["name"].startswith("Retire - note the hosts"))
    plan = {h: {"lb_server": f"{h}-8080"} for h in ("app1", "app2", "app3")}
    rendered = render(task["ansible.builtin.set_fact"]["deploy_retire_kept"],
                      {"deploy_retire_lb": {"results": results}, "deploy_retire_hosts": hosts,
                       "deploy_plan": {"hosts": plan}})
    return yaml.safe_load(rendered)


def test_the_retire_keeps_the_hosts_whose_old_server_is_not_in_maintenance_in_every_load_balancer():
    maint = [{"server": f"{h}-8080", "state": "maint"} for h in ("app1", "app2", "app3")]
    app2_stays = [dict(row, state="drain") if row["server"] == "app2-8080" else row for row in maint]
    assert retire_kept(["app1", "app2", "app3"], [warm_result("lb1", maint)]) == []
    assert retire_kept(["app1", "app2", "app3"], [warm_result("lb1", maint),
                                                  warm_result("lb2", app2_stays, failed=True)]) == ["app2"]
    # verify.yml: each host reads the one run's rows for itself.
    assert retire_kept(["app3"], [warm_result("lb1", app2_stays, failed=True)]) == []
    # A load balancer that could not be read keeps every host.
    assert retire_kept(["app1", "app3"], [warm_result("lb1", unreachable=True)]) == ["app1", "app3"]
