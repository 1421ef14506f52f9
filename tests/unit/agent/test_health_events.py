"""Health Events policy (per-service windows, a global budget, the active director only), the Event sink's
series counting, and the writer on a running loop, all against fakes."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Mapping
from typing import Any

import pytest
from lvs_agent.events import (
    REFUSED,
    EventPolicy,
    HealthEventWriter,
    KubeEventSink,
    OutgoingEvent,
    batch_message,
    virtual_service_reference,
)
from lvs_agent.health.engine import HealthEvent
from lvs_api.models import ResolvedService
from lvs_kube.errors import ApiError, NotFound
from lvs_kube.events import MAX_MESSAGE_LENGTH


def down(service: str, member: str, error: str = "ECONNREFUSED") -> HealthEvent:
    message = f"member {member} ({member}) is unhealthy: 3 TCP checks failed in a row; last: {error}"
    return HealthEvent(service, member, "MemberUnhealthy", message, warning=True)


def up(service: str, member: str) -> HealthEvent:
    message = f"member {member} ({member}) is healthy: 2 TCP checks passed in a row; last: connected"
    return HealthEvent(service, member, "MemberHealthy", message, warning=False)


def everyone_active(_service: str, _member: str) -> bool | None:
    return True


def test_a_member_going_down_is_one_warning_after_the_window() -> None:
    policy = EventPolicy(window=5.0)
    policy.offer(down("shop/web", "198.51.100.11:80"), now=100.0)
    assert policy.take_due(104.9, everyone_active) == []
    assert policy.next_due(104.9) == 105.0
    [event] = policy.take_due(105.0, everyone_active)
    assert (event.service, event.event_type, event.reason, event.members) == (
        "shop/web", "Warning", "MemberUnhealthy", ("198.51.100.11:80",))
    assert "198.51.100.11:80" in event.message and "TCP" in event.message and "ECONNREFUSED" in event.message
    assert policy.next_due(105.0) is None and len(policy) == 0


def test_changes_in_one_window_are_one_event_per_reason_latest_state_wins() -> None:
    policy = EventPolicy(window=5.0)
    policy.offer(down("shop/web", "198.51.100.11:80"), now=0.0)
    policy.offer(down("shop/web", "198.51.100.12:80"), now=1.0)
    policy.offer(down("shop/web", "198.51.100.13:80"), now=1.5)
    policy.offer(up("shop/web", "198.51.100.11:80"), now=2.0)  # flapped back before the batch went out
    policy.offer(down("shop/db", "198.51.100.21:5432"), now=3.0)
    events = policy.take_due(5.0, everyone_active)
    assert [(e.service, e.reason, e.members) for e in events] == [
        ("shop/web", "MemberUnhealthy", ("198.51.100.12:80", "198.51.100.13:80")),  # Warnings first
        ("shop/web", "MemberHealthy", ("198.51.100.11:80",)),
    ]
    assert events[0].message.startswith("2 members unhealthy: member 198.51.100.12:80")
    assert [e.service for e in policy.take_due(8.0, everyone_active)] == ["shop/db"]  # its own window


def rack_outage(policy: EventPolicy) -> list[str]:
    """Five members of each of 200 services fail within 0.2 s."""
    services = [f"rack/svc-{index:03d}" for index in range(200)]
    for index, service in enumerate(services):
        for member in range(5):
            policy.offer(down(service, f"198.51.100.{member + 10}:{8000 + index}"), now=0.0 + index * 0.001)
    return services


def drain(policy: EventPolicy) -> list[tuple[float, OutgoingEvent]]:
    """Take what is due at each due time until nothing is pending."""
    posted: list[tuple[float, OutgoingEvent]] = []
    now = 0.0
    while (due := policy.next_due(now)) is not None:
        now = max(now, due)
        posted += [(now, event) for event in policy.take_due(now, everyone_active)]
        assert now < 10 * 3600, "the backlog never drains"
    return posted


def test_a_rack_outage_is_held_to_the_budget_and_nothing_is_lost() -> None:
    """1,000 members of 200 services fail in the same second: one Event per service, never more than the
    token bucket allows (30 at once, then 30 a minute), oldest service first."""
    budget, period = 30, 60.0
    policy = EventPolicy(window=5.0, budget=budget, budget_period=period, max_wait=3600.0)
    services = rack_outage(policy)
    posted = drain(policy)
    assert [event.service for _, event in posted] == services  # each once, in the order they failed
    assert all(event.message.startswith("5 members unhealthy") for _, event in posted)
    start = posted[0][0]
    for index, (at, _) in enumerate(posted):
        assert index + 1 <= budget + (at - start) * budget / period + 1e-9
    assert sum(1 for at, _ in posted if at < start + period) <= 2 * budget
    assert policy.deferred == 200 - budget  # every batch behind the first 30 waited, counted once


def test_changes_held_by_the_budget_past_max_wait_are_dropped_not_posted_late() -> None:
    policy = EventPolicy(window=5.0, budget=30, budget_period=60.0, max_wait=120.0)
    services = rack_outage(policy)
    posted = drain(policy)
    assert [event.service for _, event in posted] == services[:len(posted)]  # the oldest got through
    assert 30 + 55 <= len(posted) <= 30 + 60  # the burst, then one every 2 s until 120 s after the failure
    assert policy.dropped_stale == 5 * (200 - len(posted)) and len(policy) == 0
    assert all(at <= 0.2 + 120.0 + 2.0 for at, _ in posted)  # never later than max_wait (+ a token's gap)


def test_only_the_active_director_posts_transitions_and_refusals_wait_for_it() -> None:
    policy = EventPolicy(window=1.0)
    active: dict[str, bool | None] = {"198.51.100.11:80": False, "198.51.100.12:80": False,
                                      "198.51.100.13:80": None}

    def state(_service: str, member: str) -> bool | None:
        return active[member]

    policy.offer(down("shop/web", "198.51.100.11:80"), now=0.0)  # offered while active, standby since
    refusal = HealthEvent("shop/web", "198.51.100.12:80", REFUSED, "exec checks are disabled", warning=True)
    policy.offer(refusal, now=0.0)
    policy.offer(down("shop/web", "198.51.100.13:80"), now=0.0)  # unsubscribed since
    assert policy.take_due(1.0, state) == []
    assert policy.dropped_inactive == 2 and len(policy) == 1  # the refusal waits
    assert policy.take_due(2.0, state) == []  # looked at again a window later, still standby
    active["198.51.100.12:80"] = True  # this director became active for the group
    [event] = policy.take_due(3.0, state)
    assert (event.reason, event.event_type, event.message) == (REFUSED, "Warning", "exec checks are disabled")
    assert policy.next_due(3.0) is None


def test_budget_left_over_within_a_service_keeps_its_place() -> None:
    policy = EventPolicy(window=0.0, budget=1, budget_period=10.0)
    policy.offer(down("shop/web", "198.51.100.11:80"), now=0.0)
    policy.offer(up("shop/web", "198.51.100.12:80"), now=0.0)
    policy.offer(down("shop/db", "198.51.100.21:5432"), now=0.0)
    assert [e.reason for e in policy.take_due(0.0, everyone_active)] == ["MemberUnhealthy"]
    assert policy.next_due(0.0) == pytest.approx(10.0)
    assert [(e.service, e.reason) for e in policy.take_due(10.0, everyone_active)] == [("shop/web",
                                                                                         "MemberHealthy")]
    assert [e.service for e in policy.take_due(20.0, everyone_active)] == ["shop/db"]


def test_a_batch_message_fits_an_event_and_says_how_many_more() -> None:
    events = [down("shop/web", f"198.51.100.{index}:80") for index in range(40)]
    message = batch_message("MemberUnhealthy", events)
    assert len(message) <= MAX_MESSAGE_LENGTH
    assert message.startswith("40 members unhealthy: member 198.51.100.0:80")
    named = message.count("is unhealthy")
    assert 3 < named < 40 and message.endswith(f"; and {40 - named} more")
    assert batch_message("MemberUnhealthy", events[:1]) == events[0].message


def test_the_reference_names_the_virtual_service_and_its_uid() -> None:
    resolved = ResolvedService.model_validate({
        "metadata": {"name": "web", "namespace": "shop", "ownerReferences": [
            {"apiVersion": "lvs.io/v1alpha1", "kind": "VirtualService", "name": "web", "uid": "u-1"}]},
        "spec": {"acceptedGeneration": 1, "virtualServiceUid": "u-1",
                 "service": {"vip": "203.0.113.10", "ports": [{"port": 80}], "poolRef": {"name": "p"}},
                 "members": []},
    })
    assert virtual_service_reference("shop/web", resolved) == {
        "apiVersion": "lvs.io/v1alpha1", "kind": "VirtualService", "name": "web", "namespace": "shop",
        "uid": "u-1"}
    assert "uid" not in virtual_service_reference("shop/web")


class FakeEventsClient:
    """The two KubeClient calls the sink makes, on an in-memory Event store."""

    def __init__(self) -> None:
        self.events: dict[str, dict[str, Any]] = {}
        self.calls: list[str] = []

    async def create(self, _resource: object, body: dict[str, Any], namespace: str | None = None) -> Any:
        self.calls.append("create")
        name = f"{body['metadata']['generateName']}{len(self.calls)}"
        self.events[name] = {**body, "metadata": {**body["metadata"], "name": name, "namespace": namespace}}
        return self.events[name]

    async def patch(self, _resource: object, name: str, patch: dict[str, Any], namespace: str | None = None,
                    **_options: object) -> Any:
        self.calls.append("patch")
        if name not in self.events:
            raise NotFound(404, "NotFound", f"events {name} not found")
        self.events[name].update(patch)
        return self.events[name]


REFERENCE = {"apiVersion": "lvs.io/v1alpha1", "kind": "VirtualService", "name": "web", "namespace": "shop"}


async def test_the_sink_counts_repeats_in_a_series_and_starts_a_new_one_after_it() -> None:
    client = FakeEventsClient()
    clock = [0.0]
    sink = KubeEventSink(client, "director-1", series_window=600.0, remember=2,  # type: ignore[arg-type]
                         monotonic=lambda: clock[0])
    event = OutgoingEvent("shop/web", "Warning", "MemberUnhealthy", "member a is unhealthy", ("a",))
    await sink.post(REFERENCE, event)
    [(name, body)] = client.events.items()
    assert (body["reportingComponent"], body["reportingInstance"], body["source"]["host"]) == (
        "lvs-agent", "director-1", "director-1")
    assert body["involvedObject"] == REFERENCE and body["count"] == 1 and body["type"] == "Warning"
    clock[0] = 300.0
    await sink.post(REFERENCE, event)
    assert client.events[name]["count"] == 2 and client.calls == ["create", "patch"]
    clock[0] = 1000.0  # 700 s after the last one: a new series
    await sink.post(REFERENCE, event)
    assert len(client.events) == 2
    del client.events[name]
    await sink.post(REFERENCE, event._replace(message="other"))
    await sink.post(REFERENCE, event._replace(message="third"))  # remember=2: the first series is forgotten
    await sink.post(REFERENCE, event)
    assert client.calls[-1] == "create" and len(client.events) == 4


async def test_the_sink_recreates_an_event_deleted_under_it() -> None:
    client = FakeEventsClient()
    sink = KubeEventSink(client, "director-1")  # type: ignore[arg-type]
    event = OutgoingEvent("shop/web", "Normal", "MemberHealthy", "member a is healthy", ("a",))
    await sink.post(REFERENCE, event)
    client.events.clear()  # expired (the API server keeps Events an hour)
    await sink.post(REFERENCE, event)
    assert client.calls == ["create", "patch", "create"] and len(client.events) == 1


class RecordingSink:
    def __init__(self, fail: Callable[[OutgoingEvent], bool] = lambda _event: False) -> None:
        self.posted: list[tuple[Mapping[str, str], OutgoingEvent]] = []
        self.fail = fail

    async def post(self, reference: Mapping[str, str], event: OutgoingEvent) -> None:
        if self.fail(event):
            raise ApiError(500, "InternalError", "etcd is on fire")
        self.posted.append((reference, event))


async def eventually(predicate: Callable[[], bool], what: str, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        await asyncio.sleep(0.01)


async def test_the_writer_posts_on_the_loop_and_counts_failures() -> None:
    sink = RecordingSink(fail=lambda event: "db" in event.service)
    writer = HealthEventWriter(sink, member_state=everyone_active, window=0.05)
    task = asyncio.create_task(writer.run())
    try:
        writer.offer(down("shop/web", "198.51.100.11:80"))
        writer.offer(down("shop/db", "198.51.100.21:5432"))
        await eventually(lambda: writer.posted == 1 and writer.failed == 1, "one post and one failure")
        [(reference, event)] = sink.posted
        assert reference["name"] == "web" and reference["namespace"] == "shop" and event.members == (
            "198.51.100.11:80",)
        writer.offer(up("shop/web", "198.51.100.11:80"))
        await eventually(lambda: writer.posted == 2, "the member's recovery")
        assert writer.stats()["pending"] == 0 and not task.done()
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)


async def test_a_hung_post_is_cut_by_its_timeout() -> None:
    class HangingSink:
        async def post(self, reference: Mapping[str, str], event: OutgoingEvent) -> None:
            await asyncio.Event().wait()

    writer = HealthEventWriter(HangingSink(), member_state=everyone_active, window=0.0, post_timeout=0.05)
    writer.offer(down("shop/web", "198.51.100.11:80"))
    async with asyncio.timeout(10):
        await writer.post_due()
    assert (writer.posted, writer.failed) == (0, 1)
