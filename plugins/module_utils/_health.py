# -*- coding: utf-8 -*-
# Copyright: seedops.deploy contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Health checks: HTTP or TCP probes, and waiting for N consecutive successes within a deadline
(private to seedops.deploy)."""

from __future__ import annotations

import re
import socket
import time

from urllib.error import HTTPError, URLError
from urllib.parse import urlsplit, urlunsplit

from ansible.module_utils.urls import open_url

BODY_EXCERPT = 200

# The options of a health check, shared by health_check (top level) and staged_restart (`health`).
ARGUMENT_SPEC = dict(
    url=dict(type="str"),
    status_code=dict(type="list", elements="int", default=[200]),
    body_regex=dict(type="str"),
    headers=dict(type="dict", default={}),
    validate_certs=dict(type="bool", default=True),
    host=dict(type="str", default="127.0.0.1"),
    port=dict(type="int"),
    successes=dict(type="int", default=3),
    interval=dict(type="float", default=0.5),
    timeout=dict(type="float", default=60),
    request_timeout=dict(type="float", default=5),
)
# An HTTP check needs url, a TCP check port.
REQUIRED_ONE_OF = [("url", "port")]
# The same options as one dict option (staged_restart's `health`).
DICT_OPTION = dict(type="dict", required=True, options=ARGUMENT_SPEC, required_one_of=REQUIRED_ONE_OF)


def probe_from(params):
    """A probe function for the options of ARGUMENT_SPEC."""
    if params["url"]:
        return lambda: http_probe(params["url"], tuple(params["status_code"]), params["body_regex"],
                                  params["request_timeout"], params["validate_certs"], params["headers"])
    return lambda: tcp_probe(params["host"], params["port"], params["request_timeout"])


def url_at_port(url, port):
    """`url` with its port replaced by `port` (the same scheme, host, path and query)."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    if ":" in host:
        host = "[%s]" % host
    auth = parts.netloc.rpartition("@")[0]
    netloc = "%s%s:%d" % (auth + "@" if auth else "", host, port)
    return urlunsplit((parts.scheme, netloc, parts.path, parts.query, parts.fragment))


def at_port(params, port):
    """The health check `params` aimed at one instance of a service that runs on `port` (start beside, then flip):
    the URL's port, or the TCP check's port, replaced by it. None `port` leaves the check as it is."""
    if port is None:
        return params
    params = dict(params)
    if params.get("url"):
        params["url"] = url_at_port(params["url"], port)
    else:
        params["port"] = port
    return params


def target(params):
    return params["url"] or "tcp://%s:%s" % (params["host"], params["port"])


def http_probe(url, status_codes=(200,), body_regex=None, timeout=5.0, validate_certs=True, headers=None):
    """One HTTP GET: (ok, observation dict)."""
    started = time.monotonic()
    seen = {"status": None, "error": None}
    try:
        response = open_url(url, timeout=timeout, validate_certs=validate_certs, headers=headers or {},
                            follow_redirects="none", use_proxy=False)
        status = response.getcode()
        body = response.read(65536)
    except HTTPError as exc:
        status = exc.code
        try:
            body = exc.read(65536)
        except Exception:  # pylint: disable=broad-except
            body = b""
    except (URLError, socket.timeout, ConnectionError, OSError) as exc:
        seen["error"] = str(getattr(exc, "reason", exc))
        seen["ms"] = round((time.monotonic() - started) * 1000, 1)
        return False, seen
    text = body.decode("utf-8", "replace")
    seen.update(status=status, body=text[:BODY_EXCERPT].strip(), ms=round((time.monotonic() - started) * 1000, 1))
    ok = status in status_codes
    if ok and body_regex and not re.search(body_regex, text):
        ok = False
        seen["error"] = "body does not match %r" % body_regex
    return ok, seen


def tcp_probe(host, port, timeout=5.0):
    started = time.monotonic()
    try:
        with socket.create_connection((host, port), timeout=timeout):
            pass
    except OSError as exc:
        return False, {"error": str(exc), "ms": round((time.monotonic() - started) * 1000, 1)}
    return True, {"connected": True, "ms": round((time.monotonic() - started) * 1000, 1)}


def wait_healthy(probe, successes=3, interval=1.0, timeout=60.0, keep=10, clock=time.monotonic, sleep=time.sleep):
    """Probe until `successes` consecutive successes, or until `timeout` seconds have passed.

    Returns a report: healthy, attempts, consecutive, elapsed, responses (the last `keep`
    observations, each with its offset in seconds).
    """
    start = clock()
    attempts = 0
    consecutive = 0
    responses = []
    while True:
        attempts += 1
        ok, seen = probe()
        seen["ok"] = ok
        seen["at"] = round(clock() - start, 3)
        responses = (responses + [seen])[-keep:]
        consecutive = consecutive + 1 if ok else 0
        if consecutive >= successes:
            return {"healthy": True, "attempts": attempts, "consecutive": consecutive,
                    "elapsed": round(clock() - start, 3), "responses": responses}
        if clock() - start + interval > timeout:
            return {"healthy": False, "attempts": attempts, "consecutive": consecutive,
                    "elapsed": round(clock() - start, 3), "responses": responses}
        sleep(interval)


def describe(report):
    """One line on the last responses, for error messages."""
    parts = []
    for seen in report["responses"][-3:]:
        if seen.get("status") is not None:
            parts.append("HTTP %s%s" % (seen["status"], (" %r" % seen["body"][:60]) if seen.get("body") else ""))
        else:
            parts.append(seen.get("error") or "ok")
    return "; ".join(parts)


def check(params):
    """health_check's whole job for the options of ARGUMENT_SPEC: (report, None) when the target became
    healthy, (report, why not) when it did not."""
    if params["successes"] < 1:
        return {"healthy": False, "attempts": 0, "consecutive": 0, "elapsed": 0, "responses": []}, "successes must be 1 or more"
    report = wait_healthy(probe_from(params), params["successes"], params["interval"], params["timeout"])
    if report["healthy"]:
        return report, None
    return report, "%s is not healthy: %d of %d consecutive successes after %.1f s (%d probes); last: %s" % (
        target(params), report["consecutive"], params["successes"], report["elapsed"], report["attempts"],
        describe(report))
