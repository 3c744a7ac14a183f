#!/usr/bin/env bash
# Sets everything up and runs the main job: installs Debian packages, builds,
# and generates a story with the bundled default model (stories260K).
# Extra arguments go to `strata run`, e.g. scripts/demo.sh -p "Lily found" -n 100
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
scripts/build.sh >/dev/null
args=("$@")
[ ${#args[@]} -gt 0 ] || args=(-p "Once upon a time" -n 200 --temp 0.8 --seed 42)
./build/strata run "${args[@]}"
echo
