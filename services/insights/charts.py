"""Bar charts as SVG geometry for the admin templates: no chart library, no script, no build step.

A chart is computed here (bar positions and heights in a fixed viewBox that scales to the
screen) and drawn by a Jinja macro as `<rect>`s with a `<title>` tooltip each.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import date, timedelta

WIDTH = 600
HEIGHT = 160
_LABEL_SPACE = 18  # below the bars, for the first and last label
_TOP_SPACE = 16  # above the tallest bar, for the "max" label
_GAP = 2


@dataclass(frozen=True, slots=True)
class Bar:
    x: float
    y: float
    width: float
    height: float
    css_class: str
    title: str


@dataclass(frozen=True, slots=True)
class Chart:
    width: int
    height: int
    bars: list[Bar]
    first_label: str
    last_label: str
    maximum: int

    @property
    def empty(self) -> bool:
        return not self.bars


def stacked_bars(points: Sequence[tuple[str, Sequence[int]]], series: Sequence[str]) -> Chart:
    """One bar per point (a day), its values stacked bottom-up in `series` order (CSS classes)."""
    totals = [sum(values) for _, values in points]
    maximum = max(totals, default=0)
    plot = HEIGHT - _LABEL_SPACE - _TOP_SPACE
    step = WIDTH / max(1, len(points))
    bars: list[Bar] = []
    for index, (label, values) in enumerate(points):
        bottom = float(HEIGHT - _LABEL_SPACE)
        for name, value in zip(series, values, strict=True):
            if value <= 0 or maximum == 0:
                continue
            height = plot * value / maximum
            bottom -= height
            bars.append(
                Bar(
                    x=round(index * step + _GAP / 2, 2),
                    y=round(bottom, 2),
                    width=round(max(1.0, step - _GAP), 2),
                    height=round(height, 2),
                    css_class=name,
                    title=f"{label}: {value} {name}",
                )
            )
    return Chart(
        width=WIDTH,
        height=HEIGHT,
        bars=bars,
        first_label=points[0][0] if points else "",
        last_label=points[-1][0] if points else "",
        maximum=maximum,
    )


def every_day(
    first: date, last: date, values: Mapping[str, Sequence[int]], series: int
) -> list[tuple[str, list[int]]]:
    """`values` (ISO day -> one number per series) for each day from `first` to `last`, zeros filled
    in, so a quiet day shows as a gap in the chart instead of vanishing from it."""
    days: dict[str, list[int]] = {}
    day = first
    while day <= last:
        days[day.isoformat()] = [0] * series
        day += timedelta(days=1)
    for key, numbers in values.items():
        days[key] = list(numbers)
    return sorted(days.items())
