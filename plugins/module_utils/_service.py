# -*- coding: utf-8 -*-
# Copyright: seedops.deploy contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""What a host's service really runs, measured rather than assumed (private to seedops.deploy).

The live release is where `current` points; the release a service runs is the one its main process was started
from. They differ when a switch was not followed by a restart (a run that died in between). The process tells:
its executable or its working directory lies under `releases/<id>/` (the kernel resolves the `current` link at
exec and chdir time, so a later switch does not change them). Where those links cannot be read (root without
CAP_SYS_PTRACE, as in containers, and the process another user's), its start time does: the release live then is
the one activated last before it (release records hold when each release last went live; the switch records
that time before it moves `current`, and a restart comes after it).
"""

from __future__ import annotations

import datetime
import json
import os
import time

from urllib.error import HTTPError, URLError

from ansible.module_utils.urls import open_url

DELETED = " (deleted)"
# The properties read from systemd, one `systemctl show` call.
PROPERTIES = ("ActiveState", "SubState", "MainPID", "ExecMainStartTimestamp", "LoadState")
# What `systemctl is-enabled` says of a unit that systemd will not start at boot: it would not come back after a
# reboot. (Not the UnitFileState property: the manager keeps that from when it loaded the unit, and links changed
# with --no-reload since then, as a flip changes them, are not in it; is-enabled reads the links.)
NOT_AT_BOOT = ("disabled", "masked", "masked-runtime", "linked", "linked-runtime")
VERSION_BODY_LIMIT = 4096


def parse_show(text):
    """`systemctl show --property=...` output -> {property: value}."""
    values = {}
    for line in text.splitlines():
        key, sep, value = line.partition("=")
        if sep:
            values[key.strip()] = value.strip()
    return values


def release_under(releases_dir, path):
    """The release id when `path` lies in `releases_dir/<id>/` (or is that directory), else None."""
    if not path:
        return None
    if path.endswith(DELETED):
        path = path[:-len(DELETED)]
    root = os.path.normpath(releases_dir) + os.sep
    path = os.path.normpath(path)
    if not (path + os.sep).startswith(root):
        return None
    release = path[len(root):].split(os.sep, 1)[0]
    return release or None


def release_of_process(releases_dir, pid, proc="/proc"):
    """(release id, how it was seen: exe or cwd) of process `pid`; (None, None) when neither lies in a release."""
    if not pid:
        return None, None
    for link in ("exe", "cwd"):
        try:
            target = os.readlink(os.path.join(proc, str(pid), link))
        except OSError:
            continue
        release = release_under(releases_dir, target)
        if release:
            return release, link
    return None, None


def start_ticks(pid, proc="/proc"):
    """When process `pid` started, in clock ticks after boot (field 22 of /proc/<pid>/stat; the fields are counted
    after the command's closing parenthesis, since the command may hold spaces and parentheses). With the boot, it
    names the process: a reused pid has another. None when no process has that pid."""
    try:
        with open(os.path.join(proc, str(pid), "stat")) as f:
            return int(f.read().rsplit(")", 1)[1].split()[19])
    except (OSError, ValueError, IndexError):
        return None


def process_start(pid, proc="/proc", clock=time.time):
    """When process `pid` started, as epoch seconds (10 ms resolution): its start_ticks set against /proc/uptime -
    both readable without privileges. None when unreadable."""
    ticks = start_ticks(pid, proc)
    try:
        with open(os.path.join(proc, "uptime")) as f:
            uptime = float(f.read().split()[0])
    except (OSError, ValueError, IndexError):
        return None
    if ticks is None:
        return None
    return clock() - (uptime - ticks / float(os.sysconf("SC_CLK_TCK")))


def parse_iso(value):
    """A record's UTC time (2026-12-01T10:00:00.123456Z) as epoch seconds; None when it is not one."""
    try:
        return datetime.datetime.strptime(value, "%Y-%m-%dT%H:%M:%S.%fZ").replace(
            tzinfo=datetime.timezone.utc).timestamp()
    except (TypeError, ValueError):
        return None


def release_live_at(records, when):
    """The release that was live at epoch `when`: the one activated last at or before it; None when none was."""
    live = [(parse_iso(r.get("activated")), r.get("id")) for r in records or [] if isinstance(r, dict)]
    live = [(at, rid) for at, rid in live if at is not None and at <= when]
    return max(live)[1] if live else None


def findings(service, live):
    """What release_info's `service` says that the live release `live` does not - the one reading of it that the
    plan, the status table and the deploy report share: {down: its state when it is known and not active, stale:
    the release its process runs when that is not `live`, unhealthy: whether its probe failed, says: the version
    it reports when that is not the release it runs, not_at_boot: what `systemctl is-enabled` said when systemd will
    not start it at boot (disabled, masked, linked)}."""
    service = service or {}
    release = service.get("release")
    reports = service.get("reports")
    return {
        "down": service.get("state") if service.get("state") not in (None, "active") else None,
        "stale": release if release and release != live else None,
        "unhealthy": service.get("healthy") is False,
        "says": reports if reports and reports != (release or live) else None,
        "not_at_boot": service.get("boot") if service.get("boot") in NOT_AT_BOOT else None,
    }


def reported_version(url, timeout=5.0, validate_certs=True):
    """(version, error) as the service reports it at `url`: a JSON object's `version`, else the body's first line."""
    try:
        response = open_url(url, timeout=timeout, validate_certs=validate_certs, follow_redirects="none",
                            use_proxy=False)
        body = response.read(VERSION_BODY_LIMIT).decode("utf-8", "replace")
    except HTTPError as exc:
        return None, "%s answered HTTP %s" % (url, exc.code)
    except (URLError, OSError, ValueError) as exc:
        return None, "%s: %s" % (url, getattr(exc, "reason", exc))
    try:
        doc = json.loads(body)
    except ValueError:
        doc = None
    if isinstance(doc, dict):
        version = doc.get("version")
        return (str(version), None) if version not in (None, "") else (None, "%s has no version field" % url)
    line = body.strip().splitlines()[0].strip() if body.strip() else ""
    return (line, None) if line else (None, "%s answered an empty body" % url)


def service_state(run, systemctl, unit, releases_dir, version_url=None, proc="/proc", records=None, clock=time.time):
    """What `unit` runs now: {name, state, sub, pid, since, boot, release, seen_by, reports, error}.

    `run(argv) -> (rc, stdout, stderr)`. `release` is the release its main process was started from (None when it
    does not run or that cannot be told), `seen_by` how it was told (exe, cwd or start time, the latter from
    `records`, the release records); `reports` the version the service itself answers at `version_url`; `boot` what
    `systemctl is-enabled` says of it (enabled, disabled, static, masked, ...).
    """
    rc, out, err = run([systemctl, "show", "--property=" + ",".join(PROPERTIES), unit])
    state = {"name": unit, "state": None, "sub": None, "pid": None, "since": None, "boot": None, "release": None,
             "seen_by": None, "reports": None, "error": None}
    if rc != 0:
        state["error"] = (out + err).strip() or "systemctl show %s failed" % unit
        return state
    props = parse_show(out)
    if props.get("LoadState") == "not-found":
        state.update(state="not-found", error="there is no unit %s on this host" % unit)
        return state
    try:
        pid = int(props.get("MainPID") or 0)
    except ValueError:
        pid = 0
    _rc, enabled, _err = run([systemctl, "is-enabled", unit])
    state.update(state=props.get("ActiveState"), sub=props.get("SubState"), pid=pid or None,
                 since=props.get("ExecMainStartTimestamp") or None, boot=(enabled.split() or [None])[0])
    if pid:
        state["release"], state["seen_by"] = release_of_process(releases_dir, pid, proc)
        if state["release"] is None and records:
            started = process_start(pid, proc, clock)
            if started is not None:
                state["release"] = release_live_at(records, started)
                state["seen_by"] = "start time" if state["release"] else None
    if version_url and state["state"] == "active":
        state["reports"], state["error"] = reported_version(version_url)
    return state
