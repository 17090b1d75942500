"""The release and staged_restart action plugins: who deployed (or switched), added on the controller, and handed to the
module."""

from unittest import mock

from ansible_collections.seedops.deploy.plugins.action import release as action
from ansible_collections.seedops.deploy.plugins.action import staged_restart as restart_action
from ansible_collections.seedops.deploy.plugins.plugin_utils import _controller


def test_deployed_by_adds_the_controller_and_the_job_id():
    who = action.deployed_by(None, {"awx_job_id": 42}, hostname=lambda: "ctl", user=lambda: "ops")
    assert who == {"controller": "ctl", "controller_user": "ops", "job_id": "42"}
    assert action.deployed_by({}, {"tower_job_id": "7"}, lambda: "c", lambda: "u")["job_id"] == "7"
    assert "job_id" not in action.deployed_by({}, {}, lambda: "c", lambda: "u")


def test_what_the_task_gives_wins():
    given = {"controller": "bastion", "job_id": "release-99", "ticket": "OPS-1"}
    who = action.deployed_by(given, {"awx_job_id": 42}, lambda: "ctl", lambda: "ops")
    assert who == {"controller": "bastion", "controller_user": "ops", "job_id": "release-99", "ticket": "OPS-1"}
    assert given == {"controller": "bastion", "job_id": "release-99", "ticket": "OPS-1"}, "the task's args are not changed"


def test_controller_user_without_a_passwd_entry(monkeypatch):
    def no_user():
        raise KeyError("getpwuid(): uid not found: 4242")

    monkeypatch.setattr(_controller.getpass, "getuser", no_user)
    assert _controller.controller_user() == "unknown"


def test_run_hands_the_module_deployed_by():
    task = mock.MagicMock(args={"path": "/srv/app", "release_id": "1.0"}, async_val=0, check_mode=False)
    connection = mock.MagicMock()
    connection._shell.tmpdir = "/tmp/remote"
    plugin = action.ActionModule(task, connection, mock.MagicMock(), mock.MagicMock(), mock.MagicMock(), None)
    with mock.patch.object(plugin, "_execute_module", return_value={"changed": True, "current": "1.0"}) as execute:
        result = plugin.run(task_vars={"awx_job_id": 5})
    assert result == {"changed": True, "current": "1.0"}
    kwargs = execute.call_args.kwargs
    assert kwargs["module_name"] == "seedops.deploy.release"
    assert kwargs["module_args"]["path"] == "/srv/app"
    assert kwargs["module_args"]["deployed_by"]["job_id"] == "5"
    assert kwargs["module_args"]["deployed_by"]["controller"]
    assert "deployed_by" not in task.args


def restart_plugin(args):
    task = mock.MagicMock(args=args, async_val=0, check_mode=False)
    connection = mock.MagicMock()
    connection._shell.tmpdir = "/tmp/remote"
    return restart_action.ActionModule(task, connection, mock.MagicMock(), mock.MagicMock(), mock.MagicMock(), None)


def test_staged_restart_hands_who_switched_to_the_module_only_when_it_switches():
    plugin = restart_plugin({"service": "app", "path": "/srv/app", "release_id": "2.0"})
    with mock.patch.object(plugin, "_execute_module", return_value={"changed": True}) as execute:
        plugin.run(task_vars={"awx_job_id": 8, "awx_user_name": "alice"})
    kwargs = execute.call_args.kwargs
    assert kwargs["module_name"] == "seedops.deploy.staged_restart"
    assert kwargs["module_args"]["deployed_by"]["job_id"] == "8" and kwargs["module_args"]["deployed_by"]["user"] == "alice"
    plugin = restart_plugin({"service": "app", "health": {"port": 8080}})
    with mock.patch.object(plugin, "_execute_module", return_value={"changed": True}) as execute:
        plugin.run(task_vars={"awx_job_id": 8})
    assert "deployed_by" not in execute.call_args.kwargs["module_args"]
