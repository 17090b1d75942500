"""The fleet_lock module's main on real files, and its action plugin: the holder filled in on the controller."""

import json
import os
from unittest import mock

import pytest

from fakes import patch_module_args

from ansible_collections.seedops.deploy.plugins.action import fleet_lock as action
from ansible_collections.seedops.deploy.plugins.module_utils import _service
from ansible_collections.seedops.deploy.plugins.modules import fleet_lock
from ansible_collections.seedops.deploy.plugins.plugin_utils import _controller

HOLDER = {"user": "alice", "controller": "ops1", "job_id": "77", "playbook": "deploy.yml", "version": "2.0.0"}


def call(capsys, **args):
    """The module's result, with what it warned about under `warned`."""
    with patch_module_args(args), mock.patch.object(fleet_lock.AnsibleModule, "warn") as warn, pytest.raises(SystemExit):
        fleet_lock.main()
    out = json.loads(capsys.readouterr().out)
    out["warned"] = [c.args[0] for c in warn.call_args_list]
    return out


@pytest.fixture
def path(tmp_path):
    return str(tmp_path / "locks" / "shop.json")


def test_acquire_renew_release(capsys, path):
    out = call(capsys, path=path, run_id="run-1", holder=HOLDER, ttl=120)
    assert out["changed"] is True and out["held"] is True and out["action"] == "acquired"
    assert out["run_id"] == "run-1" and out["holder"] == HOLDER and out["expires_in"] == 120
    assert out["previous"] is None and out["taken_over_from"] is None and out["expired_from"] is None
    with open(path) as f:
        assert json.load(f)["run_id"] == "run-1"
    assert os.stat(path).st_mode & 0o777 == 0o600

    out = call(capsys, path=path, run_id="run-1", ttl=120)
    assert out["action"] == "renewed" and out["previous"]["run_id"] == "run-1" and out["holder"] == HOLDER

    out = call(capsys, path=path, run_id="run-1", state="released")
    assert out["changed"] is True and out["held"] is False and out["action"] == "released"
    assert not os.path.exists(path)


def test_another_run_fails_naming_the_holder(capsys, path):
    call(capsys, path=path, run_id="run-1", holder=HOLDER)
    out = call(capsys, path=path, run_id="run-2", holder={"user": "bob"})
    assert out["failed"] is True and out["held"] is True and out["run_id"] == "run-1" and out["holder"] == HOLDER
    assert "is held by run run-1 (user alice, controller ops1, job 77, playbook deploy.yml, version 2.0.0)" in out["msg"]
    assert "deploy_lock_break=true" in out["msg"]

    out = call(capsys, path=path, run_id="run-2", state="released")
    assert out["changed"] is False and out["run_id"] == "run-1"
    assert "not by run run-2; left alone" in out["warned"][0]

    out = call(capsys, path=path, run_id="run-2", take_over=True)
    assert out["changed"] is True and out["action"] == "taken_over" and out["taken_over_from"]["run_id"] == "run-1"
    assert "took the fleet deploy lock" in out["warned"][0]


def test_wait_fails_after_the_wait(capsys, path, monkeypatch):
    monkeypatch.setattr(fleet_lock._lease, "POLL", 0.05)
    call(capsys, path=path, run_id="run-1")
    out = call(capsys, path=path, run_id="run-2", wait=0.3)
    assert out["failed"] is True and "; waited 0 s." in out["msg"] and 0.3 <= out["waited"] < 3


def test_query(capsys, path):
    out = call(capsys, path=path, state="query")
    assert out == dict(out, changed=False, held=False, run_id=None, previous=None, warned=[])
    call(capsys, path=path, run_id="run-1", holder=HOLDER)
    out = call(capsys, path=path, state="query")
    assert out["changed"] is False and out["held"] is True and out["holder"] == HOLDER and out["expires_in"] > 299


def test_run_id_is_required_to_hold_or_release(capsys, path):
    for state in ("held", "released"):
        out = call(capsys, path=path, state=state)
        assert out["failed"] is True and "run_id" in out["msg"]
    assert not os.path.exists(os.path.dirname(path))


def test_check_mode_writes_nothing_and_shows_the_diff(capsys, path):
    out = call(capsys, path=path, run_id="run-1", holder=HOLDER, _ansible_check_mode=True, _ansible_diff=True)
    assert out["changed"] is True and out["held"] is True
    assert out["diff"]["before"] == "" and json.loads(out["diff"]["after"])["run_id"] == "run-1"
    assert not os.path.exists(os.path.dirname(path))

    call(capsys, path=path, run_id="run-1", holder=HOLDER)
    with open(path) as f:
        before = f.read()
    out = call(capsys, path=path, run_id="run-1", state="released", _ansible_check_mode=True, _ansible_diff=True)
    assert out["changed"] is True and out["diff"]["after"] == "" and json.loads(out["diff"]["before"])["run_id"] == "run-1"
    with open(path) as f:
        assert f.read() == before


def test_a_corrupt_lock_file_fails_naming_it(capsys, path):
    os.makedirs(os.path.dirname(path))
    with open(path, "w") as f:
        f.write("[]")
    out = call(capsys, path=path, run_id="run-1")
    assert out["failed"] is True and out["msg"].startswith("the fleet deploy lock file %s is a JSON list" % path)
    out = call(capsys, path=path, run_id="run-1", take_over=True)
    assert out["changed"] is True and out["taken_over_from"] == {"unreadable": "a JSON list, not an object"}


def test_bad_ttl(capsys, path):
    out = call(capsys, path=path, run_id="run-1", ttl=-5)
    assert out["failed"] is True and "ttl must be more than 0 seconds" in out["msg"]


# -- the action plugin --------------------------------------------------------------------------------


def test_lock_holder_adds_the_controller_the_job_and_who_launched_it():
    who = action.lock_holder({"playbook": "deploy.yml"}, {"awx_job_id": 42, "awx_user_name": "alice"},
                             hostname=lambda: "ctl", user=lambda: "awx", environ={})
    assert who == {"playbook": "deploy.yml", "controller": "ctl", "controller_user": "awx", "job_id": "42", "user": "alice"}
    given = {"user": "bob", "job_id": "J-1"}
    who = action.lock_holder(given, {"tower_job_id": 7, "tower_user_name": "alice"}, lambda: "c", lambda: "u", environ={})
    assert who["user"] == "bob" and who["job_id"] == "J-1", "what the task gives wins"
    assert given == {"user": "bob", "job_id": "J-1"}


def test_the_job_id_from_the_environment_awx_sets():
    assert action.lock_holder({}, {}, lambda: "c", lambda: "u", environ={"JOB_ID": "99"})["job_id"] == "99"
    assert action.lock_holder({}, {}, lambda: "c", lambda: "u", environ={"AWX_JOB_ID": "98"})["job_id"] == "98"
    assert action.lock_holder({}, {"awx_job_id": 5}, lambda: "c", lambda: "u", environ={"JOB_ID": "99"})["job_id"] == "5"
    assert "job_id" not in action.lock_holder({}, {}, lambda: "c", lambda: "u", environ={})
    with mock.patch.dict(os.environ, {"JOB_ID": "1001"}):
        assert action.lock_holder({}, {}, lambda: "c", lambda: "u")["job_id"] == "1001"
    assert "job_id" not in _controller.deployed_by({}, {}, lambda: "c", lambda: "u"), "release reads no environment"


def plugin_for(args):
    task = mock.MagicMock(args=args, async_val=0, check_mode=False)
    connection = mock.MagicMock()
    connection._shell.tmpdir = "/tmp/remote"
    return task, action.ActionModule(task, connection, mock.MagicMock(), mock.MagicMock(), mock.MagicMock(), None)


def test_run_hands_the_module_the_holder():
    task, plugin = plugin_for({"path": "/var/lib/seedops-deploy/locks/shop.json", "run_id": "r1", "holder": {"version": "2"}})
    with mock.patch.object(plugin, "_execute_module", return_value={"changed": True, "held": True}) as execute:
        result = plugin.run(task_vars={"awx_job_id": 5})
    assert result == {"changed": True, "held": True}
    kwargs = execute.call_args.kwargs
    assert kwargs["module_name"] == "seedops.deploy.fleet_lock"
    holder = kwargs["module_args"]["holder"]
    assert holder["version"] == "2" and holder["job_id"] == "5" and holder["controller"] and holder["controller_user"]
    assert task.args["holder"] == {"version": "2"}, "the task's args are not changed"


def test_release_and_query_get_no_holder():
    for state in ("released", "query"):
        _task, plugin = plugin_for({"path": "/l.json", "run_id": "r1", "state": state})
        with mock.patch.object(plugin, "_execute_module", return_value={"changed": False}) as execute:
            plugin.run(task_vars={})
        assert "holder" not in execute.call_args.kwargs["module_args"]


def test_a_holder_given_as_a_string_is_read_like_the_module_reads_it():
    assert action.lock_holder('{"version": "2.0.0"}', {}, lambda: "c", lambda: "u", environ={})["version"] == "2.0.0"
    assert action.lock_holder("playbook=deploy.yml", {}, lambda: "c", lambda: "u", environ={})["playbook"] == "deploy.yml"
    with pytest.raises(action.AnsibleActionFail, match="holder must be a dict"):
        action.lock_holder("just words", {}, lambda: "c", lambda: "u", environ={})


def test_a_release_record_names_the_awx_user_who_launched_the_job_as_the_lock_does():
    who = _controller.deployed_by({}, {"awx_job_id": 42, "awx_user_name": "alice"}, lambda: "c", lambda: "u")
    assert who == {"controller": "c", "controller_user": "u", "job_id": "42", "user": "alice"}
    assert _controller.deployed_by({"user": "bob"}, {"tower_user_name": "alice"}, lambda: "c", lambda: "u")["user"] == "bob"


# -- the run's process on the controller ----------------------------------------------------------------------------


def fake_proc(root, boot="b-1", namespace="pid:[4026531836]", processes=None):
    """A /proc with a boot id, this process's PID namespace and `processes` ({pid: (command, start time)})."""
    (root / "sys" / "kernel" / "random").mkdir(parents=True)
    (root / "sys" / "kernel" / "random" / "boot_id").write_text(boot + "\n")
    (root / "self" / "ns").mkdir(parents=True)
    os.symlink(namespace, root / "self" / "ns" / "pid")
    for pid, (command, start) in (processes or {}).items():
        (root / str(pid)).mkdir()
        # Field 3 (the state), fields 4 to 21, field 22 (the start time), and two more.
        (root / str(pid) / "stat").write_text("%d (%s) S %s %s 0 0\n" % (pid, command, " ".join(["0"] * 18), start))
    return str(root)


def test_the_run_s_process_is_named_by_boot_namespace_pid_and_start_time(tmp_path):
    proc = fake_proc(tmp_path, processes={4242: ("ansible-playbook) (x", "77001")})
    assert _service.start_ticks(4242, proc) == 77001, "a command holding ') (' does not shift the fields"
    assert _service.start_ticks(99, proc) is None
    token = _controller.controller_process(proc, parent=lambda: 4242)
    assert token == "b-1 pid:[4026531836] 4242 77001"
    assert _controller.process_ended(token, proc) is False
    assert _controller.controller_process(proc, parent=lambda: 1) is None, "an orphaned worker names no run"


def test_a_run_has_ended_when_its_pid_is_gone_or_is_another_process_now(tmp_path):
    proc = fake_proc(tmp_path, processes={4242: ("ansible-playbook", "90000")})
    assert _controller.process_ended("b-1 pid:[4026531836] 4242 77001", proc) is True, "the pid was reused"
    assert _controller.process_ended("b-1 pid:[4026531836] 5151 77001", proc) is True, "no such process"
    # Only this boot and PID namespace can tell: another machine, container or boot cannot be judged from here.
    assert _controller.process_ended("b-0 pid:[4026531836] 5151 77001", proc) is None
    assert _controller.process_ended("b-1 pid:[4026532000] 5151 77001", proc) is None
    for token in (None, "", "b-1 pid:[4026531836] 5151", "b-1 pid:[4026531836] x 1", 42):
        assert _controller.process_ended(token, proc) is None, token


def test_this_machine_tells_a_live_process_from_one_that_ended():
    alive = _controller.controller_process(parent=os.getpid)
    assert alive and _controller.process_ended(alive) is False
    scope = alive.rsplit(" ", 2)[0]
    with open("/proc/sys/kernel/pid_max") as f:
        never = int(f.read()) + 1
    assert _controller.process_ended("%s %d %s" % (scope, never, alive.rsplit(" ", 1)[1])) is True, "no such pid"
    assert _controller.process_ended("%s %d 1" % (scope, os.getpid())) is True, "the pid is another process's now"


def test_a_refusal_by_a_run_whose_process_ended_says_so_and_what_to_do():
    def refused(token):
        return {"failed": True, "held": True, "run_id": "r1", "msg": "the fleet deploy lock /l.json is held by run r1.",
                "holder": {"controller": "c", "controller_process": token}}

    out = action.holder_ended(refused("b p 4242 1"), "r2", ended=lambda token: True)
    assert out["holder_ended"] is True
    assert out["msg"] == ("the fleet deploy lock /l.json is held by run r1. That run has ended: its controller process "
                          "(pid 4242 on this controller) is gone and will not renew the lease. Unless a task it started "
                          "still runs on a host (a module there runs to its own timeout), breaking the lock is safe now.")
    for ended in (False, None):
        out = action.holder_ended(refused("b p 4242 1"), "r2", ended=lambda token, e=ended: e)
        assert out["holder_ended"] is ended and out["msg"].endswith("held by run r1.")
    # A query (no run of its own) is told too; this run's own lease, or no lease, is left as it is.
    query = action.holder_ended({"held": True, "run_id": "r1", "holder": {}}, None, ended=lambda token: None)
    assert query["holder_ended"] is None
    for result, run_id in (({"held": True, "run_id": "r1", "holder": {}}, "r1"), ({"held": False, "run_id": None}, None)):
        assert "holder_ended" not in action.holder_ended(dict(result), run_id, ended=lambda token: True)


def test_run_records_the_run_s_process_with_the_holder():
    _task, plugin = plugin_for({"path": "/l.json", "run_id": "r1"})
    with mock.patch.object(action, "controller_process", return_value="b p 4242 1"), \
            mock.patch.object(plugin, "_execute_module", return_value={"changed": True, "held": True}) as execute:
        plugin.run(task_vars={})
    assert execute.call_args.kwargs["module_args"]["holder"]["controller_process"] == "b p 4242 1"
