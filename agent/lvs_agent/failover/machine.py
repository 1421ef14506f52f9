"""Who is the active director of a VIP group: a pure state machine, one per group, driven by a clock.

Inputs are peer heartbeats (from the UDP transport) and Lease results (from the lease store); outputs are
actions (try to acquire the Lease, renew it, take the group's VIPs, release them). No I/O, no clock of its
own: every method takes ``now`` (monotonic seconds), so unit tests run it with a fake clock.

The rule against split brain (docs/operations.md, "Failover"):

1. Becoming active needs a successful compare-and-swap write of the group's Lease naming this node.
   The Lease's ``leaseTransitions`` after that write is the node's *term* (the fencing token).
2. A standby tries that write only when no live peer claims to be active, and either it heard the Lease
   holder claim active in the holder's current term and then heard nothing for ``dead_after`` (``missed``
   intervals): the fast path, no waiting for the Lease to expire; or the Lease has expired (a holder it
   never heard in that term may be alive behind a cut link, so only expiry proves it gone).
   Standbys try in a deterministic order (rendezvous hash of group and node names, MetalLB style), the
   next one ``takeover_stagger`` later, so that they rarely race; if they do, only one write wins.
3. An active director steps down at once when it sees a higher term: a live peer claiming active with a
   higher term, or a Lease naming someone else.
4. An active director keeps its VIPs while the API server is away, as long as it still hears at least one
   peer (every peer it hears is standby and lower-term, and a standby cannot become active without the
   API). If it hears no peer *and* has not renewed the Lease for ``lease_duration``, it is isolated: it
   steps down, because a peer may legitimately have taken the Lease. A group without configured peers
   (a single director) never steps down for that reason.
5. With the API server away, no standby can become active. A dead active director is still detected in
   ``dead_after``, and the takeover happens as soon as the API answers.
6. A director that stops gracefully hands its groups over: it releases the Lease (holder cleared, term
   kept), takes the VIPs off its interface, then heartbeats "leaving" for them. A standby treats a
   leaving holder as dead at once (it cannot be active again in that term: it released the Lease and
   its VIPs), so the first in preference order acquires without waiting for ``dead_after``.
7. No preemption: an active director stays active until it dies or sees a higher term (no flapping back
   when a preferred node returns). A restarted director that the Lease still names takes its VIPs back
   with the same term, since nobody else held them in between.
"""

from __future__ import annotations

import dataclasses
import datetime
import enum
import hashlib
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field


class Role(enum.Enum):
    STANDBY = "standby"
    ACTIVE = "active"


@dataclass(frozen=True)
class FailoverTiming:
    """Timers (seconds). Defaults: heartbeat every 50 ms, a peer is dead after 3 missed (150 ms)."""

    interval: float = 0.05
    missed: int = 3
    lease_duration: float = 10.0
    renew_interval: float = 2.0
    takeover_stagger: float = 0.1  # extra wait per rank position before a standby tries the Lease
    retry_interval: float = 0.5  # between failed Lease attempts

    @property
    def dead_after(self) -> float:
        return self.interval * self.missed


@dataclass(frozen=True)
class LeaseView:
    """What the store last told us about the group's Lease. ``expired`` is judged by the store.

    ``acquired``: wall-clock time the holder took the Lease in this term (kept when the same holder
    re-takes it after a restart, so it is the start of the holder's activation). ``activations``: per
    node, how many times it became the holder (a durable count the stores keep in the Lease). Both are
    None / empty when the view was learnt from a heartbeat, which carries neither; they do not take part
    in equality (a view is identified by holder, term and expiry).
    """

    holder: str
    transitions: int
    expired: bool = False
    acquired: datetime.datetime | None = field(default=None, compare=False)
    activations: Mapping[str, int] | None = field(default=None, compare=False)


@dataclass
class PeerView:
    last_heard: float
    active: bool
    term: int
    leaving: bool = False  # said it handed the group over (active in ``term`` until then): dead now


class ActionKind(enum.Enum):
    ACQUIRE_LEASE = "acquire-lease"  # compare-and-swap the Lease to us, expecting ``expected``
    RENEW_LEASE = "renew-lease"
    READ_LEASE = "read-lease"


@dataclass(frozen=True)
class Action:
    kind: ActionKind
    group: str
    expected: LeaseView | None = None
    term: int = 0
    reason: str = ""


def preference_order(group: str, nodes: Iterable[str]) -> list[str]:
    """Nodes sorted best first by a rendezvous hash of (group, node): stable, and spreads groups."""
    return sorted(set(nodes), key=lambda node: hashlib.sha256(f"{group}\0{node}".encode()).digest())


@dataclass
class GroupMachine:
    """Failover state of one VIP group on one node."""

    group: str
    node: str
    peers: Sequence[str]
    timing: FailoverTiming
    started_at: float
    role: Role = Role.STANDBY
    term: int = 0
    lease: LeaseView | None = None
    last_renewed: float | None = None
    lease_pending: bool = False
    last_lease_attempt: float | None = None
    last_lease_failure: float | None = None
    holder_learned_at: float = 0.0
    activations: int | None = None  # times this node became the holder, as the store last said
    lease_from_store: bool = False  # ``lease`` came from the store, not only from a peer's heartbeat
    peer_views: dict[str, PeerView] = field(default_factory=dict)
    events: list[str] = field(default_factory=list)

    # --- inputs -------------------------------------------------------------------------------------

    def heartbeat(self, peer: str, active: bool, term: int, now: float, leaving: bool = False) -> None:
        if peer == self.node or peer not in self.peers:
            return
        if leaving:
            previous = self.peer_views.get(peer)
            if previous is None or not previous.leaving:  # it says so a few times: one line is enough
                self.events.append(f"{peer} is leaving (term {term}): taking over without waiting")
            self.peer_views[peer] = PeerView(now, False, term, leaving=True)
            return
        self.peer_views[peer] = PeerView(now, active, term)
        if active and (self.lease is None or term >= self.lease.transitions) and self.role is Role.STANDBY:
            # an active peer holds the Lease at its term: keeps our view fresh without reading the API
            self._learn_lease(LeaseView(peer, term), now, from_store=False)

    def _learn_lease(self, view: LeaseView, now: float, from_store: bool = True) -> None:
        previous = self.lease
        if previous is None or previous.holder != view.holder:
            self.holder_learned_at = now
        if (not from_store and previous is not None and previous.holder == view.holder
                and previous.transitions == view.transitions):
            # a heartbeat confirms the term we already know: keep what the store told us about it
            view = dataclasses.replace(view, acquired=previous.acquired, activations=previous.activations)
        else:
            self.lease_from_store = from_store
        self.lease = view

    def _count_activations(self, view: LeaseView) -> None:
        """Called with every view a store call returns. Only our own acquire changes our count, and it
        answers with the store's view, so a view without counts (a heartbeat) leaves the last known one."""
        if view.activations is not None:
            self.activations = view.activations.get(self.node, 0)

    def lease_read(self, view: LeaseView, now: float) -> None:
        self.lease_pending = False
        self._count_activations(view)
        self._learn_lease(view, now)

    def lease_acquired(self, view: LeaseView, now: float) -> None:
        """Our compare-and-swap write succeeded: we are the holder with term ``view.transitions``."""
        self.lease_pending = False
        self._count_activations(view)
        self.lease, self.lease_from_store = view, True
        self.last_renewed = now
        if self.role is Role.STANDBY:
            self.role = Role.ACTIVE
            self.term = view.transitions
            self.events.append(f"became active with term {self.term}")

    def lease_renewed(self, view: LeaseView, now: float) -> None:
        self.lease_pending = False
        self._count_activations(view)
        self.lease, self.lease_from_store = view, True
        self.last_renewed = now

    def lease_lost(self, view: LeaseView, now: float) -> None:
        """A write failed because the Lease changed under us (409) or names someone else.

        No retry wait: the answer is fresh information, and the next decision uses it.
        """
        self.lease_pending = False
        self._count_activations(view)
        self._learn_lease(view, now)

    def lease_unavailable(self, now: float) -> None:
        """The API server did not answer (timeout, connection refused, 5xx)."""
        self.lease_pending = False
        self.last_lease_failure = now

    def handed_over(self, view: LeaseView, now: float) -> None:
        """Graceful stop: the Lease was released (``view``), or already names someone else. Standby; the
        runner has taken the VIPs away and makes no more decisions for this machine."""
        self.lease_pending = False
        self._count_activations(view)
        self._learn_lease(view, now)
        if self.role is Role.ACTIVE:
            self.events.append(f"handed over (term {self.term})")
        self.role = Role.STANDBY

    def wants_vips(self) -> bool | None:
        """True: the group's VIPs must be here; False: they must not; None: leave them as they are.

        None while the role is not known yet (Lease not read) and while a restarted holder re-takes the
        Lease, so that an agent restart never removes a VIP that is serving traffic.
        """
        if self.role is Role.ACTIVE:
            return True
        if self.lease is None or self.lease.holder == self.node:
            return None
        return False

    def holds_group(self) -> bool:
        """Active, or a restarted holder that the Lease still names: it keeps the group's VIPs (see
        ``wants_vips``) and re-takes the Lease in the same term, so nobody else can be active meanwhile."""
        if self.role is Role.ACTIVE:
            return True
        return self.lease is not None and self.lease.holder == self.node and self.lease_from_store

    def role_since(self) -> datetime.datetime | None:
        """Wall-clock start of the current role as the Lease tells it, None if it does not.

        Holding the group: when this node acquired the Lease in its term (kept across a restart that
        keeps the term). Standby: when the current holder acquired it, the moment the group last changed
        hands, since when this node has not been the active one.
        """
        lease = self.lease
        if lease is None:
            return None
        if self.holds_group():
            if lease.holder == self.node and (self.role is Role.STANDBY or lease.transitions == self.term):
                return lease.acquired
            return None
        return lease.acquired if lease.holder not in ("", self.node) else None

    # --- decisions ----------------------------------------------------------------------------------

    def live_peers(self, now: float) -> dict[str, PeerView]:
        horizon = now - self.timing.dead_after
        return {peer: view for peer, view in self.peer_views.items()
                if view.last_heard >= horizon and not view.leaving}

    def next_deadline(self) -> float | None:
        """When an active peer will count as dead if it stays silent: the runner wakes up then, so a
        death is acted on at its deadline rather than at the next heartbeat tick."""
        dead_after = self.timing.dead_after
        deadlines = [view.last_heard + dead_after for view in self.peer_views.values() if view.active]
        return min(deadlines) if deadlines else None

    def _step_down(self, reason: str) -> list[Action]:
        self.role = Role.STANDBY
        self.events.append(f"stepped down: {reason}")
        return []

    def _retry_wait_over(self, now: float) -> bool:
        return self.last_lease_failure is None or now - self.last_lease_failure >= self.timing.retry_interval

    def decide(self, now: float) -> list[Action]:
        """The actions due at ``now``. Call after feeding inputs, once per heartbeat interval."""
        if self.role is Role.ACTIVE:
            return self._decide_active(now)
        return self._decide_standby(now)

    def _decide_active(self, now: float) -> list[Action]:
        live = self.live_peers(now)
        for peer, view in sorted(live.items()):
            if view.active and view.term > self.term:
                return self._step_down(f"{peer} is active with higher term {view.term} > {self.term}")
        lease = self.lease
        if lease is not None and lease.holder not in ("", self.node) and lease.transitions > self.term:
            return self._step_down(f"Lease now names {lease.holder} (term {lease.transitions})")
        renewed = self.last_renewed if self.last_renewed is not None else self.started_at
        if self.peers and not live and now - renewed >= self.timing.lease_duration:
            return self._step_down("isolated: no peer heard and Lease not renewed within its duration")
        if self.lease_pending:
            return []
        if now >= renewed + self.timing.renew_interval and self._retry_wait_over(now):
            self.lease_pending = True
            self.last_lease_attempt = now
            return [Action(ActionKind.RENEW_LEASE, self.group, term=self.term)]
        return []

    def _decide_standby(self, now: float) -> list[Action]:
        if self.lease_pending:
            return []
        if self.lease is None or not self.lease_from_store:
            # the holder's term is known only from its heartbeat: read the store once, for the acquire
            # time and activation counts it keeps, which heartbeats do not carry
            if self._retry_wait_over(now):
                self.lease_pending = True
                self.last_lease_attempt = now
                return [Action(ActionKind.READ_LEASE, self.group)]
            return []
        live = self.live_peers(now)
        if any(view.active for view in live.values()):
            return []
        if self.lease.holder == self.node:
            # restarted holder: nobody else held the Lease in between, take the VIPs back at once
            return self._try_acquire(now)
        # give every peer a chance to be heard before deciding that nobody is active
        if now - self.started_at < self.timing.dead_after:
            return []
        lease = self.lease
        if lease.holder and not lease.expired and not self._seen_die(lease, now):
            # The holder was never heard active in its current term (we started after it went quiet, we
            # lost the Lease to it across a cut link, or it is not a configured peer). A silent holder
            # might be alive behind a partition: only the Lease running out frees the group. Re-read it.
            reread_due = now - (self.last_lease_attempt or 0.0) >= self.timing.renew_interval
            if reread_due and self._retry_wait_over(now):
                self.lease_pending = True
                self.last_lease_attempt = now
                return [Action(ActionKind.READ_LEASE, self.group)]
            return []
        silent_since = self._silent_since(now)
        candidates = [self.node, *(peer for peer, view in live.items() if not view.active)]
        position = preference_order(self.group, candidates).index(self.node)
        if now - silent_since < position * self.timing.takeover_stagger:
            return []
        return self._try_acquire(now)

    def _seen_die(self, lease: LeaseView, now: float) -> bool:
        """Heard the Lease holder claim active in its current term, then silent for ``dead_after``; or
        heard it leave in that term."""
        view = self.peer_views.get(lease.holder)
        if view is None or view.term != lease.transitions:
            return False
        if view.leaving:
            return True
        return view.active and now - view.last_heard >= self.timing.dead_after

    def _silent_since(self, now: float) -> float:
        """When the group was last seen with an active director (or our start if never)."""
        dead_after = self.timing.dead_after
        # an active peer's silence starts dead_after after its last heartbeat; a leaving one's at once
        silent = max((view.last_heard + (0.0 if view.leaving else dead_after)
                      for view in self.peer_views.values() if view.active or view.leaving),
                     default=self.started_at + dead_after)
        return max(silent, self.started_at + dead_after)

    def _try_acquire(self, now: float) -> list[Action]:
        if not self._retry_wait_over(now):
            return []
        self.lease_pending = True
        self.last_lease_attempt = now
        return [Action(ActionKind.ACQUIRE_LEASE, self.group, expected=self.lease)]
