"""The /stats chart: response times against the 10-minute target and reports by category.

Rendered with matplotlib's Agg backend to PNG in memory (its bundled DejaVu fonts: no
system fonts, no display, nothing written to disk). Imported lazily: matplotlib takes
about half a second to load and only admins asking for statistics need it.
"""

from __future__ import annotations

import io

from bot.domain.stats import MILESTONES, TARGET, Stats

WIDTH_IN, HEIGHT_IN, DPI = 9.0, 4.8, 100
CATEGORIES_SHOWN = 10


def render_png(stats: Stats, milestone_labels: dict[str, str], titles: tuple[str, str]) -> bytes:
    """A two-panel PNG: p50/p90 minutes per milestone (target line), reports by category."""
    import matplotlib  # noqa: PLC0415 - loaded only when a chart is asked for

    matplotlib.use("Agg")
    from matplotlib.figure import Figure  # noqa: PLC0415

    figure = Figure(figsize=(WIDTH_IN, HEIGHT_IN), dpi=DPI, layout="constrained")
    times, categories = figure.subplots(1, 2, width_ratios=(3, 2))
    names = [milestone_labels[name] for name in MILESTONES]
    p50 = [_minutes(stats.intervals[name].p50) for name in MILESTONES]
    p90 = [_minutes(stats.intervals[name].p90) for name in MILESTONES]
    rows = range(len(MILESTONES))
    times.barh([r + 0.2 for r in rows], p50, height=0.4, label="p50", color="#2b7bb9")
    times.barh([r - 0.2 for r in rows], p90, height=0.4, label="p90", color="#9ecae1")
    times.axvline(TARGET.total_seconds() / 60, color="#d62728", linestyle="--", label="10 min")
    times.set_yticks(list(rows), names)
    times.invert_yaxis()
    times.set_xlabel("min")
    times.set_title(titles[0])
    times.legend(loc="lower right", fontsize="small")
    shown = stats.by_category[:CATEGORIES_SHOWN]
    categories.barh([c for c, _ in shown], [n for _, n in shown], color="#ff7f0e")
    categories.invert_yaxis()
    categories.set_title(titles[1])
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png")
    return buffer.getvalue()


def _minutes(seconds: float | None) -> float:
    return 0.0 if seconds is None else seconds / 60
