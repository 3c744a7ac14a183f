#!/usr/bin/python3
"""Prints random templates that mix text, whitespace and tags with every
whitespace-control variant ({%- -%} {%+ +%} {#- -#}, raw blocks, trim_blocks
and lstrip_blocks situations), as [[template, variables], ...] JSON, for the
conformance test to render with both strata and Python's jinja2.
Usage: whitespace_cases.py SEED COUNT
"""
import json
import random
import sys

rng = random.Random(int(sys.argv[1]))
TEXTS = ["", " ", "  ", "\t", "\n", "\n\n", " \n ", "a", " b ", "\n  ", "x\n", "\r\n", "  \t\n", "\u3000", "\u00a0\n", "\v"]


def ws():
    return "".join(rng.choice(TEXTS) for _ in range(rng.randint(0, 3)))


def sign():
    return rng.choice(["", "", "-", "+"])


def tag(kind, body):
    if kind == "block":
        return ("{%" + sign() + rng.choice([" ", "", "  ", "\n"]) + body + rng.choice([" ", "", "\n"]) +
                rng.choice(["", "", "-", "+"]) + "%}")
    if kind == "variable":
        return "{{" + sign() + " " + body + " " + rng.choice(["", "-"]) + "}}"
    return "{#" + sign() + body + rng.choice(["", "-", "+"]) + "#}"


def block(depth):
    parts = []
    for _ in range(rng.randint(1, 4)):
        r = rng.random()
        parts.append(ws())
        if r < 0.25 and depth < 3:
            parts += [tag("block", "if x"), block(depth + 1)]
            if rng.random() < 0.5:
                parts += [ws(), tag("block", "else"), block(depth + 1)]
            parts += [ws(), tag("block", "endif")]
        elif r < 0.45 and depth < 3:
            parts += [tag("block", "for i in items"), block(depth + 1), ws(), tag("block", "endfor")]
        elif r < 0.6:
            parts.append(tag("variable", rng.choice(["i", "x", "'s'", "1"])))
        elif r < 0.7:
            parts.append(tag("comment", rng.choice([" c ", "", "\n"])))
        elif r < 0.75:
            parts.append(tag("block", "set y = 1"))
        elif r < 0.8:
            parts.append(tag("block", "raw") + ws() + "{{ r }}" + ws() + tag("block", "endraw"))
        else:
            parts.append(rng.choice(["text", "t e x t", "{", "}", "%", "#"]))
        parts.append(ws())
    return "".join(parts)


cases = [[block(0), {"x": rng.choice([True, False]), "items": [1, 2][:rng.randint(0, 2)]}]
         for _ in range(int(sys.argv[2]))]
json.dump(cases, sys.stdout, ensure_ascii=False)
