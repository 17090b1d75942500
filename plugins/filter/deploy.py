# -*- coding: utf-8 -*-
# Copyright: seedops.deploy contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Deploy planning helpers: digests from checksum lists, and the fleet's rollback target."""

from __future__ import annotations

from ansible.errors import AnsibleFilterError

from ansible_collections.seedops.deploy.plugins.module_utils import _digest

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


class FilterModule:
    """seedops.deploy deploy-planning filters."""

    def filters(self):
        return {"checksum_for": checksum_for, "fleet_rollback": fleet_rollback}
