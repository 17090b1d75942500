#!/usr/bin/env bash
# Makes a fresh machine ready for the lab and the tests; fast when there is nothing to do.
#  - Debian/Ubuntu as root: installs the missing Debian packages (Docker engine, debootstrap, Go,
#    SSH client, shellcheck, Python venv support).
#  - Creates .venv with requirements.txt (again when requirements.txt changes).
#  - Links the checkout into .venv/collections/ansible_collections/seedops/deploy, so
#    `seedops.deploy.*` resolves from the checkout (ansible.cfg points there).
set -euo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
cd "$root"

packages=(docker.io debootstrap golang-go openjdk-17-jdk-headless openssh-client git make tar gzip ca-certificates shellcheck python3-venv)
if [ -f /etc/debian_version ] && command -v dpkg-query >/dev/null; then
  missing=()
  for p in "${packages[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
  done
  if [ ${#missing[@]} -gt 0 ]; then
    if [ "$(id -u)" -ne 0 ]; then
      echo "bootstrap: missing Debian packages: ${missing[*]}; install them as root (apt-get install ${missing[*]})" >&2
      exit 1
    fi
    echo "bootstrap: installing Debian packages: ${missing[*]}"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
  fi
else
  for tool in docker ssh go git; do
    command -v "$tool" >/dev/null || echo "bootstrap: warning: '$tool' not found; install it (this script installs packages on Debian only)" >&2
  done
fi

# Each lab host runs systemd, which needs inotify instances; the kernel's default (128 per user) runs out
# with a couple of labs up, and hosts then boot degraded. Raise it (not persistent across reboots).
if [ "$(id -u)" -eq 0 ] && [ -w /proc/sys/fs/inotify/max_user_instances ] \
   && [ "$(cat /proc/sys/fs/inotify/max_user_instances)" -lt 1024 ]; then
  echo "bootstrap: raising fs.inotify.max_user_instances to 1024 for the lab's systemd hosts"
  echo 1024 > /proc/sys/fs/inotify/max_user_instances
fi

python=${PYTHON:-python3}
stamp=.venv/.requirements.sha256
want=$(sha256sum requirements.txt | cut -d' ' -f1)
if [ ! -x .venv/bin/python ] || [ "$(cat "$stamp" 2>/dev/null)" != "$want" ]; then
  echo "bootstrap: creating .venv with requirements.txt"
  [ -x .venv/bin/python ] || "$python" -m venv .venv
  .venv/bin/python -m pip install -q --upgrade pip
  .venv/bin/python -m pip install -q -r requirements.txt
  echo "$want" > "$stamp"
fi

mkdir -p .venv/collections/ansible_collections/seedops
ln -sfn ../../../.. .venv/collections/ansible_collections/seedops/deploy
