"""One asyncio health-check engine for every member of every service on the director.

Shape::

    Subscription (service, member) ──> Tracker (job, rise, fall): RiseFall state ──> Job: one probe loop
        many per tracker                 many per job                               per (address, port,
                                                                                     probe, interval,
                                                                                     timeout, jitter)

- **Deduplication**: services that check the same member the same way share one :class:`_Job` (one probe
  per interval); services that differ only in rise/fall share the job and keep their own counters.
- **Delivery**: each transition goes, for subscriptions whose VIP group is active here, to
  :attr:`HealthEngine.changes` (a coalescing feed for the IPVS reconcile, no API round trip), to the
  optional ``on_change`` callback and to the ``event_hook`` (a Kubernetes Event writer, at most one
  event per member every ``event_min_interval`` seconds, later ones collapsed); for every
  subscription, active or not, to the :class:`~lvs_agent.health.report.HealthReporter` and to the log.
- **Active switch**: :meth:`HealthEngine.set_active` per VIP group. A standby keeps probing (warm state)
  but its transitions do not reach the feed; when its group becomes active the feed receives the current
  state of all the group's subscriptions at once.
- **Exec** checks are refused unless ``allow_exec``: the subscription is kept with ``refused`` set, its
  health stays unknown, a warning is logged and a ``HealthCheckRefused`` event is raised.
- **Scheduling**: no task per probe loop. Jobs wait in one list per slot of a ``resolution`` grid
  (10 ms) behind one loop timer, which starts every probe due in a slot in one wakeup; a probe's completion
  callback schedules the next one a jittered period after the previous start (never overlapping a
  slow probe). The first probe of each job is offset by a stable hash of the job into the interval.
- **Memory** (about 730 bytes a member at 100,000 members, each its own probe loop; see
  ``bench/health_bench.py --memory-trace``): slotted objects, a subscription index by service then member,
  one-element tuples rather than lists, one shared :class:`ProbePlan` per distinct check in the job keys,
  nothing stored that can be recomputed.
- **Clock**: scheduling and timeouts use the running loop's time (``looptime`` makes it virtual in
  tests); the injected :class:`~lvs_agent.health.clock.Clock` must agree with it and supplies wall time.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import heapq
import logging
import math
import zlib
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import Any, NamedTuple

from lvs_agent.health.clock import Clock, LoopClock
from lvs_agent.health.probe import Prober, ProbeResult
from lvs_agent.health.probes import EXEC_DISABLED_REASON
from lvs_agent.health.report import HealthReporter, MemberReport
from lvs_agent.health.spec import CheckSpec, ExecProbe, ProbeSpec
from lvs_agent.health.state import Health, RiseFall, Transition

logger = logging.getLogger("lvs_agent.health")

SubscriptionKey = tuple[str, str]  # (service, member)

_U64 = (1 << 64) - 1


class HealthChange(NamedTuple):
    """A member's health as one service sees it, after a transition (or on activation/subscribe)."""

    service: str
    member: str
    address: str
    port: int
    healthy: Health
    previous: Health
    reason: str
    at: float  # wall-clock seconds
    flaps: int
    active: bool


class HealthEvent(NamedTuple):
    """What the Kubernetes Event writer needs; ``service`` is the involved object's key."""

    service: str
    member: str
    reason: str  # MemberHealthy | MemberUnhealthy | HealthCheckRefused
    message: str
    warning: bool


@dataclass(frozen=True, slots=True)
class SubscriptionRequest:
    """Declarative form of :meth:`HealthEngine.subscribe`, for :meth:`HealthEngine.sync`."""

    service: str
    member: str
    address: str
    port: int  # the member's service port; ``check.port`` overrides it for probing
    check: CheckSpec
    group: str = ""


def state_name(healthy: Health) -> str:
    """Metric label of a verdict."""
    return "unknown" if healthy is None else ("healthy" if healthy else "unhealthy")


class HealthCounts(NamedTuple):
    """Copies of the engine's counters, for metrics (bounded: keys are probe kinds and states)."""

    checks: dict[str, int]  # probes completed, by probe kind (TCP, HTTP, HTTPS, UDP, DNS, Exec)
    failures: dict[str, int]  # of which failed
    transitions: dict[str, int]  # by the state reached: healthy | unhealthy
    members: dict[tuple[str, str], int]  # subscriptions by (probe kind, healthy|unhealthy|unknown|refused)
    subscriptions: int
    jobs: int
    in_flight: int
    events_suppressed: int


class ProbePlan(NamedTuple):
    """What a probe loop sends and when: a check without its rise/fall (jobs that differ only in those
    share the loop). One instance per distinct check, shared by every job that uses it."""

    probe: ProbeSpec
    interval: float
    timeout: float
    jitter: float


@functools.lru_cache(maxsize=4096)
def probe_plan(check: CheckSpec) -> ProbePlan:
    """The shared plan of ``check`` (memory: 100,000 jobs would otherwise carry 100,000 equal copies)."""
    timing = check.timing
    return ProbePlan(check.probe, timing.interval, timing.timeout, timing.jitter)


class JobKey(NamedTuple):
    address: str
    port: int
    plan: ProbePlan


class ChangeFeed:
    """Coalescing hand-off to the IPVS reconcile: at most one pending change per (service, member).

    ``await feed.get()`` returns every change since the last call (latest state per key, ``previous``
    from the oldest pending one), so a slow reconcile never falls behind a flapping member.
    """

    def __init__(self) -> None:
        self._pending: dict[SubscriptionKey, HealthChange] = {}
        self._ready = asyncio.Event()

    def __len__(self) -> int:
        return len(self._pending)

    def put(self, change: HealthChange) -> None:
        key = (change.service, change.member)
        older = self._pending.get(key)
        if older is not None:
            change = change._replace(previous=older.previous)
        self._pending[key] = change
        self._ready.set()

    def take(self) -> list[HealthChange]:
        """Everything pending now, without waiting."""
        batch = list(self._pending.values())
        self._pending.clear()
        self._ready.clear()
        return batch

    async def get(self) -> list[HealthChange]:
        while not self._pending:
            self._ready.clear()
            await self._ready.wait()
        return self.take()


class Subscription:
    """One (service, member) health check. Read ``healthy``; ``active`` says whether it drives the kernel."""

    __slots__ = ("_engine", "address", "check", "group", "member", "port", "refused", "service", "tracker")

    def __init__(self, engine: HealthEngine, request: SubscriptionRequest) -> None:
        self._engine = engine
        self.service = request.service
        self.member = request.member
        self.group = request.group
        self.check = request.check
        self.address = request.address
        self.port = request.check.target_port(request.port)  # the probed port
        self.refused: str | None = None
        self.tracker: _Tracker | None = None

    @property
    def key(self) -> SubscriptionKey:
        return (self.service, self.member)

    @property
    def healthy(self) -> Health:
        return None if self.tracker is None else self.tracker.healthy

    @property
    def active(self) -> bool:
        """True when this director's results for the subscription's VIP group drive the kernel."""
        return self._engine.is_active(self.group)

    def matches(self, request: SubscriptionRequest) -> bool:
        return (
            self.group == request.group
            and self.check == request.check
            and self.address == request.address
            and self.port == request.check.target_port(request.port)
        )

    def __repr__(self) -> str:
        return (
            f"Subscription({self.service!r}, {self.member!r}, healthy={self.healthy}, group={self.group!r})"
        )


class _Tracker(RiseFall):
    """The rise/fall state of one job for one (rise, fall) pair, and the subscriptions that share it.
    Tuples, not lists or dicts: almost always one element (48 bytes against 88 for a list), and memory
    counts at 100,000 members; changes rebuild the tuple."""

    __slots__ = ("job", "subscriptions")

    def __init__(self, job: _Job, rise: int, fall: int) -> None:
        super().__init__(rise, fall)
        self.job = job
        self.subscriptions: tuple[Subscription, ...] = ()


def _lcg(state: int) -> int:
    return (state * 6364136223846793005 + 1442695040888963407) & _U64


def _unit(state: int) -> float:
    return (state >> 11) / float(1 << 53)


def _seed(key: JobKey) -> int:
    """Stable per check: the same check always lands at the same offset, across restarts too."""
    plan = key.plan
    seed = zlib.crc32(f"{key.address}|{key.port}|{plan.probe.kind}|{plan.interval}|{plan.timeout}".encode())
    return (seed * 0x9E3779B97F4A7C15 + 1) & _U64


class _Job:
    """One probe loop. Slots only, and nothing that can be recomputed (the first offset comes from the
    key): at 100,000 members every field costs 0.8 MB, a float 2.4 MB."""

    __slots__ = ("_rng", "due", "engine", "in_flight", "key", "probe_kind", "removed", "started", "trackers")

    def __init__(self, key: JobKey, engine: HealthEngine) -> None:
        self.key = key
        self.engine = engine
        self.trackers: tuple[_Tracker, ...] = ()  # see _Tracker.subscriptions
        self.due: int | None = None  # the scheduler slot of the next probe; None while not scheduled
        self.started = 0.0
        self.in_flight: asyncio.Future[ProbeResult] | None = None
        self.removed = False
        self.probe_kind = key.plan.probe.kind
        self._rng = _lcg(_seed(key))  # the first value of the stream is the first offset

    @property
    def first_delay(self) -> float:
        """Offset of the first probe into the interval (spreads checks registered together)."""
        return self.key.plan.interval * _unit(_lcg(_seed(self.key)))

    def _uniform(self) -> float:
        """Next value in [0, 1) of a tiny per-job LCG (a ``random.Random`` per job would cost 2.5 KB)."""
        self._rng = _lcg(self._rng)
        return _unit(self._rng)

    def __call__(self, future: asyncio.Future[ProbeResult]) -> None:
        """Done callback of this job's probe (the job itself, rather than a partial per job)."""
        self.engine._probe_done(self, future)

    def tracker(self, rise: int, fall: int) -> _Tracker | None:
        for tracker in self.trackers:
            if tracker.rise == rise and tracker.fall == fall:
                return tracker
        return None

    def next_period(self) -> float:
        plan = self.key.plan
        if not plan.jitter:
            return plan.interval
        return plan.interval * (1.0 + plan.jitter * (self._uniform() - 0.5))


class _Scheduler:
    """One loop timer for every probe loop, on a grid of ``resolution`` seconds: the checks due within one
    slot start in one loop wakeup (at 1,000 checks a second a timer and a task wakeup per check cost more
    than the checks themselves). Jobs wait in one list per slot and carry the slot's number, shared with
    the slot; a heap holds the distinct slot numbers only (a heap entry per job cost 100 bytes each)."""

    def __init__(
        self, loop: asyncio.AbstractEventLoop, resolution: float, start: Callable[[_Job], None]
    ) -> None:
        if not resolution > 0:
            raise ValueError(f"scheduling resolution must be > 0, got {resolution}")
        self._loop = loop
        self._resolution = resolution
        self._start = start
        self._slots: dict[int, tuple[int, list[_Job]]] = {}
        self._slot_heap: list[int] = []
        self._timer: asyncio.TimerHandle | None = None
        self._timer_slot: int | None = None

    def schedule(self, job: _Job, at: float) -> None:
        number = math.ceil(at / self._resolution)
        if number * self._resolution < at:  # the product may round below ``at``: never fire early
            number += 1
        entry = self._slots.get(number)
        if entry is None:
            entry = self._slots[number] = (number, [])
            heapq.heappush(self._slot_heap, number)
            if self._timer_slot is None or number < self._timer_slot:
                self._arm(number)
        job.due = entry[0]
        entry[1].append(job)

    def _arm(self, number: int) -> None:
        if self._timer is not None:
            self._timer.cancel()
        self._timer_slot = number
        self._timer = self._loop.call_at(number * self._resolution, self._fire)

    def _fire(self) -> None:
        current = self._timer_slot
        self._timer = None
        self._timer_slot = None
        heap = self._slot_heap
        while heap and current is not None and heap[0] <= current:
            number, jobs = self._slots.pop(heapq.heappop(heap))
            for job in jobs:
                if job.due == number:  # not rescheduled, stopped or removed since
                    job.due = None
                    self._start(job)
        if heap:
            self._arm(heap[0])

    def close(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
        self._timer = None
        self._timer_slot = None
        self._slots.clear()
        self._slot_heap.clear()


class _EventLimiter:
    """At most one Event per (service, member) every ``min_interval`` seconds: a flapping member must not
    flood the API with Events either. Held back events collapse into one, sent when the interval is up,
    carrying the latest state and how many changes it stands for."""

    def __init__(self, min_interval: float, emit: Callable[[HealthEvent], None]) -> None:
        self._min_interval = min_interval
        self._emit = emit
        self._last_sent: dict[SubscriptionKey, float] = {}
        self._held: dict[SubscriptionKey, tuple[HealthEvent, int]] = {}
        self._timers: dict[SubscriptionKey, asyncio.TimerHandle] = {}
        self.suppressed = 0

    def offer(self, event: HealthEvent) -> None:
        key = (event.service, event.member)
        loop = asyncio.get_running_loop()
        now = loop.time()
        last = self._last_sent.get(key)
        if last is None or now - last >= self._min_interval:
            self._last_sent[key] = now
            self._emit(event)
            return
        self.suppressed += 1
        _, count = self._held.get(key, (event, 0))
        self._held[key] = (event, count + 1)
        if key not in self._timers:
            self._timers[key] = loop.call_at(last + self._min_interval, self._release, key)

    def _release(self, key: SubscriptionKey) -> None:
        self._timers.pop(key, None)
        held = self._held.pop(key, None)
        if held is None:
            return
        event, count = held
        self._last_sent[key] = asyncio.get_running_loop().time()
        note = (
            f" ({count} change(s) in {self._min_interval:g}s collapsed into this event)" if count > 1 else ""
        )
        self._emit(event._replace(message=event.message + note))

    def forget(self, key: SubscriptionKey) -> None:
        self._last_sent.pop(key, None)
        self._held.pop(key, None)
        timer = self._timers.pop(key, None)
        if timer is not None:
            timer.cancel()

    def close(self) -> None:
        """Cancel the timers and send what is held (the latest state of each member) now."""
        for key in list(self._timers):
            self._timers.pop(key).cancel()
            self._release(key)
        self._held.clear()


OnChange = Callable[[HealthChange], None]
EventHook = Callable[[HealthEvent], None]


class HealthEngine:
    """Schedules probes, counts rise/fall and delivers transitions. See the module docstring.

    Use as ``async with HealthEngine(NetworkProber()) as engine:`` (or ``await start()``/``stop()``);
    subscriptions may be made before or after start. Groups are inactive until :meth:`set_active`
    unless ``default_active`` is set (a single-director setup).
    """

    def __init__(
        self,
        prober: Prober,
        *,
        clock: Clock | None = None,
        allow_exec: bool = False,
        default_active: bool = False,
        on_change: OnChange | None = None,
        event_hook: EventHook | None = None,
        reporter: HealthReporter | None = None,
        resolution: float = 0.01,
        event_min_interval: float = 30.0,
    ) -> None:
        self._prober = prober
        self._resolution = resolution
        self._scheduler: _Scheduler | None = None
        self._clock: Clock = clock or LoopClock()
        self.allow_exec = allow_exec
        self._default_active = default_active
        self._on_change = on_change
        self._event_hook = event_hook
        self._events = _EventLimiter(event_min_interval, self._emit_event)
        self._reporter = reporter
        self._reporter_task: asyncio.Task[None] | None = None
        # Subscriptions by service, then member; VIP groups by the services that have subscriptions in
        # them (with how many). No (service, member) tuple keys and no per-member set entries: this index
        # costs about 40 bytes a member where a flat dict plus two sets cost 250.
        self._services: dict[str, dict[str, Subscription]] = {}
        self._group_services: dict[str, dict[str, int]] = {}
        self._subscription_count = 0
        self._jobs: dict[JobKey, _Job] = {}
        self._group_active: dict[str, bool] = {}
        self._running = False
        self.changes = ChangeFeed()
        self.probes_completed = 0
        self.probes_failed = 0
        self.transitions = 0
        # [completed, failed] per probe kind; subscriptions per (kind, state), kept as they change so
        # that a scrape costs the number of kinds, not the number of members
        self._kind_probes: dict[str, list[int]] = {}
        self._transitions_to = {"healthy": 0, "unhealthy": 0}
        self._member_states: dict[tuple[str, str], int] = {}

    def stats(self) -> dict[str, int]:
        """Counters and gauges for metrics (e.g. Prometheus): cumulative probes, failures, transitions and
        suppressed events; current subscriptions, probe jobs and probes in flight."""
        return {
            "probes_completed": self.probes_completed,
            "probes_failed": self.probes_failed,
            "transitions": self.transitions,
            "events_suppressed": self._events.suppressed,
            "subscriptions": self._subscription_count,
            "jobs": len(self._jobs),
            "in_flight": self.in_flight,
            "unhealthy": sum(n for (_, state), n in self._member_states.items() if state == "unhealthy"),
        }

    def counts(self) -> HealthCounts:
        """Counters by probe kind and member state (see :class:`HealthCounts`)."""
        return HealthCounts(
            checks={kind: pair[0] for kind, pair in self._kind_probes.items()},
            failures={kind: pair[1] for kind, pair in self._kind_probes.items()},
            transitions=dict(self._transitions_to),
            members={key: count for key, count in self._member_states.items() if count},
            subscriptions=self._subscription_count,
            jobs=len(self._jobs),
            in_flight=self.in_flight,
            events_suppressed=self._events.suppressed,
        )

    def _count_members(self, kind: str, state: str, delta: int) -> None:
        key = (kind, state)
        self._member_states[key] = self._member_states.get(key, 0) + delta

    @property
    def events_suppressed(self) -> int:
        """Events held back by the per-member rate limit (collapsed into later ones)."""
        return self._events.suppressed

    # --- lifecycle ------------------------------------------------------------------------------------

    async def start(self) -> None:
        if self._running:
            return
        self._running = True
        self._scheduler = _Scheduler(asyncio.get_running_loop(), self._resolution, self._start_probe)
        for job in self._jobs.values():
            self._schedule_first(job)
        if self._reporter is not None:
            self._reporter_task = asyncio.create_task(self._reporter.run(), name="health-reporter")

    async def stop(self) -> None:
        self._running = False
        self._events.close()
        if self._scheduler is not None:
            self._scheduler.close()
            self._scheduler = None
        waits: list[asyncio.Future[Any]] = []
        for job in self._jobs.values():
            job.due = None
            if job.in_flight is not None:
                job.in_flight.cancel()
                waits.append(job.in_flight)
                job.in_flight = None
        if self._reporter_task is not None:
            self._reporter_task.cancel()
            waits.append(self._reporter_task)
        await asyncio.gather(*waits, return_exceptions=True)
        self._reporter_task = None
        if self._reporter is not None:  # last reports out, but never hang a shutdown on the API
            with contextlib.suppress(Exception):
                async with asyncio.timeout(5.0):
                    await self._reporter.flush()

    async def __aenter__(self) -> HealthEngine:
        await self.start()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.stop()

    # --- subscriptions ---------------------------------------------------------------------------------

    def subscribe(
        self, service: str, member: str, address: str, port: int, check: CheckSpec, *, group: str = ""
    ) -> Subscription:
        """Check ``address`` (on ``check.port`` or else ``port``) for ``service``'s ``member``.

        Subscribing again with the same arguments is a no-op; with different ones it replaces the
        subscription (a changed check definition starts from unknown unless an identical check of
        another service is already running, whose state it joins).
        """
        return self._subscribe(SubscriptionRequest(service, member, address, port, check, group))

    def _lookup(self, service: str, member: str) -> Subscription | None:
        members = self._services.get(service)
        return None if members is None else members.get(member)

    def _subscribe(self, request: SubscriptionRequest) -> Subscription:
        existing = self._lookup(request.service, request.member)
        if existing is not None:
            if existing.matches(request):
                return existing
            self.unsubscribe(request.service, request.member)
        subscription = Subscription(self, request)
        self._services.setdefault(subscription.service, {})[subscription.member] = subscription
        self._subscription_count += 1
        in_group = self._group_services.setdefault(subscription.group, {})
        in_group[subscription.service] = in_group.get(subscription.service, 0) + 1
        if isinstance(request.check.probe, ExecProbe) and not self.allow_exec:
            self._count_members(request.check.probe.kind, "refused", 1)
            self._refuse(subscription, EXEC_DISABLED_REASON)
            return subscription
        timing = request.check.timing
        job_key = JobKey(subscription.address, subscription.port, probe_plan(request.check))
        job = self._jobs.get(job_key)
        if job is None:
            job = self._jobs[job_key] = _Job(job_key, self)
            if self._running:
                self._schedule_first(job)
        tracker = job.tracker(timing.rise, timing.fall)
        if tracker is None:
            tracker = _Tracker(job, timing.rise, timing.fall)
            job.trackers += (tracker,)
        tracker.subscriptions += (subscription,)
        subscription.tracker = tracker
        known = tracker.healthy
        self._count_members(tracker.job.probe_kind, state_name(known), 1)
        if known is not None:  # joined a check that already knows the answer
            reason = tracker.last_reason
            self._deliver(subscription, tracker, healthy=known, previous=None, reason=reason, events=False)
        return subscription

    def unsubscribe(self, service: str, member: str) -> bool:
        members = self._services.get(service)
        subscription = None if members is None else members.pop(member, None)
        if subscription is None:
            return False
        if not members:
            del self._services[service]
        self._subscription_count -= 1
        in_group = self._group_services.get(subscription.group)
        if in_group is not None:
            left = in_group.get(service, 0) - 1
            if left > 0:
                in_group[service] = left
            else:
                in_group.pop(service, None)
                if not in_group:
                    del self._group_services[subscription.group]
        tracker = subscription.tracker
        if tracker is None:
            self._count_members(subscription.check.probe.kind, "refused", -1)
        else:
            self._count_members(tracker.job.probe_kind, state_name(tracker.healthy), -1)
            subscription.tracker = None
            tracker.subscriptions = tuple(sub for sub in tracker.subscriptions if sub is not subscription)
            job = tracker.job
            if not tracker.subscriptions:
                job.trackers = tuple(other for other in job.trackers if other is not tracker)
            if not job.trackers:
                del self._jobs[job.key]
                job.removed = True
                job.due = None
                if job.in_flight is not None:
                    job.in_flight.cancel()
                    job.in_flight = None
        self._events.forget(subscription.key)
        if self._reporter is not None:
            self._reporter.record(self._report(subscription, None, "unsubscribed", removed=True))
        return True

    def sync(self, requests: Iterable[SubscriptionRequest], services: Iterable[str] | None = None) -> None:
        """Make the subscriptions equal ``requests`` (all of them, or only those of ``services``),
        keeping the state of those that did not change."""
        wanted: dict[SubscriptionKey, SubscriptionRequest] = {
            (request.service, request.member): request for request in requests
        }
        if services is None:
            stale = [
                (service, member)
                for service, members in self._services.items()
                for member in members
                if (service, member) not in wanted
            ]
        else:  # only the named services: cost follows their size, not the whole engine's
            stale = [
                (service, member)
                for service in set(services)
                for member in self._services.get(service, ())
                if (service, member) not in wanted
            ]
        for key in stale:
            self.unsubscribe(*key)
        for request in wanted.values():
            self._subscribe(request)

    def subscription(self, service: str, member: str) -> Subscription | None:
        return self._lookup(service, member)

    def _all(self) -> Iterator[Subscription]:
        for members in self._services.values():
            yield from members.values()

    def subscriptions(self) -> Iterator[Subscription]:
        return iter(list(self._all()))

    def health(self, service: str, member: str) -> Health:
        """This director's own verdict, whether or not its group is active here."""
        subscription = self._lookup(service, member)
        return None if subscription is None else subscription.healthy

    def applied_health(self, service: str, member: str) -> Health:
        """The verdict that may drive the kernel: :meth:`health` where the subscription's group is active
        here, else ``None`` (unknown: the standby's warm results are not applied, and reach the kernel
        through :attr:`changes` the moment :meth:`set_active` makes the group active)."""
        subscription = self._lookup(service, member)
        if subscription is None or not subscription.active:
            return None
        return subscription.healthy

    def service_health(self, service: str) -> dict[str, Health]:
        return {member: sub.healthy for member, sub in self._services.get(service, {}).items()}

    def snapshot(self) -> list[MemberReport]:
        """Current state of every subscription, in report form (for a full node report)."""
        return [
            self._report(sub, sub.healthy, sub.refused or self._last_reason(sub))
            for sub in self._all()
        ]

    @property
    def job_count(self) -> int:
        """Distinct probe loops (after deduplication)."""
        return len(self._jobs)

    @property
    def in_flight(self) -> int:
        """Probes started and not finished."""
        return sum(1 for job in self._jobs.values() if job.in_flight is not None)

    # --- active switch ---------------------------------------------------------------------------------

    def is_active(self, group: str) -> bool:
        return self._group_active.get(group, self._default_active)

    def set_active(self, group: str, active: bool) -> None:
        """Let (or stop) this director's results for ``group`` drive the kernel. On activation, the
        current state of every subscription of the group is put on the feed."""
        was_active = self.is_active(group)
        self._group_active[group] = active
        if active == was_active:
            return  # idempotent: the failover runner may repeat itself
        if active:
            subscriptions = [
                sub
                for service in self._group_services.get(group, ())
                for sub in self._services.get(service, {}).values()
                if sub.group == group
            ]
            for subscription in subscriptions:
                tracker = subscription.tracker
                known = None if tracker is None else tracker.healthy
                if tracker is not None and known is not None:
                    reason = tracker.last_reason
                    self._emit_change(subscription, tracker, healthy=known, previous=None, reason=reason)
        logger.info(
            "health group %r is now %s on this director",
            group,
            "active" if active else "standby",
            extra={"event": "health_group_active", "group": group, "active": active},
        )

    # --- probing ---------------------------------------------------------------------------------------

    def _schedule_first(self, job: _Job) -> None:
        assert self._scheduler is not None
        self._scheduler.schedule(job, asyncio.get_running_loop().time() + job.first_delay)

    def _start_probe(self, job: _Job) -> None:
        """Start one probe; its completion (``_probe_done``) schedules the next. No task per loop: a TCP
        probe is a bare future, other probes a task for their coroutine."""
        address, port, plan = job.key
        spec, timeout = plan.probe, plan.timeout
        job.started = asyncio.get_running_loop().time()
        try:
            awaitable = self._prober.probe(address, port, spec, timeout)
            future: asyncio.Future[ProbeResult] = (
                awaitable if isinstance(awaitable, asyncio.Future) else asyncio.ensure_future(awaitable)
            )
        except Exception as error:  # a probe bug must not stop the loop or read as healthy
            logger.debug("probe of %s:%d raised", address, port, exc_info=True)
            future = asyncio.get_running_loop().create_future()
            future.set_exception(error)
        job.in_flight = future
        future.add_done_callback(job)

    def _probe_done(self, job: _Job, future: asyncio.Future[ProbeResult]) -> None:
        if job.in_flight is not future:
            return  # stopped or removed meanwhile
        job.in_flight = None
        if future.cancelled():
            result = ProbeResult(False, "probe cancelled")
        elif (error := future.exception()) is not None:
            logger.debug("probe of %s:%d raised", job.key.address, job.key.port, exc_info=error)
            result = ProbeResult(False, f"probe error: {error!r}")
        else:
            result = future.result()
        self.probes_completed += 1
        by_kind = self._kind_probes.get(job.probe_kind)
        if by_kind is None:
            by_kind = self._kind_probes[job.probe_kind] = [0, 0]
        by_kind[0] += 1
        if not result.ok:
            self.probes_failed += 1
            by_kind[1] += 1
        now = self._clock.now()
        for tracker in job.trackers:  # a tuple: changes meanwhile replace it, never mutate it
            transition = tracker.observe(result.ok, result.reason, now)
            if transition is not None:
                self._on_transition(tracker, transition)
        if job.removed or self._scheduler is None:
            return
        # Period measured start to start; a probe slower than its period is followed at once, never
        # overlapped.
        loop_now = asyncio.get_running_loop().time()
        self._scheduler.schedule(job, max(job.started + job.next_period(), loop_now))

    # --- delivery --------------------------------------------------------------------------------------

    def _on_transition(self, tracker: _Tracker, transition: Transition) -> None:
        self.transitions += 1
        job = tracker.job
        subscriptions = tracker.subscriptions
        reached = state_name(transition.healthy)
        self._transitions_to[reached] += 1
        self._count_members(job.probe_kind, state_name(transition.previous), -len(subscriptions))
        self._count_members(job.probe_kind, reached, len(subscriptions))
        services = sorted({sub.service for sub in subscriptions})
        applied = any(sub.active for sub in subscriptions)
        state = "healthy" if transition.healthy else "unhealthy"
        logger.log(
            logging.INFO if transition.healthy else logging.WARNING,
            "member %s:%d is %s (%s check: %s) for %s",
            job.key.address,
            job.key.port,
            state,
            job.probe_kind,
            transition.reason,
            ", ".join(services),
            extra={
                "event": "health_transition",
                "member_address": job.key.address,
                "member_port": job.key.port,
                "members": sorted({sub.member for sub in subscriptions}),
                "services": services,
                "check": job.probe_kind,
                "healthy": transition.healthy,
                "previous": transition.previous,
                "reason": transition.reason,
                "flaps": tracker.flaps,
                "applied": applied,
            },
        )
        for subscription in subscriptions:
            self._deliver(
                subscription,
                tracker,
                healthy=transition.healthy,
                previous=transition.previous,
                reason=transition.reason,
                events=True,
            )

    def _deliver(
        self,
        subscription: Subscription,
        tracker: _Tracker,
        *,
        healthy: bool,
        previous: Health,
        reason: str,
        events: bool,
    ) -> None:
        if self._reporter is not None:
            self._reporter.record(self._report(subscription, healthy, reason))
        if not subscription.active:
            return
        self._emit_change(subscription, tracker, healthy=healthy, previous=previous, reason=reason)
        if events and self._event_hook is not None:
            state = tracker
            count = state.rise if healthy else state.fall
            verdict = "passed" if healthy else "failed"
            message = (
                f"member {subscription.member} ({subscription.address}:{subscription.port}) is "
                f"{'healthy' if healthy else 'unhealthy'}: {count} {tracker.job.probe_kind} checks "
                f"{verdict} in a row; last: {reason}"
            )
            self._events.offer(
                HealthEvent(
                    subscription.service,
                    subscription.member,
                    "MemberHealthy" if healthy else "MemberUnhealthy",
                    message,
                    warning=not healthy,
                )
            )

    def _emit_change(
        self, subscription: Subscription, tracker: _Tracker, *, healthy: bool, previous: Health, reason: str
    ) -> None:
        state = tracker
        change = HealthChange(
            subscription.service,
            subscription.member,
            subscription.address,
            subscription.port,
            healthy,
            previous,
            reason,
            self._clock.wall(),
            state.flaps,
            True,
        )
        self.changes.put(change)
        if self._on_change is not None:
            try:
                self._on_change(change)
            except Exception:
                logger.exception("health on_change callback failed")

    def _emit_event(self, event: HealthEvent) -> None:
        if self._event_hook is None:
            return
        try:
            self._event_hook(event)
        except Exception:
            logger.exception("health event hook failed")

    def _refuse(self, subscription: Subscription, reason: str) -> None:
        subscription.refused = reason
        logger.warning(
            "health check of member %s for %s refused: %s",
            subscription.member,
            subscription.service,
            reason,
            extra={
                "event": "health_check_refused",
                "members": [subscription.member],
                "services": [subscription.service],
                "check": subscription.check.probe.kind,
                "reason": reason,
            },
        )
        self._emit_event(
            HealthEvent(subscription.service, subscription.member, "HealthCheckRefused", reason, warning=True)
        )
        if self._reporter is not None:
            self._reporter.record(self._report(subscription, None, reason))

    def _last_reason(self, subscription: Subscription) -> str:
        tracker = subscription.tracker
        return "" if tracker is None else tracker.last_reason

    def _report(
        self, subscription: Subscription, healthy: Health, reason: str, removed: bool = False
    ) -> MemberReport:
        tracker = subscription.tracker
        changed_at = None if tracker is None else tracker.changed_at
        since = None
        if changed_at is not None:  # the state's clock is monotonic; reports carry wall time
            since = self._clock.wall() - (self._clock.now() - changed_at)
        return MemberReport(
            subscription.service,
            subscription.member,
            subscription.address,
            subscription.port,
            subscription.check.probe.kind,
            healthy,
            reason,
            since,
            0 if tracker is None else tracker.flaps,
            subscription.active,
            removed,
        )
