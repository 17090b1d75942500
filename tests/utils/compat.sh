#!/usr/bin/env bash
# `make compat`: the unit tests and `ansible-test sanity` under each older ansible-core the collection supports
# (meta/runtime.yml's requires_ansible; requirements.txt pins the newest, which `make unit` and `make sanity` use).
# Each release gets a virtual environment of its own, .venv-compat/VERSION, with that ansible-core and the unit
# tests' other requirements as requirements.txt pins them (made again when either changes). pytest-ansible is left
# out (it refuses some of these releases): the unit tests find the collection through PYTHONPATH instead, on a
# temporary ansible_collections/seedops/deploy link to the checkout.
#   tests/utils/compat.sh [STEP...]       every release in COMPAT_CORES; the steps: venvs, unit, sanity (default all
#                                         three; `make test` runs venvs and unit beside its own unit tests, and
#                                         sanity beside integration)
#   COMPAT_CORES="2.18.19" tests/utils/compat.sh
#   COMPAT_SANITY_SKIP="pylint pep8" ...  sanity without those tests
set -euo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
cd "$root"
cores=${COMPAT_CORES:-2.17.14 2.18.19}
python=${PYTHON:-python3}
pins=$(grep -E '^(pytest|requests|docker|passlib|ansible-builder|kubernetes-validate)==' requirements.txt)

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
mkdir -p "$work/tree/ansible_collections/seedops"
ln -s "$root" "$work/tree/ansible_collections/seedops/deploy"

steps=${*:-venvs unit sanity}
failed=()
make_venv() {  # CORE: its environment, made (again) when missing or when its pins changed
  local core=$1 venv=.venv-compat/$1 want
  want=$(printf 'ansible-core==%s\n%s\n' "$core" "$pins")
  if [ ! -x "$venv/bin/ansible-test" ] || [ "$(cat "$venv/.requirements" 2>/dev/null)" != "$want" ]; then
    echo "compat: making $venv"
    rm -rf "$venv"
    "$python" -m venv "$venv"
    "$venv/bin/python" -m pip install -q --upgrade pip
    # shellcheck disable=SC2086  # one requirement per word
    "$venv/bin/python" -m pip install -q $want
    echo "$want" > "$venv/.requirements"
  fi
}

# Every step needs the environments: made at the same time (mostly downloads and unpacking; one after the other, they
# held back the unit tests of a fresh-clone run by about a minute). A failure stops here.
venv_pids=()
for core in $cores; do
  make_venv "$core" &
  venv_pids+=("$!")
done
for pid in "${venv_pids[@]}"; do
  wait "$pid"
done

# The unit tests of every release at once: they spend most of their time waiting on real servers and sockets
# (a run takes about 80 s and a quarter of one core).
case " $steps " in *" unit "*)
  pids=()
  for core in $cores; do
    PYTHONPATH="$work/tree" ANSIBLE_COLLECTIONS_PATH="$work/tree" ".venv-compat/$core/bin/pytest" -q -o addopts=-ra \
      -p no:cacheprovider tests/unit > "$work/unit-$core.log" 2>&1 &
    pids+=("$!")
  done
  i=0
  for core in $cores; do
    rc=0
    wait "${pids[$i]}" || rc=$?
    i=$((i + 1))
    echo "compat: ansible-core $core: unit tests (exit $rc)"
    if [ "$rc" -eq 0 ]; then tail -n 1 "$work/unit-$core.log"; else cat "$work/unit-$core.log"; failed+=("unit tests on ansible-core $core"); fi
  done
esac

case " $steps " in *" sanity "*)
  for core in $cores; do
    echo "compat: ansible-core $core: sanity"
    skip=()
    for t in ${COMPAT_SANITY_SKIP:-}; do skip+=(--skip-test "$t"); done
    if ! ANSIBLE_TEST="$root/.venv-compat/$core/bin/ansible-test" tests/utils/sanity.sh "${skip[@]}"; then
      failed+=("sanity on ansible-core $core")
    fi
  done
esac
if [ ${#failed[@]} -gt 0 ]; then
  printf 'compat: failed: %s\n' "${failed[@]}" >&2
  exit 1
fi
echo "compat: $steps: passed on ansible-core $cores"
