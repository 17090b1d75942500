# -*- coding: utf-8 -*-
# Copyright: seedops.deploy contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Controller half of seedops.deploy.artifact: push a controller file into the host's store.

The controller file's digest is computed once per run, whatever the number of hosts: worker
processes share it through a small cache in the run's local temp directory, guarded by a lock.
Each host is asked first whether its store already holds that digest; only then do bytes travel,
streamed from disk by the connection plugin.
"""

from __future__ import annotations

import fcntl
import json
import os
import shlex
import time

from ansible import constants as C
from ansible.errors import AnsibleActionFail, AnsibleError
from ansible.module_utils.common.text.converters import to_native

from ansible_collections.seedops.deploy.plugins.module_utils import _digest
from ansible_collections.seedops.deploy.plugins.plugin_utils._controller import ModuleAction


def local_digest(path, algorithm, cache_dir):
    """Digest of a controller file, computed once per run (per file version) across all forks."""
    st = os.stat(path)
    key = "%s:%s:%d:%d:%d" % (algorithm, os.path.realpath(path), st.st_size, st.st_mtime_ns, st.st_ino)
    cache = os.path.join(cache_dir, "seedops-artifact-digests.json")
    with open(cache + ".lock", "a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            with open(cache) as f:
                known = json.load(f)
        except (OSError, ValueError):
            known = {}
        if key in known:
            return known[key], True
        known[key] = _digest.file_digest(path, algorithm)
        tmp = cache + ".tmp"
        with open(tmp, "w") as f:
            json.dump(known, f)
        os.replace(tmp, cache)
        return known[key], False


def without_multiplexing_or_compression(ssh_args):
    """ssh_args for a connection of its own without compression: drops -C and the Compression and
    Control* options, keeps everything else."""
    tokens = shlex.split(ssh_args)
    kept = []
    skip = ("compression", "controlmaster", "controlpersist", "controlpath")
    i = 0
    while i < len(tokens):
        token = tokens[i]
        if token == "-C":
            i += 1
            continue
        if token == "-o" and i + 1 < len(tokens):
            if not tokens[i + 1].lower().startswith(skip):
                kept += [token, tokens[i + 1]]
            i += 2
            continue
        if token.startswith("-o") and token[2:].lower().startswith(skip):
            i += 1
            continue
        kept.append(token)
        i += 1
    return " ".join(["-o", "Compression=no", "-o", "ControlMaster=no", "-o", "ControlPath=none"]
                    + [shlex.quote(t) for t in kept])


def push_checksum(args, source):
    """(algorithm, expected hex or None) for pushing `source`; AnsibleActionFail when the
    arguments cannot verify a push."""
    if args.get("checksum"):
        try:
            return _digest.parse_checksum(args["checksum"])
        except _digest.DigestError as exc:
            raise AnsibleActionFail(to_native(exc))
    if args.get("checksum_url"):
        raise AnsibleActionFail("checksum_url works with url only; for src give checksum")
    if not args.get("allow_unverified"):
        raise AnsibleActionFail("refusing to push %s without a checksum: give checksum (sha256:<hex>), or set "
                                "allow_unverified: true" % source)
    return "sha256", None


class ActionModule(ModuleAction):
    MODULE = "seedops.deploy.artifact"
    TRANSFERS_FILES = True

    def run_module(self, args, task_vars, result):
        if not args.get("src") or args.get("remote_src"):
            return super().run_module(args, task_vars, result)
        try:
            return self._push(args, task_vars, result)
        except AnsibleActionFail as exc:
            result.update(failed=True, changed=False, msg=exc.message, bytes_transferred=0)
            return result
        finally:
            self._remove_tmp_path(self._connection._shell.tmpdir)

    def _put_uncompressed(self, source, remote):
        """Transfer with the connection plugin, but over the ssh plugin without compression and on a
        connection of its own: artifacts are compressed already, and ssh's -C (Ansible's default
        ssh_args, which a multiplexed master connection imposes on every session) makes a push of
        incompressible bytes several times slower."""
        conn = self._connection
        try:
            ssh_args = conn.get_option("ssh_args")
        except (KeyError, AttributeError, AnsibleError):
            ssh_args = None
        if ssh_args is None or conn.transport not in ("ssh", "ansible.builtin.ssh"):
            self._transfer_file(source, remote)
            return
        conn.set_option("ssh_args", without_multiplexing_or_compression(ssh_args))
        try:
            self._transfer_file(source, remote)
        finally:
            conn.set_option("ssh_args", ssh_args)

    def _push(self, args, task_vars, result):
        started = time.monotonic()
        try:
            source = self._find_needle("files", args["src"])
        except AnsibleError as exc:
            raise AnsibleActionFail("src %s not found on the controller: %s" % (args["src"], to_native(exc)))
        algorithm, expected = push_checksum(args, source)
        digest, cached = local_digest(source, algorithm, C.DEFAULT_LOCAL_TMP)
        if expected and digest != expected:
            raise AnsibleActionFail("the controller file %s does not match its checksum: expected %s:%s, got %s:%s. "
                                    "Nothing was transferred" % (source, algorithm, expected, algorithm, digest))
        module_args = dict(args)
        module_args.pop("src", None)
        module_args.pop("checksum_url", None)
        module_args["checksum"] = "%s:%s" % (algorithm, digest)
        # One round trip when the store already holds it: the module answers `missing` otherwise.
        outcome = self.execute(module_args, task_vars)
        transferred = 0
        if outcome.get("failed") and outcome.get("missing"):
            if self._task.check_mode:
                outcome = {"changed": True, "bytes_transferred": 0, "digest": module_args["checksum"],
                           "msg": "would push %s" % source}
            else:
                tmpdir = self._connection._shell.tmpdir or self._make_tmp_path()
                remote = self._connection._shell.join_path(tmpdir, "artifact")
                self._put_uncompressed(source, remote)
                self._fixup_perms2((tmpdir, remote))
                module_args["src"] = remote
                transferred = os.path.getsize(source)
                outcome = self.execute(module_args, task_vars)
        result.update(outcome)
        result["source"] = source
        result["digest_cached"] = cached
        if not outcome.get("failed"):
            result["bytes_transferred"] = transferred
            elapsed = time.monotonic() - started
            result["elapsed"] = round(elapsed, 3)
            result["throughput"] = round(transferred / elapsed, 1) if elapsed > 0 else 0.0
        return result
