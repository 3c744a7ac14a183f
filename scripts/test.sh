#!/usr/bin/env bash
# Sets everything up and runs the test suite: installs Debian packages, builds
# (Release), runs every unit/integration test through CTest, then runs each
# libFuzzer target (ASan + UBSan build) for a bounded time.
#   STRATA_SHARED_DIR   test data (default: ../shared next to the repo)
#   STRATA_FUZZ_SECONDS seconds per fuzz target (default 60; 0 skips fuzzing)
# Installs the llama.cpp peer (bench/install_llamacpp.sh) and sets
# STRATA_REQUIRE_PEER=1, so tests that compare against it fail without it.
set -euo pipefail
cd "$(dirname "$0")/.."

scripts/setup.sh
scripts/build.sh
# The llama.cpp peer (pinned npm packages): conformance tests compare against it
# and must fail, not skip, when it is missing.
bench/install_llamacpp.sh >/dev/null
export STRATA_REQUIRE_PEER=1

export STRATA_SHARED_DIR="${STRATA_SHARED_DIR:-$(cd .. && pwd)/shared}"
export STRATA_TUNE_CACHE="$PWD/build/attention-grid"  # not the user's ~/.cache
# The peer's source bundle holds the real chat templates the Jinja conformance
# tests render; here they must run, not skip.
export STRATA_REQUIRE_JINJA_CONFORMANCE=1
# setup.sh installs Open MPI: the mpirun tests (tests/mpi_test.cc) must run, not skip.
export STRATA_REQUIRE_MPI=1
# setup.sh installs python3-sentencepiece: the SentencePiece property tests must run, not skip.
export STRATA_REQUIRE_SENTENCEPIECE=1
# setup.sh installs tmux: the terminal tests of strata chat must run, not skip.
export STRATA_REQUIRE_TMUX=1
(cd build && ctest --output-on-failure -j2 --timeout 900)

# End to end: strata serve driven by the official openai npm client.
tests/e2e/run.sh build/strata
# ... and against `mpirun -np 2 strata serve`, --split tensor, layer (in micro-batches) and none --kv-nodes.
STRATA_E2E_MPI=2 tests/e2e/run.sh build/strata
STRATA_E2E_MPI=2 STRATA_E2E_SPLIT=layer tests/e2e/run.sh build/strata
STRATA_E2E_MPI=2 STRATA_E2E_KV_NODES=1 tests/e2e/run.sh build/strata

# MPI split runs across network namespaces over TCP with delayed links (needs root: must run, not skip).
STRATA_REQUIRE_NETNS=1 timeout 300 tests/netns/run.sh build/strata

# The web chat page in headless chromium (playwright-core); bounded in case the browser hangs.
timeout 600 tests/web/run.sh build/strata

fuzz_seconds="${STRATA_FUZZ_SECONDS:-60}"
if [ "$fuzz_seconds" -gt 0 ]; then
  CC=clang CXX=clang++ cmake -S . -B build-fuzz -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo \
    -DSTRATA_BUILD_FUZZERS=ON -DSTRATA_SANITIZE=ON -DSTRATA_BUILD_TESTS=OFF >/dev/null
  cmake --build build-fuzz -j"$(nproc)" --target $(cd fuzz && ls *_fuzz.cc | sed "s/\.cc$//")
  for fuzzer in build-fuzz/*_fuzz; do
    name=$(basename "$fuzzer")
    corpus="build-fuzz/corpus-$name"
    mkdir -p "$corpus"
    seeds="fuzz/seeds/$name"
    [ -d "$seeds" ] || seeds=""
    echo "fuzz: $name for ${fuzz_seconds}s"
    log="build-fuzz/$name.log"
    if ! "$fuzzer" -max_total_time="$fuzz_seconds" -rss_limit_mb=2048 -timeout=10 -print_final_stats=1 \
        "$corpus" $seeds >"$log" 2>&1; then
      tail -n 60 "$log"
      echo "fuzz: $name FAILED" >&2
      exit 1
    fi
    grep -E "^(Done|stat::number_of_executed_units)" "$log" || tail -n 2 "$log"
  done
fi
echo "strata: all tests passed"
