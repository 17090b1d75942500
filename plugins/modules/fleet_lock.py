#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: seedops.deploy contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
module: fleet_lock
short_description: A fleet-wide deploy lock held as a lease in one file on one host
version_added: 0.1.0
author: Seedops Maintainers (@seedops-maintainers)
description:
  - One deploy, rollback, reconfigure or patch run at a time per fleet. The lock is one JSON file, O(path), on one
    host - run the task once, delegated to the lock host (the fleet's first load balancer, else its first app
    host). The lease is judged on that host's clock only, never on the controllers' clocks.
  - "The file holds the lease: C(run_id), C(holder) (who is deploying), C(since), C(renewed), C(expires) and C(ttl)
    - times as the lock host's epoch seconds, with C(since_iso), C(renewed_iso), C(expires_iso) beside them - and
    C(taken_over_from) or C(expired_from) when the lease was taken from another run."
  - "O(state=held): takes the lock, or renews it when O(run_id) holds it already (C(expires) becomes now + O(ttl);
    C(since) stays). A lease whose C(expires) has passed is free: taking it records the dead holder as
    C(expired_from). A live lease of another run makes the task wait up to O(wait) seconds for it to be released
    or to expire, then fail with a message naming the holder - user, controller, job id, playbook, version, since
    when, when it expires - and what to do. O(take_over=true) takes it from that run at once."
  - "O(state=released): gives the lock up when O(run_id) holds it (the file is removed); otherwise changes nothing."
  - "O(state=query): who holds the lock; reads only."
  - Every change is a read-modify-write under an flock on C(<path>.lock) (0600), and the file is replaced
    atomically (temp file in the same directory, fsync, rename, 0600), so two runs racing for the lock cannot both
    win. Missing parent directories are created 0700.
  - A lock file that is not a lease record (not JSON, not a JSON object, a symlink) is refused, naming the file,
    unless O(take_over=true).
options:
  path:
    description:
      - The lease file on the lock host, for example C(/var/lib/seedops-deploy/locks/<fleet>.json). Fleets that
        share a lock host use different paths.
    type: path
    required: true
  state:
    description: Take or renew (V(held)), give up (V(released)) or only read (V(query)) the lock.
    type: str
    choices: [held, released, query]
    default: held
  run_id:
    description:
      - Identifies this run, the same in every task of it (take, renew, release); only the run holding the lock
        renews or releases it. Required for O(state=held) and O(state=released).
    type: str
  ttl:
    description:
      - Seconds the lease lasts after it is taken or renewed. A run that stops renewing (its controller died)
        blocks the fleet at most this long. Renew it within the ttl during long runs.
    type: float
    default: 300
  wait:
    description:
      - Seconds to wait for another run's live lease to be released or to expire (looking every second), before
        failing. V(0) fails at once.
    type: float
    default: 0
  take_over:
    description:
      - Take the lock even from another run's live lease (or over a lock file that is not a lease record). The new
        lease keeps the previous holder in C(taken_over_from), and the result says so. For a run known to be dead.
    type: bool
    default: false
  holder:
    description:
      - Who is deploying, recorded with the lease and named to anyone refused - user, controller, job id, playbook,
        version, and anything else. The action plugin adds C(controller), C(controller_user) and C(job_id) (from
        C(awx_job_id)/C(tower_job_id), else the C(JOB_ID)/C(AWX_JOB_ID) environment variables AWX sets),
        C(user) from C(awx_user_name)/C(tower_user_name), and C(controller_process), which names the run's own
        process on the controller (C(ansible-playbook), or C(ansible) for an ad-hoc task; see RV(holder_ended)); what
        the task gives wins. On renewal the details given are merged into the recorded ones.
    type: dict
    default: {}
extends_documentation_fragment:
  - seedops.deploy.attributes
  - seedops.deploy.attributes.action
  - ansible.builtin.action_common_attributes
  - ansible.builtin.action_common_attributes.flow
attributes:
  check_mode:
    support: full
    details: Check mode reads only (no flock, no file, no directory) and reports what would happen; it waits like a real run.
  diff_mode:
    support: full
    details: The diff shows the lease record before and after.
  action:
    support: full
    details: >-
      The action plugin adds the controller host, user, AWX/Tower job id and the run's process to O(holder), and tells
      whether the process of a run holding the lock has ended (RV(holder_ended)).
notes:
  - "A clock jump on the lock host moves every lease with it: forward, live leases expire early; backward, they
    last longer. Keep the lock host's clock synchronised (the preflight role checks it)."
  - When the lock host is down no run can take the lock. See C(docs/fleet-lock.md) in the collection for how to
    move the lock or break it.
seealso:
  - module: seedops.deploy.release
"""

EXAMPLES = r"""
- name: Take the fleet's deploy lock (on the first load balancer, else the first app host)
  seedops.deploy.fleet_lock:
    path: /var/lib/seedops-deploy/locks/shop.json
    run_id: "{{ deploy_run_id }}"
    ttl: 600
    wait: "{{ deploy_lock_wait | default(0) }}"
    take_over: "{{ deploy_lock_break | default(false) | bool }}"
    holder:
      playbook: deploy.yml
      version: "{{ deploy_version }}"
  delegate_to: "{{ (groups['lb'] | default([]) + groups['app'])[0] }}"
  run_once: true
  become: true

- name: Give it back at the end of the run
  seedops.deploy.fleet_lock:
    path: /var/lib/seedops-deploy/locks/shop.json
    run_id: "{{ deploy_run_id }}"
    state: released
  delegate_to: "{{ (groups['lb'] | default([]) + groups['app'])[0] }}"
  run_once: true
  become: true

- name: Who deploys right now?
  seedops.deploy.fleet_lock:
    path: /var/lib/seedops-deploy/locks/shop.json
    state: query
  delegate_to: "{{ (groups['lb'] | default([]) + groups['app'])[0] }}"
  run_once: true
  become: true
  register: fleet_lock
"""

RETURN = r"""
held:
  description:
    - Whether a live lease holds the lock after the task - for O(state=held), this run's (in check mode, whether it
      would). With a failure because another run holds it, V(true), and the fields below are that run's.
  returned: always
  type: bool
action:
  description: What the task did (or would do in check mode) - acquired, renewed, taken_over, released or none.
  returned: always
  type: str
  sample: acquired
run_id:
  description: The run holding the live lease, or null when none does.
  returned: always
  type: str
holder:
  description: Who is behind that run (the recorded O(holder)), or null.
  returned: always
  type: dict
  sample: {"controller": "ops1", "controller_user": "deploy", "job_id": "1234", "playbook": "deploy.yml", "version": "2.0.0"}
since:
  description: When that run took the lock, epoch seconds on the lock host's clock, or null.
  returned: always
  type: float
since_iso:
  description: The same as UTC ISO 8601, or null.
  returned: always
  type: str
  sample: "2026-11-27T12:00:00Z"
expires:
  description: When the lease expires unless renewed, epoch seconds on the lock host's clock, or null.
  returned: always
  type: float
expires_iso:
  description: The same as UTC ISO 8601, or null.
  returned: always
  type: str
expires_in:
  description: Seconds until the lease expires, or null.
  returned: always
  type: float
taken_over_from:
  description:
    - The live lease this task took (O(take_over=true)) - its run_id, holder and times - or, for a lock file that
      was not a lease record, a dict whose C(unreadable) says what it was; else null.
  returned: always
  type: dict
expired_from:
  description: The expired lease this task took (the dead holder's run_id, holder and times), else null.
  returned: always
  type: dict
previous:
  description: The lease record found before the task (null when there was none).
  returned: always
  type: dict
holder_ended:
  description:
    - Of a live lease another run holds, whether that run's process on the controller has ended (V(true)) or still
      runs (V(false)), as this controller sees it - V(null) when it cannot tell (the lease was taken on another
      machine, in another container, before a reboot, or names no process). The action plugin adds it; a run refused
      by a lease whose run has ended says so in its message, and that breaking the lock (O(take_over)) is safe unless
      a task of that run still runs on a host.
  returned: when another run holds the lock
  type: bool
waited:
  description: Seconds spent waiting for another run's lease.
  returned: always
  type: float
"""

import json
import traceback

from ansible.module_utils.basic import AnsibleModule
from ansible.module_utils.common.text.converters import to_native

from ansible_collections.seedops.deploy.plugins.module_utils import _lease

ARGUMENT_SPEC = dict(
    path=dict(type="path", required=True),
    state=dict(type="str", default="held", choices=["held", "released", "query"]),
    run_id=dict(type="str"),
    ttl=dict(type="float", default=300),
    wait=dict(type="float", default=0),
    take_over=dict(type="bool", default=False),
    holder=dict(type="dict", default={}),
)


def record_text(record):
    return "" if record is None else json.dumps(record, indent=2, sort_keys=True) + "\n"


def main():
    module = AnsibleModule(argument_spec=ARGUMENT_SPEC, supports_check_mode=True,
                           required_if=[("state", "held", ("run_id",)), ("state", "released", ("run_id",))])
    p = module.params
    lease = _lease.Lease(p["path"], check_mode=module.check_mode)
    try:
        result = lease.run(p["state"], p["run_id"], p["holder"], p["ttl"], p["wait"], p["take_over"])
    except _lease.LeaseError as exc:
        module.fail_json(msg=to_native(exc), **exc.result)
    except OSError as exc:
        module.fail_json(msg="fleet deploy lock %s: %s" % (p["path"], to_native(exc)), exception=traceback.format_exc())
    for warning in lease.warnings:
        module.warn(warning)
    if module._diff:
        result["diff"] = dict(before=record_text(lease.before), after=record_text(lease.after),
                              before_header=p["path"], after_header=p["path"])
    module.exit_json(**result)


if __name__ == "__main__":
    main()
