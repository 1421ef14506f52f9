"""Kubernetes Events for member health, posted on the VirtualService by the director active for it.

The health engine hands each member transition of an active subscription to :meth:`HealthEventWriter.offer`
(its ``event_hook``; the engine already holds one member to one event every 30 s, collapsing the rest).
The API must survive more than a flapping member: a rack going dark fails 1,000 members in a second, and
that must not become 1,000 Events. So (:class:`EventPolicy`):

- **per service**, what arrives within ``window`` seconds (5) of its first pending event goes out together:
  one Event per (service, reason), naming each member with its check and last result (as many as fit in
  1 KiB, then "and N more"). A member that changes again meanwhile is named once, in its latest state;
- **a global budget**: at most ``budget`` Events (30) per ``budget_period`` (60 s) from this agent, a token
  bucket. Batches that do not fit wait, oldest first, merging later changes of the same members, and go
  out as tokens come back; a batch whose newest change has waited ``max_wait`` (5 min) is dropped and
  counted instead (an Event is stamped when posted: one an hour late would tell a wrong story);
- **series**: an Event equal to one posted in the last ``series_window`` (10 min) bumps that Event's
  ``count`` and ``lastTimestamp`` instead of creating another (what client-go's correlator does);
- **the active director only**: whether the member's VIP group is active here is asked again when a batch
  goes out, so a director that became standby meanwhile drops its transitions (a standby's engine offers
  none). ``HealthCheckRefused`` is offered on every director when the service is subscribed, usually
  before roles are settled: it waits while this director is standby and goes out if it becomes active.

Events are best effort: a failed post is logged and counted, not retried. The DirectorReport and the
VirtualService status hold the state; Events tell its story in ``kubectl events --for virtualservice/NAME``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import OrderedDict
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, NamedTuple, Protocol

import aiohttp
from lvs_api.models import API_VERSION, ResolvedService, VirtualService
from lvs_kube.client import JsonObject, KubeClient
from lvs_kube.errors import ApiError, NotFound
from lvs_kube.events import MAX_MESSAGE_LENGTH, now_rfc3339
from lvs_kube.resources import CORE_EVENT

from lvs_agent.health.engine import HealthEngine, HealthEvent

logger = logging.getLogger("lvs_agent.events")

COMPONENT = "lvs-agent"  # reportingComponent (events.k8s.io: reportingController) of every Event
REFUSED = "HealthCheckRefused"
_SLACK = 1e-9  # a timer set for the moment a token is back may fire when the float sum is just below 1

# Whether (service, member) is subscribed here and its VIP group active: True, False, or None when gone.
MemberState = Callable[[str, str], bool | None]


def engine_member_state(engine: HealthEngine) -> MemberState:
    """The :data:`MemberState` of ``engine``'s subscriptions."""

    def state(service: str, member: str) -> bool | None:
        subscription = engine.subscription(service, member)
        return None if subscription is None else subscription.active

    return state


class OutgoingEvent(NamedTuple):
    service: str  # "namespace/name" of the VirtualService
    event_type: str  # Normal | Warning
    reason: str
    message: str
    members: tuple[str, ...]


def batch_message(reason: str, events: list[HealthEvent]) -> str:
    """One member: the engine's own message. Several: how many, then each member's message while they fit
    in an Event message (1 KiB), then how many more."""
    if len(events) == 1:
        return events[0].message[:MAX_MESSAGE_LENGTH]
    state = {"MemberHealthy": "healthy again", "MemberUnhealthy": "unhealthy", REFUSED: "not checked"}
    head = f"{len(events)} members {state.get(reason, reason)}: "
    parts: list[str] = []
    length = len(head)
    for index, event in enumerate(events):
        tail = f"; and {len(events) - index - 1} more" if index < len(events) - 1 else ""
        separator = "; " if parts else ""
        if length + len(separator) + len(event.message) + len(tail) > MAX_MESSAGE_LENGTH and parts:
            return head + "; ".join(parts) + f"; and {len(events) - index} more"
        parts.append(event.message)
        length += len(separator) + len(event.message)
    return (head + "; ".join(parts))[:MAX_MESSAGE_LENGTH]


@dataclass
class _Pending:
    since: float  # when the batch opened (or was last put back to wait for its director to be active)
    latest: float  # when its newest change arrived
    members: dict[str, HealthEvent] = field(default_factory=dict)  # latest event per member
    deferred: bool = False  # already counted as waiting for the budget


class EventPolicy:
    """Which Events go out when: per-service windows, a global token bucket, the active-director rule.
    Pure bookkeeping on plain numbers for time, so it is tested without a clock."""

    def __init__(
        self, *, window: float = 5.0, budget: int = 30, budget_period: float = 60.0, max_wait: float = 300.0
    ) -> None:
        if budget < 1 or budget_period <= 0 or window < 0 or max_wait <= 0:
            raise ValueError("budget >= 1, budget_period > 0, window >= 0 and max_wait > 0 are needed")
        self.window = window
        self.max_wait = max_wait
        self.budget = budget
        self.budget_period = budget_period
        self._pending: dict[str, _Pending] = {}  # insertion order = oldest batch first
        self._tokens = float(budget)
        self._tokens_at: float | None = None
        self.offered = 0
        self.dropped_inactive = 0  # transitions whose director was no longer active for them, or gone
        self.deferred = 0  # batches that had to wait for the budget (counted once each)
        self.dropped_stale = 0  # member changes that waited for the budget longer than max_wait

    def __len__(self) -> int:
        return sum(len(pending.members) for pending in self._pending.values())

    def offer(self, event: HealthEvent, now: float) -> None:
        self.offered += 1
        pending = self._pending.get(event.service)
        if pending is None:
            pending = self._pending[event.service] = _Pending(now, now)
        pending.latest = now
        pending.members[event.member] = event  # latest wins (the engine says how many it collapsed)

    def _refill(self, now: float) -> None:
        if self._tokens_at is not None:
            self._tokens = min(
                float(self.budget), self._tokens + (now - self._tokens_at) * self.budget / self.budget_period
            )
        self._tokens_at = now

    def take_due(self, now: float, member_state: MemberState) -> list[OutgoingEvent]:
        """The Events to post now; the rest stays pending."""
        self._refill(now)
        out: list[OutgoingEvent] = []
        for service, pending in list(self._pending.items()):
            if pending.since + self.window > now:
                continue
            if now - pending.latest > self.max_wait and pending.deferred:
                self.dropped_stale += len(pending.members)
                del self._pending[service]
                continue
            if self._tokens < 1 - _SLACK:
                self._mark_deferred(now + _SLACK)
                break  # oldest first: younger batches wait behind this one
            groups: dict[str, list[HealthEvent]] = {}
            held: dict[str, HealthEvent] = {}
            for member, event in pending.members.items():
                state = member_state(service, member)
                if state is True:
                    groups.setdefault(event.reason, []).append(event)
                elif state is False and event.reason == REFUSED:
                    held[member] = event  # goes out if this director becomes active for it
                else:
                    self.dropped_inactive += 1
            unsent: dict[str, HealthEvent] = {}
            for reason, events in sorted(groups.items(), key=lambda item: (not item[1][0].warning, item[0])):
                if self._tokens < 1 - _SLACK:
                    unsent.update((event.member, event) for event in events)
                    continue
                self._tokens -= 1
                events.sort(key=lambda event: event.member)
                event_type = "Warning" if events[0].warning else "Normal"
                message = batch_message(reason, events)
                members = tuple(event.member for event in events)
                out.append(OutgoingEvent(service, event_type, reason, message, members))
            del self._pending[service]
            if unsent:  # out of budget: keeps its place at the head of the queue
                self.deferred += not pending.deferred
                waiting = _Pending(pending.since, pending.latest, {**unsent, **held}, deferred=True)
                self._pending = {service: waiting, **self._pending}
            elif held:  # look again in a window, behind the others
                self._pending[service] = _Pending(now, pending.latest, held)
        return out

    def next_due(self, now: float) -> float | None:
        """When :meth:`take_due` may have something again (``None``: nothing pending)."""
        if not self._pending:
            return None
        due = min(pending.since for pending in self._pending.values()) + self.window
        self._refill(now)
        if self._tokens < 1 - _SLACK:
            token_back = now + (1 - self._tokens) * self.budget_period / self.budget
            self._mark_deferred(token_back)
            due = max(due, token_back)
        return due

    def _mark_deferred(self, until: float) -> None:
        """Count the batches that the budget holds past their window (each once)."""
        for waiting in self._pending.values():
            if waiting.since + self.window < until and not waiting.deferred:
                waiting.deferred = True
                self.deferred += 1


class EventSink(Protocol):
    async def post(self, reference: Mapping[str, str], event: OutgoingEvent) -> None: ...


@dataclass
class _Series:
    name: str
    count: int
    at: float  # monotonic time of the last post


class KubeEventSink:
    """core/v1 Events (what ``kubectl events`` and ``kubectl describe`` show on every cluster version),
    from ``lvs-agent`` on ``node``. Repeats within ``series_window`` bump ``count`` on the first one; the
    series remembered are bounded (``remember``, least recently posted forgotten first)."""

    def __init__(
        self,
        client: KubeClient,
        node: str,
        *,
        series_window: float = 600.0,
        remember: int = 512,
        monotonic: Callable[[], float] | None = None,
    ) -> None:
        self._client = client
        self.node = node
        self.series_window = series_window
        self.remember = remember
        self._monotonic = monotonic or (lambda: asyncio.get_running_loop().time())
        self._series: OrderedDict[tuple[str, ...], _Series] = OrderedDict()

    async def post(self, reference: Mapping[str, str], event: OutgoingEvent) -> None:
        namespace = reference.get("namespace") or "default"
        key = (namespace, reference["name"], reference.get("uid", ""), event.event_type, event.reason,
               event.message)
        now = self._monotonic()
        stamp = now_rfc3339()
        series = self._series.get(key)
        if series is not None and now - series.at < self.series_window:
            try:
                await self._client.patch(
                    CORE_EVENT, series.name, {"count": series.count + 1, "lastTimestamp": stamp}, namespace
                )
            except NotFound:  # expired or deleted: start a new one
                del self._series[key]
            else:
                series.count += 1
                series.at = now
                self._series.move_to_end(key)
                return
        body: JsonObject = {
            "apiVersion": "v1",
            "kind": "Event",
            "metadata": {"generateName": f"{reference['name']}.", "namespace": namespace},
            "involvedObject": dict(reference),
            "type": event.event_type,
            "reason": event.reason,
            "message": event.message[:MAX_MESSAGE_LENGTH],
            "source": {"component": COMPONENT, "host": self.node},
            "reportingComponent": COMPONENT,
            "reportingInstance": self.node,
            "action": "HealthCheck",
            "firstTimestamp": stamp,
            "lastTimestamp": stamp,
            "count": 1,
        }
        created = await self._client.create(CORE_EVENT, body, namespace)
        name = str((created.get("metadata") or {}).get("name") or "")
        if name:
            self._series[key] = _Series(name, 1, now)
            while len(self._series) > self.remember:
                self._series.popitem(last=False)


def virtual_service_reference(key: str, resolved: ResolvedService | None = None) -> dict[str, str]:
    """The ObjectReference of the VirtualService ``key`` ("namespace/name"); its uid from the
    ResolvedService's owner reference when there is one (the controller sets it)."""
    namespace, _, name = key.rpartition("/")
    reference = {
        "apiVersion": API_VERSION,
        "kind": VirtualService.kind_name,
        "name": name,
        "namespace": namespace or "default",
    }
    extra: Mapping[str, Any] = (resolved.metadata.model_extra or {}) if resolved is not None else {}
    for owner in extra.get("ownerReferences") or []:
        if isinstance(owner, Mapping) and owner.get("kind") == VirtualService.kind_name and owner.get("uid"):
            reference["uid"] = str(owner["uid"])
    return reference


class HealthEventWriter:
    """Drives an :class:`EventPolicy` on the event loop and posts through an :class:`EventSink`.

    Wiring: ``HealthEngine(..., event_hook=writer.offer)``, then ``writer.member_state =
    engine_member_state(engine)``; ``writer.sync(services)`` before each reconcile pass (the VirtualService
    uids); ``await writer.run()`` as a task.
    """

    def __init__(
        self,
        sink: EventSink,
        *,
        member_state: MemberState | None = None,
        window: float = 5.0,
        budget: int = 30,
        budget_period: float = 60.0,
        post_timeout: float = 10.0,
    ) -> None:
        self._sink = sink
        self.member_state: MemberState = member_state or (lambda _service, _member: None)
        self.policy = EventPolicy(window=window, budget=budget, budget_period=budget_period)
        self.post_timeout = post_timeout
        self._references: dict[str, dict[str, str]] = {}
        self._seen: dict[str, ResolvedService] = {}
        self._wakeup = asyncio.Event()
        self.posted = 0
        self.failed = 0
        self._budget_logged = (0, 0)  # (deferred, dropped_stale) as last logged
        self._budget_logged_at: float | None = None

    def offer(self, event: HealthEvent) -> None:
        """The engine's ``event_hook`` (on the event loop; never blocks)."""
        self.policy.offer(event, asyncio.get_running_loop().time())
        self._wakeup.set()

    def sync(self, services: Mapping[str, ResolvedService]) -> None:
        for key in [key for key in self._seen if key not in services]:
            del self._seen[key]
            self._references.pop(key, None)
        for key, resolved in services.items():
            if self._seen.get(key) is not resolved:
                self._seen[key] = resolved
                self._references[key] = virtual_service_reference(key, resolved)

    def stats(self) -> dict[str, int]:
        return {
            "offered": self.policy.offered,
            "posted": self.posted,
            "failed": self.failed,
            "dropped_inactive": self.policy.dropped_inactive,
            "deferred": self.policy.deferred,
            "dropped_stale": self.policy.dropped_stale,
            "pending": len(self.policy),
        }

    async def post_due(self) -> None:
        """Post what is due now."""
        loop = asyncio.get_running_loop()
        for outgoing in self.policy.take_due(loop.time(), self.member_state):
            reference = self._references.get(outgoing.service) or virtual_service_reference(outgoing.service)
            try:
                async with asyncio.timeout(self.post_timeout):
                    await self._sink.post(reference, outgoing)
            except (ApiError, aiohttp.ClientError, OSError, TimeoutError) as error:
                self.failed += 1
                logger.warning("posting Event %s on VirtualService %s failed: %s", outgoing.reason,
                               outgoing.service, error)
                continue
            self.posted += 1
        now = loop.time()
        last = self._budget_logged_at
        quiet = last is not None and now - last < self.policy.budget_period
        counts = (self.policy.deferred, self.policy.dropped_stale)
        if counts != self._budget_logged and not quiet:  # at most once per budget period
            self._budget_logged, self._budget_logged_at = counts, now
            policy = self.policy
            logger.warning("health Events held back by the budget of %d per %gs: %d member change(s) wait, "
                           "%d dropped so far after waiting %gs", policy.budget, policy.budget_period,
                           len(policy), policy.dropped_stale, policy.max_wait)

    async def run(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            self._wakeup.clear()
            await self.post_due()
            due = self.policy.next_due(loop.time())
            if due is None:
                await self._wakeup.wait()
                continue
            with contextlib.suppress(TimeoutError):  # asyncio.timeout: 3.11's wait_for can swallow a cancel
                async with asyncio.timeout(max(0.0, due - loop.time())):
                    await self._wakeup.wait()
