"""Virtual time for the simulator.

Every time-dependent answer the sim gives (job progress, link expiry, rate-limit windows,
callback due times) reads this clock, so a test can jump an hour ahead without waiting and
a demo can watch an hour-long job finish in a minute.
"""

from __future__ import annotations

import time
from datetime import UTC, datetime

DEFAULT_EPOCH = 1_767_225_600.0
"""2026-01-01T00:00:00Z: a fixed start makes manual-mode runs reproducible to the byte."""


class SimClock:
    """Unix seconds in simulated time.

    With `speed=None` the clock is manual and only `advance` moves it. With a `speed`, it
    runs that many times faster than the real monotonic clock; `advance` still jumps it.
    """

    def __init__(self, start: float | None = None, speed: float | None = None) -> None:
        if speed is not None and speed <= 0:
            raise ValueError("speed must be positive")
        self._speed = speed
        if start is None:
            start = DEFAULT_EPOCH if speed is None else time.time()
        self._start = start
        self._offset = 0.0
        self._real_origin = time.monotonic()

    @property
    def speed(self) -> float | None:
        return self._speed

    @property
    def manual(self) -> bool:
        return self._speed is None

    def now(self) -> float:
        elapsed = 0.0
        if self._speed is not None:
            elapsed = (time.monotonic() - self._real_origin) * self._speed
        return self._start + self._offset + elapsed

    def advance(self, seconds: float) -> None:
        if seconds < 0:
            raise ValueError("time only moves forward")
        self._offset += seconds

    def advance_to(self, when: float) -> None:
        """Jump to `when`, or stay put if that moment has already passed."""
        gap = when - self.now()
        if gap > 0:
            self._offset += gap

    def real_seconds(self, sim_seconds: float) -> float:
        """How long a real wait covers `sim_seconds`; manual clocks never wait."""
        if self._speed is None:
            return 0.0
        return sim_seconds / self._speed

    def datetime(self, when: float | None = None) -> datetime:
        return datetime.fromtimestamp(self.now() if when is None else when, UTC)


def iso_micro(when: float) -> str:
    """Crustdata's timestamp shape: `2026-06-12T12:23:03.945900+00:00`."""
    return datetime.fromtimestamp(when, UTC).isoformat(timespec="microseconds")


def iso_z(when: float) -> str:
    """The `2026-05-06T14:23:11Z` shape used by Reprompt and eCore."""
    return datetime.fromtimestamp(when, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
