#!/usr/bin/env python3
"""Draws `strata bench --json` results as an SVG bar chart (no dependencies).

Usage: bench/chart.py OUT.svg RESULTS.json [RESULTS.json ...]
Each RESULTS.json is the array `strata bench --json` prints; bars are grouped
by (model, test) with one bar per engine, labelled with the median tokens/s.
"""
import json
import sys
from html import escape


def main(argv):
    if len(argv) < 3:
        sys.exit(__doc__)
    rows = []
    for path in argv[2:]:
        with open(path) as f:
            rows.extend(json.load(f))
    groups = {}
    for r in rows:
        groups.setdefault((r.get("model", "?"), r["test"]), {})[r["engine"]] = r["tps_median"]
    engines = sorted({r["engine"] for r in rows})
    colors = {"strata": "#2b6cb0", "llamacpp": "#c05621"}
    bar, gap, height, top, left = 28, 36, 320, 40, 60
    width = left + len(groups) * (len(engines) * bar + gap) + 40
    out = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height + top + 110}" '
           'font-family="sans-serif" font-size="11">',
           f'<text x="{left}" y="20" font-size="14">tokens/s (median), higher is better</text>']
    x = left
    for (model, test), by_engine in groups.items():
        peak = max(by_engine.values()) or 1
        for i, e in enumerate(engines):
            v = by_engine.get(e)
            if v is None:
                continue
            h = height * v / peak
            bx = x + i * bar
            out.append(f'<rect x="{bx}" y="{top + height - h:.1f}" width="{bar - 4}" height="{h:.1f}" '
                       f'fill="{colors.get(e, "#718096")}"/>')
            out.append(f'<text x="{bx + (bar - 4) / 2}" y="{top + height - h - 4:.1f}" text-anchor="middle">{v:.1f}</text>')
        label = escape(f"{test} {model}")
        out.append(f'<text transform="translate({x + 4},{top + height + 12}) rotate(35)">{label}</text>')
        x += len(engines) * bar + gap
    for i, e in enumerate(engines):
        out.append(f'<rect x="{width - 120}" y="{30 + 16 * i}" width="10" height="10" fill="{colors.get(e, "#718096")}"/>')
        out.append(f'<text x="{width - 105}" y="{39 + 16 * i}">{escape(e)}</text>')
    out.append("</svg>")
    with open(argv[1], "w") as f:
        f.write("\n".join(out) + "\n")


if __name__ == "__main__":
    main(sys.argv)
