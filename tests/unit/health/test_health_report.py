"""Batched, rate-limited reports: a flapping member must not flood the API."""

from __future__ import annotations

import asyncio
import itertools

import pytest
from health_fakes import FakeClock
from lvs_agent.health.report import HealthReporter, MemberReport, ReportCoalescer


def report(member: str, healthy: bool | None, flaps: int = 0, removed: bool = False) -> MemberReport:
    return MemberReport("ns/svc", member, "198.51.100.1", 80, "TCP", healthy, "r", None, flaps, True, removed)


def test_first_report_is_due_at_once_then_rate_limited() -> None:
    coalescer = ReportCoalescer(min_interval=10.0)
    coalescer.record(report("a", False))
    assert coalescer.take_due(100.0) == [report("a", False)]
    coalescer.record(report("a", True, flaps=1))
    assert coalescer.take_due(105.0) == []
    assert coalescer.next_due() == 110.0
    coalescer.record(report("a", False, flaps=2))
    coalescer.record(report("a", True, flaps=3))
    assert coalescer.take_due(110.0) == [report("a", True, flaps=3)]  # last state, latest flap count


def test_members_are_limited_independently() -> None:
    coalescer = ReportCoalescer(min_interval=10.0)
    coalescer.record(report("a", False))
    coalescer.take_due(0.0)
    coalescer.record(report("a", True))
    coalescer.record(report("b", False))
    assert coalescer.take_due(1.0) == [report("b", False)]
    assert len(coalescer) == 1


def test_removed_member_forgets_its_limit() -> None:
    coalescer = ReportCoalescer(min_interval=10.0)
    coalescer.record(report("a", True))
    coalescer.take_due(0.0)
    coalescer.record(report("a", None, removed=True))
    assert coalescer.take_due(10.0) == [report("a", None, removed=True)]
    coalescer.record(report("a", True))
    assert coalescer.take_due(11.0) == [report("a", True)]


def test_requeue_keeps_newer_reports() -> None:
    coalescer = ReportCoalescer(min_interval=10.0)
    coalescer.record(report("a", False))
    coalescer.record(report("b", False))
    failed = coalescer.take_due(0.0)
    coalescer.record(report("a", True))
    coalescer.requeue(failed)
    assert sorted(coalescer.take_due(0.5)) == sorted([report("a", True), report("b", False)])


def test_ignore_limit_takes_everything_without_blocking_later_reports() -> None:
    coalescer = ReportCoalescer(min_interval=10.0)
    coalescer.record(report("a", False))
    coalescer.take_due(0.0)
    coalescer.record(report("a", True))
    assert coalescer.take_due(1.0, ignore_limit=True) == [report("a", True)]
    coalescer.record(report("a", False))
    assert coalescer.take_due(11.0) == [report("a", False)]


@pytest.mark.looptime
async def test_reporter_batches_a_flapping_member() -> None:
    published: list[tuple[float, list[MemberReport]]] = []

    async def publish(batch: list[MemberReport]) -> None:
        published.append((asyncio.get_running_loop().time(), batch))

    reporter = HealthReporter(publish, clock=FakeClock(), min_interval=10.0, batch_interval=1.0)
    task = asyncio.create_task(reporter.run())
    # The member flips every 0.5 s for 30 s: 60 changes.
    for flip in range(60):
        reporter.record(report("a", flip % 2 == 0, flaps=flip))
        await asyncio.sleep(0.5)
    await asyncio.sleep(15)
    task.cancel()
    times = [at for at, _ in published]
    assert times[0] == 0.0
    assert all(later - earlier >= 10.0 - 1e-6 for earlier, later in itertools.pairwise(times))
    assert len(published) == 4  # at 0, 10, 20, 30
    assert published[-1][1] == [report("a", False, flaps=59)]


@pytest.mark.looptime
async def test_reporter_retries_with_backoff_after_a_failed_publish() -> None:
    attempts: list[float] = []
    delivered: list[MemberReport] = []

    async def publish(batch: list[MemberReport]) -> None:
        attempts.append(asyncio.get_running_loop().time())
        if len(attempts) <= 3:
            raise ConnectionError("API server away")
        delivered.extend(batch)

    reporter = HealthReporter(publish, clock=FakeClock(), min_interval=10.0, batch_interval=1.0)
    task = asyncio.create_task(reporter.run())
    reporter.record(report("a", False))
    await asyncio.sleep(20)
    task.cancel()
    assert attempts == [0.0, 1.0, 3.0, 7.0]  # backoff 1, 2, 4
    assert delivered == [report("a", False)]
    assert reporter.reports_published == 1


@pytest.mark.looptime
async def test_new_member_is_not_held_back_by_another_members_limit() -> None:
    published: list[tuple[float, list[MemberReport]]] = []

    async def publish(batch: list[MemberReport]) -> None:
        published.append((asyncio.get_running_loop().time(), batch))

    reporter = HealthReporter(publish, clock=FakeClock(), min_interval=10.0, batch_interval=1.0)
    task = asyncio.create_task(reporter.run())
    reporter.record(report("a", False))
    await asyncio.sleep(2)
    reporter.record(report("a", True))  # limited until t=10
    await asyncio.sleep(1)
    reporter.record(report("b", False))  # first report of b: goes out now
    await asyncio.sleep(12)
    task.cancel()
    assert [(at, [r.member for r in batch]) for at, batch in published] == [
        (0.0, ["a"]),
        (3.0, ["b"]),
        (10.0, ["a"]),
    ]
