"""Outbound callbacks (Crustdata `webhook_url`, BrightLocal `callback`), delivered badly on purpose.

A vendor module registers a *watch* per job: a function giving the moment the job ends and
one building the body as of that moment. Whenever time moves, watches whose end has come are
turned into deliveries due `delay` (+ jitter) later; some are lost, some duplicated, and
jitter reorders them. In manual mode `run_until` steps the clock to each due time in order,
so a receiver that calls back into the sim sees the world as it was at delivery.
"""

from __future__ import annotations

import asyncio
import heapq
import itertools
import logging
import random
from collections.abc import Callable
from dataclasses import dataclass, field

import aiohttp

from enrichwatch.sim.clock import SimClock
from enrichwatch.sim.config import CallbackConfig


@dataclass(frozen=True)
class Outgoing:
    body: bytes
    content_type: str


_log = logging.getLogger(__name__)

Signer = Callable[[bytes, float], dict[str, str]]


@dataclass
class Delivery:
    vendor: str
    job_id: str
    url: str
    body: bytes
    content_type: str
    due_at: float
    duplicate: bool = False
    lost: bool = False
    sent_at: float | None = None
    status: int | None = None
    error: str | None = None
    headers: dict[str, str] = field(default_factory=dict)


@dataclass
class _Watch:
    vendor: str
    job_id: str
    url: str
    terminal: Callable[[], float | None]
    payload: Callable[[float], Outgoing | None]
    signer: Signer | None


class CallbackDispatcher:
    def __init__(
        self, clock: SimClock, seed: int, configs: Callable[[str], CallbackConfig]
    ) -> None:
        self._clock = clock
        self._seed = seed
        self._configs = configs
        self._watches: list[_Watch] = []
        self._heap: list[tuple[float, int, Delivery, Signer | None]] = []
        self._seq = itertools.count()
        self._lock = asyncio.Lock()
        self._session: aiohttp.ClientSession | None = None
        self.deliveries: list[Delivery] = []
        """Every callback that came due, in the order it was handled (lost ones included)."""

    async def start(self) -> None:
        self._session = aiohttp.ClientSession()

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None

    def watch(
        self,
        vendor: str,
        job_id: str,
        url: str,
        terminal: Callable[[], float | None],
        payload: Callable[[float], Outgoing | None],
        signer: Signer | None = None,
    ) -> None:
        self._watches.append(_Watch(vendor, job_id, url, terminal, payload, signer))

    @property
    def pending(self) -> list[Delivery]:
        """Deliveries scheduled but not yet due, soonest first."""
        return [entry[2] for entry in sorted(self._heap)]

    def delivered(self, vendor: str | None = None) -> list[Delivery]:
        return [
            d
            for d in self.deliveries
            if not d.lost and d.sent_at is not None and (vendor is None or d.vendor == vendor)
        ]

    def next_due(self) -> float | None:
        """The earliest moment something will be sent, as far as is known now."""
        moments = [entry[0] for entry in self._heap[:1]]
        for w in self._watches:
            end = w.terminal()
            if end is not None:
                moments.append(end + self._configs(w.vendor).delay)
        return min(moments, default=None)

    def _collect(self, until: float) -> None:
        keep: list[_Watch] = []
        for w in self._watches:
            end = w.terminal()
            if end is None or end > until:
                keep.append(w)
                continue
            out = w.payload(end)
            if out is not None:
                self._schedule(w, end, out)
        self._watches = keep

    def _schedule(self, w: _Watch, end: float, out: Outgoing) -> None:
        config = self._configs(w.vendor)
        rng = random.Random(f"{self._seed}:callback:{w.vendor}:{w.job_id}")
        due = end + config.delay + rng.uniform(0.0, config.jitter)
        lost = rng.random() < config.loss_probability
        copies = [(due, False)]
        if rng.random() < config.duplicate_probability:
            copies.append((due + config.duplicate_delay, True))
        for when, dup in copies:
            delivery = Delivery(
                w.vendor, w.job_id, w.url, out.body, out.content_type, when, dup, lost
            )
            heapq.heappush(self._heap, (when, next(self._seq), delivery, w.signer))

    async def run_until(self, target: float) -> int:
        """Send, in due order, everything due by `target`; returns how many were handled."""
        handled = 0
        async with self._lock:
            while True:
                self._collect(target)
                if not self._heap or self._heap[0][0] > target:
                    break
                due, _, delivery, signer = heapq.heappop(self._heap)
                if self._clock.manual:
                    self._clock.advance_to(due)
                await self._send(delivery, signer)
                self.deliveries.append(delivery)
                handled += 1
            if self._clock.manual:
                self._clock.advance_to(target)
        return handled

    async def _send(self, delivery: Delivery, signer: Signer | None) -> None:
        if delivery.lost:
            return
        assert self._session is not None, "dispatcher not started"
        now = self._clock.now()
        headers = {"Content-Type": delivery.content_type, "User-Agent": "enrichwatch-sim"}
        if signer is not None:
            headers.update(signer(delivery.body, now))
        delivery.headers = headers
        delivery.sent_at = now
        timeout = aiohttp.ClientTimeout(total=self._configs(delivery.vendor).timeout)
        try:
            async with self._session.post(
                delivery.url, data=delivery.body, headers=headers, timeout=timeout
            ) as response:
                delivery.status = response.status
                await response.read()
        except (aiohttp.ClientError, TimeoutError) as exc:
            delivery.error = f"{type(exc).__name__}: {exc}"

    async def run_forever(self, interval: float = 0.02) -> None:
        """Scaled-clock mode: deliver as real time carries the sim clock past due times."""
        while True:
            try:
                await self.run_until(self._clock.now())
            except Exception:
                _log.exception("callback dispatch failed; retrying")
            await asyncio.sleep(interval)
