# -*- coding: utf-8 -*-
# Copyright: seedops.deploy contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""A test-only connection that reaches a lab container through `docker exec` instead of SSH.

The access and firewall tests use it to run a role the way a docker (or local) connection would: Ansible does not
arrive over SSH, so SSH_CONNECTION is empty and no ruleset or sshd setting can cut the connection in use.
"""

from __future__ import annotations

DOCUMENTATION = """
name: lab_exec
short_description: Run commands in a lab container with docker exec (tests only)
description:
  - Commands run as O(remote_user) through C(docker exec -i); files go in and out through C(cat).
author: Seedops Maintainers (@seedops-maintainers)
options:
  remote_addr:
    description: The container's name.
    type: str
    vars:
      - name: lab_exec_container
  remote_user:
    description: The user commands run as.
    type: str
    default: root
    vars:
      - name: ansible_user
"""

import shlex
import subprocess

from ansible.errors import AnsibleConnectionFailure, AnsibleError
from ansible.plugins.connection import ConnectionBase


class Connection(ConnectionBase):
    """docker exec into one container."""

    transport = "lab_exec"
    has_pipelining = True

    def _connect(self):
        self._connected = True
        return self

    def _docker(self, args, stdin=None):
        container = self.get_option("remote_addr")
        if not container:
            raise AnsibleConnectionFailure("lab_exec: set lab_exec_container to the container's name")
        command = ["docker", "exec", "-i", "-u", self.get_option("remote_user") or "root", container] + args
        try:
            result = subprocess.run(command, input=stdin, capture_output=True, check=False, timeout=600)
        except (OSError, subprocess.TimeoutExpired) as err:
            raise AnsibleConnectionFailure(f"lab_exec: {err}") from err
        return result.returncode, result.stdout, result.stderr

    def exec_command(self, cmd, in_data=None, sudoable=True):
        super().exec_command(cmd, in_data=in_data, sudoable=sudoable)
        return self._docker(["/bin/sh", "-c", cmd], stdin=in_data)

    def put_file(self, in_path, out_path):
        super().put_file(in_path, out_path)
        with open(in_path, "rb") as source:
            data = source.read()
        rc, _out, err = self._docker(["/bin/sh", "-c", f"cat > {shlex.quote(out_path)}"], stdin=data)
        if rc != 0:
            raise AnsibleError(f"lab_exec: could not write {out_path}: {err.decode(errors='replace')}")

    def fetch_file(self, in_path, out_path):
        super().fetch_file(in_path, out_path)
        rc, data, err = self._docker(["cat", in_path])
        if rc != 0:
            raise AnsibleError(f"lab_exec: could not read {in_path}: {err.decode(errors='replace')}")
        with open(out_path, "wb") as target:
            target.write(data)

    def close(self):
        self._connected = False
