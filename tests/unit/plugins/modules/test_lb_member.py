"""lb_member's logic (module_utils/_lb.py) and the module, against a small fake of HAProxy's runtime API
served on a real UNIX socket: drain, maint, ready, weight, checks, and wait_up."""

import os
import re
import socket
import threading
import time

import pytest

import fakes


from ansible_collections.seedops.deploy.plugins.module_utils import _haproxy as hap
from ansible_collections.seedops.deploy.plugins.module_utils import _lb
from ansible_collections.seedops.deploy.plugins.modules import lb_member

CHECKS_ON = 0x06   # CHK_ST_CONFIGURED | CHK_ST_ENABLED
CHECKS_OFF = 0x02  # configured, disabled
NO_CHECKS = 0x00
HEADER = ("# be_id be_name srv_id srv_name srv_addr srv_op_state srv_admin_state srv_uweight srv_iweight "
          "srv_time_since_last_change srv_check_status srv_check_result srv_check_health srv_check_state "
          "srv_agent_state bk_f_forced_id srv_f_forced_id srv_fqdn srv_port srvrecord srv_use_ssl srv_check_port "
          "srv_check_addr srv_agent_addr srv_agent_port")


RISE = 2  # the servers' `rise` and `fall`: check health runs from 0 to RISE + FALL - 1
FALL = 2


class Server:
    def __init__(self, sid, addr, checks=CHECKS_ON, op=2, admin=0, weight=1, healthy=True):
        self.sid, self.addr, self.checks, self.op, self.admin, self.weight = sid, addr, checks, op, admin, weight
        self.healthy = healthy      # would its health checks pass?
        self.health = RISE + FALL - 1 if op == 2 else 0
        self.up_at = None           # when its next check (as many as it needs) will have been decided
        self.scur = 0
        self.sessions_end_at = None


class FakeHAProxy:
    """HAProxy's runtime API as lb_member uses it: one command a connection, answered, then closed (as
    HAProxy does without `prompt`). Health checks are modelled as HAProxy 2.6 runs them (measured on the lab): a
    server that leaves maintenance is up at once, its check health at RISE, and its checks decide `rise` (the delay)
    seconds later - a healthy one to the top of its health, an unhealthy one down; a down server with its checks
    started comes up `rise` seconds later when healthy."""

    def __init__(self, path, rise=0.3):
        self.path = path
        self.rise = rise
        self.lock = threading.Lock()
        self.log = []
        self.servers = {"app1": Server(1, "10.0.0.11"), "app2": Server(2, "10.0.0.12")}
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.bind(path)
        self.sock.listen(16)
        self.sock.settimeout(0.1)
        self.stopping = False
        self.thread = threading.Thread(target=self.serve, daemon=True)
        self.thread.start()

    def serve(self):
        while not self.stopping:
            try:
                conn, _addr = self.sock.accept()
            except socket.timeout:
                continue
            with conn:
                data = b""
                while not data.endswith(b"\n"):
                    chunk = conn.recv(4096)
                    if not chunk:
                        break
                    data += chunk
                line = data.decode().strip()
                with self.lock:
                    # Several commands in one line, separated by ';', run in order (HAProxy's CLI does the same).
                    self.log.append(line)
                    answer = "".join(self.answer(one.strip()) for one in line.split(";"))
                conn.sendall(answer.encode())

    def stop(self):
        self.stopping = True
        self.thread.join(5)
        self.sock.close()

    def commands(self):
        """What was sent besides reads."""
        return [line for line in self.log if not line.startswith("show ")]

    def tick(self):
        now = time.monotonic()
        for srv in self.servers.values():
            if srv.up_at is not None and now >= srv.up_at and srv.checks & hap.CHK_ST_ENABLED and not srv.admin & hap.FMAINT:
                srv.op, srv.health = (2, RISE + FALL - 1) if srv.healthy else (0, 0)
                srv.up_at = None
            if srv.sessions_end_at is not None and now >= srv.sessions_end_at:
                srv.scur, srv.sessions_end_at = 0, None

    def answer(self, line):
        self.tick()
        words = line.split()
        if words[:3] == ["show", "servers", "state"]:
            if words[3:] != ["app"]:
                return "Can't find backend.\n"
            rows = ["%d app %d %s %s %d %d %d 1 5 15 3 %d %d 0 0 0 - 8080 - 0 0 - - 0"
                    % (3, s.sid, name, s.addr, s.op, s.admin, s.weight, s.health, s.checks)
                    for name, s in self.servers.items()]
            return "1\n%s\n%s\n\n" % (HEADER, "\n".join(rows))
        if words == ["show", "stat"]:
            rows = ["app,%s,0,0,%d,9,,%s,%d,%s,%s," % (name, s.scur, "UP" if s.op == 2 else "DOWN", s.weight,
                                                       RISE if s.checks else "", FALL if s.checks else "")
                    for name, s in self.servers.items()]
            return ("# pxname,svname,qcur,qmax,scur,smax,lbtot,status,weight,check_rise,check_fall,\n%s\n"
                    "app,BACKEND,0,0,0,9,,UP,2,,,\n\n" % "\n".join(rows))
        target = words[2] if words[:2] == ["set", "server"] else (words[2] if len(words) == 3 else "")
        backend, _slash, name = target.partition("/")
        srv = self.servers.get(name) if backend == "app" else None
        if srv is None:
            return "No such server.\n"
        if words[:2] == ["set", "server"] and words[3] == "state":
            self.set_state(srv, words[4])
        elif words[:2] == ["set", "server"] and words[3] == "weight":
            srv.weight = int(words[4])
        elif words[1] == "health" and words[0] in ("enable", "disable"):
            if words[0] == "enable":
                srv.checks |= hap.CHK_ST_ENABLED
                self.start_checks(srv)
            else:
                srv.checks &= ~hap.CHK_ST_ENABLED  # HAProxy keeps the last state
        else:
            return "Unknown command.\n"
        return "\n"

    def set_state(self, srv, state):
        was_maint = srv.admin & hap.FMAINT
        srv.admin = {"ready": 0, "drain": hap.FDRAIN, "maint": hap.FMAINT}[state]
        if state == "maint":
            srv.op, srv.health, srv.up_at = 0, 0, None
        elif was_maint:
            # Up at once; with checks enabled its health starts at RISE and a check decides soon.
            srv.op = 2
            if srv.checks & hap.CHK_ST_ENABLED:
                srv.health = RISE
                self.start_checks(srv)

    def start_checks(self, srv):
        if srv.checks & hap.CHK_ST_ENABLED and (srv.op != 2 or srv.health <= RISE):
            srv.up_at = time.monotonic() + self.rise


@pytest.fixture
def haproxy(tmp_path):
    fake = FakeHAProxy(str(tmp_path / "admin.sock"))
    yield fake
    fake.stop()


def params(fake, **kw):
    p = {"backend": "app", "server": "app1", "state": None, "weight": None, "checks": None, "socket": fake.path,
         "wait": True, "drain_timeout": 5.0, "wait_up": False, "wait_if_down": False, "up_timeout": 5.0,
         "poll_interval": 0.05}
    p.update(kw)
    return p


def run(fake, check_mode=False, diff=False, **kw):
    return _lb.Member(params(fake, **kw), check_mode=check_mode, diff=diff).run()


def rebooted(fake, name="app1", healthy=True):
    """As after a reboot: HAProxy's checks have marked it down (and ours put it in maint)."""
    srv = fake.servers[name]
    srv.admin, srv.op, srv.healthy = hap.FMAINT, 0, healthy
    return srv


# drain, maint, ready, weight, checks


def test_drain_waits_until_the_sessions_end(haproxy):
    srv = haproxy.servers["app1"]
    srv.scur, srv.sessions_end_at = 2, time.monotonic() + 0.3
    r = run(haproxy, state="drain")
    assert r["changed"] and r["state"] == "drain" and r["previous_state"] == "ready" and r["sessions"] == 0
    assert 0.2 <= r["waited"] < 3 and r["op_state"] == "up"
    assert haproxy.commands() == ["set server app/app1 state drain"]
    assert srv.admin == hap.FDRAIN


def test_drain_fails_when_sessions_stay(haproxy):
    haproxy.servers["app1"].scur = 3
    with pytest.raises(_lb.LbError) as err:
        run(haproxy, state="drain", drain_timeout=0.3)
    assert "app/app1 still has 3 sessions" in err.value.msg and "it stays in drain" in err.value.msg
    assert err.value.result["sessions"] == 3 and err.value.result["state"] == "drain"
    assert err.value.result["waited"] >= 0.3 and haproxy.servers["app1"].admin == hap.FDRAIN


def test_unchanged_when_already_as_asked(haproxy):
    r = run(haproxy, state="ready", weight=1, checks="enabled")
    assert not r["changed"] and r["state"] == "ready" and r["weight"] == 1 and r["checks"] == "enabled"
    assert haproxy.commands() == []


def test_weight_and_checks_are_sent_and_read_back(haproxy):
    r = run(haproxy, weight=10, checks="disabled", diff=True)
    assert r["changed"] and r["weight"] == 10 and r["previous_weight"] == 1 and r["checks"] == "disabled"
    assert haproxy.commands() == ["set server app/app1 weight 10", "disable health app/app1"]
    assert r["diff"] == {"before": {"state": "ready", "weight": 1, "checks": "enabled"},
                         "after": {"state": "ready", "weight": 10, "checks": "disabled"}}
    assert haproxy.servers["app1"].weight == 10 and not haproxy.servers["app1"].checks & hap.CHK_ST_ENABLED


def test_weight_out_of_range_sends_nothing(haproxy):
    with pytest.raises(_lb.LbError, match="weight must be from 0 to 256, got 300"):
        run(haproxy, weight=300)
    assert haproxy.log == []


def test_check_mode_changes_nothing_and_does_not_wait(haproxy):
    rebooted(haproxy)
    started = time.monotonic()
    r = run(haproxy, check_mode=True, state="ready", wait_up=True, up_timeout=5)
    assert time.monotonic() - started < 1
    assert r["changed"] and r["state"] == "ready" and r["previous_state"] == "maint" and r["op_state"] == "down"
    assert r["waited"] == 0.0 and haproxy.commands() == []
    assert haproxy.servers["app1"].admin == hap.FMAINT


def test_unknown_server_and_backend_are_named(haproxy):
    with pytest.raises(hap.HAProxyError, match=r"no server app9 in backend app \(it has: app1, app2\)"):
        run(haproxy, server="app9", state="drain")
    with pytest.raises(hap.HAProxyError, match=r"no server app1 in backend web \(it has: no such backend\)"):
        run(haproxy, backend="web", state="drain")
    assert haproxy.commands() == []


@pytest.mark.parametrize("field, name", [
    ("server", "app1;disable server app/app2"),
    ("server", "app1\nset server app/app2 state maint"),
    ("server", "app1 "),
    ("server", "app1\n"),
    ("backend", "app;shutdown sessions server app/app2"),
    ("backend", ""),
])
@pytest.mark.parametrize("check_mode", [False, True])
def test_a_name_that_would_inject_a_command_is_refused_before_anything_is_sent(haproxy, field, name, check_mode):
    with pytest.raises(_lb.LbError, match="%s %s is not a valid HAProxy name: use only letters, digits and - _ . :"
                       % (field, re.escape(repr(name)))):
        run(haproxy, check_mode=check_mode, state="drain", **{field: name})
    assert haproxy.log == [], "not even a read reached the runtime API"
    assert [s.admin for s in haproxy.servers.values()] == [0, 0]


def test_names_haproxy_allows_pass(haproxy):
    haproxy.servers["web-1.example:80_a"] = haproxy.servers.pop("app2")
    r = run(haproxy, server="web-1.example:80_a", state="drain")
    assert r["changed"] and haproxy.commands() == ["set server app/web-1.example:80_a state drain"]


def test_module_refuses_an_injected_name_and_sends_nothing(haproxy, capsys):
    code, out = module_run(capsys, {"backend": "app", "server": "app1;set server app/app2 state maint",
                                    "state": "drain", "socket": haproxy.path})
    assert code == 1 and "is not a valid HAProxy name" in out["msg"] and "Nothing was sent" in out["msg"]
    assert haproxy.log == []


# wait_up


def watch(fake, srv):
    """The server's (admin state, check health) at every `show servers state` read lb_member makes."""
    seen = []
    answer = fake.answer

    def watching(line):
        if line.startswith("show servers state"):
            seen.append((srv.admin, srv.health))
        return answer(line)

    fake.answer = watching
    return seen


def test_wait_up_from_maintenance_warms_in_drain_and_sets_ready_once_a_check_passed(haproxy):
    srv = rebooted(haproxy)
    seen = watch(haproxy, srv)
    r = run(haproxy, state="ready", wait_up=True, up_timeout=5, weight=3)
    assert r["changed"] and r["state"] == "ready" and r["op_state"] == "up" and r["weight"] == 3
    assert 0.2 <= r["waited"] < 3, "it waited about `rise` for HAProxy's checks"
    assert srv.op == 2 and srv.admin == 0
    assert haproxy.commands() == ["set server app/app1 state drain", "set server app/app1 weight 3",
                                  "set server app/app1 state ready"]
    # It took no traffic before a check passed: in drain (not ready) all the while its health was at rise.
    assert all(admin == hap.FDRAIN for admin, health in seen if health <= RISE) and len(seen) > 2


@pytest.mark.parametrize("op, health", [(0, 0), (2, RISE)])
def test_wait_up_from_a_drain_no_check_passed_in_waits_there_first(haproxy, op, health):
    # Down (its checks failed while its instance restarted), or up only because it left maintenance.
    srv = haproxy.servers["app1"]
    srv.admin, srv.op, srv.health = hap.FDRAIN, op, health
    haproxy.start_checks(srv)
    seen = watch(haproxy, srv)
    r = run(haproxy, state="ready", wait_up=True, up_timeout=5)
    assert r["changed"] and r["state"] == "ready" and r["op_state"] == "up" and 0.2 <= r["waited"] < 3
    assert haproxy.commands() == ["set server app/app1 state ready"]
    assert all(admin == hap.FDRAIN for admin, health in seen if health <= RISE) and len(seen) > 2


def test_wait_if_down_waits_in_drain_for_a_server_its_checks_saw_go_down_then_sets_it_ready(haproxy):
    # Its checks failed while its service restarted, out of rotation: it takes no traffic before they see it up.
    srv = haproxy.servers["app1"]
    srv.admin, srv.op, srv.health = hap.FDRAIN, 0, 0
    haproxy.start_checks(srv)
    seen = watch(haproxy, srv)
    r = run(haproxy, state="ready", wait_if_down=True)
    assert r["changed"] and r["state"] == "ready" and r["op_state"] == "up" and 0.2 <= r["waited"] < 3
    assert haproxy.commands() == ["set server app/app1 state ready"]
    assert all(admin == hap.FDRAIN for admin, health in seen if health <= RISE) and len(seen) > 2


@pytest.mark.parametrize("health", [RISE, RISE + FALL - 1])
def test_wait_if_down_sets_a_server_its_checks_see_up_ready_at_once(haproxy, health):
    # Up: every check passed, or one failed during the restart and it is still up (fall 2).
    srv = haproxy.servers["app1"]
    srv.admin, srv.health = hap.FDRAIN, health
    r = run(haproxy, state="ready", wait_if_down=True)
    assert r["changed"] and r["state"] == "ready" and r["waited"] == 0.0
    assert haproxy.commands() == ["set server app/app1 state ready"]


def test_wait_if_down_leaves_a_server_no_check_passes_in_drain(haproxy):
    srv = haproxy.servers["app1"]
    srv.admin, srv.op, srv.health, srv.healthy = hap.FDRAIN, 0, 0, False
    with pytest.raises(_lb.LbError) as err:
        run(haproxy, state="ready", wait_if_down=True, up_timeout=0.4)
    assert "was not set ready: HAProxy's checks do not see it up after 0.4 s" in err.value.msg
    assert srv.admin == hap.FDRAIN and haproxy.commands() == []


def test_wait_up_from_a_checked_drain_sets_ready_at_once(haproxy):
    haproxy.servers["app1"].admin = hap.FDRAIN
    r = run(haproxy, state="ready", wait_up=True, up_timeout=5)
    assert r["changed"] and r["state"] == "ready" and r["op_state"] == "up" and r["waited"] < 0.2
    assert haproxy.commands() == ["set server app/app1 state ready"]


def test_without_wait_up_ready_returns_at_once_up_before_any_check(haproxy):
    srv = rebooted(haproxy, healthy=False)
    r = run(haproxy, state="ready")
    # HAProxy counts a server that leaves maintenance up at once, before its first check.
    assert r["changed"] and r["state"] == "ready" and r["op_state"] == "up" and r["waited"] == 0.0
    time.sleep(0.5)
    haproxy.tick()
    assert srv.op == 0, "its first check takes it down"


def test_wait_up_after_maintenance_waits_for_a_check_that_passed_and_fails_on_one_that_did_not(haproxy):
    srv = rebooted(haproxy)
    r = run(haproxy, state="drain", wait_up=True, up_timeout=5)
    assert r["state"] == "drain" and r["op_state"] == "up" and r["waited"] >= 0.2 and srv.health == RISE + FALL - 1
    rebooted(haproxy, healthy=False)
    with pytest.raises(_lb.LbError) as err:
        run(haproxy, state="drain", wait_up=True, up_timeout=0.2)
    assert "its operational state is up (srv_op_state 2)" in err.value.msg
    assert "HAProxy counts it up only because it left maintenance: none of its health checks has passed" in err.value.msg


def test_wait_up_also_when_already_ready(haproxy):
    srv = haproxy.servers["app1"]
    srv.op = 0
    haproxy.start_checks(srv)
    r = run(haproxy, state="ready", wait_up=True)
    assert not r["changed"] and r["op_state"] == "up" and r["waited"] >= 0.2
    assert haproxy.commands() == []


def test_wait_up_fails_after_up_timeout_naming_what_it_saw(haproxy):
    srv = haproxy.servers["app1"]
    srv.op, srv.health, srv.healthy = 0, 0, False
    with pytest.raises(_lb.LbError) as err:
        run(haproxy, state="ready", wait_up=True, up_timeout=0.4)
    msg = err.value.msg
    assert "server app1 of backend app is ready, but HAProxy's checks do not see it up" in msg
    assert "its operational state is down (srv_op_state 0) after 0.4 s (up_timeout)" in msg and "10.0.0.11" in msg
    assert err.value.result["op_state"] == "down" and err.value.result["state"] == "ready"
    assert 0.4 <= err.value.result["waited"] < 2
    assert srv.admin == 0, "it stays ready"


@pytest.mark.parametrize("timeout, op", [(0.2, "up"), (0.6, "down")])
def test_a_server_from_maintenance_no_check_passes_is_left_in_drain(haproxy, timeout, op):
    srv = rebooted(haproxy, healthy=False)
    with pytest.raises(_lb.LbError) as err:
        run(haproxy, state="ready", wait_up=True, up_timeout=timeout)
    msg = err.value.msg
    assert msg.startswith("server app1 of backend app was not set ready: HAProxy's checks do not see it up after")
    assert "It stays in drain, where it takes no traffic." in msg and "10.0.0.11" in msg
    assert ("counts it up only because it left maintenance" in msg) == (op == "up")
    assert err.value.result["state"] == "drain" and err.value.result["op_state"] == op
    assert srv.admin == hap.FDRAIN and haproxy.commands() == ["set server app/app1 state drain"]


def test_without_checks_enabled_ready_from_maintenance_is_one_command(haproxy):
    srv = rebooted(haproxy)
    srv.checks, srv.op = CHECKS_OFF, 0
    r = run(haproxy, state="ready", wait_up=True, up_timeout=1)
    assert r["state"] == "ready" and r["op_state"] == "up" and r["waited"] < 0.5
    assert haproxy.commands() == ["set server app/app1 state ready"]


def test_wait_up_with_checks_disabled_and_down_says_so(haproxy):
    # Its checks were turned off while it was down: HAProxy keeps it down.
    srv = haproxy.servers["app1"]
    srv.op, srv.health, srv.checks = 0, 0, CHECKS_OFF
    with pytest.raises(_lb.LbError, match="health checks are disabled, so HAProxy keeps it down"):
        run(haproxy, state="ready", wait_up=True, up_timeout=0.3)


def test_wait_up_with_checks_disabled_but_up_is_up(haproxy):
    haproxy.servers["app1"].checks = CHECKS_OFF
    r = run(haproxy, state="ready", wait_up=True, up_timeout=2)
    assert r["op_state"] == "up" and r["checks"] == "disabled" and r["waited"] < 1


def test_wait_up_for_a_server_without_checks(haproxy):
    srv = rebooted(haproxy)
    srv.checks = NO_CHECKS
    r = run(haproxy, state="ready", wait_up=True, up_timeout=2)
    assert r["op_state"] == "up" and r["waited"] < 1 and srv.op == 2


def test_wait_up_is_ignored_for_maint(haproxy):
    r = run(haproxy, state="maint", wait_up=True, up_timeout=5)
    assert r["state"] == "maint" and r["op_state"] == "down" and r["waited"] < 1


# the module


def module_run(capsys, args):
    return fakes.run_main(lb_member.main, capsys, args)


def test_module_ready_with_wait_up(haproxy, capsys):
    rebooted(haproxy)
    code, out = module_run(capsys, {"backend": "app", "server": "app1", "state": "ready", "wait_up": True,
                                    "up_timeout": 5, "poll_interval": 0.05, "socket": haproxy.path})
    assert code == 0 and out["changed"] and out["op_state"] == "up" and out["state"] == "ready"
    assert out["previous_state"] == "maint" and out["waited"] >= 0.2


def test_module_wait_up_timeout_fails_with_the_state(haproxy, capsys):
    rebooted(haproxy, healthy=False)
    code, out = module_run(capsys, {"backend": "app", "server": "app1", "state": "ready", "wait_up": True,
                                    "up_timeout": "0.3", "poll_interval": 0.05, "socket": haproxy.path})
    assert code == 1 and out["failed"] and out["op_state"] == "down" and out["state"] == "drain"
    assert "after 0.3 s (up_timeout" in out["msg"] and "It stays in drain" in out["msg"]


def test_module_check_mode_and_a_missing_socket(haproxy, capsys):
    rebooted(haproxy)
    code, out = module_run(capsys, {"backend": "app", "server": "app1", "state": "ready", "wait_up": True,
                                    "socket": haproxy.path, "_ansible_check_mode": True})
    assert code == 0 and out["changed"] and out["op_state"] == "down" and haproxy.commands() == []
    gone = os.path.join(os.path.dirname(haproxy.path), "nope.sock")
    code, out = module_run(capsys, {"backend": "app", "server": "app1", "state": "drain", "socket": gone})
    assert code == 1 and "cannot talk to HAProxy's runtime API at %s" % gone in out["msg"]


# replaces: the flip between two servers of one host


def flip_ready(fake, old="app1", new="app2"):
    """The new release's server in maint with a healthy instance behind it; the old one serving 2 requests that
    end 0.3 s from now, at weight 100."""
    o, n = fake.servers[old], fake.servers[new]
    o.weight, o.scur, o.sessions_end_at = 100, 2, time.monotonic() + 0.3
    n.admin, n.op, n.healthy, n.weight = hap.FMAINT, 0, True, 100
    return o, n


def test_a_flip_warms_the_new_server_in_drain_then_moves_traffic_in_one_call_and_drains_the_old(haproxy):
    old, new = flip_ready(haproxy)
    r = run(haproxy, server="app2", replaces="app1", diff=True)
    assert r["changed"] and r["state"] == "ready" and r["previous_state"] == "maint" and r["op_state"] == "up"
    assert r["replaced"] == {"server": "app1", "previous_state": "ready", "state": "maint", "sessions": 0}
    assert r["flipped_at"] and r["waited"] >= 0.3
    assert haproxy.commands() == ["set server app/app2 state drain",
                                  "set server app/app2 state ready;set server app/app1 state drain",
                                  "set server app/app1 state maint"]
    assert (new.admin, old.admin, old.scur) == (0, hap.FMAINT, 0)
    assert r["diff"] == {"before": {"app2": "maint", "app1": "ready"}, "after": {"app2": "ready", "app1": "maint"}}
    # Again: nothing to do. Swapped: the flip back.
    assert not run(haproxy, server="app2", replaces="app1")["changed"]
    back = run(haproxy, server="app1", replaces="app2")
    assert back["changed"] and (old.admin, new.admin) == (0, hap.FMAINT)


def test_a_new_server_its_checks_never_see_up_is_left_in_drain_and_the_old_one_serves_on(haproxy):
    old, new = flip_ready(haproxy)
    new.healthy = False
    with pytest.raises(_lb.LbError) as err:
        run(haproxy, server="app2", replaces="app1", up_timeout=0.3)
    assert "app/app2 is not up in HAProxy's health checks after 0.3 s" in err.value.msg
    assert "app/app1 still serves" in err.value.msg and "left in drain" in err.value.msg
    assert (old.admin, new.admin) == (0, hap.FDRAIN)
    assert not any("app1" in line for line in haproxy.commands())


def test_an_old_server_whose_sessions_stay_is_left_in_drain_after_the_flip(haproxy):
    old, new = flip_ready(haproxy)
    old.sessions_end_at = None
    with pytest.raises(_lb.LbError) as err:
        run(haproxy, server="app2", replaces="app1", drain_timeout=0.3)
    assert "app/app2 serves now, but app/app1 still has 2 sessions" in err.value.msg
    assert "must not be stopped yet" in err.value.msg
    assert (new.admin, old.admin) == (0, hap.FDRAIN)
    assert err.value.result["replaced"]["state"] == "drain"


def test_a_flip_without_wait_leaves_the_old_server_draining_and_a_later_maint_waits_for_its_requests(haproxy):
    old, new = flip_ready(haproxy)
    old.sessions_end_at = None
    r = run(haproxy, server="app2", replaces="app1", wait=False, diff=True)
    assert r["changed"] and r["state"] == "ready" and r["flipped_at"]
    assert r["replaced"] == {"server": "app1", "previous_state": "ready", "state": "drain", "sessions": 2}
    assert r["diff"]["after"] == {"app2": "ready", "app1": "drain"}
    assert haproxy.commands() == ["set server app/app2 state drain",
                                  "set server app/app2 state ready;set server app/app1 state drain"]
    assert (new.admin, old.admin, old.scur) == (0, hap.FDRAIN, 2)
    # Again: nothing to do while it drains.
    assert not run(haproxy, server="app2", replaces="app1", wait=False)["changed"]
    # The old server's requests end in drain; maint waits for them.
    old.sessions_end_at = time.monotonic() + 0.2
    done = run(haproxy, server="app1", state="maint", drain_timeout=5)
    assert done["changed"] and done["state"] == "maint" and done["sessions"] == 0 and done["waited"] > 0
    assert (new.admin, old.admin, old.scur) == (0, hap.FMAINT, 0)


def test_the_new_server_takes_the_old_ones_weight_unless_one_is_given(haproxy):
    old, new = flip_ready(haproxy)
    old.weight, new.weight = 22, 100
    assert run(haproxy, server="app2", replaces="app1")["weight"] == 22
    assert "set server app/app2 state drain;set server app/app2 weight 22" in haproxy.commands()
    assert run(haproxy, server="app1", replaces="app2", weight=50)["weight"] == 50


def test_a_flip_in_check_mode_sends_nothing(haproxy):
    flip_ready(haproxy)
    r = run(haproxy, check_mode=True, server="app2", replaces="app1")
    assert r["changed"] and r["state"] == "ready" and r["replaced"]["state"] == "maint" and r["flipped_at"] is None
    assert haproxy.commands() == []


@pytest.mark.parametrize("kw, says", [
    ({"replaces": "app2"}, "replaces names the server itself"),
    ({"replaces": "app1", "state": "drain"}, "the server is set ready"),
    ({"replaces": "app1;show stat"}, "is not a valid HAProxy name"),
])
def test_a_flip_asked_wrongly_sends_nothing(haproxy, kw, says):
    with pytest.raises(_lb.LbError) as err:
        run(haproxy, server="app2", **kw)
    assert says in err.value.msg
    assert haproxy.commands() == []


def test_several_commands_go_in_one_connection_each_checked_first(haproxy):
    hap.commands(haproxy.path, ["set server app/app1 weight 5", "set server app/app2 weight 6"])
    assert haproxy.log[-1] == "set server app/app1 weight 5;set server app/app2 weight 6"
    with pytest.raises(hap.HAProxyError):
        hap.commands(haproxy.path, ["set server app/app1 weight 7", "show stat\nshutdown sessions server app/app1"])
    assert haproxy.servers["app1"].weight == 5


# flips: a batch of hosts flipped in one call


def batch_ready(fake):
    """Two hosts, each with its old server serving (app1, app3) and its new one in maint with a healthy instance
    behind it (app2, app4); the old ones serve 2 requests each that end 0.3 s from now."""
    fake.servers["app3"] = Server(3, "10.0.0.13")
    fake.servers["app4"] = Server(4, "10.0.0.14")
    flip_ready(fake, "app1", "app2")
    return flip_ready(fake, "app3", "app4")


FLIPS = [{"server": "app2", "replaces": "app1"}, {"server": "app4", "replaces": "app3", "weight": 7}]


def run_flips(fake, flips=None, check_mode=False, diff=False, **kw):
    return run(fake, check_mode=check_mode, diff=diff, server=None, flips=FLIPS if flips is None else flips, **kw)


def test_flips_warm_every_new_server_then_move_the_whole_batch_in_one_call(haproxy):
    batch_ready(haproxy)
    for name in ("app1", "app3"):
        haproxy.servers[name].sessions_end_at = time.monotonic() + 1.0
    r = run_flips(haproxy, wait=False, diff=True)
    assert r["changed"] and r["flipped_at"]
    assert haproxy.commands() == [
        "set server app/app2 state drain;set server app/app4 state drain;set server app/app4 weight 7",
        "set server app/app2 state ready;set server app/app1 state drain;"
        "set server app/app4 state ready;set server app/app3 state drain"]
    assert [(f["server"], f["state"], f["weight"], f["op_state"], f["replaced"]["state"], f["replaced"]["sessions"])
            for f in r["flips"]] == [("app2", "ready", 100, "up", "drain", 2), ("app4", "ready", 7, "up", "drain", 2)]
    assert r["diff"] == {"before": {"app2": "maint", "app1": "ready", "app4": "maint", "app3": "ready"},
                         "after": {"app2": "ready", "app1": "drain", "app4": "ready", "app3": "drain"}}
    # Again: nothing to do while the old ones drain; with wait, they go to maint once their requests ended.
    assert not run_flips(haproxy, wait=False)["changed"]
    done = run_flips(haproxy)
    assert done["changed"] and [f["replaced"]["state"] for f in done["flips"]] == ["maint", "maint"]
    assert haproxy.commands()[-1] == "set server app/app1 state maint;set server app/app3 state maint"
    assert not run_flips(haproxy)["changed"]


def test_flips_move_nothing_when_one_new_server_is_not_up(haproxy):
    batch_ready(haproxy)
    haproxy.servers["app4"].healthy = False
    with pytest.raises(_lb.LbError) as err:
        run_flips(haproxy, up_timeout=0.4)
    assert "app/app4 (down) is not up in HAProxy's health checks after 0.4 s" in err.value.msg
    assert "so no traffic was moved: app/app1, app/app3 still serve" in err.value.msg
    assert not any("state ready" in line for line in haproxy.commands())
    assert [haproxy.servers[n].admin for n in ("app1", "app2", "app3", "app4")] == [0, hap.FDRAIN, 0, hap.FDRAIN]
    assert [f["state"] for f in err.value.result["flips"]] == ["drain", "drain"]


def test_flips_name_the_old_servers_whose_sessions_stay(haproxy):
    batch_ready(haproxy)
    haproxy.servers["app3"].sessions_end_at = None
    with pytest.raises(_lb.LbError) as err:
        run_flips(haproxy, drain_timeout=0.5)
    assert ("the new servers serve now, but sessions stay after 0.5 s (drain_timeout) on app/app3 (2): it stays in "
            "drain, so its old instance must not be stopped yet") == err.value.msg
    assert (haproxy.servers["app1"].admin, haproxy.servers["app3"].admin) == (hap.FMAINT, hap.FDRAIN)


def test_flips_in_check_mode_send_nothing_and_say_what_would_change(haproxy):
    batch_ready(haproxy)
    r = run_flips(haproxy, check_mode=True)
    assert r["changed"] and r["flipped_at"] is None and haproxy.commands() == []
    assert [(f["state"], f["replaced"]["state"]) for f in r["flips"]] == [("ready", "maint"), ("ready", "maint")]


@pytest.mark.parametrize("kw, says", [
    ({"flips": []}, "flips is empty"),
    ({"flips": [{"server": "app2", "replaces": "app2"}]}, "names its server itself (app2)"),
    ({"flips": [{"server": "app2", "replaces": "app1"}, {"server": "app3", "replaces": "app2"}]},
     "server app2 is named in more than one flip"),
    ({"flips": [{"server": "app2", "replaces": "app1;show stat"}]}, "is not a valid HAProxy name"),
    ({"flips": [{"server": "app2", "replaces": "app1", "weight": 300}]}, "weight must be from 0 to 256"),
    ({"flips": FLIPS, "state": "drain"}, "flips cannot be given with state"),
])
def test_flips_asked_wrongly_send_nothing(haproxy, kw, says):
    with pytest.raises(_lb.LbError) as err:
        run(haproxy, **dict({"server": None}, **kw))
    assert says in err.value.msg
    assert haproxy.commands() == []


def test_module_flips(haproxy, capsys):
    batch_ready(haproxy)
    args = {"backend": "app", "flips": FLIPS, "wait": False, "up_timeout": 5, "poll_interval": 0.05,
            "socket": haproxy.path}
    code, out = module_run(capsys, args)
    assert code == 0 and out["changed"] and [f["server"] for f in out["flips"]] == ["app2", "app4"]
    code, out = module_run(capsys, dict(args, server="app2"))
    assert code == 1 and "mutually exclusive" in out["msg"]


# servers: several servers set to drain or maint in one call, and waited on together


def four(fake):
    """app1-app4: app1 and app2 serving, app3 and app4 in maint with healthy instances behind them."""
    fake.servers["app3"] = Server(3, "10.0.0.13", admin=hap.FMAINT, op=0)
    fake.servers["app4"] = Server(4, "10.0.0.14", admin=hap.FMAINT, op=0)
    return fake


def run_servers(fake, servers, check_mode=False, diff=False, **kw):
    return run(fake, check_mode=check_mode, diff=diff, server=None, servers=servers, **kw)


def test_servers_warm_in_one_call_and_wait_until_a_check_of_every_one_passed(haproxy):
    four(haproxy)
    r = run_servers(haproxy, ["app3", "app4"], state="drain", wait=False, wait_up=True, diff=True)
    assert r["changed"] and r["waited"] >= 0.3
    assert haproxy.commands() == ["set server app/app3 state drain;set server app/app4 state drain"]
    assert [(s["server"], s["previous_state"], s["state"], s["op_state"], s["up"]) for s in r["servers"]] == [
        ("app3", "maint", "drain", "up", True), ("app4", "maint", "drain", "up", True)]
    assert [haproxy.servers[n].health for n in ("app3", "app4")] == [RISE + FALL - 1] * 2, "a check of each passed"
    assert r["diff"] == {"before": {"app3": "maint", "app4": "maint"}, "after": {"app3": "drain", "app4": "drain"}}
    # Again: nothing to send, and checked up at once.
    again = run_servers(haproxy, ["app3", "app4"], state="drain", wait=False, wait_up=True)
    assert not again["changed"] and len(haproxy.commands()) == 1 and all(s["up"] for s in again["servers"])


def test_servers_name_the_one_whose_checks_never_see_it_up_and_every_one_stays_in_drain(haproxy):
    four(haproxy)
    haproxy.servers["app4"].healthy = False
    with pytest.raises(_lb.LbError) as err:
        run_servers(haproxy, ["app3", "app4"], state="drain", wait=False, wait_up=True, up_timeout=0.6)
    assert err.value.msg.startswith("app/app4 not up in HAProxy's health checks after 0.6 s (up_timeout): app4 is down "
                                    "at 10.0.0.14. It stays in drain, where it takes no traffic"), err.value.msg
    assert [(s["server"], s["state"], s["up"]) for s in err.value.result["servers"]] == [
        ("app3", "drain", True), ("app4", "drain", False)]
    assert not any("ready" in line for line in haproxy.commands())


def test_servers_retire_each_once_its_sessions_ended_and_keep_the_one_whose_sessions_stay(haproxy):
    four(haproxy)
    app1, app2 = haproxy.servers["app1"], haproxy.servers["app2"]
    app1.admin, app1.scur, app1.sessions_end_at = hap.FDRAIN, 2, time.monotonic() + 0.3
    app2.scur = 1  # ready, and its request does not end
    with pytest.raises(_lb.LbError) as err:
        run_servers(haproxy, ["app1", "app2", "app3"], state="maint", drain_timeout=0.6)
    assert err.value.msg == ("sessions stay after 0.6 s (drain_timeout) on app/app2 (1): it stays in drain, so its "
                             "instance must not be stopped yet")
    # app2 drained first (it was ready), app3 was in maint already: app1 alone goes to maint, once its requests ended.
    assert haproxy.commands() == ["set server app/app2 state drain", "set server app/app1 state maint"]
    assert [(s["server"], s["previous_state"], s["state"], s["sessions"]) for s in err.value.result["servers"]] == [
        ("app1", "drain", "maint", 0), ("app2", "ready", "drain", 1), ("app3", "maint", "maint", 0)]
    assert err.value.result["waited"] >= 0.6
    # Once its request ended, the same task puts it in maint too.
    app2.scur = 0
    r = run_servers(haproxy, ["app1", "app2", "app3"], state="maint")
    assert r["changed"] and [s["state"] for s in r["servers"]] == ["maint"] * 3
    assert not run_servers(haproxy, ["app1", "app2", "app3"], state="maint")["changed"]


def test_servers_without_wait_go_to_maint_in_one_call(haproxy):
    haproxy.servers["app1"].scur = 3
    r = run_servers(haproxy, ["app1", "app2"], state="maint", wait=False)
    assert r["changed"] and haproxy.commands() == ["set server app/app1 state maint;set server app/app2 state maint"]
    assert [s["sessions"] for s in r["servers"]] == [3, 0]


def test_servers_in_check_mode_send_nothing_and_say_what_would_change(haproxy):
    four(haproxy)
    r = run_servers(haproxy, ["app1", "app3"], state="drain", wait_up=True, check_mode=True, diff=True)
    assert r["changed"] and haproxy.commands() == []
    assert [(s["server"], s["previous_state"], s["state"]) for s in r["servers"]] == [
        ("app1", "ready", "drain"), ("app3", "maint", "drain")]
    assert haproxy.servers["app3"].admin == hap.FMAINT


@pytest.mark.parametrize("kw, says", [
    ({"servers": [], "state": "drain"}, "servers is empty"),
    ({"servers": ["app1", "app1"], "state": "drain"}, "server app1 is named twice"),
    ({"servers": ["app1;show stat"], "state": "drain"}, "is not a valid HAProxy name"),
    ({"servers": ["app1"], "state": "ready"}, "servers sets state=drain or state=maint (got state=ready)"),
    ({"servers": ["app1"], "state": "maint", "wait_up": True}, "wait_up with servers needs state=drain"),
    ({"servers": ["app1"], "state": "drain", "weight": 3}, "servers cannot be given with weight"),
    ({"servers": ["app1"], "state": "drain", "server": "app2"}, "servers cannot be given with server"),
])
def test_servers_asked_wrongly_send_nothing(haproxy, kw, says):
    with pytest.raises(_lb.LbError) as err:
        run(haproxy, **dict({"server": None}, **kw))
    assert says in err.value.msg
    assert haproxy.commands() == []


def test_module_servers(haproxy, capsys):
    four(haproxy)
    args = {"backend": "app", "servers": ["app3", "app4"], "state": "drain", "wait": False, "wait_up": True,
            "up_timeout": 5, "poll_interval": 0.05, "socket": haproxy.path}
    code, out = module_run(capsys, args)
    assert code == 0 and out["changed"] and [s["server"] for s in out["servers"]] == ["app3", "app4"]
    code, out = module_run(capsys, dict(args, flips=[{"server": "app2", "replaces": "app1"}]))
    assert code == 1 and "mutually exclusive" in out["msg"]
    code, out = module_run(capsys, {k: v for k, v in args.items() if k != "state"})
    assert code == 1 and "state" in out["msg"], out
    haproxy.servers["app1"].scur = 1
    code, out = module_run(capsys, dict(args, servers=["app1"], state="maint", wait=True, wait_up=False,
                                        drain_timeout=0.2))
    assert code == 1 and out["failed"] and out["servers"][0]["sessions"] == 1 and "app/app1 (1)" in out["msg"]
