#!/usr/bin/env bash
# `make integration`: the integration tests in two streams at once, each against a lab of its own.
# The tests spend much of their time waiting (drains, health gates, SSH round trips, the load client's pacing): run one
# after the other they leave about 40% of a 2-core machine idle. The deploy tests (test_deploy.py, with the lab
# lifecycle and sample-service tests beside them) run on the default lab; every other file runs on a second lab,
# seedops-lab2, with its published ports from 42400. Each test file sets up the state it needs, so neither stream
# depends on the other's; the controller-side files they share (the sample service's packages) are written whole and
# renamed into place.
#   tests/utils/integration.sh            both streams; exit status non-zero if either failed
#   INTEGRATION_STREAMS=1 ...             one pytest run over every file, on the default lab
#   PYTEST_ARGS="-x" ...                  extra pytest arguments for each stream
# Each stream's lines are prefixed with its name; both summaries (with the slowest tests) follow at the end.
set -uo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
cd "$root" || exit 1
bin=$root/.venv/bin
# shellcheck disable=SC2206
extra=(${PYTEST_ARGS:-})
if [ "${INTEGRATION_STREAMS:-2}" = 1 ]; then
  exec "$bin/pytest" tests/integration --durations=60 "${extra[@]}"
fi

deploy_files=(tests/integration/test_deploy.py tests/integration/test_lab_hosts.py
              tests/integration/test_lab_lifecycle.py tests/integration/test_sample_app.py)
other_files=()
for f in tests/integration/test_*.py; do
  case " ${deploy_files[*]} " in *" $f "*) ;; *) other_files+=("$f") ;; esac
done

logs=$(mktemp -d)
pids=()
# shellcheck disable=SC2317  # called by the EXIT trap
cleanup() {  # an interrupted run ends both streams (each is a process group of its own)
  local pid
  for pid in "${pids[@]}"; do kill -- "-$pid" 2>/dev/null; done
  rm -rf "$logs"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

stream() {  # NAME LAB BASE_PORT FILES...: pytest in its own process group, lines prefixed, output also in $logs/NAME
  local name=$1 lab=$2 port=$3
  shift 3
  # shellcheck disable=SC2016  # the inner script expands its own arguments
  setsid bash -c 'name=$1 lab=$2 port=$3 logs=$4 bin=$5; shift 5
    SEEDOPS_LAB_NAME=$lab SEEDOPS_LAB_BASE_PORT=$port "$bin/pytest" -p no:cacheprovider --basetemp "$logs/tmp-$name" \
      --durations=30 "$@" 2>&1 | tee "$logs/$name.log" | sed -u "s/^/[$name] /"
    echo "${PIPESTATUS[0]}" > "$logs/$name.rc"' _ "$name" "$lab" "$port" "$logs" "$bin" "$@" &
  pids+=("$!")
  echo "integration: stream $name on lab $lab: ${*#tests/integration/}"
}

stream deploy seedops-lab "${SEEDOPS_LAB_BASE_PORT:-42200}" "${deploy_files[@]}" "${extra[@]}"
stream others seedops-lab2 "${SEEDOPS_LAB2_BASE_PORT:-42400}" "${other_files[@]}" "${extra[@]}"
wait "${pids[@]}"
pids=()

rc=0
for name in deploy others; do
  echo
  echo "integration: stream $name, summary:"
  sed -n '/slowest .* durations/,$p' "$logs/$name.log"
  code=$(cat "$logs/$name.rc" 2>/dev/null || echo 1)
  [ "$code" = 0 ] || { echo "integration: stream $name failed (exit $code)"; rc=1; }
done
exit "$rc"
