"""lb_servers' pure logic (module_utils/_servers.py): the wanted list checked, and what joins, leaves and moves.
The runtime API side runs against the lab's HAProxy (tests/integration/test_deploy.py, scale in and out)."""

import pytest

from ansible_collections.seedops.deploy.plugins.module_utils import _servers


def entry(name, address="10.0.0.1", port=8080, weight=100):
    return {"name": name, "address": address, "port": port, "weight": weight}


def test_the_wanted_list_keeps_its_order_and_makes_numbers_whole():
    got = _servers.wanted_servers([entry("app2", port="8080"), entry("app1", weight=None)])
    assert got == [{"name": "app2", "address": "10.0.0.1", "port": 8080, "weight": 100, "host": None},
                   {"name": "app1", "address": "10.0.0.1", "port": 8080, "weight": 1, "host": None}]


@pytest.mark.parametrize("servers, words", [
    ([entry("app1"), entry("app1")], "app1 is listed twice"),
    ([entry("app 1")], "not a valid HAProxy name"),
    ([entry("app1;shutdown")], "not a valid HAProxy name"),
    ([entry("app1", address="10.0.0.1 backup")], "is not an IP address or host name"),
    ([entry("app1", port=0)], "port 0 is not from 1 to 65535"),
    ([entry("app1", weight=300)], "weight 300 is not from 0 to 256"),
    ([entry("app1", port="eighty")], "must be whole numbers"),
    (["app1"], "must be a mapping"),
])
def test_a_bad_entry_is_named_with_what_is_wrong(servers, words):
    with pytest.raises(_servers.ServersError, match=words) as info:
        _servers.wanted_servers(servers)
    assert "servers[" in info.value.msg


def test_changes_are_joined_in_wanted_order_left_in_name_order_and_moved():
    current = {"app1": {"address": "10.0.0.1", "port": 8080}, "app3": {"address": "10.0.0.3", "port": 8080},
               "app2": {"address": "10.0.0.2", "port": 8080}}
    wanted = [entry("app5"), entry("app1"), entry("app4"), entry("app2", address="10.0.0.22")]
    joined, left, moved = _servers.changes(current, wanted)
    assert [s["name"] for s in joined] == ["app5", "app4"]
    assert left == ["app3"]
    assert [s["name"] for s in moved] == ["app2"]


def test_without_prune_nothing_leaves():
    joined, left, moved = _servers.changes({"app9": {"address": "10.0.0.9", "port": 8080}}, [entry("app1")], prune=False)
    assert ([s["name"] for s in joined], left, moved) == (["app1"], [], [])


def test_nothing_to_do_when_the_backend_matches():
    current = {"app1": {"address": "10.0.0.1", "port": 8080}}
    assert _servers.changes(current, [entry("app1")]) == ([], [], [])


def test_the_add_command_names_address_weight_and_checks():
    server = _servers.wanted_servers([entry("app4", address="172.18.0.9", port=8081, weight=100)])[0]
    assert (_servers.add_command("app", server, {"interval": "1s", "rise": 2, "fall": 2})
            == "add server app/app4 172.18.0.9:8081 weight 100 check inter 1s rise 2 fall 2")
    assert _servers.add_command("app", server, None) == "add server app/app4 172.18.0.9:8081 weight 100"


@pytest.mark.parametrize("answer, ok", [
    ("New server registered.", True),
    ("Server deleted.", True),
    ("IP changed from '172.18.0.6' to '172.18.0.9', port changed from '8080' to '8081' by 'stats socket command'", True),
    ("no need to change the addr", True),
    ("Server still has connections attached to it, cannot remove it.", False),
    ("Only servers in maintenance mode can be deleted.", False),
])
def test_answers_that_mean_the_command_worked(answer, ok):
    assert bool(_servers.OK_ANSWER.match(answer.lower())) is ok


def test_servers_that_change_names_are_left_to_a_reload():
    """app1 and app2 move to two servers each (start beside, then flip): the runtime API would put the new ones in
    maintenance and delete the serving ones, so nothing is done for them. app3 leaving alone is no rename."""
    current = {"app1": {}, "app2": {}, "app3": {}}
    wanted = _servers.wanted_servers([dict(entry(f"app{i}-{p}"), host=f"app{i}") for i in (1, 2) for p in (8080, 8081)])
    joined, left, _moved = _servers.changes(current, wanted)
    assert _servers.renamed_hosts(current, wanted, joined, left) == ["app1", "app2"]
    back = _servers.wanted_servers([dict(entry(h), host=h) for h in ("app1", "app2")])
    current = {"app1-8080": {}, "app1-8081": {}, "app2-8080": {}, "app2-8081": {}, "app10-8080": {}}
    joined, left, _moved = _servers.changes(current, back)
    assert _servers.renamed_hosts(current, back, joined, left) == ["app1", "app2"]
    plain = _servers.wanted_servers([dict(entry(h), host=h) for h in ("app1", "app2", "app4")])
    current = {"app1": {}, "app2": {}, "app3": {}}
    joined, left, _moved = _servers.changes(current, plain)
    assert _servers.renamed_hosts(current, plain, joined, left) == []
