"""HAProxy runtime API answers: parsing `show servers state` and `show stat`, over a real unix socket."""

import os
import socket
import threading

import pytest

from ansible_collections.seedops.deploy.plugins.module_utils import _haproxy as hap

STATE = """1
# be_id be_name srv_id srv_name srv_addr srv_op_state srv_admin_state srv_uweight srv_iweight srv_time_since_last_change
3 app 1 app1 172.18.0.4 2 0 1 1 12
3 app 2 app2 172.18.0.5 2 8 1 1 3
3 app 3 app3 172.18.0.6 0 1 10 20 3
"""

STAT = """# pxname,svname,qcur,qmax,scur,smax,status,weight,
app,app1,0,0,2,5,UP,1,
app,BACKEND,0,0,2,5,UP,3,
"""


def test_parse_servers_state_and_admin_names():
    servers = hap.parse_servers_state(STATE)
    assert servers[("app", "app1")] == {"admin_state": 0, "op_state": 2, "weight": 1, "initial_weight": 1,
                                        "address": "172.18.0.4", "port": None, "check_state": 0,
                                        "check_health": 0}
    assert [hap.admin_name(servers[("app", s)]["admin_state"]) for s in ("app1", "app2", "app3")] == [
        "ready", "drain", "maint"]
    assert (servers[("app", "app3")]["weight"], servers[("app", "app3")]["initial_weight"]) == (10, 20)


STATE_26 = (
    "1\n# be_id be_name srv_id srv_name srv_addr srv_op_state srv_admin_state srv_uweight srv_iweight "
    "srv_time_since_last_change srv_check_status srv_check_result srv_check_health srv_check_state\n"
    "3 app 1 app1 172.18.0.3 2 0 1 1 17 8 2 2 6\n"
    "3 app 2 app2 172.18.0.6 2 0 1 1 14 8 2 2 2\n"
)


def test_check_state_as_haproxy_2_6_reports_it():
    servers = hap.parse_servers_state(STATE_26)
    assert hap.checks_name(servers[("app", "app1")]["check_state"]) == "enabled"
    assert hap.checks_name(servers[("app", "app2")]["check_state"]) == "disabled"


def test_parse_stat():
    rows = hap.parse_stat(STAT)
    assert rows[("app", "app1")]["scur"] == "2" and rows[("app", "BACKEND")]["weight"] == "3"


def test_check_answer():
    hap.check_answer("\n", "x")
    with pytest.raises(hap.HAProxyError, match="refused set server"):
        hap.check_answer("No such server.\n", "set server app/app9 state drain")


def test_command_over_a_unix_socket(tmp_path):
    path = str(tmp_path / "admin.sock")
    srv = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    srv.bind(path)
    srv.listen(1)
    got = []

    def serve():
        conn, _addr = srv.accept()
        with conn:
            got.append(conn.recv(1024))
            conn.sendall(STATE.encode())

    t = threading.Thread(target=serve)
    t.start()
    assert hap.command(path, "show servers state app") == STATE
    t.join(5)
    srv.close()
    assert got == [b"show servers state app\n"]
    os.unlink(path)
    with pytest.raises(hap.HAProxyError, match="cannot talk to HAProxy's runtime API"):
        hap.command(path, "show stat")


def test_op_names():
    assert [hap.op_name(n) for n in (0, 1, 2, 3)] == ["down", "starting", "up", "stopping"]
    assert hap.op_name(7) == "unknown (7)"


@pytest.fixture
def answering(tmp_path):
    """A runtime API socket that answers each connection with the next of the given answers; yields the
    socket's path and the lines it received."""
    path = str(tmp_path / "admin.sock")
    srv = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    srv.bind(path)
    srv.listen(4)
    got = []
    threads = []

    def start(*answers):
        def serve():
            for answer in answers:
                conn, _addr = srv.accept()
                with conn:
                    got.append(conn.recv(1024).decode())
                    conn.sendall(answer.encode())

        threads.append(threading.Thread(target=serve, daemon=True))
        threads[-1].start()
        return path, got

    yield start
    for t in threads:
        t.join(5)
    srv.close()


def test_server_state_of_one_server(answering):
    path, got = answering(STATE_26, STATE_26, "Can't find backend.\n")
    assert hap.server_state(path, "app", "app2") == {"admin_state": 0, "op_state": 2, "weight": 1, "initial_weight": 1,
                                                     "address": "172.18.0.6", "port": None, "check_state": 2,
                                                     "check_health": 2}
    with pytest.raises(hap.HAProxyError, match=r"no server app7 in backend app \(it has: app1, app2\)"):
        hap.server_state(path, "app", "app7")
    with pytest.raises(hap.HAProxyError, match=r"no server app1 in backend web \(it has: no such backend\)"):
        hap.server_state(path, "web", "app1")
    assert got == ["show servers state app\n", "show servers state app\n", "show servers state web\n"]


def test_sessions_of_one_server(answering):
    path, got = answering(STAT, STAT)
    assert hap.sessions(path, "app", "app1") == 2
    assert hap.sessions(path, "app", "app9") == 0, "a server show stat does not list has none"
    assert got == ["show stat\n", "show stat\n"]


@pytest.mark.parametrize("name", ["app1;disable server app/app2", "app1\n", "app 1", "", "app\tx", None, "ä"])
def test_invalid_names_are_refused(name):
    with pytest.raises(hap.HAProxyError, match="is not a valid HAProxy name"):
        hap.check_name("server", name)


@pytest.mark.parametrize("name", ["app1", "web-1.example.com", "srv_2:8080", "A.b-C_d:e"])
def test_valid_names_pass(name):
    assert hap.check_name("backend", name) == name


def test_nothing_reaches_the_socket_for_an_injected_name_or_line(answering):
    path, got = answering(STATE_26)
    with pytest.raises(hap.HAProxyError, match="backend 'app;shutdown sessions server app/app1' is not a valid"):
        hap.server_state(path, "app;shutdown sessions server app/app1", "app1")
    with pytest.raises(hap.HAProxyError, match="is not a valid") as err:
        hap.sessions(path, "app", "app1\nx")
    assert str(err.value).startswith("server %r is not a valid HAProxy name" % "app1\nx")
    for line in ("set server app/app1 state drain; disable server app/app2", "show stat\nshow info", "show\rstat"):
        with pytest.raises(hap.HAProxyError, match="refusing to send"):
            hap.command(path, line)
    assert hap.command(path, "show servers state app") == STATE_26, "the socket is still answering"
    assert got == ["show servers state app\n"], "only the valid command reached the socket"
