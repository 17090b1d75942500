#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: seedops.deploy contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
module: release_info
short_description: List the releases of an application on a host, with their states
version_added: 0.1.0
author: Seedops Maintainers (@seedops-maintainers)
description:
  - Reads the release records under O(path) (written by M(seedops.deploy.release)) and reports every release with
    its state, which one is live, which one a rollback would pick, and who holds the deploy lock - for a
    fleet-wide "what runs where" report.
  - With O(service), also what the service really runs - measured, not assumed - as RV(service) - its systemd
    state, the release its main process was started from (so a switch that was not followed by a restart shows),
    what it says its version is (O(version_url)) and one health probe (O(health)).
  - Changes nothing; safe in check mode; takes no lock.
options:
  path:
    description: The application's base directory.
    type: path
    required: true
  service:
    description:
      - The systemd unit that serves the application. Its main process tells which release it runs - its executable
        or its working directory lies in C(releases/<id>/); where those cannot be read (no CAP_SYS_PTRACE, as in
        containers), its start time does - the release live then is the one activated last before it.
    type: str
  instances:
    description:
      - The two ports of a service that starts each release beside the old one and then flips the load balancer
        (C(deploy_beside_ports)). O(service) is then a template unit, run as C(<service>@<port>).
      - Each instance is read as RV(instances) - its health and version at its own port (the port in O(health)'s URL
        or TCP check, and in O(version_url), is replaced by the instance's) - and RV(service) is the live one, at
        RV(live_port).
    type: list
    elements: int
  env_file:
    description:
      - The service's environment file (systemd C(EnvironmentFile=)), whose variable names - never their values - are
        reported as RV(env_keys), for the deploy's check that every host has the keys the service expects.
    type: path
  java:
    description: Also report the major version of the host's C(java) command in RV(runtime) (it starts a JVM).
    type: bool
    default: false
  version_url:
    description:
      - A URL on which the running service says its version (a JSON object with C(version), or a plain text body
        whose first line is the version), read as RV(service.reports). Only with O(service), only when it is active.
    type: str
  checksum_lists:
    description:
      - Checksum lists (C(SHA256SUMS) files, at most 1 MiB each) to fetch from this host in the same module run, as
        RV(checksum_lists) - how the deploy's plan reads the fleet and fetches the release's checksum list in one
        round trip, on the first host.
      - One that cannot be fetched is reported with its error and does not fail the module.
    type: list
    elements: str
    default: []
  url_username:
    description: The user name for the basic authentication of O(checksum_lists).
    type: str
  url_password:
    description: The password for O(url_username).
    type: str
attributes:
  check_mode:
    support: full
    details: It only reads, the same in check mode; it takes no lock, so it answers while a deploy runs.
  diff_mode:
    support: none
    details: It changes nothing, so there is nothing to compare.
extends_documentation_fragment:
  - seedops.deploy.health.probe
  - seedops.deploy.attributes
  - ansible.builtin.action_common_attributes
seealso:
  - module: seedops.deploy.release
"""

EXAMPLES = r"""
- name: What runs where
  seedops.deploy.release_info:
    path: /srv/app
  register: app_releases

- name: Show it
  ansible.builtin.debug:
    msg: "{{ inventory_hostname }}: {{ app_releases.current }} (rollback to {{ app_releases.rollback_target }})"
"""

RETURN = r"""
current:
  description: The live release, or null when nothing is live.
  returned: always
  type: str
  sample: "2.0.0"
rollback_target:
  description: The release a rollback would switch to, or null.
  returned: always
  type: str
  sample: "1.0.0"
releases:
  description: Every recorded release, newest first.
  returned: always
  type: list
  elements: dict
  contains:
    id:
      description: Release id.
      type: str
    state:
      description: staged, active, previous, failed (or corrupt when its record cannot be read).
      type: str
    digest:
      description: The artifact's digest.
      type: str
    created:
      description: When it was staged (UTC).
      type: str
    activated:
      description: When it last went live (UTC), or null.
      type: str
    exists:
      description: Whether its directory is on disk.
      type: bool
    current:
      description: Whether it is live.
      type: bool
  sample:
    - {id: "2.0.0", state: active, digest: "sha256:...", created: "2026-11-27T12:00:00.000000Z", exists: true}
lock:
  description: The deploy lock's record when a deploy holds it right now, else null.
  returned: always
  type: dict
exists:
  description: Whether O(path) holds a release layout at all.
  returned: always
  type: bool
live_port:
  description:
    - With O(instances), the port of the live instance - the one in C(<path>/live-port) (written when a deploy flips
      the load balancer), else the first running instance, else the first port; else null.
  returned: always
  type: int
  sample: 8081
instances:
  description: With O(instances), every instance read the same way as RV(service), by port; else null.
  returned: always
  type: dict
  sample: {"8080": {name: app@8080, state: active}, "8081": {name: app@8081, state: inactive}}
service:
  description:
    - What O(service) runs now, measured on the host; null without O(service).
  returned: always
  type: dict
  contains:
    name:
      description: The unit.
      type: str
    state:
      description: Its ActiveState (active, failed, inactive, activating, ...), or V(not-found).
      type: str
    pid:
      description: Its main process id, or null.
      type: int
    since:
      description: When its main process started (systemd's ExecMainStartTimestamp), or null.
      type: str
    boot:
      description:
        - Whether systemd starts it at boot, as C(systemctl is-enabled) says - V(enabled), V(disabled), V(static),
          V(masked), ... - or null. A V(disabled), V(masked) or V(linked) unit would not come back after a reboot.
      type: str
    release:
      description:
        - The release its main process was started from, or null when it does not run or runs from elsewhere.
        - It differs from RV(current) when the live release was switched and the service not restarted.
      type: str
    seen_by:
      description:
        - How RV(service.release) was seen - V(exe) (the executable), V(cwd) (the working directory) or
          V(start time) (the release live when the process started, from the release records).
      type: str
    reports:
      description: The version the service itself reports at O(version_url), or null.
      type: str
    healthy:
      description: The answer to one probe of O(health); null without O(health) or when the service is not active.
      type: bool
    health:
      description: That probe's observation (status, body excerpt, error, ms).
      type: dict
    error:
      description: Why something could not be read (systemctl, the version URL), or null.
      type: str
  sample:
    name: app
    state: active
    pid: 4242
    since: "Tue 2026-12-01 20:00:00 UTC"
    boot: enabled
    release: "2.0.0"
    seen_by: exe
    reports: "2.0.0"
    healthy: true
    health: {status: 200, ms: 1.2}
    error: null
platform:
  description:
    - The host's operating system and machine as C(uname) names them - the same values as the C(system) and
      C(architecture) facts, so C(seedops.deploy.platform) turns them into V(linux/amd64) without gathering facts.
    - C(libc) is the host's C library, C(family) and C(version) (V(glibc), V(2.36)); the version is none for musl, and
      C(libc) is none when neither is found.
  returned: always
  type: dict
  sample: {"system": "Linux", "architecture": "x86_64", "libc": {"family": "glibc", "version": "2.36"}}
env_keys:
  description: The variable names set in O(env_file), sorted; none when it cannot be read.
  returned: when O(env_file) is given
  type: list
  elements: str
checksum_lists:
  description:
    - Each of O(checksum_lists), in their order, fetched from this host.
    - C(source) is the URL as given and C(url) the one that answered after redirects (both with any password
      replaced by C(********)); C(content) is the text, or null when it could not be fetched, and then C(error) says
      why. A redirect from https to http is refused.
  returned: always
  type: list
  elements: dict
  sample:
    - source: https://repo.example.com/app/2.0.0/SHA256SUMS
      url: https://repo.example.com/app/2.0.0/SHA256SUMS
      content: "3b4c...  app-2.0.0-linux-amd64.tar.gz\n"
      error: null
runtime:
  description: The host's runtimes - C(java), the major version of the C(java) command (none when there is none).
  returned: when O(java=true)
  type: dict
  sample: {"java": 17}
"""

from ansible.module_utils.basic import AnsibleModule
from ansible.module_utils.common.text.converters import to_native

from ansible_collections.seedops.deploy.plugins.module_utils import _fetch
from ansible_collections.seedops.deploy.plugins.module_utils import _health
from ansible_collections.seedops.deploy.plugins.module_utils import _hostfit
from ansible_collections.seedops.deploy.plugins.module_utils import _release
from ansible_collections.seedops.deploy.plugins.module_utils import _releases
from ansible_collections.seedops.deploy.plugins.module_utils import _service


def fetch_lists(urls, username, password):
    """Each checksum list as {source, url, content, error}; one try each (the plan fetches again what failed)."""
    fetcher = _fetch.Fetcher(url_username=username, url_password=password, force_basic_auth=bool(username),
                             timeout=10, retries=0)
    found = []
    for source in urls:
        entry = dict(source=_fetch.safe_url(source), url=None, content=None, error=None)
        try:
            entry["content"], entry["url"] = fetcher.get_text_from(source)
        except Exception as exc:  # whatever went wrong, reported and never fatal: the read is what this module is for
            entry["error"] = to_native(exc)
        found.append(entry)
    return found


def main():
    module = AnsibleModule(
        argument_spec=dict(
            path=dict(type="path", required=True),
            service=dict(type="str"),
            instances=dict(type="list", elements="int"),
            version_url=dict(type="str"),
            env_file=dict(type="path"),
            java=dict(type="bool", default=False),
            health=dict(type="dict", options=_health.ARGUMENT_SPEC, required_one_of=_health.REQUIRED_ONE_OF),
            checksum_lists=dict(type="list", elements="str", default=[]),
            url_username=dict(type="str"),
            url_password=dict(type="str", no_log=True),
        ),
        required_by={"version_url": "service", "health": "service", "instances": "service"},
        supports_check_mode=True,
    )
    params = module.params
    try:
        report = _release.host_releases(params["path"])
    except (_releases.ReleaseError, OSError) as exc:
        module.fail_json(msg=to_native(exc))
    report.update(service=None, instances=None, live_port=None,
                  checksum_lists=fetch_lists(params["checksum_lists"], params["url_username"], params["url_password"]))
    report["platform"]["libc"] = _hostfit.libc()
    if params["env_file"]:
        report["env_keys"] = _hostfit.env_keys(params["env_file"])
    if params["java"]:
        report["runtime"] = {"java": _hostfit.read_java(module.run_command, module.get_bin_path("java"))}
    if not params["service"]:
        module.exit_json(changed=False, **report)
    systemctl = module.get_bin_path("systemctl", required=True)
    layout = _releases.Layout(params["path"])

    def read(unit, port=None):
        url = params["version_url"]
        if url and port:
            url = _health.url_at_port(url, port)
        state = _service.service_state(module.run_command, systemctl, unit, layout.releases, url,
                                       records=report["releases"])
        state["healthy"] = state["health"] = None
        if params["health"] and state["state"] == "active":
            state["healthy"], state["health"] = _health.probe_from(_health.at_port(params["health"], port))()
        return state

    ports = params["instances"]
    if ports:
        if len(set(ports)) != 2 or not all(0 < p < 65536 for p in ports):
            module.fail_json(msg="instances must be two different ports, got %s" % ports)
        seen = dict((p, read("%s@%d" % (params["service"], p), p)) for p in ports)
        report["instances"] = dict((str(p), s) for p, s in seen.items())
        report["live_port"] = _releases.live_port(layout, ports, [p for p, s in seen.items() if s["state"] == "active"])
        report["service"] = seen[report["live_port"]]
    else:
        report["service"] = read(params["service"])
    module.exit_json(changed=False, **report)


if __name__ == "__main__":
    main()
