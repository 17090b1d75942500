# -*- coding: utf-8 -*-
# Copyright: seedops.deploy contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Deploy planning helpers: digests from checksum lists, the fleet's rollback target, and the deploy plan."""

from __future__ import annotations

import json
import math
import operator
import re

from ansible.errors import AnsibleFilterError
from ansible.utils.helpers import pct_to_int

from ansible_collections.seedops.deploy.plugins.module_utils import _digest
from ansible_collections.seedops.deploy.plugins.module_utils import _health
from ansible_collections.seedops.deploy.plugins.module_utils import _lease
from ansible_collections.seedops.deploy.plugins.module_utils import _results
from ansible_collections.seedops.deploy.plugins.module_utils import _service

_NOT_GIVEN = object()


def checksum_for(text, name, missing=_NOT_GIVEN):
    """'<algorithm>:<hex>' for `name` in a SHA256SUMS-style text."""
    if not isinstance(text, str):
        raise AnsibleFilterError(f"checksum_for: expected the text of a checksum list, got {type(text).__name__}")
    if not isinstance(name, str) or not name:
        raise AnsibleFilterError(f"checksum_for: expected a file name, got {name!r}")
    try:
        algorithm, hexdigest = _digest.parse_sums(text, name)
    except _digest.DigestError as exc:
        if missing is not _NOT_GIVEN and "is not listed" in str(exc):
            return missing
        raise AnsibleFilterError(f"checksum_for: {exc}") from None
    return f"{algorithm}:{hexdigest}"


def _activated(info, release_id):
    for record in info.get("releases") or []:
        if record.get("id") == release_id:
            return record.get("activated") or ""
    return ""


def fleet_rollback(infos, version=None):
    """Plan a rollback of the whole fleet to one release.

    `infos` maps each host to its seedops.deploy.release_info result. With `version`, every host goes
    there. Without, the target is the release the hosts on the newest live release would roll back
    to, so a rollout that stopped halfway is undone too. Returns {target, switch, errors}: `switch`
    lists the hosts not yet on the target; `errors` says why the plan cannot run (then nothing should).
    """
    if not isinstance(infos, dict) or not infos:
        raise AnsibleFilterError("fleet_rollback: expected a mapping of host to its release_info result")
    errors = []
    target = version or None
    if not target:
        by_release = {}
        for host, info in infos.items():
            if info.get("current"):
                by_release.setdefault(info["current"], []).append(host)
        if not by_release:
            errors.append("no host has a live release, so there is nothing to roll back")
        else:
            # The newest live release: the one most recently activated on any host.
            newest = max(by_release, key=lambda rid: max(_activated(infos[h], rid) for h in by_release[rid]))
            targets = {infos[h].get("rollback_target") for h in by_release[newest]}
            if None in targets or "" in targets:
                lacking = sorted(h for h in by_release[newest] if not infos[h].get("rollback_target"))
                errors.append(f"{', '.join(lacking)} on {newest} have no previous healthy release to go back to; "
                              "name one with deploy_rollback_version")
            elif len(targets) > 1:
                errors.append(f"the hosts on {newest} would roll back to different releases ({', '.join(sorted(targets))}); "
                              "name one with deploy_rollback_version")
            else:
                target = targets.pop()
    if target:
        lacking = sorted(h for h, info in infos.items()
                         if not any(r.get("id") == target and r.get("exists") for r in info.get("releases") or []))
        if lacking:
            errors.append(f"release {target} is not staged on {', '.join(lacking)}; deploy it there with "
                          f"playbooks/deploy.yml -e deploy_version=... (it stages, then switches)")
    switch = sorted(h for h, info in infos.items() if target and info.get("current") != target)
    return {"target": target, "switch": switch, "errors": errors}


ACTIONS = ("switch", "restart", "repair", "unchanged")
DEFAULT_SERIAL = (1, "34%", "100%")


def serial_entries(serial):
    """Ansible `serial` entries from a list, one number or percentage, or a comma-separated text such as
    '1, 34%, 100%' (what an AWX survey's text answer gives), for a play's `serial` and for batch_sizes."""
    if isinstance(serial, str):
        return [entry.strip() for entry in serial.split(",") if entry.strip()]
    if isinstance(serial, (list, tuple)):
        return list(serial)
    return [] if serial is None else [serial]


def serial_problems(serial, name="deploy_serial"):
    """[] when every entry of `serial` is a batch size Ansible's `serial` takes (a whole number of hosts, or a
    percentage such as '34%'), else one sentence naming the setting `name` and the entries it cannot take. Ansible
    itself fails on such an entry with 'Unexpected Exception, this is probably a bug' when the play starts."""
    bad = []
    for entry in serial_entries(serial):
        text = str(entry).strip()
        if isinstance(entry, bool) or not re.match(r"^[+-]?\d+\s*%?$", text):
            bad.append(entry)
    if not bad:
        return []
    return [f"{name} {json.dumps(serial, default=str)} holds {', '.join(json.dumps(b, default=str) for b in bad)}, "
            "which is neither a number of hosts nor a percentage such as 34%."]


def batch_sizes(serial, count):
    """Split `count` hosts into batches the way Ansible's `serial` does (numbers, percentages of `count`,
    the last entry repeating; 0 or an empty list means one batch of every host). Returns the sizes."""
    serial = serial_entries(serial) or [0]
    sizes, left, index = [], count, 0
    while left > 0:
        try:
            size = pct_to_int(serial[index], count)
        except (TypeError, ValueError):
            raise AnsibleFilterError(f"deploy_plan: serial entry {serial[index]!r} is neither a number nor a percentage "
                                     "such as '34%'") from None
        size = left if size <= 0 else min(size, left)
        sizes.append(size)
        left -= size
        index = min(index + 1, len(serial) - 1)
    return sizes


def _order(hosts, canary):
    """Hosts in activation order: the declared canary hosts first (in their order), then inventory order."""
    names = [h["host"] for h in hosts]
    unknown = [c for c in canary if c not in names]
    if unknown:
        raise AnsibleFilterError(f"deploy_canary_hosts names {', '.join(unknown)}, not among this run's hosts "
                                 f"({', '.join(names)}); name hosts of deploy_hosts, or leave it empty")
    return list(dict.fromkeys(list(canary) + names))


def rotation_of(lb_states, server):
    """The server's state in the load balancers (lb_info's `servers`, one mapping per lb host): the first one
    that keeps it out of rotation, else the first; None without load balancers."""
    if not isinstance(lb_states, list) or not all(isinstance(s, dict) for s in lb_states):
        raise AnsibleFilterError("rotation_of: expected a list of lb_info `servers` mappings, one per load balancer")
    if not lb_states:
        return None
    seen = [servers.get(server) or {"admin": "absent", "op": "absent", "weight": 0, "in_rotation": False}
            for servers in lb_states]
    return next((s for s in seen if not s["in_rotation"]), seen[0])


def _held_out(lb):
    """Why the load balancers keep the server out on purpose (drain, maint, weight 0) or at another weight than its
    configured one (a canary's traffic-weight step a run did not finish), or None."""
    if lb.get("admin") in ("drain", "maint"):
        return "in " + lb["admin"]
    if lb.get("admin") == "ready" and lb.get("weight") == 0:
        return "at weight 0"
    if lb.get("admin") == "ready" and lb.get("initial_weight") not in (None, lb.get("weight")):
        return f"at weight {lb.get('weight')} instead of its configured {lb['initial_weight']}"
    return None


def _unfinished(service, target):
    """Why a host whose live release is the target does not really serve it (measured by release_info's
    `service`), or None: it still runs another release, or its service is down or unhealthy."""
    if not service:
        return None
    seen = _service.findings(service, target)
    if seen["down"]:
        return f"its service is {seen['down']}"
    if seen["stale"]:
        return f"its live release is {target} but its service still runs {seen['stale']} (switched, not restarted)"
    if seen["unhealthy"]:
        return "its service does not answer its health check"
    return None


def _beside(entry, name, lb):
    """For a host whose service runs beside itself (its mapping carries `beside`: the two `ports`, and release_info's
    `live_port` and `instances`): which instance is live - the one whose server is the only one in rotation in the
    load balancers (their truth wins over the host's live-port file, which a flip writes after it), else the host's
    - and its server (`<lb_server>-<port>`), the idle one's, and what the live one runs (`service`)."""
    beside = entry.pop("beside")
    ports = list(beside.get("ports") or [])
    if len(set(ports)) != 2:
        raise AnsibleFilterError(f"deploy_plan: {name}: deploy_beside_ports must be two different ports, got {ports}")
    base = entry.get("lb_server") or name
    servers = {port: f"{base}-{port}" for port in ports}
    states = {port: rotation_of(list(lb or []), servers[port]) for port in ports}
    live = _live_port(states, ports, beside.get("live_port"), ("ready",))
    idle = ports[1] if live == ports[0] else ports[0]
    instances = beside.get("instances") or {}
    idle_state = (instances.get(str(idle)) or {}).get("state")
    entry.update(lb_server=servers[live], idle_server=servers[idle], live_port=live, idle_port=idle,
                 service=instances.get(str(live)) or entry.get("service"),
                 # A second instance still runs, or the idle server is not in maintenance: a run stopped mid-flip.
                 tidy=idle_state not in (None, "inactive", "failed", "not-found")
                 or (bool(lb) and (states[idle] or {}).get("admin") not in ("maint", "absent")))
    return states[live]


def _live_port(states, ports, noted, serving):
    """Which of a host's two ports is live: the one whose server alone is in one of the `serving` admin states in
    the load balancers (`states`: port to rotation_of's answer), else the port the host noted (its live-port file),
    else the first."""
    found = [port for port in ports if (states[port] or {}).get("admin") in serving]
    live = found[0] if len(found) == 1 else noted
    return live if live in ports else ports[0]


def live_instance(lb_states, server, ports, noted=None):
    """For a host that runs beside itself (two `ports`, servers `<server>-<port>`), outside a deploy's plan (patch.yml
    drains it): {server, port} of its live instance. The load balancers' truth first - the one server of the two that
    is not in maintenance (in rotation, or drained by an earlier run that failed) - else the host's live-port file
    (`noted`, as read: text or a number), else the first port."""
    if not isinstance(lb_states, list) or not all(isinstance(s, dict) for s in lb_states):
        raise AnsibleFilterError("live_instance: expected a list of lb_info `servers` mappings, one per load balancer")
    try:
        ports = [int(port) for port in ports]
    except (TypeError, ValueError):
        ports = []
    if len(set(ports)) != 2:
        raise AnsibleFilterError(f"live_instance: {server}: deploy_beside_ports must be two different ports, got {ports}")
    try:
        noted = int(str(noted).strip())
    except ValueError:
        noted = None
    states = {port: rotation_of(lb_states, f"{server}-{port}") for port in ports}
    port = _live_port(states, ports, noted, ("ready", "drain"))
    return {"server": f"{server}-{port}", "port": port}


def health_at_port(health, port):
    """The health check `health` (deploy_health's form) aimed at the instance on `port`: its URL's port, or its TCP
    check's port, replaced. A null port leaves it as it is."""
    if not isinstance(health, dict):
        raise AnsibleFilterError(f"health_at_port: expected a health check mapping, got {type(health).__name__}")
    return _health.at_port(health, None if port is None else int(port))


def _path(entry, action, lb):
    """How a host with two ports takes its release (in a deploy or a rollback alike): `flip` (start the release
    beside the live instance, then flip the load balancers) when its live instance serves healthily and there are
    load balancers to flip, else `restart` (the live instance restarts in place)."""
    service = entry.get("service") or {}
    if (lb and action in ("switch", "finish", "restart") and service.get("state") == "active"
            and service.get("healthy") is not False):
        return "flip"
    return "restart"


def _action(entry, target, mode):
    current = entry.get("current") or None
    held = _held_out(entry.get("lb") or {})
    if current != target:
        verb = "rolls back from" if mode == "rollback" else "runs"
        reason = f"{verb} {current}" if current else "has no live release yet"
        return "switch", reason + (f"; {held} in the load balancer, back into rotation after the switch"
                                   if held else "")
    unfinished = _unfinished(entry.get("service"), target)
    if unfinished:
        return "finish", (f"{unfinished} (a host back from a scale-in, or left so by a run that did not finish): "
                          f"restarted on {target} behind the health gate (rolled back to its previous release if it "
                          "stays unhealthy), then back into rotation")
    if entry.get("restart"):
        return "restart", f"runs {target}; its unit or environment changed, so it restarts (deploy_restart)"
    if held:
        return "repair", (f"runs {target} healthily but is {held} in the load balancer (it joined the backend, or a run "
                          "that did not finish left it so): back into rotation once the load balancer's checks see it up")
    return "unchanged", f"runs {target} already"


def deploy_plan(hosts, release, serial=DEFAULT_SERIAL, canary=None, switch="rolling", mode="deploy", lb=None,
                prestart=False):
    """The one plan of a deploy or rollback run: per host its action and batch, decided once.

    `hosts` lists, in inventory order, one mapping per host: `host`, `current` (its live release),
    `restart` (restart even when the release does not change), and whatever else should travel with
    the plan (`platform`, `digest`, `stage`, `lb_server`). `lb` lists, per load balancer, its servers'
    states (lb_info's `servers`); each host's is kept as `lb`. Hosts whose live release changes get the
    action `switch`; hosts on the release whose service (release_info's `service`, when the host mapping
    carries it) still runs another release, is down or unhealthy `finish`; hosts to restart anyway
    `restart`; hosts on the release but drained, in maintenance, at weight 0 or at another weight than the
    configured one (a run that did not finish) `repair`; the rest `unchanged`. The acting hosts are
    ordered - `canary` first, then inventory order - and cut into batches: the canary hosts, when
    named, form batch 1 and `serial` cuts the rest; otherwise `serial` cuts them all. With
    switch=together every acting host is in the one batch `all`.

    With `prestart` (deploy_beside_prestart), a rolling plan's hosts that flip start their new instance before the
    first batch, all at once (`prestart`: true on each such host, and the plan's list `prestart`), so a batch is
    only the flip. A host with a second instance left by a run that stopped mid-flip (`tidy`) starts in its batch.
    """
    if not isinstance(hosts, list) or not all(isinstance(h, dict) and h.get("host") for h in hosts):
        raise AnsibleFilterError("deploy_plan: expected a list of mappings with a 'host' key, in inventory order")
    if not release:
        raise AnsibleFilterError("deploy_plan: no release to plan for")
    if switch not in ("rolling", "together"):
        raise AnsibleFilterError(f"deploy_plan: deploy_switch must be rolling or together, not {switch!r}")
    canary = list(canary or [])
    serial = serial_entries(serial)
    by_name = {h["host"]: h for h in hosts}
    planned = {}
    for name in _order(hosts, canary):
        entry = dict(by_name[name])
        if entry.get("beside"):
            entry["lb"] = _beside(entry, name, lb)
        else:
            entry["lb"] = rotation_of(list(lb or []), entry.get("lb_server") or name)
        action, reason = _action(entry, release, mode)
        entry.update(target=release, action=action, reason=reason, batch=None)
        if entry.get("tidy") and action == "unchanged":
            action, reason = "repair", (f"runs {release}, but a second instance (port {entry['idle_port']}) still "
                                        "runs or its server is not in maintenance - left by a run that stopped "
                                        "mid-flip? It is stopped and its server put in maintenance")
            entry.update(action=action, reason=reason)
        # Every host's path: restart in place, or (with two ports) start beside, then flip.
        entry["path"] = _path(entry, action, lb) if "live_port" in entry else "restart"
        entry.setdefault("current", None)
        entry.pop("restart", None)
        planned[name] = entry
    order = [name for name, entry in planned.items() if entry["action"] != "unchanged"]
    if switch == "together":
        batches = [order] if order else []
    else:
        first = [name for name in order if name in canary]
        rest = [name for name in order if name not in canary]
        batches = [first] if first else []
        if first and isinstance(serial, (list, tuple)) and len(serial) > 1:
            serial = list(serial)[1:]  # the named canary hosts take the place of serial's first batch
        start = 0
        for size in batch_sizes(serial, len(rest)):
            batches.append(rest[start:start + size])
            start += size
    for number, batch in enumerate(batches, 1):
        for name in batch:
            planned[name]["batch"] = "all" if switch == "together" else number
    for name, entry in planned.items():
        entry["prestart"] = bool(prestart and switch == "rolling" and entry["batch"] and entry["path"] == "flip"
                                 and not entry.get("tidy"))
    summary = [f"{mode} {release} ({switch}): " + (" then ".join("[" + ", ".join(b) + "]" for b in batches)
                                                   or "no host to switch")]
    summary += [f"{name}: {e['action']}" + (f" in batch {e['batch']}" if e["batch"] else "")
                + (f" (start beside on {e['idle_port']}{' ahead of the batches' if e['prestart'] else ''}, then flip)"
                   if e.get("path") == "flip" and e["batch"] else "")
                + f" - {e['reason']}"
                for name, e in planned.items()]
    return {"release": release, "mode": mode, "switch": switch, "order": order, "batches": batches,
            "serial": [len(b) for b in batches] or [1], "hosts": planned, "summary": summary,
            "in_rotation": [n for n, e in planned.items() if (e["lb"] or {}).get("in_rotation")] if lb else None,
            "rolling": order if switch == "rolling" else [], "together": order if switch == "together" else [],
            "prestart": [name for name in order if planned[name]["prestart"]]}


def _last_deploy(info):
    """The newest switch on a host, from its release records: {release, result, when, who}."""
    events = []
    for record in info.get("releases") or []:
        for key, result in (("activated", "went live"), ("failed", "failed")):
            if record.get(key):
                # Who switched (activated_by, failed_by), else who staged the release (records written before activated_by).
                by = record.get(key + "_by") or record.get("deployed_by") or {}
                events.append((record[key], record.get("id"), result, by))
    if not events:
        return None
    when, release, result, by = max(events, key=lambda e: e[0])
    who = "%s@%s" % (by.get("user") or by.get("controller_user") or by.get("remote_user") or "?", by.get("controller") or "?")
    if by.get("job_id") or by.get("awx_job_id"):
        who += " (job %s)" % (by.get("job_id") or by.get("awx_job_id"))
    return {"release": release, "result": result, "when": when, "who": who}


def _health_of(info):
    """The service column of the status table, from release_info's `service`: state, health, and the release its
    process runs when that is not the live one."""
    svc = info.get("service")
    if not isinstance(svc, dict):
        return None
    if svc.get("state") != "active":
        return svc.get("state") or ("unknown: %s" % svc.get("error"))
    seen = _service.findings(svc, info.get("current"))
    words = ["healthy" if svc.get("healthy") else "UNHEALTHY" if seen["unhealthy"] else "active"]
    if seen["stale"]:
        words.append("runs %s, NOT RESTARTED" % seen["stale"])
    if seen["says"]:
        words.append("says %s" % seen["says"])
    if seen["not_at_boot"]:
        words.append("%s AT BOOT" % seen["not_at_boot"].upper())
    return ", ".join(words)


def fleet_status(infos, lb=None, lb_servers=None, lock=None):
    """The fleet in one table: per host its live and previous release, its state in the load balancers and its
    last deploy. `infos` maps host -> release_info result (in inventory order); `lb` lists lb_info `servers`
    per load balancer; `lb_servers` maps host -> its server name. Returns {hosts: [...], table: [lines]}."""
    if not isinstance(infos, dict):
        raise AnsibleFilterError("fleet_status: expected a mapping of host to its release_info result")
    rows = []
    for host, info in infos.items():
        if not isinstance(info, dict) or info.get("unreachable") or info.get("failed"):
            rows.append({"host": host, "release": None, "previous": None, "service": None, "health": None,
                         "lb": None, "last": None,
                         "error": (info or {}).get("msg", "no answer") if isinstance(info, dict) else "no answer"})
            continue
        state = rotation_of(list(lb or []), (lb_servers or {}).get(host) or host)
        rows.append({"host": host, "release": info.get("current"), "previous": info.get("rollback_target"),
                     "service": info.get("service"), "health": _health_of(info), "lb": state,
                     "last": _last_deploy(info), "lock": info.get("lock"), "error": None,
                     # With deploy_beside_ports, the port of the live instance.
                     "port": info.get("live_port")})
    head = ["host", "live", "previous", "service", "lb (admin/health, weight)", "last deploy"]
    cells = []
    for row in rows:
        lb = row["lb"]
        lb_cell = "-"
        if lb:
            lb_cell = "%s/%s, %s%s" % (lb["admin"], lb["op"], lb["weight"], "" if lb["in_rotation"] else "  OUT OF ROTATION")
        last = row["last"]
        last_cell = "-" if not last else "%s %s %s by %s" % (last["release"], last["result"], last["when"], last["who"])
        cells.append([row["host"], row["release"] or ("unreachable: " + row["error"] if row["error"] else "-"),
                      row["previous"] or "-",
                      (row["health"] or "-") + (" :%s" % row["port"] if row.get("port") else ""), lb_cell, last_cell])
    widths = [max([len(h)] + [len(c[i]) for c in cells]) for i, h in enumerate(head)]
    table = ["  ".join(h.ljust(w) for h, w in zip(head, widths)), "  ".join("-" * w for w in widths)]
    table += ["  ".join(c.ljust(w) for c, w in zip(cell, widths)).rstrip() for cell in cells]
    releases = sorted({r["release"] for r in rows if r["release"]})
    table.append("fleet: " + ("; ".join("%s on %s" % (rel, ", ".join(r["host"] for r in rows if r["release"] == rel))
                                        for rel in releases) or "nothing live"))
    since = ", since %s" % lock["since_iso"] if lock and lock.get("since_iso") else ""
    ended = " (its controller process has ended: it will not renew the lease)" if lock and lock.get("holder_ended") else ""
    table.append("deploy lock: " + ("held by %s%s%s" % (_lease.who(lock.get("holder")), since, ended) if lock else "free"))
    held = ["%s (%s)" % (r["host"], _lease.who(r["lock"])) for r in rows if r.get("lock")]
    if held:
        table.append("release locks held on the hosts: " + "; ".join(held))
    return {"hosts": rows, "table": table, "lock": lock or None}


def smoke_failures(results, base_url=""):
    """The smoke checks that failed, each as one line saying why: `results` are ansible.builtin.uri's loop results,
    each with its check as `item` - {path, status (one code or a list, default 200), contains, json: {field: value}}."""
    if not isinstance(results, list):
        raise AnsibleFilterError("smoke_failures: expected the results of a uri loop over deploy_smoke_checks")
    failed = []
    for result in results:
        check = result.get("item") if isinstance(result, dict) else None
        if not isinstance(check, dict):
            raise AnsibleFilterError("smoke_failures: every check is a mapping with path, status, contains or json, "
                                     "got %r" % (check,))
        want = check.get("status", 200)
        want = [int(w) for w in (want if isinstance(want, list) else [want])]
        why = []
        status = result.get("status")
        if status not in want:
            why.append("answered %s%s, not %s" % (status if status not in (None, -1) else "nothing",
                                                  (" (%s)" % str(result.get("msg"))[:120]) if result.get("msg") else "",
                                                  " or ".join(str(w) for w in want)))
        if "contains" in check and str(check["contains"]) not in str(result.get("content") or ""):
            why.append("the body does not contain %s" % json.dumps(check["contains"]))
        doc = result.get("json") if isinstance(result.get("json"), dict) else {}
        for field, value in (check.get("json") or {}).items():
            if doc.get(field) != value:
                why.append("%s is %s, not %s" % (field, json.dumps(doc.get(field)), json.dumps(value)))
        if why:
            failed.append("%s%s: %s" % (base_url, check.get("path", "/"), "; ".join(why)))
    return failed


def fanout_waves(hosts, seeds=2):
    """Waves of a peer fan-out: `hosts` lists, in order, {host, digest} for every host that needs the artifact.
    Returns a list of waves, each {receiver: source host, or None for the origin}: per digest, the first `seeds`
    hosts fetch from the origin, then every host that holds the artifact serves one host of the next wave, so the
    waves double (2, 2, 4, 8, ... with two seeds) and the origin sends each digest `seeds` times."""
    if not isinstance(hosts, list) or not all(isinstance(h, dict) and h.get("host") and h.get("digest") for h in hosts):
        raise AnsibleFilterError("fanout_waves: expected a list of mappings with 'host' and 'digest'")
    if not isinstance(seeds, int) or isinstance(seeds, bool) or seeds < 1:
        raise AnsibleFilterError(f"fanout_waves: seeds is the number of hosts fetching from the origin (1 or more), "
                                 f"got {seeds!r}")
    groups = {}
    for entry in hosts:
        groups.setdefault(entry["digest"], []).append(entry["host"])
    waves = []
    for members in groups.values():
        holders, start, index = [], 0, 0
        while start < len(members):
            size = seeds if index == 0 else len(holders)
            batch = members[start:start + size]
            if index == len(waves):
                waves.append({})
            for position, host in enumerate(batch):
                waves[index][host] = holders[position] if holders else None
            holders += batch
            start += size
            index += 1
    return waves


def fleet_release(currents):
    """The one release a fleet runs, for a deploy given no version: `currents` maps each host of the run to its live
    release (release_info's `current`, None when nothing is live). Returns {release, serving, new, problem}: `serving`
    maps each live release to its hosts, `new` lists the hosts with nothing live, and `problem` says why there is no
    one release to follow (none, or the fleet runs more than one), else None."""
    if not isinstance(currents, dict):
        raise AnsibleFilterError("fleet_release: expected a mapping of host to its live release (or null), got %s"
                                 % type(currents).__name__)
    serving, new = {}, []
    for host, current in currents.items():
        if current:
            serving.setdefault(str(current), []).append(host)
        else:
            new.append(host)
    problem = None
    if not serving:
        problem = "no host of this run has a live release to follow"
    elif len(serving) > 1:
        problem = "the fleet runs more than one release: " + "; ".join(
            "%s on %s" % (release, ", ".join(hosts)) for release, hosts in sorted(serving.items()))
    release = next(iter(serving)) if len(serving) == 1 else None
    return {"release": release, "serving": serving, "new": new, "problem": problem}


def deploy_stats(verified, plan, report=None, stopped=None):
    """What a deploy or rollback run leaves for the next job of an AWX workflow (set_stats), from what the
    verify step measured: `verified` maps each host of the run to its deploy_verified fact (None where verify did not
    read it), `plan` is deploy_plan, `report` the deploy report's JSON file (or None). A run that stops on purpose
    (stop.yml) gives `stopped`, its message: the result is then "stopped", whatever was measured before."""
    if not isinstance(verified, dict):
        raise AnsibleFilterError("deploy_stats: expected a mapping of host to its deploy_verified fact, got %s"
                                 % type(verified).__name__)
    if not isinstance(plan, dict):
        raise AnsibleFilterError("deploy_stats: expected deploy_plan as its argument, got %s" % type(plan).__name__)
    release = plan.get("release")
    runs, unhealthy, out, unverified = {}, [], [], []
    for host, seen in verified.items():
        if not isinstance(seen, dict):
            unverified.append(host)
            continue
        runs.setdefault(str(seen.get("release") or "nothing"), []).append(host)
        problems = _service.findings(seen.get("service"), seen.get("live"))
        if problems["down"] or problems["unhealthy"]:
            unhealthy.append(host)
        if isinstance(seen.get("lb"), dict) and not seen["lb"].get("in_rotation"):
            out.append(host)
    on_release = runs.get(str(release), []) if release else []
    complete = bool(verified) and len(on_release) == len(verified) and not (unhealthy or out)
    stats = {"mode": plan.get("mode") or "deploy", "release": release, "hosts": list(verified), "runs": runs,
             "unhealthy": unhealthy, "out_of_rotation": out, "unverified": unverified,
             "result": "complete" if complete else "incomplete", "report": report or None}
    if stopped:
        stats.update(result="stopped", message=" ".join(str(stopped).split()))
    return stats


def failure_reason(result, default="see above"):
    """Why a task failed, as one sentence for a stop message: a loop's first failed item's own message (Ansible's says
    only "One or more items failed"), else the task's, else `default`; ended with a full stop."""
    reason = " ".join(str(_results.failed_message(result) or default).split())
    return reason if reason.endswith(".") else reason + "."


_BOUNDS = {">": (operator.gt, "above %s"), ">=": (operator.ge, "%s or more"),
           "<": (operator.lt, "below %s"), "<=": (operator.le, "%s or less")}


def _bound(text):
    """('>=', 1.0) from '>=1'."""
    for op in (">=", "<=", ">", "<"):
        if text.startswith(op):
            return op, float(text[len(op):])
    raise AnsibleFilterError(f"out_of_range: {text!r} is not a bound such as '>0' or '<=1'")


def out_of_range(values, limits):
    """One sentence per setting of `values` ({name: value}) that is not a number or breaks a bound of its entry in
    `limits` ({name: 'bound bound'}, each '>N', '>=N', '<N' or '<=N'), in the order of `limits`."""
    if not isinstance(values, dict) or not isinstance(limits, dict):
        raise AnsibleFilterError("out_of_range: expected a dict of settings and a dict of their bounds")
    problems = []
    for name, text in limits.items():
        if name not in values:
            continue
        value = values[name]
        bounds = [_bound(part) for part in str(text).split()]
        try:
            number = float(value)
        except (TypeError, ValueError):
            number = None
        if isinstance(value, bool) or number is None or math.isnan(number):
            problems.append(f"{name} {json.dumps(value, default=str)} must be a number.")
            continue
        if not all(_BOUNDS[op][0](number, bound) for op, bound in bounds):
            if [bound[0] for bound in bounds] == [">=", "<="]:
                wanted = "from %s to %s" % (_plain(bounds[0][1]), _plain(bounds[1][1]))
            else:
                wanted = " and ".join(_BOUNDS[op][1] % _plain(bound) for op, bound in bounds)
            problems.append(f"{name} {_plain(number)} must be {wanted}.")
    return problems


def _plain(number):
    """1 for 1.0, 0.5 for 0.5."""
    return int(number) if float(number).is_integer() else number


class FilterModule:
    """seedops.deploy deploy-planning filters."""

    def filters(self):
        return {"checksum_for": checksum_for, "fleet_rollback": fleet_rollback, "deploy_plan": deploy_plan,
                "rotation_of": rotation_of, "fleet_status": fleet_status, "smoke_failures": smoke_failures,
                "fanout_waves": fanout_waves, "fleet_release": fleet_release, "deploy_stats": deploy_stats,
                "serial_entries": serial_entries, "live_instance": live_instance, "health_at_port": health_at_port,
                "failure_reason": failure_reason, "out_of_range": out_of_range,
                "serial_problems": serial_problems}
