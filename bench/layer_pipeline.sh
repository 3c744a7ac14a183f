#!/usr/bin/env bash
# Prefill through the layer split's pipeline (--split layer --micro-batch):
# ppN of one process (-t 1, and -t THREADS for the same cores shared by
# threads), then N_RANKS ranks of one thread each with whole steps
# (--micro-batch 0) and with micro-batches of each size given. Prints each
# run's `strata bench` row and its mpi line. SINGLE_THREADS="" skips the
# one-process runs.
# Usage: bench/layer_pipeline.sh STRATA MODEL [PROMPT=512] [REPS=3] [N_RANKS=2] [SIZES="16 32 64 128"]
set -euo pipefail
strata=$(realpath "$1") model=$(realpath "$2")
pp=${3:-512} reps=${4:-3} np=${5:-2} sizes=${6:-16 32 64 128}
bench=(bench -m "$model" -p "$pp" -n 0 -r "$reps" --no-roofline --no-tune)
# Waiting ranks yield the core (on a machine with fewer cores than ranks, spinning ranks starve the others).
mpi=(mpirun --oversubscribe --allow-run-as-root --bind-to none --mca mpi_yield_when_idle 1)

for t in ${SINGLE_THREADS-1 $np}; do
  echo "## one process, -t $t"
  "$strata" "${bench[@]}" -t "$t" | grep -E '^\| strata'
done
for mb in 0 $sizes; do
  echo "## $np ranks, -t 1 each, --split layer --micro-batch $mb"
  # A rank waits for the one before it for a whole step (--micro-batch 0): minutes for a long prompt on one core.
  "${mpi[@]}" -np "$np" "$strata" "${bench[@]}" -t 1 --split layer --micro-batch "$mb" --mpi-timeout 600 |
    grep -E '^\| strata|^mpi:'
done
