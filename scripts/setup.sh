#!/usr/bin/env bash
# Installs what strata needs to build and test (Debian packages), idempotently.
# Usage: scripts/setup.sh            (as root, or with sudo available)
set -euo pipefail

PACKAGES=(
  build-essential cmake pkg-config ninja-build
  libpcre2-dev          # Unicode regexes for the BPE pre-tokenizers
  libfmt-dev            # formatting
  libcli11-dev          # command-line parsing
  nlohmann-json3-dev    # JSON (reference data, server, bench output)
  libxxhash-dev         # checksums of stored KV blocks and sessions
  libgtest-dev libgmock-dev
  clang libclang-rt-14-dev  # libFuzzer + sanitizers for the fuzz targets
  libboost-dev          # Boost.Beast/Asio: the event-driven HTTP server (strata serve)
  zlib1g-dev            # gzip/deflate request bodies
  libcpp-httplib-dev    # the tests' HTTP client (independent of the server's HTTP code)
  prometheus            # promtool, to check /metrics in tests
  chromium              # headless browser for the web chat page's test (tests/web)
  python3-jinja2        # tests only: Python's jinja2, the reference for the Jinja interpreter
  python3-sentencepiece # tests only: SentencePiece, the reference for the SPM tokenizer's property tests
  openmpi-bin libopenmpi-dev  # MPI: one model over many processes/machines (mpirun -np N strata run --split ...)
  python3-jsonschema    # tests only: validates structured output against its JSON Schema
  tmux                  # tests only: drives strata chat in a terminal (send-keys / capture-pane)
  iproute2 iputils-ping # tests only: tests/netns, MPI across network namespaces (ip netns, veth, bridge; RTT by ping)
  iptables python3      # tests only: tests/netns's packet delay where the kernel has no netem (NFQUEUE + delay.py)
)
# Node.js >= 20 and npm run the end-to-end tests with the official openai client
# and the llama.cpp peer install; Debian's packages are used only if none is present.
command -v node >/dev/null 2>&1 || PACKAGES+=(nodejs)
command -v npm >/dev/null 2>&1 || PACKAGES+=(npm)

missing=()
for p in "${PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  SUDO=""
  [ "$(id -u)" -eq 0 ] || SUDO="sudo"
  echo "setup: installing ${missing[*]}" >&2
  $SUDO apt-get update -q >&2
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -q --no-install-recommends "${missing[@]}" >&2
fi
