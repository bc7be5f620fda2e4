"""Inline SVG charts for the HTML report: plain markup, no scripts, no fonts, no links.

Every chart is well-formed XML on its own (so it survives being pasted elsewhere),
escapes every label, and copes with empty or all-zero data, a single bar, a
year of days, and amounts from fractions of a cent to millions. Geometry uses
floats; the money printed on the axes and in tooltips comes from the exact
amounts.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Collection, Sequence
from decimal import Decimal

from ..safetext import html_text as escape

SVG_NS = "http://www.w3.org/2000/svg"
WIDTH = 720
FONT = 'font-family="system-ui, -apple-system, Segoe UI, Helvetica, Arial, sans-serif"'
BAR = "#3b6fd4"
SPIKE = "#d1242f"  # a marked bar (a spike day on the daily chart)
MUTED = "#8c959f"
GRID = "#e4e7eb"
TEXT = "#1f2328"
CHAR_PX = 6.6  # width of an 11px sans-serif character, near enough to leave room
MIN_BAR_PX = 1.0  # a day with any spend stays visible next to a day with none

Formatter = Callable[[Decimal], str]


def nice_ceiling(value: Decimal) -> tuple[Decimal, int]:
    """A round axis maximum at or above `value` (1, 2 or 5 × 10ⁿ) and its tick count."""
    if value <= 0:
        return Decimal(1), 1
    base = Decimal(1).scaleb(value.adjusted())
    for step, ticks in ((1, 5), (2, 4), (5, 5), (10, 5)):
        if step * base >= value:
            return step * base, ticks
    raise AssertionError("unreachable: 10 × 10^adjusted() exceeds any value")


def _open(width: float, height: float, label: str) -> list[str]:
    return [
        f'<svg xmlns="{SVG_NS}" width="{width:.0f}" height="{height:.0f}" '
        f'viewBox="0 0 {width:.0f} {height:.0f}" role="img" aria-label="{escape(label)}" '
        f'{FONT} font-size="11" style="max-width:100%;height:auto">',
        f"<title>{escape(label)}</title>",
    ]


def _empty(label: str, message: str, height: float = 80) -> str:
    return "\n".join(
        [
            *_open(WIDTH, height, label),
            f'<rect x="0.5" y="0.5" width="{WIDTH - 1}" height="{height - 1:.0f}" fill="none" '
            f'stroke="{GRID}"/>',
            f'<text x="{WIDTH / 2:.0f}" y="{height / 2 + 4:.0f}" text-anchor="middle" '
            f'fill="{MUTED}">{escape(message)}</text>',
            "</svg>",
        ]
    )


def column_chart(
    bars: Sequence[tuple[str, Decimal, str]],
    *,
    label: str,
    fmt: Formatter,
    height: int = 220,
    empty: str = "Nothing to chart in this period.",
    label_px: float = 48,
    marked: Collection[int] = (),
) -> str:
    """Vertical bars: `(x label, value, tooltip)` in order, a y-axis of `fmt` ticks; the
    bars at the `marked` indexes in another colour.

    X labels are thinned to one every `label_px` pixels or more, so a year of
    days stays legible; every bar keeps its own tooltip.
    """
    if not bars or all(value <= 0 for _, value, _ in bars):
        return _empty(label, empty)
    top, ticks = nice_ceiling(max(value for _, value, _ in bars))
    tick_values = [top * i / ticks for i in range(ticks + 1)]
    tick_text = [fmt(v) for v in tick_values]
    left = max(len(t) for t in tick_text) * CHAR_PX + 12
    right, top_pad, bottom = 8.0, 10.0, 24.0
    plot_w, plot_h = WIDTH - left - right, height - top_pad - bottom
    slot = plot_w / len(bars)
    bar_w = max(slot * 0.8, min(slot, 1.0))
    out = _open(WIDTH, height, label)
    for value, text in zip(tick_values, tick_text, strict=True):
        y = top_pad + plot_h * (1 - float(value / top))
        out.append(
            f'<line x1="{left:.1f}" y1="{y:.1f}" x2="{WIDTH - right:.1f}" y2="{y:.1f}" '
            f'stroke="{GRID}"/>'
        )
        out.append(
            f'<text x="{left - 6:.1f}" y="{y + 4:.1f}" text-anchor="end" fill="{MUTED}">'
            f"{escape(text)}</text>"
        )
    every = max(1, math.ceil(label_px / slot))
    for i, (name, value, tip) in enumerate(bars):
        x = left + i * slot + (slot - bar_w) / 2
        h = plot_h * float(value / top) if value > 0 else 0.0
        if value > 0:
            h = max(h, MIN_BAR_PX)
        out.append(
            f'<rect x="{x:.2f}" y="{top_pad + plot_h - h:.2f}" width="{bar_w:.2f}" '
            f'height="{h:.2f}" fill="{SPIKE if i in marked else BAR}"><title>{escape(tip)}</title></rect>'
        )
        if i % every == 0:
            out.append(
                f'<text x="{left + (i + 0.5) * slot:.1f}" y="{height - 8:.1f}" '
                f'text-anchor="middle" fill="{TEXT}">{escape(name)}</text>'
            )
    axis_y = top_pad + plot_h
    out.append(
        f'<line x1="{left:.1f}" y1="{axis_y:.1f}" x2="{WIDTH - right:.1f}" y2="{axis_y:.1f}" '
        f'stroke="{MUTED}"/>'
    )
    out.append("</svg>")
    return "\n".join(out)


def bar_list_chart(
    items: Sequence[tuple[str, Decimal]],
    *,
    label: str,
    fmt: Formatter,
    empty: str = "Nothing to chart in this period.",
    label_chars: int = 28,
) -> str:
    """Horizontal bars, one row per `(name, value)`, longest first as given, values at the ends.

    Names longer than `label_chars` are cut with "…"; the full name stays in the
    row's tooltip.
    """
    if not items or all(value <= 0 for _, value in items):
        return _empty(label, empty)
    row_h, pad = 24.0, 8.0
    name_w = label_chars * CHAR_PX + 8
    values = [fmt(value) for _, value in items]
    value_w = max(len(v) for v in values) * CHAR_PX + 10
    plot_w = WIDTH - name_w - value_w
    top = max(value for _, value in items)
    height = pad * 2 + row_h * len(items)
    out = _open(WIDTH, height, label)
    for i, ((name, value), text) in enumerate(zip(items, values, strict=True)):
        y = pad + i * row_h
        shown = name if len(name) <= label_chars else name[: label_chars - 1] + "…"
        w = plot_w * float(value / top) if value > 0 else 0.0
        if value > 0:
            w = max(w, MIN_BAR_PX)
        out.append(f"<g><title>{escape(f'{name}: {text}')}</title>")
        out.append(
            f'<text x="{name_w - 8:.1f}" y="{y + row_h / 2 + 4:.1f}" text-anchor="end" '
            f'fill="{TEXT}">{escape(shown)}</text>'
        )
        out.append(
            f'<rect x="{name_w:.1f}" y="{y + 4:.1f}" width="{w:.2f}" height="{row_h - 8:.1f}" '
            f'fill="{BAR}"/>'
        )
        out.append(
            f'<text x="{name_w + w + 6:.1f}" y="{y + row_h / 2 + 4:.1f}" fill="{TEXT}">'
            f"{escape(text)}</text>"
        )
        out.append("</g>")
    out.append("</svg>")
    return "\n".join(out)
