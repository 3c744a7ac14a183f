#!/usr/bin/env bash
# Long-context decode with KV on another rank (--split none --kv-nodes):
# tgN after a D-token cached prefix, one process against 2 ranks where rank 0
# keeps RANK0_RAM of KV and the node the rest, the node's blocks read by
# moving the computation, the data, or as measured (auto). Prints each run's
# `strata bench` row, the mpi line (bytes and time communicating per token)
# and where the blocks went. The prefix is computed once and its KV read
# from a session file by every run (bench --depth-session): the file at
# $DEPTH_SESSION if set (kept, reused by later invocations of the same model
# and depth), else a temporary one.
# Usage: bench/kv_nodes.sh STRATA MODEL [DEPTH=8192] [N=32] [RANK0_RAM=64M] [REPS=3]
set -euo pipefail
strata=$(realpath "$1") model=$(realpath "$2")
depth=${3:-8192} n=${4:-32} ram=${5:-64M} reps=${6:-3}
if [[ -n "${DEPTH_SESSION:-}" ]]; then
  session=$DEPTH_SESSION
else
  tmp=$(mktemp -d) && trap 'rm -rf "$tmp"' EXIT
  session=$tmp/prefix.session
fi
bench=(bench -m "$model" -p 0 -n "$n" --depth "$depth" --depth-session "$session" -r "$reps" --no-roofline --no-tune)
# Waiting ranks yield the core (on a machine with fewer cores than threads, spinning ranks starve the others).
mpi=(mpirun --oversubscribe --allow-run-as-root --bind-to none --mca mpi_yield_when_idle 1)

echo "## one process, -t 2"
"$strata" "${bench[@]}" -t 2 | grep -E '^\|'
for mode in compute data auto; do
  echo "## 2 ranks: rank 0 -t 2 --kv-ram $ram, KV node -t 1; --kv-remote $mode"
  out=$(mktemp) err=$(mktemp)
  "${mpi[@]}" -np 1 "$strata" "${bench[@]}" -t 2 --split none --kv-nodes --kv-ram "$ram" --kv-remote "$mode" : \
    -np 1 "$strata" "${bench[@]}" -t 1 --split none --kv-nodes >"$out" 2>"$err" || { cat "$err" >&2; exit 1; }
  grep -E '^\||^mpi:' "$out"
  rm -f "$out" "$err"
done
