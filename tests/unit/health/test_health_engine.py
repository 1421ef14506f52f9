"""Engine policy with a scripted prober in virtual time (looptime): timing, dedup, active switch, delivery."""

from __future__ import annotations

import asyncio
import itertools
import logging
from collections import Counter

import pytest
from health_fakes import WALL_EPOCH, FakeClock, ScriptedProber
from lvs_agent.health.engine import HealthChange, HealthEngine, HealthEvent, SubscriptionRequest
from lvs_agent.health.probes import EXEC_DISABLED_REASON
from lvs_agent.health.report import HealthReporter, MemberReport
from lvs_agent.health.spec import CheckSpec, ExecProbe, HttpProbe, TcpProbe, Timing

pytestmark = pytest.mark.looptime

A = "198.51.100.11"
B = "198.51.100.12"


def tcp(
    interval: float = 1.0, rise: int = 2, fall: int = 2, jitter: float = 0.0, port: int | None = None
) -> CheckSpec:
    return CheckSpec(
        TcpProbe(), Timing(interval=interval, timeout=0.5, rise=rise, fall=fall, jitter=jitter), port
    )


def make_engine(prober: ScriptedProber, **kwargs: object) -> HealthEngine:
    kwargs.setdefault("default_active", True)
    return HealthEngine(prober, clock=FakeClock(), **kwargs)  # type: ignore[arg-type]


def now() -> float:
    return asyncio.get_running_loop().time()


async def test_member_goes_down_within_interval_times_fall_and_comes_back_after_rise() -> None:
    prober = ScriptedProber()
    changes: list[tuple[float, HealthChange]] = []
    engine = make_engine(prober, on_change=lambda change: changes.append((now(), change)))
    async with engine:
        engine.subscribe("shop/web", f"{A}:80", A, 80, tcp(interval=1.0, rise=3, fall=2))
        await asyncio.sleep(5)
        assert engine.health("shop/web", f"{A}:80") is True
        assert [c.healthy for _, c in changes] == [True]
        assert changes[0][1].previous is None

        down_at = now()
        prober.up[(A, 80)] = False
        await asyncio.sleep(5)
        assert engine.health("shop/web", f"{A}:80") is False
        detected_at, change = changes[1]
        assert (change.healthy, change.previous, change.reason) == (False, True, "scripted down")
        assert 1.0 < detected_at - down_at <= 1.0 * 2  # the second failing probe, within interval*fall
        assert change.at == pytest.approx(WALL_EPOCH + detected_at)

        up_at = now()
        prober.up[(A, 80)] = True
        await asyncio.sleep(5)
        recovered_at, change = changes[2]
        assert (change.healthy, change.previous, change.flaps) == (True, False, 2)
        assert 2.0 < recovered_at - up_at <= 3.0


async def test_unknown_until_first_threshold() -> None:
    prober = ScriptedProber(latency=0.0)
    engine = make_engine(prober)
    async with engine:
        sub = engine.subscribe("s", "m", A, 80, tcp(interval=10.0, rise=2, fall=2))
        assert sub.healthy is None
        await asyncio.sleep(10)  # at most one probe so far: first offset < interval
        assert prober.count(A, 80) == 1
        assert sub.healthy is None
        await asyncio.sleep(10)
        assert sub.healthy is True


async def test_shared_member_and_check_is_probed_once_per_interval() -> None:
    prober = ScriptedProber()
    engine = make_engine(prober)
    async with engine:
        for service in ("shop/web", "shop/api", "blog/web"):
            engine.subscribe(service, A, A, 80, tcp(interval=1.0))
        assert engine.job_count == 1
        await asyncio.sleep(10.5)
        assert 10 <= prober.count(A, 80) <= 11
        prober.up[(A, 80)] = False
        await asyncio.sleep(3)
    assert engine.changes.take() and all(engine.health(s, A) is False for s in ("shop/web", "shop/api"))


async def test_different_rise_fall_share_the_probe_but_not_the_counters() -> None:
    prober = ScriptedProber()
    engine = make_engine(prober)
    async with engine:
        quick = engine.subscribe("quick", A, A, 80, tcp(interval=1.0, rise=1, fall=1))
        patient = engine.subscribe("patient", A, A, 80, tcp(interval=1.0, rise=1, fall=4))
        assert engine.job_count == 1
        await asyncio.sleep(2)
        prober.up[(A, 80)] = False
        await asyncio.sleep(2)
        assert (quick.healthy, patient.healthy) == (False, True)
        await asyncio.sleep(3)
        assert (quick.healthy, patient.healthy) == (False, False)
        assert prober.count(A, 80) <= 8


async def test_port_override_and_different_checks_get_their_own_probes() -> None:
    prober = ScriptedProber(up={(A, 8080): False})
    engine = make_engine(prober)
    async with engine:
        plain = engine.subscribe("a", A, A, 80, tcp(rise=1, fall=1))
        override = engine.subscribe("b", A, A, 80, tcp(rise=1, fall=1, port=8080))
        http = engine.subscribe("c", A, A, 80, CheckSpec(HttpProbe(), Timing(interval=1, rise=1, fall=1)))
        assert engine.job_count == 3
        assert override.port == 8080
        await asyncio.sleep(1.5)
        assert (plain.healthy, override.healthy, http.healthy) == (True, False, True)
        assert {port for _, _, port, _ in prober.calls} == {80, 8080}


def first_probe_times(prober: ScriptedProber, start: float = 0.0) -> list[float]:
    first: dict[int, float] = {}
    for at, _address, port, _spec in prober.calls:
        first.setdefault(port, at - start)
    return sorted(first.values())


async def test_first_probes_are_spread_over_the_interval_deterministically() -> None:
    prober = ScriptedProber()
    engine = make_engine(prober)  # scheduling resolution: 10 ms
    async with engine:
        for index in range(1000):
            address = f"198.51.100.{index % 250 + 1}"
            engine.subscribe("s", f"{address}:{index}", address, 1000 + index, tcp(interval=1.0))
        await asyncio.sleep(1.05)
    first_times = first_probe_times(prober)
    assert len(first_times) == 1000
    assert max(first_times) <= 1.0 + 1e-9
    buckets = Counter(min(int(at * 10), 9) for at in first_times)
    assert len(buckets) == 10
    assert all(60 <= count <= 140 for count in buckets.values()), buckets
    assert len(set(first_times)) > 90  # spread over the 10 ms slots of the interval, not clumped

    # Same checks, another engine (a restarted agent): the same offsets.
    replay = ScriptedProber()
    engine = make_engine(replay)
    async with engine:
        start = now()
        for index in range(1000):
            address = f"198.51.100.{index % 250 + 1}"
            engine.subscribe("s", f"{address}:{index}", address, 1000 + index, tcp(interval=1.0))
        await asyncio.sleep(1.05)
    assert first_probe_times(replay, start) == pytest.approx(first_times, abs=0.011)


async def test_jitter_keeps_periods_within_bounds_and_on_average_at_the_interval() -> None:
    prober = ScriptedProber()
    engine = make_engine(prober)
    async with engine:
        engine.subscribe("s", A, A, 80, tcp(interval=2.0, jitter=0.5))
        await asyncio.sleep(2000)
    times = [at for at, *_ in prober.calls]
    periods = [later - earlier for earlier, later in itertools.pairwise(times)]
    assert min(periods) >= 1.5 - 0.01  # +- the 10 ms scheduling resolution
    assert max(periods) <= 2.5 + 0.01
    assert sum(periods) / len(periods) == pytest.approx(2.0, abs=0.05)
    assert len({round(period, 6) for period in periods}) > 50  # actually jittered


async def test_slow_probes_never_overlap() -> None:
    prober = ScriptedProber(latency=0.8)
    engine = make_engine(prober)
    async with engine:
        engine.subscribe("s", A, A, 80, CheckSpec(TcpProbe(), Timing(interval=0.5, timeout=2.0, jitter=0)))
        await asyncio.sleep(10)
    times = [at for at, *_ in prober.calls]
    assert all(later - earlier >= 0.8 - 1e-9 for earlier, later in itertools.pairwise(times))
    assert 11 <= len(times) <= 13


async def test_standby_probes_warm_but_only_the_active_group_drives_the_kernel() -> None:
    prober = ScriptedProber()
    on_change: list[HealthChange] = []
    events: list[HealthEvent] = []
    reports: list[MemberReport] = []

    async def publish(batch: list[MemberReport]) -> None:
        reports.extend(batch)

    engine = HealthEngine(
        prober,
        clock=FakeClock(),
        on_change=on_change.append,
        event_hook=events.append,
        reporter=HealthReporter(publish, clock=FakeClock(), min_interval=0.0, batch_interval=0.1),
    )
    async with engine:
        standby = engine.subscribe("shop/web", A, A, 80, tcp(rise=1, fall=1), group="vip-a")
        active = engine.subscribe("shop/api", B, B, 80, tcp(rise=1, fall=1), group="vip-b")
        engine.set_active("vip-b", True)
        assert (standby.active, active.active) == (False, True)
        prober.up[(A, 80)] = False
        await asyncio.sleep(3)
        assert standby.healthy is False  # probed: warm
        assert [c.service for c in on_change] == ["shop/api"]
        assert [c.service for c in engine.changes.take()] == ["shop/api"]
        assert [e.service for e in events] == ["shop/api"]
        assert {(r.service, r.active) for r in reports} == {("shop/web", False), ("shop/api", True)}

        engine.set_active("vip-a", True)  # failover: the warm state reaches the kernel at once
        batch = engine.changes.take()
        assert [(c.service, c.healthy, c.active) for c in batch] == [("shop/web", False, True)]

        engine.set_active("vip-a", False)
        prober.up[(A, 80)] = True
        await asyncio.sleep(3)
        assert standby.healthy is True
        assert engine.changes.take() == []


async def test_events_and_structured_log_name_member_services_and_reason(
    caplog: pytest.LogCaptureFixture,
) -> None:
    prober = ScriptedProber()
    events: list[HealthEvent] = []
    engine = make_engine(prober, event_hook=events.append)
    caplog.set_level(logging.INFO, logger="lvs_agent.health")
    async with engine:
        engine.subscribe("shop/web", f"{A}:80", A, 80, tcp(rise=1, fall=2))
        engine.subscribe("shop/api", f"{A}:80", A, 80, tcp(rise=1, fall=2))
        await asyncio.sleep(1.5)
        prober.up[(A, 80)] = False
        await asyncio.sleep(3)
    down = [record for record in caplog.records if getattr(record, "event", "") == "health_transition"][-1]
    assert down.levelno == logging.WARNING
    assert down.services == ["shop/api", "shop/web"]  # type: ignore[attr-defined]
    assert down.member_address == A  # type: ignore[attr-defined]
    assert down.reason == "scripted down"  # type: ignore[attr-defined]
    assert (down.healthy, down.previous, down.check) == (False, True, "TCP")  # type: ignore[attr-defined]
    assert "198.51.100.11:80 is unhealthy" in down.getMessage()
    unhealthy = [event for event in events if event.reason == "MemberUnhealthy"]
    assert sorted(event.service for event in unhealthy) == ["shop/api", "shop/web"]
    assert all(event.warning and "2 TCP checks failed" in event.message for event in unhealthy)
    assert all("scripted down" in event.message for event in unhealthy)


async def test_exec_is_refused_unless_allowed() -> None:
    prober = ScriptedProber()
    events: list[HealthEvent] = []
    check = CheckSpec(ExecProbe(("/usr/local/bin/check", "%h")), Timing(interval=1, rise=1, fall=1))
    engine = make_engine(prober, event_hook=events.append)
    async with engine:
        sub = engine.subscribe("s", A, A, 80, check)
        await asyncio.sleep(3)
    assert sub.refused == EXEC_DISABLED_REASON
    assert sub.healthy is None
    assert prober.calls == []
    assert engine.job_count == 0
    assert [(e.reason, e.warning) for e in events] == [("HealthCheckRefused", True)]

    allowed = make_engine(prober, allow_exec=True)
    async with allowed:
        sub = allowed.subscribe("s", A, A, 80, check)
        await asyncio.sleep(3)
    assert sub.refused is None
    assert sub.healthy is True
    assert prober.calls


async def test_prober_exception_counts_as_failure() -> None:
    prober = ScriptedProber(raise_for={(A, 80)})
    engine = make_engine(prober)
    async with engine:
        sub = engine.subscribe("s", A, A, 80, tcp(rise=1, fall=2))
        await asyncio.sleep(3)
    assert sub.healthy is False
    assert engine.subscription("s", A) is sub
    assert "prober bug" in engine.changes.take()[0].reason


async def test_unsubscribing_the_last_service_stops_the_probe() -> None:
    prober = ScriptedProber()
    engine = make_engine(prober)
    async with engine:
        engine.subscribe("a", A, A, 80, tcp())
        engine.subscribe("b", A, A, 80, tcp())
        await asyncio.sleep(2)
        assert engine.unsubscribe("a", A)
        assert not engine.unsubscribe("a", A)
        count = prober.count(A, 80)
        await asyncio.sleep(2)
        assert prober.count(A, 80) > count  # b still subscribed
        engine.unsubscribe("b", A)
        assert engine.job_count == 0
        count = prober.count(A, 80)
        await asyncio.sleep(5)
        assert prober.count(A, 80) == count


async def test_sync_keeps_unchanged_state_and_scopes_removal() -> None:
    prober = ScriptedProber(up={(B, 80): False})
    engine = make_engine(prober)
    async with engine:
        requests = [
            SubscriptionRequest("shop/web", A, A, 80, tcp(rise=1, fall=1)),
            SubscriptionRequest("shop/web", B, B, 80, tcp(rise=1, fall=1)),
            SubscriptionRequest("blog/web", A, A, 80, tcp(rise=1, fall=1)),
        ]
        engine.sync(requests)
        await asyncio.sleep(2)
        kept = engine.subscription("shop/web", A)
        assert engine.service_health("shop/web") == {A: True, B: False}

        # Reconcile of shop/web only: B left the pool; blog/web is outside the scope and stays.
        engine.sync([requests[0]], services=["shop/web"])
        assert engine.subscription("shop/web", A) is kept
        assert engine.health("shop/web", A) is True
        assert engine.subscription("shop/web", B) is None
        assert engine.subscription("blog/web", A) is not None

        # A changed check replaces the subscription and starts from unknown.
        engine.sync([SubscriptionRequest("shop/web", A, A, 80, tcp(rise=1, fall=1, port=81))])
        assert engine.subscription("blog/web", A) is None
        assert engine.health("shop/web", A) is None
        assert engine.job_count == 1


async def test_joining_a_running_check_inherits_its_state_and_feeds_it() -> None:
    prober = ScriptedProber(up={(A, 80): False})
    engine = make_engine(prober)
    async with engine:
        engine.subscribe("a", A, A, 80, tcp(rise=1, fall=1))
        await asyncio.sleep(2)
        engine.changes.take()
        late = engine.subscribe("b", A, A, 80, tcp(rise=1, fall=1))
        assert late.healthy is False
        assert [(c.service, c.healthy) for c in engine.changes.take()] == [("b", False)]


async def test_feed_coalesces_a_flapping_member_for_a_slow_reconcile() -> None:
    prober = ScriptedProber()
    engine = make_engine(prober)
    async with engine:
        engine.subscribe("s", A, A, 80, tcp(interval=1.0, rise=1, fall=1))
        await asyncio.sleep(1.5)
        first = await engine.changes.get()
        assert [(c.healthy, c.previous) for c in first] == [(True, None)]
        for _ in range(5):
            prober.up[(A, 80)] = not prober.up.get((A, 80), True)
            await asyncio.sleep(1)
        batch = await engine.changes.get()
        assert len(batch) == 1
        assert (batch[0].healthy, batch[0].previous, batch[0].flaps) == (False, True, 5)

        waiter = asyncio.create_task(engine.changes.get())
        await asyncio.sleep(3)
        assert not waiter.done()
        prober.up[(A, 80)] = True
        await asyncio.sleep(1.1)
        assert [(c.healthy, c.previous) for c in await waiter] == [(True, False)]


async def test_stop_cancels_every_probe_loop() -> None:
    prober = ScriptedProber(latency=0.3)
    engine = make_engine(prober)
    for index in range(50):
        engine.subscribe("s", str(index), A, 1000 + index, tcp())
    await engine.start()
    await asyncio.sleep(2)
    await engine.stop()
    count = len(prober.calls)
    await asyncio.sleep(5)
    assert len(prober.calls) == count
    assert engine.in_flight == 0
    assert [task for task in asyncio.all_tasks() if task is not asyncio.current_task()] == []


async def test_snapshot_reports_every_subscription() -> None:
    prober = ScriptedProber(up={(B, 80): False})
    engine = make_engine(prober)
    async with engine:
        engine.subscribe("s", A, A, 80, tcp(rise=1, fall=1))
        engine.subscribe("s", B, B, 80, tcp(rise=1, fall=1))
        engine.subscribe("s", "x", A, 80, CheckSpec(ExecProbe(("true",))))
        await asyncio.sleep(2)
        snapshot = {report.member: report for report in engine.snapshot()}
    assert (snapshot[A].healthy, snapshot[B].healthy, snapshot["x"].healthy) == (True, False, None)
    assert snapshot["x"].reason == EXEC_DISABLED_REASON
    assert snapshot[B].reason == "scripted down"
    assert snapshot[B].since is not None and snapshot[B].since <= WALL_EPOCH + 2
    stats = engine.stats()
    assert (stats["subscriptions"], stats["jobs"], stats["unhealthy"], stats["in_flight"]) == (3, 2, 1, 0)
    assert stats["probes_completed"] >= 4
    assert stats["probes_failed"] >= 2


async def test_events_of_a_flapping_member_are_rate_limited_and_end_on_the_last_state() -> None:
    prober = ScriptedProber()
    events: list[tuple[float, HealthEvent]] = []
    engine = make_engine(
        prober, event_hook=lambda event: events.append((now(), event)), event_min_interval=30.0
    )
    async with engine:
        engine.subscribe("shop/web", A, A, 80, tcp(interval=1.0, rise=1, fall=1))
        engine.subscribe("shop/api", A, A, 80, tcp(interval=1.0, rise=1, fall=1))
        await asyncio.sleep(1.5)
        for _ in range(41):  # 41 flips, one a second: ends unhealthy
            prober.up[(A, 80)] = not prober.up.get((A, 80), True)
            await asyncio.sleep(1)
        await asyncio.sleep(40)
    for service in ("shop/web", "shop/api"):
        mine = [(at, event) for at, event in events if event.service == service]
        times = [at for at, _ in mine]
        assert all(later - earlier >= 30.0 - 1e-6 for earlier, later in itertools.pairwise(times)), times
        assert len(mine) <= 4
        assert mine[-1][1].reason == "MemberUnhealthy"  # the state it settled in
        assert "collapsed into this event" in mine[-1][1].message
    assert engine.events_suppressed > 60
