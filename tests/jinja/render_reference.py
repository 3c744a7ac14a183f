#!/usr/bin/python3
"""Renders chat templates with Python's jinja2 exactly as transformers'
apply_chat_template does (transformers/utils/chat_template_utils.py:
ImmutableSandboxedEnvironment(trim_blocks=True, lstrip_blocks=True) with the
loopcontrols extension and the {% generation %} tag, tojson as json.dumps
with ensure_ascii=False, raise_exception and strftime_now as globals).
strftime_now reads a fixed instant so that both sides agree.

stdin:  {"now": <unix seconds, float>, "cases": [{"template": str, "variables": {...}}, ...]}
stdout: [{"ok": true, "output": str} | {"ok": false, "kind": "raised"|"error", "message": str}, ...]
"""
import json
import sys
from datetime import datetime

import jinja2
import jinja2.ext
from jinja2.sandbox import ImmutableSandboxedEnvironment


class RaisedError(jinja2.exceptions.TemplateError):
    """What raise_exception() raises (a TemplateError, as in transformers)."""


class AssistantTracker(jinja2.ext.Extension):
    # transformers' {% generation %}: renders its body unchanged.
    tags = {"generation"}

    def parse(self, parser):
        lineno = next(parser.stream).lineno
        body = parser.parse_statements(["name:endgeneration"], drop_needle=True)
        return jinja2.nodes.CallBlock(self.call_method("_generation_support"), [], [], body).set_lineno(lineno)

    def _generation_support(self, caller):
        return caller()


def environment(now):
    def raise_exception(message):
        raise RaisedError(message)

    def tojson(x, ensure_ascii=False, indent=None, separators=None, sort_keys=False):
        return json.dumps(x, ensure_ascii=ensure_ascii, indent=indent, separators=separators, sort_keys=sort_keys)

    def strftime_now(format):
        return datetime.fromtimestamp(now).strftime(format)

    env = ImmutableSandboxedEnvironment(trim_blocks=True, lstrip_blocks=True,
                                        extensions=[AssistantTracker, jinja2.ext.loopcontrols])
    env.filters["tojson"] = tojson
    env.globals["raise_exception"] = raise_exception
    env.globals["strftime_now"] = strftime_now
    return env


def main():
    request = json.load(sys.stdin)
    env = environment(request["now"])
    compiled = {}
    results = []
    for case in request["cases"]:
        try:
            source = case["template"]
            if source not in compiled:
                compiled[source] = env.from_string(source)
            results.append({"ok": True, "output": compiled[source].render(**case["variables"])})
        except RaisedError as e:
            results.append({"ok": False, "kind": "raised", "message": str(e)})
        except Exception as e:  # every other failure: syntax, undefined, type, sandbox
            results.append({"ok": False, "kind": "error", "message": f"{type(e).__name__}: {e}"})
    json.dump(results, sys.stdout, ensure_ascii=False)


if __name__ == "__main__":
    main()
