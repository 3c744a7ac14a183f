#!/usr/bin/env bash
# Extracts the example grammars that ship with llama.cpp's source (the git
# bundle bench/install_llamacpp.sh installs) for the grammar tests:
#   DEST/*.gbnf   grammars/*.gbnf
# Never into the repository. Idempotent: DEST/.commit names the bundle commit.
# Usage: tests/grammar/extract_grammars.sh BUNDLE DEST
set -euo pipefail
bundle="$1"
dest="$2"
[ -f "$bundle" ] || { echo "extract_grammars: no bundle at $bundle (run bench/install_llamacpp.sh)" >&2; exit 1; }
head="$(git bundle list-heads "$bundle" | awk '$2=="HEAD"{print $1; exit}')"
[ -n "$head" ] || head="$(git bundle list-heads "$bundle" | awk 'NR==1{print $1}')"
[ -n "$head" ] || { echo "extract_grammars: cannot read $bundle" >&2; exit 1; }
if [ "$(cat "$dest/.commit" 2>/dev/null || true)" = "$head" ]; then exit 0; fi

tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT
git -c init.defaultBranch=main init -q --bare "$tmp/repo.git"
git -C "$tmp/repo.git" fetch -q "$bundle" "$head" 2>/dev/null || git -C "$tmp/repo.git" fetch -q "$bundle" HEAD
git -C "$tmp/repo.git" archive --format=tar "$head" grammars | tar -x -C "$tmp"

rm -rf "$dest.tmp"
mkdir -p "$dest.tmp"
cp "$tmp"/grammars/*.gbnf "$dest.tmp/"
echo "$head" > "$dest.tmp/.commit"
rm -rf "$dest"
mv "$dest.tmp" "$dest"
