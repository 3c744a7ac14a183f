#!/usr/bin/env python3
"""Draws `strata bench --json` results as SVG charts (no dependencies).

Usage: bench/chart.py OUT.svg RESULTS.json [RESULTS.json ...]
       bench/chart.py --roofline OUT.svg RESULTS.json [RESULTS.json ...]
Each RESULTS.json is the array `strata bench --json` prints. The default chart
groups bars by (model, test), one bar per engine, labelled with the median
tokens/s. --roofline plots every token of the paired roofline runs: the read
bandwidth measured right before it (x) against the bytes it streamed over its
time (y), with the 100% and 90% lines.
"""
import json
import sys
from html import escape


COLORS = {"strata": "#2b6cb0", "llamacpp": "#c05621"}


def roofline_chart(rows):
    points = []  # (engine, read GB/s, token GB/s)
    for r in rows:
        for t, bw in zip(r.get("roofline_token_s", []), r.get("roofline_read_bytes_per_s", [])):
            points.append((r["engine"], bw / 1e9, r["bytes_per_token"] / t / 1e9))
    if not points:
        sys.exit("no paired roofline samples in the results (run strata bench without --no-roofline)")
    size, left, top = 420, 60, 40
    hi = max(max(p[1], p[2]) for p in points) * 1.05
    sx = lambda v: left + size * v / hi
    sy = lambda v: top + size - size * v / hi
    out = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{left + size + 160}" height="{top + size + 50}" '
           'font-family="sans-serif" font-size="11">',
           f'<text x="{left}" y="20" font-size="14">each generated token: GB/s streamed vs. the read just before it</text>',
           f'<line x1="{sx(0)}" y1="{sy(0)}" x2="{sx(hi)}" y2="{sy(hi)}" stroke="#999"/>',
           f'<line x1="{sx(0)}" y1="{sy(0)}" x2="{sx(hi)}" y2="{sy(0.9 * hi)}" stroke="#999" stroke-dasharray="4 3"/>',
           f'<text x="{sx(hi) + 4}" y="{sy(hi) + 4}">100%</text>',
           f'<text x="{sx(hi) + 4}" y="{sy(0.9 * hi) + 4}">90%</text>',
           f'<line x1="{sx(0)}" y1="{sy(0)}" x2="{sx(hi)}" y2="{sy(0)}" stroke="#333"/>',
           f'<line x1="{sx(0)}" y1="{sy(0)}" x2="{sx(0)}" y2="{sy(hi)}" stroke="#333"/>',
           f'<text x="{left + size / 2}" y="{top + size + 35}" text-anchor="middle">read GB/s (probe before the token)</text>',
           f'<text transform="translate(18,{top + size / 2}) rotate(-90)" text-anchor="middle">token GB/s</text>']
    for v in range(0, int(hi) + 1, 10):
        out.append(f'<text x="{sx(v)}" y="{sy(0) + 14}" text-anchor="middle">{v}</text>')
        out.append(f'<text x="{sx(0) - 6}" y="{sy(v) + 4}" text-anchor="end">{v}</text>')
    for e, x, y in points:
        out.append(f'<circle cx="{sx(x):.1f}" cy="{sy(y):.1f}" r="1.8" fill="{COLORS.get(e, "#718096")}" fill-opacity="0.6"/>')
    for i, e in enumerate(sorted({p[0] for p in points})):
        out.append(f'<circle cx="{left + size + 40}" cy="{top + 16 * i + 5}" r="4" fill="{COLORS.get(e, "#718096")}"/>')
        out.append(f'<text x="{left + size + 50}" y="{top + 16 * i + 9}">{escape(e)}</text>')
    out.append("</svg>")
    return out


def bar_chart(rows):
    groups = {}
    for r in rows:
        groups.setdefault((r.get("model", "?"), r["test"]), {})[r["engine"]] = r["tps_median"]
    engines = sorted({r["engine"] for r in rows})
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
                       f'fill="{COLORS.get(e, "#718096")}"/>')
            out.append(f'<text x="{bx + (bar - 4) / 2}" y="{top + height - h - 4:.1f}" text-anchor="middle">{v:.1f}</text>')
        label = escape(f"{test} {model}")
        out.append(f'<text transform="translate({x + 4},{top + height + 12}) rotate(35)">{label}</text>')
        x += len(engines) * bar + gap
    for i, e in enumerate(engines):
        out.append(f'<rect x="{width - 120}" y="{30 + 16 * i}" width="10" height="10" fill="{COLORS.get(e, "#718096")}"/>')
        out.append(f'<text x="{width - 105}" y="{39 + 16 * i}">{escape(e)}</text>')
    out.append("</svg>")
    return out


def main(argv):
    roofline = len(argv) > 1 and argv[1] == "--roofline"
    if roofline:
        argv = argv[:1] + argv[2:]
    if len(argv) < 3:
        sys.exit(__doc__)
    rows = []
    for path in argv[2:]:
        with open(path) as f:
            rows.extend(json.load(f))
    lines = roofline_chart(rows) if roofline else bar_chart(rows)
    with open(argv[1], "w") as f:
        f.write("\n".join(lines) + "\n")


if __name__ == "__main__":
    main(sys.argv)
