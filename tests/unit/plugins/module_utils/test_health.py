"""Health probes against a real HTTP server on 127.0.0.1, and the waiting logic on a fake clock."""

import socket

import pytest

import fakes
import yaml

from ansible.module_utils.common.arg_spec import ArgumentSpecValidator

from fakes import Clock, http_routes

from ansible_collections.seedops.deploy.plugins.doc_fragments.health import ModuleDocFragment
from ansible_collections.seedops.deploy.plugins.module_utils import _health
from ansible_collections.seedops.deploy.plugins.modules import health_check


def run(results, **kw):
    clock = Clock()
    seq = iter(results)
    return _health.wait_healthy(lambda: (next(seq), {}), clock=clock, sleep=clock.sleep, **kw)


def test_needs_consecutive_successes():
    report = run([True, False, True, True, True], successes=3, interval=1, timeout=60)
    assert report["healthy"] and report["attempts"] == 5 and report["consecutive"] == 3


def test_times_out_with_the_last_responses():
    report = run([False] * 100, successes=1, interval=1, timeout=5, keep=3)
    assert not report["healthy"] and report["attempts"] == 6 and len(report["responses"]) == 3
    assert report["responses"][-1]["ok"] is False


@pytest.fixture(scope="module")
def base():
    with http_routes({"/ok": (200, b"ok version=2"), "/down": (503, b"draining")}) as where:
        yield where


def test_http_probe_status_and_body(base):
    url, _port = base
    assert _health.http_probe(url + "/ok")[0]
    ok, seen = _health.http_probe(url + "/down")
    assert not ok and seen["status"] == 503 and seen["body"] == "draining"
    assert _health.http_probe(url + "/down", status_codes=(503,))[0]
    ok, seen = _health.http_probe(url + "/ok", body_regex=r"version=3")
    assert not ok and "does not match" in seen["error"]
    assert _health.http_probe(url + "/ok", body_regex=r"version=2")[0]


def test_probes_of_nothing_listening():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    ok, seen = _health.http_probe("http://127.0.0.1:%d/" % port, timeout=2)
    assert not ok and seen["error"]
    assert not _health.tcp_probe("127.0.0.1", port, 2)[0]


def test_tcp_probe(base):
    _url, port = base
    assert _health.tcp_probe("127.0.0.1", port)[0]


def test_describe():
    report = {"responses": [{"status": 503, "body": "draining"}, {"error": "connection refused"}]}
    assert _health.describe(report) == "HTTP 503 'draining'; connection refused"


def params(**kw):
    p = {name: spec.get("default") for name, spec in _health.ARGUMENT_SPEC.items()}
    p.update(kw)
    return p


def test_check_healthy_and_not(base):
    url, port = base
    report, problem = _health.check(params(url=url + "/ok", successes=2, interval=0.01, timeout=2))
    assert problem is None and report["healthy"] and report["attempts"] == 2
    # How many probes fit in the deadline depends on how busy the machine is (the retries are counted on a fake
    # clock above): one at least, and the message says how many.
    report, problem = _health.check(params(url=url + "/down", successes=1, interval=0.02, timeout=0.2))
    assert not report["healthy"] and report["attempts"] >= 1
    assert problem.startswith(url + "/down is not healthy: 0 of 1 consecutive successes after")
    last = "; ".join(["HTTP 503 'draining'"] * min(3, report["attempts"]))
    assert problem.endswith("(%d probes); last: %s" % (report["attempts"], last))
    report, problem = _health.check(params(port=port, successes=1, timeout=1))
    assert problem is None and report["responses"][-1]["connected"]


def test_check_refuses_zero_successes():
    report, problem = _health.check(params(url="http://127.0.0.1:9/", successes=0))
    assert problem == "successes must be 1 or more" and not report["healthy"] and report["attempts"] == 0


def test_dict_option_needs_url_or_port_and_fills_defaults():
    validator = ArgumentSpecValidator({"health": _health.DICT_OPTION})
    bad = validator.validate({"health": {"successes": 2}})
    assert "one of the following is required: url, port found in health" in " ".join(bad.error_messages)
    assert validator.validate({}).error_messages == ["missing required arguments: health"]
    good = validator.validate({"health": {"port": 8080}})
    assert not good.error_messages
    assert good.validated_parameters["health"] == params(port=8080)


def spec_of_docs(options):
    return {name: (o["type"], o.get("elements"), o.get("default")) for name, o in options.items()}


def test_doc_fragment_documents_exactly_the_argument_spec():
    spec = {name: (s["type"], s.get("elements"), s.get("default")) for name, s in _health.ARGUMENT_SPEC.items()}
    top = yaml.safe_load(ModuleDocFragment.DOCUMENTATION)["options"]
    assert spec_of_docs(top) == spec
    nested = yaml.safe_load(ModuleDocFragment.SUBOPTIONS)["options"]
    assert list(nested) == ["health"] and nested["health"]["type"] == "dict" and nested["health"]["required"]
    assert spec_of_docs(nested["health"]["suboptions"]) == spec
    # references point at options that exist where the text ends up
    assert "O(port)" in top["url"]["description"] and "O(health.port)" in nested["health"]["suboptions"]["url"]["description"]


# the health_check module, end to end in this process


def module_run(capsys, args):
    return fakes.run_main(health_check.main, capsys, args)


def test_module_healthy_with_a_body_match(base, capsys):
    url, _port = base
    code, out = module_run(capsys, {"url": url + "/ok", "body_regex": "version=2", "interval": 0.01})
    assert code == 0 and out["healthy"] and not out["changed"] and out["attempts"] == 3


def test_module_not_healthy_names_the_target_and_last_responses(base, capsys):
    url, _port = base
    code, out = module_run(capsys, {"url": url + "/down", "successes": 1, "interval": 0.05, "timeout": 0.2})
    assert code == 1 and out["failed"] and not out["healthy"] and not out["changed"]
    assert out["msg"].startswith(url + "/down is not healthy: 0 of 1 consecutive successes")
    assert "last: HTTP 503 'draining'" in out["msg"]


def test_module_needs_url_or_port_and_a_positive_successes(capsys):
    code, out = module_run(capsys, {"successes": 2})
    assert code == 1 and "one of the following is required: url, port" in out["msg"]
    code, out = module_run(capsys, {"port": 9, "successes": 0})
    assert code == 1 and out["msg"] == "successes must be 1 or more"


@pytest.mark.parametrize("url, port, expected", [
    ("http://127.0.0.1:8080/healthz", 8081, "http://127.0.0.1:8081/healthz"),
    ("http://127.0.0.1/healthz?deep=1", 8081, "http://127.0.0.1:8081/healthz?deep=1"),
    ("https://u:p@app.internal:443/h#x", 9443, "https://u:p@app.internal:9443/h#x"),
    ("http://[::1]:8080/", 8081, "http://[::1]:8081/"),
])
def test_a_check_aimed_at_one_instance_keeps_everything_but_the_port(url, port, expected):
    assert _health.url_at_port(url, port) == expected
    params = {"url": url, "port": None, "successes": 2}
    aimed = _health.at_port(params, port)
    assert aimed == {"url": expected, "port": None, "successes": 2} and params["url"] == url, "a copy, not a change"


def test_a_tcp_check_aimed_at_one_instance_and_no_port_leaves_it_alone():
    params = {"url": None, "host": "127.0.0.1", "port": 8080}
    assert _health.at_port(params, 8081)["port"] == 8081
    assert _health.at_port(params, None) is params
