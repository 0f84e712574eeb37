"""A small server-side SVG bar chart (no JavaScript, no CDN: the admin works offline)."""

from __future__ import annotations

from django.utils.html import escape
from django.utils.safestring import SafeString, mark_safe

WIDTH, HEIGHT, PAD_LEFT, PAD_BOTTOM, PAD_TOP = 720, 180, 36, 22, 12
COLOURS = {"sent": "#2e7d32", "dead": "#c62828"}


def hourly_bars(buckets: list[dict]) -> SafeString:
    """Stacked bars per hour: replies accepted by a provider (green) and dead letters (red)."""
    peak = max([b["sent"] + b["dead"] for b in buckets] + [1])
    plot_w, plot_h = WIDTH - PAD_LEFT - 4, HEIGHT - PAD_BOTTOM - PAD_TOP
    slot = plot_w / max(len(buckets), 1)
    total_sent = sum(b["sent"] for b in buckets)
    total_dead = sum(b["dead"] for b in buckets)
    label = f"Replies per hour over the last {len(buckets)} hours: {total_sent} sent, {total_dead} dead letters"
    out = [
        f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {WIDTH} {HEIGHT}" width="100%" '
        f'role="img" aria-label="{escape(label)}" class="ops-chart"><title>{escape(label)}</title>',
        f'<line x1="{PAD_LEFT}" y1="{PAD_TOP + plot_h}" x2="{WIDTH - 4}" y2="{PAD_TOP + plot_h}" stroke="#999"/>',
        f'<text x="{PAD_LEFT - 4}" y="{PAD_TOP + 4}" text-anchor="end" font-size="10" fill="#666">{peak}</text>',
        f'<text x="{PAD_LEFT - 4}" y="{PAD_TOP + plot_h}" text-anchor="end" font-size="10" fill="#666">0</text>',
    ]
    for i, bucket in enumerate(buckets):
        x = PAD_LEFT + i * slot + 1
        base = PAD_TOP + plot_h
        for kind in ("sent", "dead"):
            height = plot_h * bucket[kind] / peak
            if height:
                base -= height
                out.append(
                    f'<rect x="{x:.1f}" y="{base:.1f}" width="{slot - 2:.1f}" height="{height:.1f}" '
                    f'fill="{COLOURS[kind]}"><title>{bucket["start"]:%H:%M} {kind}: {bucket[kind]}</title></rect>'
                )
        if i % 3 == 0:
            out.append(
                f'<text x="{x + slot / 2:.1f}" y="{HEIGHT - 6}" text-anchor="middle" font-size="10" '
                f'fill="#666">{bucket["start"]:%H:%M}</text>'
            )
    out.append("</svg>")
    return mark_safe("".join(out))  # every interpolated value is a number, a time or escaped
