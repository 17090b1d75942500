"""The messages that stop a rollout, rendered from the task files themselves: activate.yml's rescue (with
flip_failed.yml) for each way a switch or a flip can end: back in the load balancer, the old instance serving (with
or without load balancers that moved the host's traffic and moved it back), and a host split between its two
instances (which the lab cannot make: it needs a load balancer that fails between a flip and its flip back); and
abort.yml's, for a batch that could not be taken back."""
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
    """The text as a task would template it: plain Jinja with the collection's filter by its FQCN (the messages use
    no other Ansible filter), so that every supported ansible-core renders it the same way."""
    env = jinja2.Environment(undefined=jinja2.StrictUndefined)
    env.filters["seedops.deploy.failure_reason"] = deploy_filters.failure_reason
    return " ".join(env.from_string(text).render(**facts).split())


def stop_message(**facts):
    """activate.yml's stop message, with flip_failed.yml's sentence on where a flipping host ends."""
    facts = {**BASE, **facts}
    outcome = next(t for t in tasks("flip_failed.yml") if t["name"].endswith("for the message"))
    facts["deploy_flip_outcome"] = render(outcome["ansible.builtin.set_fact"]["deploy_flip_outcome"], facts)
    block = next(t for t in tasks("activate.yml") if t.get("name") == "Activate - switch, restart and check health")
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
