#!/usr/bin/env bash
# `make test`: unit, sanity and lint, then integration against the lab. The checks are single-threaded, so they
# use the machine's cores side by side, together with the set-up the integration tests need:
#   - sanity runs in the background while unit and lint run in the foreground (its output follows theirs);
#   - the lab comes up (on a fresh machine: the Docker engine, the debootstrapped base image, the host image);
#   - the Go build cache gets the standard library for the platforms the sample service's packages are built for
#     (tests/fixtures/app/build.sh, with its flags), so the integration fixtures' builds only compile the service.
# The last two are idempotent and the integration tests would do them anyway: a failure there is reported, and the
# tests meet (and name) the problem again. A failing check stops the run before integration, once every background
# job has ended (nothing is left running behind it).
set -euo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
cd "$root"
bin=$root/.venv/bin  # made by `make venv`, which `make test` runs first
export PATH="$bin:$PATH"
logs=$(mktemp -d)
jobs_running=()   # pid:kind:name, kind "check" (its failure fails the run) or "setup"
failed_checks=()

in_background() {  # KIND NAME COMMAND...: run COMMAND in the background, its output in $logs/NAME.log
  local kind=$1 name=$2
  shift 2
  "$@" >"$logs/$name.log" 2>&1 &
  jobs_running+=("$!:$kind:$name")
  echo "test-all: $name runs in the background (pid $!)"
}

wait_background() {  # wait for every background job and print its output; a check's failure is remembered
  local entry pid kind name rc
  for entry in "${jobs_running[@]}"; do
    IFS=: read -r pid kind name <<<"$entry"
    rc=0
    wait "$pid" || rc=$?
    if [ "$kind" = check ]; then
      echo "test-all: output of $name:"
      cat "$logs/$name.log"
      [ "$rc" -eq 0 ] || failed_checks+=("$name (exit $rc)")
    elif [ "$rc" -eq 0 ]; then
      echo "test-all: $name ready"
    else
      echo "test-all: $name failed in the background (exit $rc); the integration tests try again. Its log ends:"
      tail -n 30 "$logs/$name.log" | sed 's/^/  /'
    fi
  done
  jobs_running=()
}

cleanup() {
  local rc=$?
  [ ${#jobs_running[@]} -eq 0 ] || wait_background
  rm -rf "$logs"
  exit "$rc"
}
trap cleanup EXIT

in_background setup lab "$bin/python" tests/lab/lab.py up
in_background setup go-cache tests/fixtures/app/build.sh -o "$logs/go-cache" 0.0.0-cache
# sanity.sh itself, not `make sanity`: make's venv step would run bootstrap.sh a second time beside unit's.
in_background check sanity tests/utils/sanity.sh

make --no-print-directory unit lint

wait_background
if [ ${#failed_checks[@]} -gt 0 ]; then
  echo "test-all: failed: ${failed_checks[*]}" >&2
  exit 1
fi
make --no-print-directory integration
