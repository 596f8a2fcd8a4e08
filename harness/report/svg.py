"""Inline SVG charts, drawn at build time (no script, no external file): bars with CI whiskers,
per-task outcome grids, claim-vs-replicated dot plots. Colours are colour-blind safe (blue/orange)
and every mark has a <title> carrying its exact numbers."""

from __future__ import annotations

from dataclasses import dataclass
from html import escape

from markupsafe import Markup

BLUE, ORANGE, PURPLE, GREY, LIGHT = "#2166ac", "#e66101", "#5e3c99", "#9e9e9e", "#e8e8e8"
FONT = 'font-family="system-ui, sans-serif" font-size="12"'


@dataclass(frozen=True)
class Bar:
    label: str
    value: float | None  # None: nothing graded (drawn as "no verdicts", no bar)
    ci: tuple[float, float] | None
    muted: bool = False  # shown but not ranked (incomplete or partial runs)
    href: str | None = None


def _pct(x: float) -> str:
    return f"{100 * x:.1f}%"


def _svg(width: int, height: int, label: str, body: list[str]) -> Markup:
    return Markup(
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" viewBox="0 0 {width} {height}"'
        f' role="img" aria-label="{escape(label)}" {FONT}><title>{escape(label)}</title>' + "".join(body) + "</svg>"
    )


def nice_max(x: float) -> float:
    """The smallest of 5%, 10%, 20%, 25%, 50%, 75%, 100% at or above x (axis ticks land on round numbers)."""
    return next((m for m in (0.05, 0.1, 0.2, 0.25, 0.5, 0.75, 1.0) if x <= m), 1.0)


def _axis(x0: int, width: int, top: int, bottom: int, lo: float = 0.0, hi: float = 1.0) -> list[str]:
    out = []
    for i in range(6):
        v = lo + (hi - lo) * i / 5
        x = x0 + width * i / 5
        out.append(f'<line x1="{x:.1f}" y1="{top}" x2="{x:.1f}" y2="{bottom}" stroke="#ddd"/>')
        tick = f"{100 * v:.0f}%" if abs(100 * v - round(100 * v)) < 1e-9 else _pct(v)
        out.append(f'<text x="{x:.1f}" y="{bottom + 14}" text-anchor="middle" fill="#555">{tick}</text>')
    return out


def bar_chart(bars: list[Bar], title: str, max_value: float | None = None) -> Markup:
    """Horizontal bars with 95% CI whiskers; muted bars are hatched grey."""
    label_w, plot_w, row_h, top = 290, 420, 24, 8
    hi = max_value or nice_max(max([b.ci[1] if b.ci else b.value or 0.0 for b in bars] + [0.0]))
    height = top + row_h * len(bars) + 24
    body = [
        '<defs><pattern id="hatch" width="6" height="6" patternUnits="userSpaceOnUse" patternTransform="rotate(45)">'
        f'<rect width="6" height="6" fill="{LIGHT}"/><line x1="0" y1="0" x2="0" y2="6" stroke="{GREY}" '
        'stroke-width="2"/></pattern></defs>',
        *_axis(label_w, plot_w, top, top + row_h * len(bars), 0.0, hi),
    ]

    def sx(v: float) -> float:
        return label_w + plot_w * max(0.0, min(v, hi)) / hi

    for i, b in enumerate(bars):
        y = top + i * row_h
        ci_text = f", 95% CI {_pct(b.ci[0])} to {_pct(b.ci[1])}" if b.ci else ""
        shown = "no verdicts" if b.value is None else _pct(b.value)
        tip = escape(f"{b.label}: {shown}{ci_text}" + (" (not ranked)" if b.muted else ""))
        name = escape(b.label if len(b.label) <= 42 else b.label[:41] + "…")
        text = f'<text x="{label_w - 6}" y="{y + 16}" text-anchor="end">{name}</text>'
        body.append(f'<a href="{escape(b.href)}">{text}</a>' if b.href else text)
        fill = "url(#hatch)" if b.muted else BLUE
        if b.value is not None:
            body.append(
                f'<rect x="{label_w}" y="{y + 5}" width="{sx(b.value) - label_w:.1f}" height="14" fill="{fill}">'
                f"<title>{tip}</title></rect>"
            )
        if b.ci:
            x1, x2, ym = sx(b.ci[0]), sx(b.ci[1]), y + 12
            body.append(
                f'<path d="M{x1:.1f},{ym} H{x2:.1f} M{x1:.1f},{ym - 5} V{ym + 5} M{x2:.1f},{ym - 5} V{ym + 5}" '
                f'stroke="#222" stroke-width="1.5" fill="none"><title>{tip}</title></path>'
            )
        body.append(f'<text x="{label_w + plot_w + 8}" y="{y + 16}" fill="#222">{escape(shown)}</text>')
    return _svg(label_w + plot_w + 60, height + 6, title, body)


def _mix(a: str, b: str, t: float) -> str:
    ca = [int(a[i : i + 2], 16) for i in (1, 3, 5)]
    cb = [int(b[i : i + 2], 16) for i in (1, 3, 5)]
    return "#" + "".join(f"{round(x + (y - x) * t):02x}" for x, y in zip(ca, cb, strict=True))


def score_colour(score: float | None) -> str:
    """Orange (no sample passed) through light to blue (every sample passed); grey: not graded."""
    if score is None:
        return GREY
    return _mix(ORANGE, "#f7f7f7", score / 0.5) if score < 0.5 else _mix("#f7f7f7", BLUE, (score - 0.5) / 0.5)


@dataclass(frozen=True)
class Cell:
    task_id: str
    colour: str
    tip: str


def task_grid(cells: list[Cell], title: str, cols: int = 28) -> Markup:
    """One square per task, in dataset order, each with its task id and outcome as a tooltip."""
    size, gap = 16, 2
    rows = (len(cells) + cols - 1) // cols
    body = []
    for i, c in enumerate(cells):
        x, y = (i % cols) * (size + gap), (i // cols) * (size + gap)
        body.append(
            f'<rect x="{x}" y="{y}" width="{size}" height="{size}" rx="2" fill="{c.colour}" stroke="#fff" '
            f'data-task="{escape(c.task_id)}"><title>{escape(c.task_id)}: {escape(c.tip)}</title></rect>'
        )
    return _svg(cols * (size + gap), max(rows, 1) * (size + gap), title, body)


def claim_plot(points: list[tuple[str, float, float | None, tuple[float, float] | None]], title: str) -> Markup:
    """Per claim: the claimed figure (orange diamond) and the replicated value with its CI (blue)."""
    label_w, plot_w, row_h, top = 300, 400, 26, 8
    height = top + row_h * len(points) + 24
    body = _axis(label_w, plot_w, top, top + row_h * len(points))

    def sx(v: float) -> float:
        return label_w + plot_w * max(0.0, min(v, 1.0))

    for i, (label, claimed, value, ci) in enumerate(points):
        y = top + i * row_h + 13
        name = escape(label if len(label) <= 40 else label[:39] + "…")
        body.append(
            f'<text x="{label_w - 6}" y="{y + 4}" text-anchor="end">{name}<title>{escape(label)}</title></text>'
        )
        if ci is not None and value is not None:
            tip = escape(f"{label}: replicated {_pct(value)}, 95% CI {_pct(ci[0])} to {_pct(ci[1])}")
            body.append(
                f'<path d="M{sx(ci[0]):.1f},{y} H{sx(ci[1]):.1f}" stroke="{BLUE}" stroke-width="3"><title>{tip}</title>'
                f'</path><circle cx="{sx(value):.1f}" cy="{y}" r="4.5" fill="{BLUE}"><title>{tip}</title></circle>'
            )
        cx = sx(claimed)
        body.append(
            f'<path d="M{cx:.1f},{y - 6} L{cx + 6:.1f},{y} L{cx:.1f},{y + 6} L{cx - 6:.1f},{y} Z" fill="{ORANGE}">'
            f"<title>{escape(f'{label}: claimed {_pct(claimed)}')}</title></path>"
        )
    return _svg(label_w + plot_w + 30, height + 6, title, body)
