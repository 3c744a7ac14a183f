#!/usr/bin/python3
"""Validates JSON texts against JSON Schemas with Debian's python3-jsonschema.

Input (argv[1]): a JSON file [{"schema": S, "text": T}, ...]. Output: one JSON
line per case, {"ok": true} or {"ok": false, "error": "..."}: T must parse as
JSON (strictly: no NaN, no trailing data) and validate against S (draft
2020-12, formats checked where the library can).
"""
import json
import sys

import jsonschema


def reject_constant(name):
    raise ValueError(f"not JSON: {name}")


def check(case):
    try:
        value = json.loads(case["text"], parse_constant=reject_constant)
    except ValueError as e:
        return {"ok": False, "error": f"not JSON: {e}"}
    validator = jsonschema.Draft202012Validator(case["schema"], format_checker=jsonschema.FormatChecker())
    errors = [e.message for e in validator.iter_errors(value)]
    if errors:
        return {"ok": False, "error": "; ".join(errors)[:500]}
    return {"ok": True}


cases = json.load(open(sys.argv[1], encoding="utf-8"))
for case in cases:
    print(json.dumps(check(case)))
