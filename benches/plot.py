"""Grouped bar charts as SVG, for the README's performance page (no plotting library needed).

    bars("latency.svg", "Title", "p50 latency (us)", groups, series, values, notes)

`groups` are the clusters along the x axis, `series` the bars in each cluster (one colour each),
`values[g][s]` their heights, `notes[g][s]` a short label printed above each bar (or None).
"""

from __future__ import annotations

from html import escape

COLOURS = ["#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b"]


def nice_max(v: float) -> float:
    """The axis top: 1, 2 or 5 times a power of ten, at or above `v`."""
    if v <= 0:
        return 1.0
    p = 1.0
    while p * 10 <= v:
        p *= 10
    while p > v:
        p /= 10
    for m in (1, 2, 5, 10):
        if m * p >= v:
            return m * p
    return 10 * p


def bars(path: str, title: str, ylabel: str, groups: list, series: list, values: list, notes: list) -> None:
    width, height = 820, 420
    left, right, top, bottom = 70, 20, 50, 90
    plot_w, plot_h = width - left - right, height - top - bottom
    vmax = nice_max(max((v for row in values for v in row if v is not None), default=1.0))
    group_w = plot_w / len(groups)
    bar_w = group_w * 0.8 / len(series)
    out = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" font-family="sans-serif" font-size="12">',
        f'<rect width="{width}" height="{height}" fill="white"/>',
        f'<text x="{width / 2}" y="22" text-anchor="middle" font-size="15">{escape(title)}</text>',
        f'<text x="16" y="{top + plot_h / 2}" text-anchor="middle" transform="rotate(-90 16 {top + plot_h / 2})">{escape(ylabel)}</text>',
    ]
    for k in range(6):
        v = vmax * k / 5
        y = top + plot_h - plot_h * k / 5
        out.append(f'<line x1="{left}" x2="{left + plot_w}" y1="{y:.1f}" y2="{y:.1f}" stroke="#ddd"/>')
        out.append(f'<text x="{left - 6}" y="{y + 4:.1f}" text-anchor="end">{v:g}</text>')
    for g, name in enumerate(groups):
        x0 = left + g * group_w + group_w * 0.1
        for s in range(len(series)):
            v = values[g][s]
            if v is None:
                continue
            h = plot_h * min(v, vmax) / vmax
            x = x0 + s * bar_w
            out.append(f'<rect x="{x:.1f}" y="{top + plot_h - h:.1f}" width="{bar_w * 0.92:.1f}" height="{h:.1f}" fill="{COLOURS[s % len(COLOURS)]}"/>')
            note = notes[g][s] if notes else None
            if note:
                out.append(f'<text x="{x + bar_w * 0.46:.1f}" y="{top + plot_h - h - 4:.1f}" text-anchor="middle" font-size="10">{escape(note)}</text>')
        out.append(f'<text x="{left + g * group_w + group_w / 2:.1f}" y="{top + plot_h + 18}" text-anchor="middle">{escape(name)}</text>')
    for s, name in enumerate(series):
        x = left + s * (plot_w / len(series))
        y = height - 30
        out.append(f'<rect x="{x:.1f}" y="{y - 10}" width="12" height="12" fill="{COLOURS[s % len(COLOURS)]}"/>')
        out.append(f'<text x="{x + 16:.1f}" y="{y}">{escape(name)}</text>')
    out.append("</svg>")
    with open(path, "w") as f:
        f.write("\n".join(out) + "\n")
