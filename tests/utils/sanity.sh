#!/usr/bin/env bash
# Runs `ansible-test sanity` on a copy of the collection laid out as
# ansible_collections/seedops/deploy/ in a temporary directory (ansible-test needs that tree;
# the checkout is the collection root). Extra arguments go to ansible-test, e.g. --test pylint.
# Uses the ansible-test of the Python running this script's environment (ANSIBLE_TEST, default:
# the one on PATH).
set -euo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
ansible_test=${ANSIBLE_TEST:-$(command -v ansible-test)}
python=$(dirname "$ansible_test")/python
[ -x "$python" ] || python=python3
pyver=$("$python" -c 'import sys; print("%d.%d" % sys.version_info[:2])')

# ansible-test downloads a pip bootstrap script from a host some machines cannot reach; where
# the workplace provides a stand-in writer, use it (elsewhere this is a no-op).
prepare="$root/../shared/tools/prepare-ansible-test"
if [ -x "$prepare" ]; then "$prepare" "$python"; fi

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
tree="$work/ansible_collections/seedops/deploy"
mkdir -p "$tree"
if git -C "$root" rev-parse --is-inside-work-tree >/dev/null 2>&1; then
  # Tracked files and new files not ignored: exactly what would be committed.
  (cd "$root" && git ls-files -z --cached --others --exclude-standard | xargs -0 -I{} sh -c '[ -e "{}" ] && printf "%s\0" "{}"' \
     | tar --null -T - -cf -) | tar -C "$tree" -xf -
else
  tar -C "$root" --exclude=./.venv --exclude=./.lab --exclude=./tests/output --exclude=./.git -cf - . | tar -C "$tree" -xf -
fi
cd "$tree"
"$ansible_test" sanity --venv --requirements --python "$pyver" --color no "$@"
