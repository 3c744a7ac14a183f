#!/usr/bin/env bash
# Browser test of the web chat page (GET / of `strata serve`): Debian's
# chromium, headless, driven by the pinned playwright-core (npm ci). The test
# starts its own `strata serve` processes (bundled model, free loopback ports)
# and requires each to exit 0 on SIGTERM.
# Usage: tests/web/run.sh [path/to/strata]     (default: $STRATA_CLI, else build/strata)
#   STRATA_WEB_MODEL       model to serve (default: models/stories260K.gguf)
#   STRATA_WEB_SCREENSHOT  where the screenshot goes (default: build/web-chat.png;
#                          docs/web-chat.png is made with STRATA_WEB_SCREENSHOT=docs/web-chat.png)
#   STRATA_CHROMIUM        the browser (default: /usr/bin/chromium)
# Needs node >= 20, npm and chromium (scripts/setup.sh installs them).
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
root="$(cd "$here/../.." && pwd)"
cli="$(realpath "${1:-${STRATA_CLI:-$root/build/strata}}")"
browser="${STRATA_CHROMIUM:-/usr/bin/chromium}"
if [ ! -x "$browser" ]; then
  echo "web: no browser at $browser (Debian package chromium; scripts/setup.sh installs it)" >&2
  exit 1
fi

(cd "$here" && npm ci --no-audit --no-fund --loglevel=error)

STRATA_CLI="$cli" STRATA_CHROMIUM="$browser" \
  STRATA_WEB_MODEL="$(realpath "${STRATA_WEB_MODEL:-$root/models/stories260K.gguf}")" \
  STRATA_WEB_SCREENSHOT="${STRATA_WEB_SCREENSHOT:-$root/build/web-chat.png}" \
  node --test --test-concurrency=1 "$here"/*.test.mjs
echo "web: all passed"
