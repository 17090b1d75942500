"""The README's main command, once the lab is up (`make site` runs it): build the sample service's
packages, run site.yml (preflight, repository, app hosts, load balancer, deploy 1.0.0), then deploy
2.0.0 rolling under live traffic and print the load client's counts beside the deploy report.

    python tests/lab/demo.py [--lab NAME] [--from 1.0.0] [--to 2.0.0] [--rps 60] [-e VARS]... [--json FILE]

Exits non-zero when a playbook fails or any request failed.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
sys.path.insert(0, HERE)

import load as load_client  # noqa: E402  pylint: disable=wrong-import-position


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n", maxsplit=1)[0])
    parser.add_argument("--lab", default="seedops-lab")
    parser.add_argument("--from", dest="start", default="1.0.0", help="version site.yml deploys first")
    parser.add_argument("--to", default="2.0.0", help="version then deployed under load")
    parser.add_argument("--rps", type=float, default=60.0)
    parser.add_argument("-e", "--extra-vars", dest="extra", action="append", default=[],
                        help="extra variables for both playbooks, as ansible-playbook takes them (repeatable)")
    parser.add_argument("--json", help="write the load client's summary here")
    args = parser.parse_args(argv)
    state = os.environ.get("SEEDOPS_LAB_STATE") or os.path.join(ROOT, ".lab")
    inventory = os.path.join(state, args.lab, "inventory.yml")
    bin_dir = os.path.dirname(sys.executable)
    build = os.path.join(ROOT, "tests", "fixtures", "app", "build.sh")
    for version in (args.start, args.to):
        print(f"demo: building the sample service {version}", flush=True)
        subprocess.run([build, version], check=True, stdout=subprocess.DEVNULL)
    playbook = [os.path.join(bin_dir, "ansible-playbook"), "-i", inventory]
    for extra in args.extra:
        playbook += ["-e", extra]
    print(f"demo: site.yml - preflight, repository, app hosts, load balancer, deploy {args.start}", flush=True)
    if subprocess.run(playbook + ["playbooks/site.yml", "-e", f"deploy_version={args.start}"], cwd=ROOT,
                      check=False).returncode != 0:
        print("demo: site.yml failed", file=sys.stderr)
        return 1
    load = load_client.Load(load_client.lab_url(args.lab, state), args.rps, 0.1, "1s", 15)
    print(f"demo: deploying {args.to} rolling while {args.rps:.0f} requests/s go through the load balancer", flush=True)
    rc, summary = load.around(lambda: subprocess.run(playbook + ["playbooks/deploy.yml", "-e", f"deploy_version={args.to}"],
                                                     cwd=ROOT, check=False).returncode)
    load_client.print_summary(summary)
    if args.json:
        with open(args.json, "w", encoding="utf-8") as f:
            json.dump(summary, f, indent=1)
    failed = summary["all"]["failed"]
    print(f"demo: deploy.yml exited {rc}; failed: {failed} requests of {summary['all']['sent']}")
    return 0 if rc == 0 and failed == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
