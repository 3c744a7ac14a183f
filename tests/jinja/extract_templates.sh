#!/usr/bin/env bash
# Extracts the real chat templates that ship with llama.cpp's source (the git
# bundle bench/install_llamacpp.sh installs) for the Jinja conformance tests:
#   DEST/*.jinja          models/templates/*.jinja
#   DEST/inline/*.jinja   the templates written inline in tests/test-chat-template.cpp
# Never into the repository. Idempotent: DEST/.commit names the bundle commit.
# Usage: tests/jinja/extract_templates.sh BUNDLE DEST
set -euo pipefail
bundle="$1"
dest="$2"
[ -f "$bundle" ] || { echo "extract_templates: no bundle at $bundle (run bench/install_llamacpp.sh)" >&2; exit 1; }
head="$(git bundle list-heads "$bundle" | awk '$2=="HEAD"{print $1; exit}')"
[ -n "$head" ] || head="$(git bundle list-heads "$bundle" | awk 'NR==1{print $1}')"
[ -n "$head" ] || { echo "extract_templates: cannot read $bundle" >&2; exit 1; }
if [ "$(cat "$dest/.commit" 2>/dev/null || true)" = "$head" ]; then exit 0; fi

tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT
git -c init.defaultBranch=main init -q --bare "$tmp/repo.git"
git -C "$tmp/repo.git" fetch -q "$bundle" "$head" 2>/dev/null || git -C "$tmp/repo.git" fetch -q "$bundle" HEAD
git -C "$tmp/repo.git" archive --format=tar "$head" models/templates tests/test-chat-template.cpp | tar -x -C "$tmp"

rm -rf "$dest.tmp"
mkdir -p "$dest.tmp/inline"
cp "$tmp"/models/templates/*.jinja "$dest.tmp/"
/usr/bin/python3 - "$tmp/tests/test-chat-template.cpp" "$dest.tmp/inline" <<'PY'
# Each inline test case is `/* .name= */ "NAME", ... /* .template_str= */ "TEXT"`
# (TEXT possibly wrapped in U8C(...)): C string literals, decoded here.
import re
import sys

source = open(sys.argv[1], encoding="utf-8").read()
literal = r'(?:U8C\()?"((?:[^"\\]|\\.)*)"'
pattern = re.compile(r'/\* \.name= \*/\s*' + literal + r'.*?/\* \.template_str=? \*/\s*' + literal, re.S)
escapes = {"n": "\n", "t": "\t", "r": "\r", "\\": "\\", '"': '"', "'": "'", "0": "\0"}


def decode(text):
    out, i = [], 0
    while i < len(text):
        c = text[i]
        if c == "\\" and i + 1 < len(text):
            out.append(escapes.get(text[i + 1], "\\" + text[i + 1]))
            i += 2
        else:
            out.append(c)
            i += 1
    return "".join(out)


seen = set()
for name, template in pattern.findall(source):
    file = re.sub(r"[^A-Za-z0-9.-]+", "_", decode(name)).strip("_")[:80]
    if file in seen:
        continue
    seen.add(file)
    with open(f"{sys.argv[2]}/{file}.jinja", "w", encoding="utf-8", newline="") as f:
        f.write(decode(template))
PY
echo "$head" > "$dest.tmp/.commit"
rm -rf "$dest"
mv "$dest.tmp" "$dest"
