"""Build the collection's execution environment (awx/ee/execution-environment.yml) in the lab's Docker engine.

Usage: ee.py [--verbose] build      (make ee) prints the image's name on its last line

Nothing is pulled from a registry. The base is the lab's own Debian 12 image (lab.py makes it with debootstrap)
with what ansible-builder expects of a base (awx/ee/base/Dockerfile: Python 3 with pip, the SSH client), tagged
seedops-lab/ee-base:bookworm as the definition names it. ansible-builder then builds the definition, with the
collection's tarball, built from this checkout, beside it. The work happens in .lab/ee/.

The image is tagged seedops/deploy-ee:<digest> (and :<version>, as the definition's options.tags say), the digest
covering what it is built from: the definition, the base image and the collection's files. A build of a checkout
whose image exists takes seconds (the collection's tarball is built again to know its digest).
"""

from __future__ import annotations

import argparse
import fcntl
import hashlib
import json
import os
import shutil
import ssl
import subprocess
import sys
import tarfile

import yaml

import lab

EE_DIR = os.path.join(lab.REPO_ROOT, "awx", "ee")
DEFINITION = os.path.join(EE_DIR, "execution-environment.yml")
BASE_CONTEXT = os.path.join(EE_DIR, "base")
IMAGE_REPO = "seedops/deploy-ee"


def work_dir() -> str:
    return os.path.join(os.environ.get("SEEDOPS_LAB_STATE") or os.path.join(lab.REPO_ROOT, ".lab"), "ee")


def collection_digest(tarball: str) -> str:
    """A digest of the collection's files (names and contents) in its tarball: the same for the same files, whatever
    the tarball's own timestamps."""
    h = hashlib.sha256()
    with tarfile.open(tarball, "r:gz") as tar:
        for member in sorted(tar.getmembers(), key=lambda m: m.name):
            h.update(member.name.encode() + b"\0" + str(member.mode).encode() + b"\0")
            if member.isfile():
                h.update(tar.extractfile(member).read())
    return h.hexdigest()


def image_digest(definition_text: str, base_id: str, collection: str) -> str:
    return hashlib.sha256(json.dumps([definition_text, base_id, collection]).encode()).hexdigest()[:12]


def build_collection(out: str) -> str:
    """ansible-galaxy collection build of this checkout into `out`; returns the tarball's path."""
    galaxy = os.path.join(os.path.dirname(sys.executable), "ansible-galaxy")
    done = subprocess.run([galaxy if os.path.exists(galaxy) else "ansible-galaxy", "collection", "build", "--force",
                           "--output-path", out, lab.REPO_ROOT], capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise lab.LabError("ansible-galaxy collection build failed:\n" + (done.stdout + done.stderr)[-3000:])
    (tarball,) = [os.path.join(out, n) for n in os.listdir(out) if n.startswith("seedops-deploy-") and
                  n.endswith(".tar.gz")]
    return tarball


def trusted_cas() -> str:
    """The CA bundle this machine trusts (Python's default, as pip here uses it), or an empty file."""
    for path in (os.environ.get("SSL_CERT_FILE"), ssl.get_default_verify_paths().cafile,
                 "/etc/ssl/certs/ca-certificates.crt"):
        if path and os.path.isfile(path):
            return path
    return os.devnull


def build(verbose: bool = False) -> str:
    """Build (or find) the execution environment of this checkout; returns its image name. One build at a time in
    this checkout: they share the work directory."""
    work = work_dir()
    os.makedirs(os.path.dirname(work), exist_ok=True)
    with open(work + ".lock", "w", encoding="utf-8") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        return build_in(work, verbose)


def build_in(work: str, verbose: bool) -> str:
    docker = lab._import_docker()  # pylint: disable=protected-access
    with open(DEFINITION, encoding="utf-8") as f:
        text = f.read()
    definition = yaml.safe_load(text)
    base_name = definition["images"]["base_image"]["name"]
    (wanted,) = [f["src"] for f in definition.get("additional_build_files", []) if f["src"].endswith(".tar.gz")]
    client = lab.connect()
    debian = lab.ensure_base_image(client, pull=False, mirror=None)
    shutil.rmtree(work, ignore_errors=True)
    context = os.path.join(work, "base")
    shutil.copytree(BASE_CONTEXT, context)
    shutil.copy(trusted_cas(), os.path.join(context, "build-host-ca.crt"))
    base_tag = f"{base_name.split(':')[0]}:{lab.context_digest(context, debian.id)}"
    try:
        base = client.images.get(base_tag)
    except docker.errors.ImageNotFound:
        lab.say(f"building the execution environment's base {base_tag} (Python 3, pip, the SSH client)")
        base = lab.build_image(client, context, base_tag, {"BASE": lab.BASE_IMAGE}, verbose,
                               "the execution environment's base")
    base.tag(*base_name.rsplit(":", 1))
    tarball = build_collection(work)
    if os.path.basename(tarball) != wanted:
        raise lab.LabError(f"the collection built as {os.path.basename(tarball)}, but {DEFINITION} installs "
                           f"{wanted}: change its additional_build_files and galaxy entry to galaxy.yml's version")
    name = f"{IMAGE_REPO}:{image_digest(text, base.id, collection_digest(tarball))}"
    try:
        client.images.get(name)
        lab.say(f"the execution environment {name} is built already")
    except docker.errors.ImageNotFound:
        run_builder(work, name, verbose)
        lab.say(f"built the execution environment {name}")
    # The definition's own names (seedops/deploy-ee:VERSION) follow this checkout's image.
    for tag in definition.get("options", {}).get("tags", []):
        client.images.get(name).tag(*tag.rsplit(":", 1))
    return name


def run_builder(work: str, name: str, verbose: bool) -> None:
    """ansible-builder build of the definition, copied into `work` beside the collection's tarball, as `name`."""
    shutil.copy(DEFINITION, work)
    lab.say(f"building the execution environment {name} with ansible-builder")
    command = [sys.executable, "-m", "ansible_builder", "build", "--file", os.path.join(work, "execution-environment.yml"),
               "--context", os.path.join(work, "context"), "--tag", name, "--container-runtime", "docker",
               "--verbosity", "2",
               # A failed step's container would stay behind in the engine.
               "--extra-build-cli-args=--force-rm"]
    with open(os.path.join(work, "build.log"), "w", encoding="utf-8") as log:
        done = subprocess.run(command, stdout=None if verbose else log, stderr=subprocess.STDOUT, check=False)
    if done.returncode != 0:
        with open(os.path.join(work, "build.log"), encoding="utf-8") as log:
            tail = log.read()[-4000:]
        raise lab.LabError(f"ansible-builder failed (exit {done.returncode}; log: {work}/build.log):\n{tail}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n", 1)[0])
    parser.add_argument("--verbose", action="store_true", help="show the builds' output")
    parser.add_argument("command", choices=["build"])
    args = parser.parse_args(argv)
    try:
        print(build(args.verbose), flush=True)
    except lab.LabError as exc:
        print(f"ee: error: {exc}", file=sys.stderr, flush=True)
        return exc.status
    return 0


if __name__ == "__main__":
    sys.exit(main())
