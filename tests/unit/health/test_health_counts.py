"""The engine's metric counters (``HealthEngine.counts``): kept up to date as members subscribe, change
state and leave, so that a scrape does not walk every member. Virtual time (looptime)."""

from __future__ import annotations

import asyncio

import pytest
from health_fakes import FakeClock, ScriptedProber
from lvs_agent.health.engine import HealthEngine
from lvs_agent.health.spec import CheckSpec, ExecProbe, HttpProbe, TcpProbe, Timing

pytestmark = pytest.mark.looptime

A = "198.51.100.11"
B = "198.51.100.12"


def timing() -> Timing:
    return Timing(interval=1.0, timeout=0.5, rise=1, fall=1, jitter=0.0)


def states_by_walk(engine: HealthEngine) -> dict[tuple[str, str], int]:
    """The same figure computed the slow way, from every subscription."""
    walked: dict[tuple[str, str], int] = {}
    for sub in engine.subscriptions():
        names = {None: "unknown", True: "healthy", False: "unhealthy"}
        state = "refused" if sub.refused else names[sub.healthy]
        key = (sub.check.probe.kind, state)
        walked[key] = walked.get(key, 0) + 1
    return walked


async def until(condition: object, deadline: float = 30.0) -> None:
    loop = asyncio.get_running_loop()
    end = loop.time() + deadline
    while not condition():  # type: ignore[operator]
        assert loop.time() < end, "condition not reached"
        await asyncio.sleep(0.1)


async def test_counts_follow_checks_transitions_and_membership() -> None:
    prober = ScriptedProber(up={(B, 80): False})
    engine = HealthEngine(prober, clock=FakeClock(), default_active=True)  # type: ignore[arg-type]
    async with engine:
        engine.subscribe("s1", "a", A, 80, CheckSpec(TcpProbe(), timing()))
        engine.subscribe("s2", "a", A, 80, CheckSpec(TcpProbe(), timing()))  # shares the probe job
        engine.subscribe("s1", "b", B, 80, CheckSpec(HttpProbe(tls=True), timing()))
        engine.subscribe("s1", "x", A, 80, CheckSpec(ExecProbe(("true",)), timing()))
        counts = engine.counts()
        assert counts.members == {("TCP", "unknown"): 2, ("HTTPS", "unknown"): 1, ("Exec", "refused"): 1}
        assert (counts.subscriptions, counts.jobs) == (4, 2)

        await until(lambda: engine.health("s1", "b") is False and engine.health("s1", "a") is True)
        counts = engine.counts()
        assert counts.members == {("TCP", "healthy"): 2, ("HTTPS", "unhealthy"): 1, ("Exec", "refused"): 1}
        assert counts.members == states_by_walk(engine)
        assert counts.transitions == {"healthy": 1, "unhealthy": 1}  # one tracker each
        assert counts.checks["TCP"] >= 1 and counts.failures.get("TCP", 0) == 0
        assert counts.checks["HTTPS"] == counts.failures["HTTPS"] >= 1

        prober.up[(A, 80)] = False
        await until(lambda: engine.health("s2", "a") is False)
        counts = engine.counts()
        assert counts.members == {("TCP", "unhealthy"): 2, ("HTTPS", "unhealthy"): 1, ("Exec", "refused"): 1}
        assert counts.transitions == {"healthy": 1, "unhealthy": 2}
        assert counts.failures["TCP"] >= 1

        engine.unsubscribe("s1", "x")
        engine.unsubscribe("s2", "a")
        # a changed check replaces the subscription: it starts from unknown on a new job
        engine.subscribe("s1", "b", B, 80, CheckSpec(HttpProbe(tls=True, path="/other"), timing()))
        counts = engine.counts()
        assert counts.members == {("TCP", "unhealthy"): 1, ("HTTPS", "unknown"): 1}
        assert counts.members == states_by_walk(engine)


async def test_activation_delivers_the_groups_own_members_only() -> None:
    """The index keeps members by service and groups by service: a service whose members sit in two groups
    (the API allows it) hands over only the activated group's members, and unsubscribing keeps the
    group index exact."""
    prober = ScriptedProber()
    engine = HealthEngine(prober, clock=FakeClock())  # type: ignore[arg-type]  # groups start standby
    check = CheckSpec(TcpProbe(), timing())
    async with engine:
        engine.subscribe("s1", "a", A, 80, check, group="g1")
        engine.subscribe("s1", "b", B, 80, check, group="g2")
        engine.subscribe("s2", "a", A, 80, check, group="g1")
        await until(lambda: all(sub.healthy for sub in engine.subscriptions()))
        assert engine.changes.take() == []  # standby: nothing reaches the feed
        engine.set_active("g1", True)
        assert sorted((c.service, c.member) for c in engine.changes.take()) == [("s1", "a"), ("s2", "a")]
        engine.unsubscribe("s1", "a")
        engine.unsubscribe("s2", "a")
        engine.set_active("g1", False)
        engine.set_active("g1", True)
        assert engine.changes.take() == []  # g1 has no members left
        engine.set_active("g2", True)
        assert [(c.service, c.member) for c in engine.changes.take()] == [("s1", "b")]
        assert engine.service_health("s1") == {"b": True}
        assert engine.stats()["subscriptions"] == 1
