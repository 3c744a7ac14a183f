#!/usr/bin/env bash
# Install the llama.cpp peer for `strata bench --peer llamacpp` and build
# bench/.peer/llamacpp_harness. Idempotent; prints the harness path on success.
#
#   1. npm install (exact versions from bench/package.json + package-lock.json)
#      of node-llama-cpp and @node-llama-cpp/linux-x64 into bench/node_modules:
#      the prebuilt llama.cpp CPU libraries, and llama.cpp's source as a git bundle.
#   2. check the runtime needs of the prebuilt libraries (glibc, libstdc++),
#      apt-get installing what is missing (when root).
#   3. take llama.h and the ggml headers of exactly that llama.cpp release
#      out of the git bundle into bench/.peer/include (never into the repo).
#   4. gcc bench/llamacpp_harness.c (+ src/bench/stream_sum.h) against the prebuilt libs, rpath to their dir.
#   5. gcc bench/ggml_types_harness.c likewise (ggml's block formats, for the conformance tests).
#   6. gcc bench/llamacpp_conformance.c (the llama.cpp side of tests/conformance_test.cc) the same way.
#
# Env: FORCE=1 rebuilds everything below node_modules; CC picks the compiler.
set -euo pipefail

BENCH_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
PEER_DIR="$BENCH_DIR/.peer"
NM="$BENCH_DIR/node_modules"
PKG_VERSION="3.22.1"                      # keep in sync with package.json
LIB_PKG="@node-llama-cpp/linux-x64"
LIB_DIR="$NM/$LIB_PKG/bins/linux-x64"
BUNDLE="$NM/node-llama-cpp/llama/gitRelease.bundle"
INC_DIR="$PEER_DIR/include"
HARNESS="$PEER_DIR/llamacpp_harness"
CC="${CC:-gcc}"

log() { echo "install_llamacpp: $*" >&2; }
die() { echo "install_llamacpp: error: $*" >&2; exit 1; }

[ "$(uname -s)" = Linux ] && [ "$(uname -m)" = x86_64 ] || die "only linux x86_64 is supported (got $(uname -sm))"

APT_UPDATED=0
apt_install() {  # apt_install PKG... (only as root; otherwise explain)
    if [ "$(id -u)" != 0 ] || ! command -v apt-get >/dev/null; then
        die "missing system packages: $* (install them with apt-get as root)"
    fi
    if [ "$APT_UPDATED" = 0 ]; then
        log "apt-get update"
        DEBIAN_FRONTEND=noninteractive apt-get update -qq >&2
        APT_UPDATED=1
    fi
    log "apt-get install $*"
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "$@" >&2
}

# ---- tools
need=()
command -v "$CC" >/dev/null || need+=(gcc libc6-dev)
command -v git >/dev/null || need+=(git)
command -v npm >/dev/null || die "npm is required (node >= 20)"
[ ${#need[@]} -eq 0 ] || apt_install "${need[@]}"

mkdir -p "$PEER_DIR"

# ---- 1. npm packages (pinned, locked). `npm ci` cannot be used: node-llama-cpp
# 3.22.1 lists optional per-platform packages (mac/win/riscv64) that were never
# published at 3.22.1, so the lock lacks them and `npm ci` refuses the lock.
# `npm install` with the lock present installs exactly the locked tree; we then
# check that the lock was not rewritten and that the versions are the pinned ones.
installed_version() {  # installed_version PKG -> version or empty
    local pj="$NM/$1/package.json"
    [ -f "$pj" ] && node -e 'process.stdout.write(require(process.argv[1]).version)' "$pj" || true
}
if [ "$(installed_version node-llama-cpp)" != "$PKG_VERSION" ] ||
   [ "$(installed_version "$LIB_PKG")" != "$PKG_VERSION" ] ||
   [ ! -f "$BUNDLE" ] || [ ! -f "$LIB_DIR/libggml-base.so" ]; then
    log "npm install (node-llama-cpp@$PKG_VERSION, $LIB_PKG@$PKG_VERSION)"
    lock_sum="$(sha256sum "$BENCH_DIR/package-lock.json" | cut -d' ' -f1)"
    # --ignore-scripts: node-llama-cpp's postinstall would try to fetch/build
    # binaries; we only need the files. --omit=optional: skip CUDA/Vulkan/other
    # platforms (linux-x64 is a direct, non-optional dependency in package.json).
    (cd "$BENCH_DIR" && npm install --ignore-scripts --omit=optional --no-audit --no-fund \
        --loglevel=error >&2)
    if [ "$(sha256sum "$BENCH_DIR/package-lock.json" | cut -d' ' -f1)" != "$lock_sum" ]; then
        log "warning: npm rewrote bench/package-lock.json (npm version differences?); review before committing"
    fi
    [ "$(installed_version node-llama-cpp)" = "$PKG_VERSION" ] || die "node-llama-cpp is not $PKG_VERSION after npm install"
    [ "$(installed_version "$LIB_PKG")" = "$PKG_VERSION" ] || die "$LIB_PKG is not $PKG_VERSION after npm install"
fi
[ -f "$BUNDLE" ] || die "git bundle not found: $BUNDLE"

# The libraries and the bundle must be the same llama.cpp release.
lib_release="$(node -e 'process.stdout.write(require(process.argv[1]).buildOptions.llamaCpp.release)' "$LIB_DIR/_nlcBuildMetadata.json")"
src_release="$(node -e 'process.stdout.write(require(process.argv[1]).tag)' "$NM/node-llama-cpp/llama/llama.cpp.info.json")"
[ "$lib_release" = "$src_release" ] || die "library release ($lib_release) != source bundle release ($src_release)"

# ---- 2. runtime dependencies of the prebuilt libraries
LIBLLAMA="$(ls "$LIB_DIR"/libllama.v*.so 2>/dev/null | head -1 || true)"
LIBGGML="$(ls "$LIB_DIR"/libggml.v*.so 2>/dev/null | head -1 || true)"
[ -n "$LIBLLAMA" ] && [ -n "$LIBGGML" ] && [ -f "$LIB_DIR/libggml-base.so" ] ||
    die "prebuilt libraries not found in $LIB_DIR"
ls "$LIB_DIR"/libggml-cpu-*.so >/dev/null 2>&1 || die "no libggml-cpu-*.so variants in $LIB_DIR"

missing_libs() { ldd "$@" 2>&1 | grep -E 'not found' | sort -u || true; }
ms="$(missing_libs "$LIBLLAMA" "$LIBGGML" "$LIB_DIR/libggml-base.so" "$LIB_DIR"/libggml-cpu-*.so)"
if [ -n "$ms" ]; then
    log "missing shared libraries:"; echo "$ms" >&2
    pk=()
    echo "$ms" | grep -q 'libstdc++' && pk+=(libstdc++6)
    echo "$ms" | grep -q 'libgcc_s' && pk+=(libgcc-s1)
    echo "$ms" | grep -q 'libgomp' && pk+=(libgomp1)
    [ ${#pk[@]} -eq 0 ] || apt_install "${pk[@]}"
    ms="$(missing_libs "$LIBLLAMA" "$LIBGGML" "$LIB_DIR/libggml-base.so" "$LIB_DIR"/libggml-cpu-*.so)"
    [ -z "$ms" ] || die "still missing shared libraries: $ms"
fi
# symbol versions: the prebuilt libs (built on Ubuntu 22.04) need glibc >= 2.34
# and GLIBCXX_3.4.30 (libstdc++6 from gcc 12: Debian 12 has both).
sym_err="$(ldd -r "$LIBLLAMA" 2>&1 | grep -E "version .* not found" | sort -u || true)"
if [ -n "$sym_err" ]; then
    echo "$sym_err" >&2
    if echo "$sym_err" | grep -q GLIBCXX; then apt_install libstdc++6; fi
    sym_err="$(ldd -r "$LIBLLAMA" 2>&1 | grep -E "version .* not found" | sort -u || true)"
    [ -z "$sym_err" ] || die "the system glibc/libstdc++ is too old for the prebuilt llama.cpp (needs glibc >= 2.34, GLIBCXX_3.4.30)"
fi

# ---- 3. headers from the git bundle (same release as the libraries)
bundle_head="$(git bundle list-heads "$BUNDLE" | awk '$2=="HEAD"{print $1; exit}')"
[ -n "$bundle_head" ] || bundle_head="$(git bundle list-heads "$BUNDLE" | awk 'NR==1{print $1}')"
[ -n "$bundle_head" ] || die "cannot read the git bundle $BUNDLE"
if [ "${FORCE:-0}" = 1 ] || [ "$(cat "$INC_DIR/.bundle-commit" 2>/dev/null || true)" != "$bundle_head" ] ||
   [ ! -f "$INC_DIR/llama.h" ]; then
    log "extracting llama.h + ggml headers from the bundle (commit $bundle_head, release $src_release)"
    tmp="$(mktemp -d "$PEER_DIR/tmp.XXXXXX")"
    trap 'rm -rf "$tmp"' EXIT
    git -c init.defaultBranch=main init -q --bare "$tmp/repo.git"
    git -C "$tmp/repo.git" fetch -q "$BUNDLE" "$bundle_head" 2>/dev/null ||
        git -C "$tmp/repo.git" fetch -q "$BUNDLE" HEAD
    rm -rf "$INC_DIR" && mkdir -p "$INC_DIR"
    # flatten include/llama.h and ggml/include/*.h into one directory
    git -C "$tmp/repo.git" archive --format=tar "$bundle_head" include/llama.h ggml/include |
        tar -x -C "$tmp"
    cp "$tmp/include/llama.h" "$tmp"/ggml/include/*.h "$INC_DIR/"
    git -C "$tmp/repo.git" show "$bundle_head:LICENSE" > "$INC_DIR/LICENSE.llama.cpp" 2>/dev/null || true
    echo "$bundle_head" > "$INC_DIR/.bundle-commit"
    rm -rf "$tmp"; trap - EXIT
fi

# ---- 4. build the harness
SRC="$BENCH_DIR/llamacpp_harness.c"
PROBE_DIR="$BENCH_DIR/../src/bench"  # stream_sum.h: strata's probe read loop, shared with the harness
stamp="$PEER_DIR/.harness-build"
want="$(cat "$SRC" "$PROBE_DIR/stream_sum.h" | sha256sum | cut -d' ' -f1) $bundle_head $LIB_DIR $($CC -dumpfullversion 2>/dev/null || echo cc)"
if [ "${FORCE:-0}" = 1 ] || [ ! -x "$HARNESS" ] || [ "$(cat "$stamp" 2>/dev/null || true)" != "$want" ]; then
    log "building $HARNESS"
    "$CC" -std=gnu11 -O2 -Wall -Wextra -Wno-unused-parameter \
        -DPEER_PACKAGE="\"$LIB_PKG@$PKG_VERSION (llama.cpp release $lib_release)\"" \
        -I"$INC_DIR" -I"$PROBE_DIR" "$SRC" -o "$HARNESS.tmp" -pthread \
        -L"$LIB_DIR" -l:"$(basename "$LIBLLAMA")" -l:"$(basename "$LIBGGML")" -l:libggml-base.so \
        -Wl,-rpath,"$LIB_DIR" -Wl,--enable-new-dtags -ldl -lm
    mv "$HARNESS.tmp" "$HARNESS"
    echo "$want" > "$stamp"
fi

# ---- 5. ggml_types_harness: ggml's block formats for tests/ggml_types_test.cc
TYPES_SRC="$BENCH_DIR/ggml_types_harness.c"
TYPES_HARNESS="$PEER_DIR/ggml_types_harness"
want="$(sha256sum "$TYPES_SRC" | cut -d' ' -f1) $bundle_head $LIB_DIR $($CC -dumpfullversion 2>/dev/null || echo cc)"
if [ "${FORCE:-0}" = 1 ] || [ ! -x "$TYPES_HARNESS" ] || [ "$(cat "$TYPES_HARNESS.build" 2>/dev/null || true)" != "$want" ]; then
    log "building $TYPES_HARNESS"
    "$CC" -std=gnu11 -O2 -Wall -Wextra -I"$INC_DIR" "$TYPES_SRC" -o "$TYPES_HARNESS.tmp" \
        -L"$LIB_DIR" -l:"$(basename "$LIBLLAMA")" -l:libggml-base.so -Wl,-rpath,"$LIB_DIR" -Wl,--enable-new-dtags -ldl
    mv "$TYPES_HARNESS.tmp" "$TYPES_HARNESS"
    echo "$want" > "$TYPES_HARNESS.build"
fi
"$TYPES_HARNESS" info >/dev/null || die "ggml_types_harness does not run"

# ---- 6. build the conformance tool (logits, quantize, perplexity, greedy text)
CONF_SRC="$BENCH_DIR/llamacpp_conformance.c"
CONF="$PEER_DIR/llamacpp_conformance"
conf_stamp="$PEER_DIR/.conformance-build"
conf_want="$(sha256sum "$CONF_SRC" | cut -d' ' -f1) $bundle_head $LIB_DIR $($CC -dumpfullversion 2>/dev/null || echo cc)"
if [ "${FORCE:-0}" = 1 ] || [ ! -x "$CONF" ] || [ "$(cat "$conf_stamp" 2>/dev/null || true)" != "$conf_want" ]; then
    log "building $CONF"
    "$CC" -std=gnu11 -O2 -Wall -Wextra -I"$INC_DIR" "$CONF_SRC" -o "$CONF.tmp" \
        -L"$LIB_DIR" -l:"$(basename "$LIBLLAMA")" -l:"$(basename "$LIBGGML")" -l:libggml-base.so \
        -Wl,-rpath,"$LIB_DIR" -Wl,--enable-new-dtags -ldl -lm
    mv "$CONF.tmp" "$CONF"
    echo "$conf_want" > "$conf_stamp"
fi

# ---- smoke: the harness must load llama.cpp and a CPU backend variant
"$HARNESS" --version >/dev/null || die "the harness does not run: $("$HARNESS" --version 2>&1 | tail -3)"
echo "$HARNESS"
