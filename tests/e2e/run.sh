#!/usr/bin/env bash
# End-to-end tests of `strata serve` with the official `openai` npm client.
# Installs the pinned client (npm ci), starts `strata serve` with the bundled
# model on a free loopback port, runs *.test.mjs with node's test runner, then
# stops the server with SIGTERM and requires a clean exit (0).
# Usage: tests/e2e/run.sh [path/to/strata]     (default: $STRATA_CLI, else build/strata)
#   STRATA_E2E_MODEL   model to serve (default: models/stories260K.gguf)
#   STRATA_E2E_MPI=N   serve under `mpirun -np N` (--split tensor, a 0.5 s
#                      keepalive); the job must end with exit 0 after
#                      SIGTERM to rank 0
#   STRATA_E2E_SPLIT=layer  with STRATA_E2E_MPI: --split layer instead, with
#                      --micro-batch 4 so that steps of more tokens (prompts,
#                      concurrent requests) go through the pipeline in pieces
#   STRATA_E2E_KV_NODES=1  with STRATA_E2E_MPI: --split none --kv-nodes
#                      instead, rank 0's KV RAM 200K (5 blocks of the bundled
#                      model), the other ranks' 4M each
# Needs node >= 20 and npm (Debian: nodejs, npm); with STRATA_E2E_MPI, Open MPI.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
root="$(cd "$here/../.." && pwd)"
cli="$(realpath "${1:-${STRATA_CLI:-$root/build/strata}}")"
model="$(realpath "${STRATA_E2E_MODEL:-$root/models/stories260K.gguf}")"
key="e2e-$RANDOM$RANDOM"

(cd "$here" && npm ci --no-audit --no-fund --loglevel=error)

log="$(mktemp)"
sessions="$(mktemp -d)"
ranks="${STRATA_E2E_MPI:-}"
kv_nodes="${STRATA_E2E_KV_NODES:-}"
split=tensor
if [ -n "$ranks" ] && [ -n "$kv_nodes" ]; then
  split=none
  serve=("$cli" serve -m "$model" --port 0 --api-key "$key" -t 1 --session-dir "$sessions" --split none --kv-nodes
         --mpi-keepalive 0.5)
  mpirun --oversubscribe --allow-run-as-root -np 1 "${serve[@]}" --kv-ram 200K : -np $((ranks - 1)) "${serve[@]}" \
    --kv-ram 4M 2>"$log" &
elif [ -n "$ranks" ]; then
  split="${STRATA_E2E_SPLIT:-tensor}"
  split_flags=(--split "$split")
  [ "$split" = layer ] && split_flags+=(--micro-batch 4)
  mpirun --oversubscribe --allow-run-as-root -np "$ranks" "$cli" serve -m "$model" --port 0 --api-key "$key" -t 1 \
    --session-dir "$sessions" "${split_flags[@]}" --mpi-keepalive 0.5 2>"$log" &
else
  "$cli" serve -m "$model" --port 0 --api-key "$key" -t 1 --session-dir "$sessions" 2>"$log" &
fi
pid=$!
# The process that serves HTTP: strata itself, or under mpirun its rank 0.
server_pid() {
  [ -z "$ranks" ] && { echo "$pid"; return; }
  local child
  for child in $(pgrep -P "$pid"); do
    if tr '\0' '\n' <"/proc/$child/environ" 2>/dev/null | grep -qx OMPI_COMM_WORLD_RANK=0; then
      echo "$child"
      return
    fi
  done
}
cleanup() {
  kill -TERM "$pid" 2>/dev/null || true
  wait "$pid" 2>/dev/null || true
  rm -rf "$log" "$sessions"
}
trap cleanup EXIT

port=""
for _ in $(seq 1 200); do
  port="$(sed -n 's|.*listening on http://127\.0\.0\.1:\([0-9][0-9]*\).*|\1|p' "$log")"
  [ -n "$port" ] && break
  if ! kill -0 "$pid" 2>/dev/null; then
    echo "e2e: strata serve exited early:" >&2
    cat "$log" >&2
    exit 1
  fi
  sleep 0.1
done
if [ -z "$port" ]; then
  echo "e2e: strata serve did not start listening" >&2
  cat "$log" >&2
  exit 1
fi

if [ -n "$ranks" ] && ! grep -q "MPI rank 0 of $ranks, split $split" "$log"; then
  echo "e2e: the load summary does not name the MPI job:" >&2
  cat "$log" >&2
  exit 1
fi

STRATA_E2E_BASE_URL="http://127.0.0.1:$port/v1" STRATA_E2E_API_KEY="$key" STRATA_CLI="$cli" \
  STRATA_E2E_MODEL="$model" STRATA_E2E_MPI="$ranks" STRATA_E2E_SESSION_DIR="$sessions" node --test "$here"/*.test.mjs

kill -TERM "$(server_pid)"
status=0
wait "$pid" || status=$?
trap - EXIT
if [ "$status" -ne 0 ]; then
  echo "e2e: strata serve exited with $status after SIGTERM" >&2
  cat "$log" >&2
  rm -f "$log"
  exit 1
fi
rm -rf "$log" "$sessions"
echo "e2e: all passed"
