"""Batched, rate-limited health reports for the node report (the API side).

The kernel side gets every transition at once (:class:`lvs_agent.health.engine.ChangeFeed`); the API
must not: a member flapping every second would otherwise write the API server every second. Reports are
coalesced per (service, member): the first change of a member is sent with the next batch, later ones at
most once every ``min_interval`` seconds per member, carrying the last state and the flap count. Batches
go out at most once every ``batch_interval`` seconds. A failed publish is retried with backoff, newer
entries winning over the failed ones.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable
from typing import NamedTuple

from lvs_agent.health.clock import Clock, LoopClock
from lvs_agent.health.state import Health

logger = logging.getLogger("lvs_agent.health.report")

ReportKey = tuple[str, str]  # (service, member)
_SLACK = 1e-6


class MemberReport(NamedTuple):
    service: str
    member: str
    address: str
    port: int
    check: str  # probe kind: TCP, HTTP, HTTPS, UDP, DNS, Exec
    healthy: Health
    reason: str
    since: float | None  # wall-clock time of the last transition; None while unknown
    flaps: int  # healthy<->unhealthy flips since the check started
    active: bool  # the subscription's VIP group is active on this director
    removed: bool = False  # the subscription is gone: drop the member from the report


class ReportCoalescer:
    """Pure rate-limit bookkeeping (times are plain numbers, so it is tested without any clock)."""

    def __init__(self, min_interval: float) -> None:
        self.min_interval = min_interval
        self._pending: dict[ReportKey, MemberReport] = {}
        self._last_sent: dict[ReportKey, float] = {}

    def __len__(self) -> int:
        return len(self._pending)

    def record(self, report: MemberReport) -> None:
        self._pending[(report.service, report.member)] = report

    def _due_at(self, key: ReportKey) -> float:
        sent = self._last_sent.get(key)
        return float("-inf") if sent is None else sent + self.min_interval

    def take_due(self, now: float, *, ignore_limit: bool = False) -> list[MemberReport]:
        # A microsecond of slack: a timer set for the due time may fire at a float that rounds just below.
        due = [key for key in self._pending if ignore_limit or self._due_at(key) <= now + _SLACK]
        batch = [self._pending.pop(key) for key in due]
        for report in batch:
            key = (report.service, report.member)
            if report.removed:
                self._last_sent.pop(key, None)
            else:
                self._last_sent[key] = now
        return batch

    def next_due(self) -> float | None:
        """Earliest time a pending report may go out (``-inf`` if one may go now)."""
        return min((self._due_at(key) for key in self._pending), default=None)

    def requeue(self, batch: list[MemberReport]) -> None:
        """Put back reports whose publish failed, unless a newer one is pending; due again at once."""
        for report in batch:
            key = (report.service, report.member)
            self._pending.setdefault(key, report)
            self._last_sent.pop(key, None)


Publisher = Callable[[list[MemberReport]], Awaitable[None]]


class HealthReporter:
    """Drives a :class:`ReportCoalescer` and hands batches to ``publish`` (the node-report writer)."""

    def __init__(
        self,
        publish: Publisher,
        *,
        clock: Clock | None = None,
        min_interval: float = 10.0,
        batch_interval: float = 1.0,
        max_backoff: float = 60.0,
    ) -> None:
        self._publish = publish
        self._clock: Clock = clock or LoopClock()
        self._coalescer = ReportCoalescer(min_interval)
        self._batch_interval = batch_interval
        self._max_backoff = max_backoff
        self._wakeup = asyncio.Event()
        self.batches_published = 0
        self.reports_published = 0

    @property
    def pending(self) -> int:
        return len(self._coalescer)

    def record(self, report: MemberReport) -> None:
        self._coalescer.record(report)
        self._wakeup.set()

    async def run(self) -> None:
        backoff = self._batch_interval
        while True:
            self._wakeup.clear()
            batch = self._coalescer.take_due(self._clock.now())
            if batch:
                try:
                    await self._publish(batch)
                except asyncio.CancelledError:
                    self._coalescer.requeue(batch)
                    raise
                except Exception:
                    logger.exception("health report publish failed; retrying in %.1fs", backoff)
                    self._coalescer.requeue(batch)
                    await self._clock.sleep(backoff)
                    backoff = min(backoff * 2, self._max_backoff)
                    continue
                backoff = self._batch_interval
                self.batches_published += 1
                self.reports_published += len(batch)
                await self._clock.sleep(self._batch_interval)
                continue
            due_at = self._coalescer.next_due()
            if due_at is None:
                await self._wakeup.wait()
                continue
            # Sleep until the next report is due, or until a new member's first report arrives.
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(max(0.0, due_at - self._clock.now())):
                    await self._wakeup.wait()

    async def flush(self) -> None:
        """Publish everything pending now, ignoring the rate limit (on shutdown)."""
        batch = self._coalescer.take_due(self._clock.now(), ignore_limit=True)
        if batch:
            await self._publish(batch)
            self.batches_published += 1
            self.reports_published += len(batch)
