"""The backend's rotation state from HAProxy's `show servers state`, parsed and read over a real UNIX socket."""

import pytest

import fakes

from ansible_collections.seedops.deploy.plugins.module_utils import _haproxy as hap
from ansible_collections.seedops.deploy.plugins.module_utils import _rotation

HEADER = ("# be_id be_name srv_id srv_name srv_addr srv_op_state srv_admin_state srv_uweight srv_iweight "
          "srv_time_since_last_change srv_check_status srv_check_result srv_check_health srv_check_state")
STATE = "\n".join([
    "1",
    HEADER,
    "3 app 1 app1 10.0.0.11 2 0 1 1 10 6 3 4 6",   # ready, up
    "3 app 2 app2 10.0.0.12 2 8 1 1 10 6 3 4 6",   # drain
    "3 app 3 app3 10.0.0.13 0 0 1 1 10 6 3 4 6",   # ready but down for the checks
    "3 app 4 app4 10.0.0.14 2 1 1 1 10 6 3 4 2",   # maint, checks off
    "3 app 5 app5 10.0.0.15 2 0 0 1 10 6 3 4 6",   # weight 0
    "4 other 1 x1 10.0.0.99 2 0 1 1 10 6 3 4 6",
    "",
])


def test_every_server_of_the_backend_and_whether_it_takes_traffic():
    servers = _rotation.backend_servers(STATE, "app")
    assert list(servers) == ["app1", "app2", "app3", "app4", "app5"]
    assert servers["app1"] == {"admin": "ready", "op": "up", "weight": 1, "initial_weight": 1, "checks": "enabled",
                               "address": "10.0.0.11", "in_rotation": True}
    assert (servers["app2"]["admin"], servers["app2"]["in_rotation"]) == ("drain", False)
    assert (servers["app3"]["op"], servers["app3"]["in_rotation"]) == ("down", False)
    assert (servers["app4"]["admin"], servers["app4"]["checks"]) == ("maint", "disabled")
    assert (servers["app5"]["weight"], servers["app5"]["initial_weight"], servers["app5"]["in_rotation"]) == (0, 1, False)


@pytest.fixture
def runtime_api(tmp_path):
    """A one-command-per-connection stand-in for HAProxy's admin socket that answers STATE and logs commands."""
    path = str(tmp_path / "admin.sock")
    with fakes.runtime_api(path, lambda _command: STATE) as seen:
        yield path, seen


def test_read_backend_asks_for_that_backend_only(runtime_api):
    path, seen = runtime_api
    servers = _rotation.read_backend(path, "app")
    assert seen == ["show servers state app"]
    assert sorted(s for s, v in servers.items() if v["in_rotation"]) == ["app1"]


def test_an_unknown_backend_and_a_hostile_name_are_refused(runtime_api):
    path, seen = runtime_api
    with pytest.raises(hap.HAProxyError, match="no backend nope"):
        _rotation.read_backend(path, "nope")
    with pytest.raises(hap.HAProxyError, match="not a valid HAProxy name"):
        _rotation.read_backend(path, "app;disable server app/app1")
    assert seen == ["show servers state nope"], "nothing was sent for the hostile name"
