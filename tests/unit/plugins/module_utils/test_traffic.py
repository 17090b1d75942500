"""The canary's traffic from HAProxy's counters: parsing `show stat`, rates between samples, the verdict, the
observation loop on a fake clock, and the traffic_check module against a real Unix socket answering as HAProxy."""


import pytest


import fakes
from fakes import Clock

from ansible_collections.seedops.deploy.plugins.module_utils import _haproxy as hap
from ansible_collections.seedops.deploy.plugins.module_utils import _traffic
from ansible_collections.seedops.deploy.plugins.modules import traffic_check

HEADER = ("# pxname,svname,qcur,scur,stot,econ,eresp,wretr,wredis,status,weight,hrsp_1xx,hrsp_2xx,hrsp_3xx,hrsp_4xx,"
          "hrsp_5xx,hrsp_other,rtime,\n")


def stat(**servers):
    """A `show stat` answer: servers as name=(2xx, 5xx, eresp, econ, rtime)."""
    lines = [HEADER, "app_in,FRONTEND,0,0,9,,,,,OPEN,,0,9,0,0,0,0,,\n"]
    for name, (ok, bad, eresp, econ, rtime) in servers.items():
        lines.append("app,%s,0,0,%d,%d,%d,0,0,UP,1,0,%d,0,1,%d,0,%d,\n" % (name, ok + bad, econ, eresp, ok, bad, rtime))
    lines.append("app,BACKEND,0,0,0,0,0,0,0,UP,3,0,0,0,0,0,0,0,\n")
    lines.append("other,x1,0,0,5,0,0,0,0,UP,1,0,5,0,0,0,0,1,\n")
    return "".join(lines)


def test_counters_of_one_backend():
    got = _traffic.counters(stat(app1=(10, 2, 1, 0, 7), app2=(5, 0, 0, 0, 3)), "app")
    assert sorted(got) == ["app1", "app2"]
    assert got["app1"]["hrsp_2xx"] == 10 and got["app1"]["hrsp_5xx"] == 2 and got["app1"]["eresp"] == 1
    assert got["app1"]["hrsp_4xx"] == 1 and got["app1"]["rtime"] == 7


def test_window_mean_undoes_haproxys_moving_mean():
    """HAProxy moves its mean by 1/512 of each sample's distance: replaying that gives back the window's mean."""
    moving = 100.0
    for _i in range(200):
        moving += (300.0 - moving) / 512
    assert 160 < moving < 200, "the moving mean still mostly remembers the old release"
    assert _traffic.window_mean(100.0, moving, 200) == pytest.approx(300.0, abs=0.2)
    assert _traffic.window_mean(100.0, 100.0, 50) == pytest.approx(100.0)
    assert _traffic.window_mean(100.0, 120.0, 0) is None
    assert _traffic.window_mean(100.0, 0.0, 10) == 0.0, "never below zero"


class SlidingMean:
    """HAProxy's response-time mean of one server as its stats show it (swrate_add and swrate_avg in integer
    arithmetic, TIME_STATS_SAMPLES 512): a decaying sum, divided by 512 - or by the server's requests in all
    (req_tot) while it has served fewer."""

    def __init__(self):
        self.sum = 0
        self.served = 0

    def add(self, ms, count=1):
        for _i in range(count):
            self.sum = self.sum - (self.sum + 511) // 512 + ms
            self.served += 1

    def shown(self):
        window = self.served if 0 < self.served < 512 else 512
        return (self.sum + window - 1) // window


@pytest.mark.parametrize("before, window", [
    (0, 100),       # a server new to traffic (the new instance of a beside canary): HAProxy shows the plain mean
    (60, 300),      # a server that had served a few requests, still below 512 at the end
    (400, 400),     # one that passes 512 in the window
    (5000, 200),    # one that has served long (the moving mean proper)
])
def test_window_mean_gives_back_the_windows_mean_whatever_the_server_served_before(before, window):
    """1 in 10 responses takes a second and the others 5 ms in the window (104.5 ms on average); before it, 20 ms."""
    mean = SlidingMean()
    mean.add(20, before)
    start = (mean.shown(), mean.served)
    for i in range(window):
        mean.add(1000 if i % 10 == 9 else 5)
    got = _traffic.window_mean(start[0], mean.shown(), window, start[1], mean.served)
    assert got == pytest.approx(104.5, rel=0.1), (start, mean.shown())
    if before == 0:
        # Before: the shown mean (the plain mean, about 100 ms) was read as the tail of a 512-sample moving mean and
        # came out 5.6 times too high - a good canary failed on its response time.
        assert _traffic.window_mean(start[0], mean.shown(), window) > 500


def test_delta_reads_each_servers_requests_in_all_so_a_server_new_to_traffic_gets_its_plain_mean():
    """req_tot, HAProxy's count of a server's requests, is what its mean is divided by below 512."""
    header = "# pxname,svname,stot,econ,eresp,hrsp_2xx,hrsp_5xx,rtime,req_tot,\n"
    before = _traffic.counters(header + "app,new,0,0,0,0,0,0,0,\napp,old,9000,0,0,9000,0,20,9000,\n", "app")
    after = _traffic.counters(header + "app,new,100,0,0,100,0,104,100,\napp,old,9100,0,0,9100,0,20,9100,\n", "app")
    assert (before["new"]["served"], after["new"]["served"], after["old"]["served"]) == (0, 100, 9100)
    traffic = _traffic.delta(before, after, 5)
    assert traffic["new"]["rtime_ms"] == pytest.approx(104 * 100 / (512 * (1 - (1 - 1 / 512.0) ** 100)), abs=0.1)
    assert 110 < traffic["new"]["rtime_ms"] < 120 and traffic["old"]["rtime_ms"] == pytest.approx(20, abs=0.1)


def test_delta_counts_requests_and_errors_between_samples_and_survives_a_counter_reset():
    before = _traffic.counters(stat(app1=(100, 0, 0, 0, 5), app2=(900, 9, 0, 0, 5)), "app")
    after = _traffic.counters(stat(app1=(150, 40, 2, 3, 50), app2=(10, 1, 0, 0, 6)), "app")
    traffic = _traffic.delta(before, after, 10)
    # app1: 50 2xx + 40 5xx (+ the fixed 4xx that did not move) + 2 response and 3 connection errors; its 90
    # answers moved HAProxy's moving mean from 5 to 50 ms, so they took about 284 ms on average.
    assert traffic["app1"] == {"requests": 95, "errors": 45, "5xx": 40, "connection_errors": 3, "response_errors": 2,
                               "retries": 0, "error_ratio": 0.4737, "rps": 9.5,
                               "rtime_ms": _traffic.window_mean(5, 50, 90), "rtime_moving_ms": 50}
    assert 280 < traffic["app1"]["rtime_ms"] < 288
    # app2's counters went down (HAProxy restarted): counted from zero, the moving mean taken as it is.
    assert (traffic["app2"]["requests"], traffic["app2"]["errors"], traffic["app2"]["rtime_ms"]) == (12, 1, 6)


def traffic(**servers):
    """Per-server traffic as delta() gives it: name=(requests, errors, rtime_ms)."""
    return {name: {"requests": r, "errors": e, "error_ratio": (e / float(r)) if r else None, "rtime_ms": ms}
            for name, (r, e, ms) in servers.items()}


LIMITS = {"max_error_ratio": 0.01, "max_response_ratio": 2.0, "max_response_ms": 0, "min_requests": 20,
          "min_timed_requests": 100}


def test_a_good_canary_passes_with_its_figures():
    result = _traffic.judge(traffic(app1=(200, 1, 6), app2=(400, 0, 5)), ["app1"], ["app2"], LIMITS)
    assert result["verdict"] == "pass", result
    assert result["canary"] == {"servers": ["app1"], "requests": 200, "errors": 1, "error_ratio": 0.005, "rtime_ms": 6.0}
    assert result["reasons"] == ["app1: error ratio 0.50% over 200 requests, response time 6.0 ms over 200; "
                                 "baseline 5.0 ms, error ratio 0.00%"]


def test_errors_above_the_limit_fail_it():
    result = _traffic.judge(traffic(app1=(200, 200, 1), app2=(400, 0, 5)), ["app1"], ["app2"], LIMITS)
    assert result["verdict"] == "fail"
    assert result["reasons"] == ["app1: error ratio 100.0% (200 of 200 requests) is above 1.0%"]
    five = _traffic.judge(traffic(app1=(200, 10, 5)), ["app1"], [], LIMITS)
    assert five["verdict"] == "fail" and "error ratio 5.0% (10 of 200 requests)" in five["reasons"][0]


def test_slow_against_the_baseline_or_an_absolute_limit_fails_it():
    slow = _traffic.judge(traffic(app1=(200, 0, 30), app2=(400, 0, 10)), ["app1"], ["app2"], LIMITS)
    assert slow["verdict"] == "fail" and slow["reasons"] == [
        "app1: response time 30 ms is above 2.0x the baseline's 10.0 ms (200 responses)"]
    # A baseline under 5 ms counts as 5 ms, so 1 ms against 4 ms is no failure.
    assert _traffic.judge(traffic(app1=(200, 0, 4), app2=(400, 0, 1)), ["app1"], ["app2"], LIMITS)["verdict"] == "pass"
    absolute = _traffic.judge(traffic(app1=(200, 0, 300)), ["app1"], [], dict(LIMITS, max_response_ms=250))
    assert absolute["verdict"] == "fail" and absolute["reasons"] == ["app1: response time 300 ms is above 250 ms"]
    off = dict(LIMITS, max_response_ratio=0)
    assert _traffic.judge(traffic(app1=(200, 0, 30), app2=(400, 0, 10)), ["app1"], ["app2"], off)["verdict"] == "pass"


def test_response_times_wait_for_enough_responses_and_count_every_step():
    # 40 responses with a few slow ones: a mean that swings with each of them is not judged yet.
    few = _traffic.judge(traffic(app1=(40, 0, 240), app2=(400, 0, 80)), ["app1"], ["app2"], LIMITS)
    assert few["verdict"] == "pass" and few["reasons"][-1] == "response time not judged yet (responses: app1 40; it needs 100)"
    # Over every step since the analysis began (timed) there are enough: judged on those.
    since = traffic(app1=(220, 0, 250), app2=(600, 0, 80))
    slow = _traffic.judge(traffic(app1=(40, 0, 240), app2=(400, 0, 80)), ["app1"], ["app2"], LIMITS, since)
    assert slow["verdict"] == "fail" and slow["reasons"] == [
        "app1: response time 250 ms is above 2.0x the baseline's 80.0 ms (220 responses)"]


def test_too_little_traffic_is_inconclusive_but_evidence_of_failure_is_not():
    thin = _traffic.judge(traffic(app1=(5, 0, 5), app2=(400, 0, 5)), ["app1"], ["app2"], LIMITS)
    assert thin["verdict"] == "inconclusive"
    assert thin["reasons"] == ["app1 served 5 requests, fewer than the 20 needed to judge it"]
    # Two canaries: one bad with enough traffic fails the group even while the other is still thin.
    mixed = _traffic.judge(traffic(app1=(5, 0, 5), app3=(50, 50, 5)), ["app1", "app3"], [], LIMITS)
    assert mixed["verdict"] == "fail" and mixed["reasons"][0].startswith("app3: error ratio 100.0%")
    idle = _traffic.judge(traffic(app1=(0, 0, 0)), ["app1"], [], dict(LIMITS, min_requests=0))
    assert idle["verdict"] == "inconclusive"


def test_errors_that_prove_it_fail_a_canary_before_min_requests():
    # Every one of its first 3 requests failed: no release within a 1% limit does that (99% confidence).
    early = _traffic.judge(traffic(app1=(3, 3, 5)), ["app1"], [], LIMITS)
    assert early["verdict"] == "fail" and early["reasons"] == [
        "app1: 3 of its first 3 requests failed - its error ratio is above 1.0% with 99% confidence"]
    # One failure in 15 requests proves nothing yet, nor does one in 1 against a 50% limit.
    assert _traffic.judge(traffic(app1=(15, 1, 5)), ["app1"], [], LIMITS)["verdict"] == "inconclusive"
    assert _traffic.judge(traffic(app1=(1, 1, 5)), ["app1"], [], dict(LIMITS, max_error_ratio=0.5))["verdict"] == "inconclusive"
    assert _traffic.wilson_lower(0, 10) == 0.0 and _traffic.wilson_lower(5, 0) == 0.0
    assert 0.42 < _traffic.wilson_lower(5, 5) < 0.44 and 0.01 < _traffic.wilson_lower(1, 10) < 0.013


def test_a_canary_the_load_balancer_does_not_know_fails():
    result = _traffic.judge(traffic(app2=(400, 0, 5)), ["app9"], ["app2"], LIMITS)
    assert result["verdict"] == "fail" and result["reasons"] == ["the load balancer has no server app9"]


def feed(answers):
    answers = list(answers)
    return lambda: answers.pop(0)


def test_observe_stops_at_the_first_failure_and_passes_only_at_the_end():
    clock = Clock()
    bad = [stat(app1=(0, 0, 0, 0, 1), app2=(0, 0, 0, 0, 5))] + [
        stat(app1=(0, 10 * i, 0, 0, 1), app2=(20 * i, 0, 0, 0, 5)) for i in range(1, 11)]
    result = _traffic.Observer("/x", "app", read=feed(bad), clock=clock, sleep=clock.sleep).observe(
        ["app1"], ["app2"], LIMITS, window=10)
    # 10 of 10 failed after the first second: proof enough, before min_requests (20).
    assert (result["verdict"], result["elapsed"], result["early"], result["samples"]) == ("fail", 1.0, True, 2)
    assert result["servers"]["app1"]["requests"] == 10

    clock = Clock()
    good = [stat(app1=(10 * i, 0, 0, 0, 5), app2=(20 * i, 0, 0, 0, 5)) for i in range(0, 6)]
    result = _traffic.Observer("/x", "app", read=feed(good), clock=clock, sleep=clock.sleep).observe(
        ["app1"], ["app2"], LIMITS, window=5)
    assert (result["verdict"], result["elapsed"], result["early"], result["samples"]) == ("pass", 5.0, False, 6)


def test_observe_of_a_backend_haproxy_does_not_have():
    with pytest.raises(hap.HAProxyError, match="no backend web"):
        _traffic.Observer("/x", "web", read=lambda: stat(app1=(1, 0, 0, 0, 1))).sample()
    with pytest.raises(hap.HAProxyError, match="not a valid HAProxy name"):
        _traffic.Observer("/x", "app;shutdown", read=lambda: "")


class Answers(list):
    """The answers to `show stat`, in order, the answer to `show servers state` (.state) and (as .seen) every
    command the socket got."""

    seen = None
    state = ""


@pytest.fixture
def haproxy(tmp_path):
    """A Unix socket answering `show stat` with the next of the answers it is given (the last one repeats)."""
    path = str(tmp_path / "admin.sock")
    answers = Answers()

    def answer(command):
        if command.startswith("set server"):
            return ""
        if command.startswith("show servers state"):
            return answers.state
        return answers.pop(0) if len(answers) > 1 else answers[0]

    with fakes.runtime_api(path, answer) as seen:
        answers.seen = seen
        yield path, answers


def module_run(capsys, args):
    return fakes.run_main(traffic_check.main, capsys, args)


def test_module_fails_a_bad_canary_with_its_figures(haproxy, capsys):
    path, answers = haproxy
    answers.extend([stat(app1=(0, 0, 0, 0, 1), app2=(0, 0, 0, 0, 5)), stat(app1=(0, 30, 0, 0, 1), app2=(60, 0, 0, 0, 5))])
    code, out = module_run(capsys, {"socket": path, "backend": "app", "canary": ["app1"], "baseline": ["app2"],
                                    "window": 5, "interval": 0.05})
    assert code == 1 and out["verdict"] == "fail" and out["early"] is True
    assert out["msg"] == "canary fail: app1: error ratio 100.0% (30 of 30 requests) is above 1.0%"
    assert out["servers"]["app2"]["requests"] == 60 and out["changed"] is False


def test_module_puts_the_canary_in_only_once_watched_and_drains_it_the_moment_it_fails(haproxy, capsys):
    path, answers = haproxy
    # app1 in drain, up, its checks passed (no check_rise in this `show stat`: up is all there is to see).
    answers.state = SERVERS_STATE + state_line("app1", admin=8)
    answers.extend([stat(app1=(0, 0, 0, 0, 1)), stat(app1=(0, 0, 0, 0, 1)), stat(app1=(0, 30, 0, 0, 1))])
    code, out = module_run(capsys, {"socket": path, "backend": "app", "canary": ["app1"], "window": 5,
                                    "interval": 0.05, "ready_first": True, "drain_on_fail": True})
    assert code == 1 and (out["readied"], out["drained"], out["changed"]) == (["app1"], ["app1"], True)
    assert [c for c in answers.seen if not c.startswith("show servers state")][:5] == [
        "show stat", "show stat", "set server app/app1 state ready", "show stat", "set server app/app1 state drain"]
    answers.seen.clear()
    code, out = module_run(capsys, {"socket": path, "backend": "app", "canary": ["app1"], "window": 5, "interval": 0.05,
                                    "ready_first": True, "drain_on_fail": True, "_ansible_check_mode": True})
    assert out["readied"] == [] and out["drained"] == [] and not any(c.startswith("set") for c in answers.seen)


def checks_stat(health_rise=2, health_fall=2, **servers):
    """A `show stat` answer with the check_rise and check_fall columns lb_member reads."""
    lines = ["# pxname,svname,scur,status,check_rise,check_fall,\n"]
    lines += ["app,%s,0,UP,%d,%d,\n" % (name, health_rise, health_fall) for name in servers]
    return "".join(lines)


def state_with_health(name, admin, op, health):
    return "1 app 1 %s 10.0.0.1 %d %d 100 100 0 6 3 %d 6 0 0 0 - 8080 - 0 0 - - 0" % (name, op, admin, health)


@pytest.mark.parametrize("admin", [1, 8])
def test_module_waits_until_a_check_of_a_canary_out_of_rotation_passed_before_any_window(haproxy, capsys, admin):
    path, answers = haproxy
    # Up only because it left maintenance (health at rise 2), and no check passes: it never goes into rotation.
    answers.state = SERVERS_STATE + state_with_health("app1", admin, 2, 2)
    answers.extend([checks_stat(app1=1)])
    code, out = module_run(capsys, {"socket": path, "backend": "app", "canary": ["app1"], "window": 5,
                                    "interval": 0.05, "ready_first": True, "drain_on_fail": True, "up_timeout": 0.3})
    assert code == 1 and out["msg"].startswith("server app1 of backend app was not set ready: HAProxy's checks do not "
                                               "see it up after 0.3 s"), out
    assert "It stays in drain, where it takes no traffic" in out["msg"]
    assert "counts it up only because it left maintenance" in out["msg"]
    sets = [c for c in answers.seen if c.startswith("set")]
    assert sets == (["set server app/app1 state drain"] if admin == 1 else []), "never ready"


def test_module_puts_a_canary_in_once_a_check_of_it_passed(haproxy, capsys):
    path, answers = haproxy
    answers.state = SERVERS_STATE + state_with_health("app1", 8, 2, 3)
    answers.extend([checks_stat(app1=1), stat(app1=(0, 0, 0, 0, 1)), stat(app1=(30, 0, 0, 0, 1))])
    code, out = module_run(capsys, {"socket": path, "backend": "app", "canary": ["app1"], "window": 0.05,
                                    "interval": 0.05, "ready_first": True, "min_requests": 5})
    assert code == 0 and out["readied"] == ["app1"] and list(out["warmed"]) == ["app1"], out
    assert [c for c in answers.seen if c.startswith("set")] == ["set server app/app1 state ready"]


def test_module_puts_the_fallback_servers_in_before_it_drains_a_failed_canary_in_one_call(haproxy, capsys):
    path, answers = haproxy
    answers.extend([stat(**{"app1-8081": (0, 0, 0, 0, 1)}), stat(**{"app1-8081": (0, 30, 0, 0, 1)})])
    args = {"socket": path, "backend": "app", "canary": ["app1-8081"], "window": 5, "interval": 0.05,
            "drain_on_fail": True, "fallback": ["app1-8080"]}
    code, out = module_run(capsys, args)
    assert code == 1 and (out["drained"], out["fell_back"], out["changed"]) == (["app1-8081"], ["app1-8080"], True)
    assert [c for c in answers.seen if c.startswith("set")] == [
        "set server app/app1-8080 state ready;set server app/app1-8081 state drain"]
    # A canary that passes leaves the fallback servers as they are.
    answers.clear()
    answers.seen.clear()
    answers.extend([stat(**{"app1-8081": (0, 0, 0, 0, 1)}), stat(**{"app1-8081": (30, 0, 0, 0, 1)})])
    code, out = module_run(capsys, dict(args, window=0.05, min_requests=5))
    assert code == 0 and out["fell_back"] == [] and not any(c.startswith("set") for c in answers.seen), out
    code, out = module_run(capsys, dict(args, drain_on_fail=False, fallback=["app1-8081"]))
    assert code == 1 and out["msg"] == (
        "traffic_check: app1-8081 cannot be canary and fallback at once; fallback servers are put into rotation when "
        "drain_on_fail drains the canary: set drain_on_fail: true, or leave fallback out")


def test_module_inconclusive_fails_or_passes_as_asked(haproxy, capsys):
    path, answers = haproxy
    answers.append(stat(app1=(3, 0, 0, 0, 1)))
    args = {"socket": path, "backend": "app", "canary": ["app1"], "window": 0.1, "interval": 0.05}
    code, out = module_run(capsys, args)
    assert code == 1 and out["verdict"] == "inconclusive" and "fewer than the 20 needed" in out["msg"]
    code, out = module_run(capsys, dict(args, inconclusive="pass"))
    assert code == 0 and out["verdict"] == "inconclusive"


def test_module_refuses_bad_settings_before_reading(capsys):
    code, out = module_run(capsys, {"backend": "app", "canary": ["app1"], "baseline": ["app1"], "window": 0,
                                    "max_error_ratio": 5, "socket": "/nonexistent"})
    assert code == 1
    assert out["msg"] == ("traffic_check: window and interval must be above 0 seconds; max_error_ratio is a share "
                          "from 0 to 1 (0.01 is 1%), got 5.0; app1 cannot be canary and baseline at once")


def state_line(name, admin=0, op=2, weight=100, initial=100):
    return "1 app 1 %s 10.0.0.1 %d %d %d %d 0 6 3 4 6 0 0 0 - 8080 - 0 0 - - 0" % (name, op, admin, weight, initial)


SERVERS_STATE = ("1\n# be_id be_name srv_id srv_name srv_addr srv_op_state srv_admin_state srv_uweight srv_iweight "
                 "srv_time_since_last_change srv_check_status srv_check_result srv_check_health srv_check_state "
                 "srv_agent_state bk_f_forced_id srv_f_forced_id srv_fqdn srv_port srvrecord srv_use_ssl "
                 "srv_check_port srv_check_addr srv_agent_addr srv_agent_port\n")


def test_weight_for_a_share_of_the_traffic():
    assert _traffic.weight_for_share(5, 1, 200) == {"weight": 11, "share": 5.2, "note": None}
    assert _traffic.weight_for_share(50, 2, 100) == {"weight": 50, "share": 50.0, "note": None}
    coarse = _traffic.weight_for_share(5, 1, 2)
    assert (coarse["weight"], coarse["share"]) == (1, 33.3) and "haproxy_server_weight" in coarse["note"]
    capped = _traffic.weight_for_share(50, 1, 1500)
    assert (capped["weight"], capped["share"]) == (256, 14.6) and "give 14.6%" in capped["note"]
    assert _traffic.weight_for_share(25, 1, 0)["weight"] is None
    with pytest.raises(ValueError, match="above 0 and below 100"):
        _traffic.weight_for_share(100, 1, 200)


def test_others_weight_counts_only_the_servers_that_take_traffic():
    states = hap.parse_servers_state(SERVERS_STATE + "\n".join([
        state_line("app1", weight=11), state_line("app2"), state_line("app3", weight=50),
        state_line("app4", admin=8), state_line("app5", op=0), state_line("app6", weight=0)]))
    assert _traffic.others_weight(states, "app", ["app1"]) == 150
    assert _traffic.seen_share({"app1": {"requests": 10}, "app2": {"requests": 30}}, ["app1"]) == 25.0


def test_module_steps_through_traffic_shares_and_gives_the_weight_back(haproxy, capsys):
    path, answers = haproxy
    state = SERVERS_STATE + "\n".join([state_line("app1"), state_line("app2"), state_line("app3")])
    # window == interval: each step reads the counters exactly twice (at its start and at its end).
    rows = [stat(app1=(0, 0, 0, 0, 5), app2=(0, 0, 0, 0, 5), app3=(0, 0, 0, 0, 5))]
    rows += [stat(app1=(5, 0, 0, 0, 5), app2=(45, 0, 0, 0, 5), app3=(50, 0, 0, 0, 5))] * 2
    rows += [stat(app1=(55, 0, 0, 0, 5), app2=(70, 0, 0, 0, 5), app3=(75, 0, 0, 0, 5))]
    answers.extend(rows)
    answers.state = state
    code, out = module_run(capsys, {"socket": path, "backend": "app", "canary": ["app1"], "baseline": ["app2", "app3"],
                                    "shares": [5, 50], "window": 0.05, "interval": 0.05, "min_requests": 5,
                                    "ready_first": True})
    assert code == 0, out
    assert [(s["share"], s["weight"], s["expected_share"], s["verdict"], s["seen_share"]) for s in out["steps"]] == [
        (5.0, 11, 5.2, "pass", 5.0), (50.0, 200, 50.0, "pass", 50.0)]
    assert out["reasons"][0].startswith("at 50.0% of the traffic (weight 200): app1: error ratio 0.00%")
    sets = [c for c in answers.seen if c.startswith("set")]
    assert sets == ["set server app/app1 weight 11", "set server app/app1 state ready", "set server app/app1 weight 200",
                    "set server app/app1 weight 100"]
    assert out["weights"] == {"app1": 100} and out["changed"] is True


def test_module_stops_at_the_first_step_that_fails(haproxy, capsys):
    path, answers = haproxy
    answers.state = SERVERS_STATE + "\n".join([state_line("app1"), state_line("app2")])
    answers.extend([stat(app1=(0, 0, 0, 0, 5), app2=(0, 0, 0, 0, 5)), stat(app1=(0, 0, 0, 9, 5), app2=(90, 0, 0, 0, 5))])
    code, out = module_run(capsys, {"socket": path, "backend": "app", "canary": ["app1"], "baseline": ["app2"],
                                    "shares": [10, 50], "window": 0.05, "interval": 0.05, "min_requests": 5,
                                    "drain_on_fail": True})
    assert code == 1 and [(s["share"], s["weight"], s["verdict"]) for s in out["steps"]] == [(10.0, 11, "fail")]
    assert out["msg"].startswith("canary fail: at 10.0% of the traffic (weight 11): app1: error ratio 100.0%")
    assert [c for c in answers.seen if c.startswith("set")] == [
        "set server app/app1 weight 11", "set server app/app1 state drain", "set server app/app1 weight 100"]
