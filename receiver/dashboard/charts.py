"""Small time-series charts as geometry for an inline SVG: points, a line through them and
labelled axes. Server-side, so a chart costs no script and reads without one."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

WIDTH, HEIGHT = 640, 260
LEFT, RIGHT, TOP, BOTTOM = 64, 16, 16, 40
_UNITS = ((7200.0, 3600.0, "h"), (120.0, 60.0, "min"), (0.0, 1.0, "s"))
_SINGULAR = {"calls": "call"}
"""Units that are counted nouns, and their singular; symbols (h, min, s) stay as they are."""


@dataclass(frozen=True)
class Tick:
    at: float
    label: str
    align: str = "middle"
    """Which end of the label is at `at`, as an SVG text-anchor. The labels at the two ends
    of the x axis reach inwards from their points (the first starts there, the last ends
    there): centred on the plot's right edge, the last ran past the picture's and was cut."""


@dataclass(frozen=True)
class Point:
    x: float
    y: float
    label: str


@dataclass(frozen=True)
class Chart:
    title: str
    summary: str
    y_label: str
    points: list[Point]
    y_ticks: list[Tick]
    x_ticks: list[Tick]
    width: int = WIDTH
    height: int = HEIGHT
    left: int = LEFT
    right: int = WIDTH - RIGHT
    top: int = TOP
    bottom: int = HEIGHT - BOTTOM

    @property
    def line(self) -> str:
        return " ".join(f"{point.x:.1f},{point.y:.1f}" for point in self.points)


def duration_chart(samples: Sequence[tuple[float, float, str]], title: str) -> Chart:
    """Seconds over time, in the unit that suits the longest."""
    longest = max((value for _, value, _ in samples), default=0.0)
    scale, unit = next((scale, unit) for floor, scale, unit in _UNITS if longest >= floor)
    scaled = [(at, value / scale, name) for at, value, name in samples]
    return time_series(scaled, title=title, unit=unit, y_label=f"duration ({unit})")


def time_series(
    samples: Sequence[tuple[float, float, str]], *, title: str, unit: str, y_label: str
) -> Chart:
    """`samples` are (unix time, value, what it is), oldest first."""
    top_value = _nice_ceiling(max((value for _, value, _ in samples), default=0.0))
    times = [at for at, _, _ in samples]
    start, end = (min(times), max(times)) if times else (0.0, 0.0)
    plot_width, plot_height = WIDTH - RIGHT - LEFT, HEIGHT - BOTTOM - TOP

    def x_of(at: float) -> float:
        if end == start:
            return (LEFT + WIDTH - RIGHT) / 2
        return LEFT + (at - start) / (end - start) * plot_width

    def y_of(value: float) -> float:
        return HEIGHT - BOTTOM - value / top_value * plot_height

    points = [
        Point(x_of(at), y_of(value), f"{name}: {_amount(value, unit)}")
        for at, value, name in samples
    ]
    y_ticks = [
        Tick(y_of(top_value * step / 4), f"{_number(top_value * step / 4)}") for step in range(5)
    ]
    if end > start:
        x_ticks = [
            Tick(x_of(start), _time_label(start, end - start), "start"),
            Tick(x_of(end), _time_label(end, end - start), "end"),
        ]
    else:
        x_ticks = [Tick(x_of(start), _time_label(start, 0.0))]
    values = [value for _, value, _ in samples]
    if len(samples) == 1:
        summary = f"1 job, finished {_time_label(start, 86400)}: {_amount(values[0], unit)}."
    elif samples:
        summary = (
            f"{len(samples)} jobs from {_time_label(start, 86400)} to {_time_label(end, 86400)}; "
            f"lowest {_amount(min(values), unit)}, highest {_amount(max(values), unit)}."
        )
    else:
        summary = "No finished jobs yet."
    return Chart(title, summary, y_label, points, y_ticks, x_ticks if samples else [])


def _nice_ceiling(value: float) -> float:
    """The smallest of 1, 2, 2.5, 5 times 10^k at or above `value` (at least 1)."""
    if value <= 1:
        return 1.0
    magnitude = 10.0 ** math.floor(math.log10(value))
    for step in (1, 2, 2.5, 5, 10):
        if value <= step * magnitude:
            return step * magnitude
    return 10 * magnitude


def _number(value: float) -> str:
    digits = 2 if value < 10 else 1 if value < 100 else 0
    text = f"{value:.{digits}f}"
    return text.rstrip("0").rstrip(".") if digits else text


def _amount(value: float, unit: str) -> str:
    """A value and its unit, a counted unit in the singular for exactly 1 ("1 call")."""
    number = _number(value)
    return f"{number} {_SINGULAR.get(unit, unit) if number == '1' else unit}"


def _time_label(at: float, span: float) -> str:
    moment = datetime.fromtimestamp(at, UTC)
    return moment.strftime("%H:%M UTC") if span < 86400 else moment.strftime("%Y-%m-%d %H:%M")
