"""Drives one ``GroupMachine`` per VIP group: heartbeats over UDP, Lease calls, VIPs on the interface.

Every ``interval`` the runner sends one heartbeat (all groups' claims) to every peer, asks each machine
what to do, starts Lease calls in the background (at most one in flight per group, each with a
timeout, so a slow API server never delays heartbeats), and makes the VIPs on the agent's interface
match each machine's intent. A VIP newly taken is announced at once, then again after 100 ms and 1 s
(a neighbour may drop the first frame).

A graceful stop (SIGTERM) hands over instead of going silent (``hand_over``): for each group this node
holds and some peer is heard standing by for, the Lease is released first (proof that the API server
answers, so a peer can take it), then the VIPs leave the interface, then a "leaving" heartbeat tells the
peers to take over at once. A group nobody can take (no peer heard, the API server away) keeps its VIPs
and its Lease, as a SIGKILL would leave them: the restarted agent re-takes it in the same term.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime
import logging
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

from lvs_agent.addresses import VipAddresses, VipConflictError
from lvs_agent.failover.heartbeat import (
    DEFAULT_PORT,
    GroupClaim,
    Heartbeat,
    HeartbeatReceiver,
    UdpHeartbeatTransport,
    encode,
    new_boot_id,
)
from lvs_agent.failover.lease import LeaseConflictError, LeaseStore, LeaseUnavailableError
from lvs_agent.failover.machine import Action, ActionKind, FailoverTiming, GroupMachine, LeaseView, Role

logger = logging.getLogger("lvs_agent.failover")

ANNOUNCE_DELAYS = (0.0, 0.1, 1.0)
DEADLINE_SLACK = 0.001  # wake just after a deadline, so that it has passed
OWNED_REFRESH = 1.0  # an address dump per heartbeat would cost more than the rest of a tick
HANDOVER_TIMEOUT = 5.0  # for the Lease releases of a graceful stop; well inside the pod's grace period
LEAVING_REPEATS = 3  # "leaving" heartbeats, a few ms apart: one lost datagram must not cost the fast path
LEAVING_SPACING = 0.01


@dataclass(frozen=True)
class Peer:
    node: str
    address: str
    port: int = DEFAULT_PORT


@dataclass
class GroupStatus:
    role: Role
    term: int
    holder: str | None
    conflicts: dict[str, list[str]] = field(default_factory=dict)
    last_transition: float | None = None  # monotonic
    # wall-clock start of the role: from the Lease when it says (stable across heartbeats and restarts),
    # else when this agent saw the role change
    since: datetime.datetime | None = None
    activations: int | None = None  # times this node became active for the group (from the Lease)


class FailoverRunner:
    def __init__(
        self,
        *,
        node: str,
        peers: list[Peer],
        secret: bytes,
        lease_store: LeaseStore,
        vips: VipAddresses,
        timing: FailoverTiming | None = None,
        bind: tuple[str, int] = ("0.0.0.0", DEFAULT_PORT),
        lease_timeout: float = 2.0,
        monotonic: Callable[[], float] = time.monotonic,
        wall_clock_ns: Callable[[], int] = time.time_ns,
        on_role_change: Callable[[str, Role, int], None] | None = None,
    ) -> None:
        self.node = node
        self.peers = [peer for peer in peers if peer.node != node]
        self._secret = secret
        self._store = lease_store
        self._vips = vips
        self.timing = timing or FailoverTiming()
        self._bind = bind
        self._lease_timeout = lease_timeout
        self._monotonic = monotonic
        self._wall_clock_ns = wall_clock_ns
        self._on_role_change = on_role_change
        self._boot_id = new_boot_id()
        self._sequence = 0
        self._groups: dict[str, frozenset[str]] | None = None  # None until the desired state is known
        self._gateways: dict[str, str | None] = {}  # NAT gateway address -> real-server-side interface
        self.machines: dict[str, GroupMachine] = {}
        self._tasks: set[asyncio.Task[None]] = set()
        self._transport: UdpHeartbeatTransport | None = None
        self.conflicts: dict[str, list[str]] = {}
        self.transitions: dict[str, float] = {}
        self._last_role: dict[str, Role] = {}
        self._role_changed_at: dict[str, datetime.datetime] = {}  # wall clock, for a Lease without times
        self._owned: frozenset[str] | None = None  # VIPs on our interface, re-read every OWNED_REFRESH s
        self._owned_read_at = 0.0
        self._announcements: dict[str, list[asyncio.TimerHandle]] = {}  # repeats still due, per VIP
        self._wake = asyncio.Event()  # a peer is leaving: decide now, not at the next tick
        self._leaving = False  # handing over: no more Lease calls nor VIP changes but the handover's
        self._silent = False  # handed over: no more heartbeats
        self._departing: dict[str, tuple[int, int]] = {}  # dropped groups: (held term, leaving beats left)
        self.handed_over: list[str] = []  # groups released by hand_over

    # --- desired groups -----------------------------------------------------------------------------

    def set_groups(self, groups: Mapping[str, frozenset[str]],
                   gateways: Mapping[str, str | None] | None = None) -> None:
        """The VIP groups this node serves and their addresses (from the reconcile loop). ``gateways``
        names the addresses that are NAT gateways, with the interface to announce them on (None: the
        interface of the route towards them); they move with their group exactly like its VIPs."""
        if self._leaving:  # handing over: a last pass of the reconcile thread must not change the groups
            return
        self._gateways = dict(gateways or {})
        now = self._monotonic()
        peer_names = [peer.node for peer in self.peers]
        for group in groups:
            self._departing.pop(group, None)
            if group not in self.machines:
                self.machines[group] = GroupMachine(group, self.node, peer_names, self.timing, now)
        staying = frozenset(vip for vips in groups.values() for vip in vips)
        for group in list(self.machines):
            if group not in groups:
                self._drop(group, self.machines.pop(group), staying, now)
                self._last_role.pop(group, None)
                self._role_changed_at.pop(group, None)
        self._groups = {group: frozenset(vips) for group, vips in groups.items()}

    def _drop(self, group: str, machine: GroupMachine, staying: frozenset[str], now: float) -> None:
        """A group this node no longer serves (its services stopped selecting this node, or went away).
        Held, with a peer standing by: handed over like at a graceful stop, but without waiting for the
        Lease (this node must stop serving it either way): VIPs off now, "leaving" in the next heartbeats,
        the Lease released in the background. A VIP moving to another group of ours stays for that one."""
        if not machine.holds_group() or not machine.live_peers(now):
            return  # the VIPs leave at the next tick, as before; nobody to tell
        owned = self._vips.owned()
        for vip in sorted(((self._groups or {}).get(group, frozenset()) & owned) - staying):
            self._release_vip(vip)
        self._departing[group] = (_held_term(machine), LEAVING_REPEATS)
        logger.info("group %s: no longer served here, handing it over", group)
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            return
        task = loop.create_task(self._release_quietly(group))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _release_quietly(self, group: str) -> None:
        try:
            await self._release(group)
        except (LeaseUnavailableError, TimeoutError, OSError) as error:
            # the peers take the Lease from us anyway: they heard us leave in its term
            logger.warning("group %s: Lease not released (%s)", group, error)

    def status(self) -> dict[str, GroupStatus]:
        report: dict[str, GroupStatus] = {}
        for group, machine in self.machines.items():
            vips = (self._groups or {}).get(group, frozenset())
            # a restarted holder reports the role (and term) it keeps while it re-takes its Lease: Standby
            # for that moment would let a dead peer's stale Active report look current to the controller
            holding = machine.holds_group()
            restarted_holder = holding and machine.role is Role.STANDBY and machine.lease is not None
            report[group] = GroupStatus(
                Role.ACTIVE if holding else Role.STANDBY,
                machine.lease.transitions if restarted_holder and machine.lease else machine.term,
                machine.lease.holder if machine.lease else None,
                {vip: holders for vip, holders in self.conflicts.items() if vip in vips},
                self.transitions.get(group),
                machine.role_since() or self._role_changed_at.get(group),
                machine.activations,
            )
        return report

    def leases_unread(self) -> str | None:
        """Why this node cannot stand by yet (for /readyz), None once every group's Lease has been read: a
        peer handing a group over (rolling update) needs a standby that knows the group's term."""
        if self._groups is None:
            return "VIP groups not known yet"
        waiting = sorted(group for group, machine in self.machines.items() if machine.lease is None)
        if waiting:
            more = f" and {len(waiting) - 3} more" if len(waiting) > 3 else ""
            return f"VIP group Lease not read yet: {', '.join(waiting[:3])}{more}"
        return None

    def active_vips(self) -> frozenset[str]:
        """VIPs of the groups this node is active for."""
        groups = self._groups or {}
        return frozenset(
            vip for group, machine in self.machines.items() if machine.role is Role.ACTIVE
            for vip in groups.get(group, frozenset())
        )

    # --- heartbeats ---------------------------------------------------------------------------------

    def _on_heartbeat(self, beat: Heartbeat) -> None:
        now = self._monotonic()
        for claim in beat.claims:
            machine = self.machines.get(claim.group)
            if machine is not None:
                machine.heartbeat(beat.node, claim.active, claim.term, now, leaving=claim.leaving)
                if claim.leaving:
                    self._wake.set()

    def _send_heartbeat(self, leaving: Mapping[str, int] | None = None) -> None:
        """One heartbeat to every peer; ``leaving``: groups handed over, with the term they were held in."""
        if self._transport is None or not self.peers or self._silent:
            return
        leaving = leaving or {}
        claims = [GroupClaim(group, machine.role is Role.ACTIVE, machine.term) if group not in leaving
                  else GroupClaim(group, False, leaving[group], leaving=True)
                  for group, machine in sorted(self.machines.items())]
        for group, (term, left) in sorted(self._departing.items()):
            claims.append(GroupClaim(group, False, term, leaving=True))
            if left > 1:
                self._departing[group] = (term, left - 1)
            else:
                del self._departing[group]
        datagrams = encode(self._secret, self.node, self._boot_id, first_sequence=self._sequence,
                           sent_ns=self._wall_clock_ns(), claims=claims)
        self._sequence += len(datagrams)
        self._transport.send(datagrams, [(peer.address, peer.port) for peer in self.peers])

    # --- lease calls --------------------------------------------------------------------------------

    async def _lease_call(self, machine: GroupMachine, action: Action) -> None:
        try:
            if action.kind is ActionKind.READ_LEASE:
                async with asyncio.timeout(self._lease_timeout):  # 3.11's wait_for can swallow a cancel
                    view = await self._store.read(machine.group)
                machine.lease_read(view, self._monotonic())
            elif action.kind is ActionKind.ACQUIRE_LEASE:
                async with asyncio.timeout(self._lease_timeout):
                    view = await self._store.acquire(machine.group, self.node, action.expected)
                machine.lease_acquired(view, self._monotonic())
                self._sync_vips()  # take the VIPs now, not at the next tick
            elif action.kind is ActionKind.RENEW_LEASE:
                async with asyncio.timeout(self._lease_timeout):
                    view = await self._store.renew(machine.group, self.node)
                machine.lease_renewed(view, self._monotonic())
        except LeaseConflictError as conflict:
            machine.lease_lost(conflict.current, self._monotonic())
        except (LeaseUnavailableError, TimeoutError, OSError) as error:
            logger.warning("group %s: Lease %s failed: %s", machine.group, action.kind.value, error)
            machine.lease_unavailable(self._monotonic())
        for event in machine.events:
            logger.info("group %s: %s", machine.group, event)
        machine.events.clear()

    def _start(self, machine: GroupMachine, action: Action) -> None:
        task = asyncio.get_running_loop().create_task(self._lease_call(machine, action))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    # --- VIPs ---------------------------------------------------------------------------------------

    def _announce_later(self, vip: str) -> None:
        self._announce(vip)  # the first one now: every millisecond counts after a takeover
        loop = asyncio.get_running_loop()
        self._cancel_announcements(vip)
        self._announcements[vip] = [loop.call_later(delay, self._announce, vip)
                                    for delay in ANNOUNCE_DELAYS[1:]]

    def _cancel_announcements(self, vip: str) -> None:
        """A VIP that leaves must not be announced afterwards (it would pull its traffic back here)."""
        for handle in self._announcements.pop(vip, []):
            handle.cancel()

    def _release_vip(self, vip: str) -> None:
        self._cancel_announcements(vip)
        self._vips.remove(vip)
        if self._owned is not None:
            self._owned = self._owned - {vip}
        logger.info("released VIP %s", vip)

    def _announce(self, vip: str) -> None:
        try:
            if vip in self._gateways:
                # a NAT gateway is announced to the real servers, not on the uplink
                interface = self._gateways[vip] or self._vips.interface_towards(vip)
                if interface is None:
                    logger.warning("NAT gateway %s: no interface towards it to announce on", vip)
                    return
                self._vips.announce(vip, interface)
            else:
                self._vips.announce(vip)
        except OSError as error:
            logger.warning("announcing %s failed: %s", vip, error)

    def _sync_vips(self) -> None:
        if self._groups is None:
            return
        now = self._monotonic()
        if self._owned is None or now - self._owned_read_at >= OWNED_REFRESH:
            self._owned, self._owned_read_at = self._vips.owned(), now
        owned = self._owned
        wanted: set[str] = set()
        keep: set[str] = set()
        for group, machine in self.machines.items():
            intent = machine.wants_vips()
            vips = self._groups.get(group, frozenset())
            if intent is True:
                wanted |= vips
            elif intent is None:
                keep |= vips
            role = machine.role
            if self._last_role.get(group) != role:
                self._last_role[group] = role
                self.transitions[group] = self._monotonic()
                self._role_changed_at[group] = datetime.datetime.fromtimestamp(
                    self._wall_clock_ns() / 1e9, datetime.UTC)
                if self._on_role_change is not None:
                    self._on_role_change(group, role, machine.term)
        for vip in sorted(wanted - owned):
            try:
                self._vips.add(vip)
            except VipConflictError as conflict:
                if self.conflicts.get(vip) != conflict.holders:
                    logger.error("%s", conflict)
                self.conflicts[vip] = conflict.holders
                continue
            self.conflicts.pop(vip, None)
            self._owned = self._owned | {vip}
            logger.info("took VIP %s", vip)
            self._announce_later(vip)
        for vip in sorted(owned - wanted - keep):
            self._release_vip(vip)

    # --- the loop -----------------------------------------------------------------------------------

    def tick(self, heartbeat: bool = True) -> None:
        """One round: heartbeat out, decisions, Lease calls started, VIPs matched to intent."""
        if heartbeat:
            self._send_heartbeat()
        if self._leaving:  # hand_over decides alone from now on (heartbeats go on until it is done)
            return
        now = self._monotonic()
        for machine in list(self.machines.values()):
            for action in machine.decide(now):
                self._start(machine, action)
            for event in machine.events:
                logger.info("group %s: %s", machine.group, event)
            machine.events.clear()
        self._sync_vips()

    async def run(self) -> None:
        loop = asyncio.get_running_loop()
        self._vips.ensure_interface()
        receiver = HeartbeatReceiver(self._secret)
        _, protocol = await loop.create_datagram_endpoint(
            lambda: UdpHeartbeatTransport(receiver, self._on_heartbeat, self._wall_clock_ns,
                                          lambda why: logger.warning("heartbeat rejected: %s", why)),
            local_addr=self._bind,
        )
        self._transport = protocol
        try:
            # Heartbeats go out every interval. Between two, the loop also wakes at the moment an active
            # peer's silence reaches dead_after, so a death is acted on at its deadline, not up to one
            # interval later (and without waking more often than that).
            next_beat = loop.time()
            while True:
                now = loop.time()
                beat = now >= next_beat
                if beat:
                    next_beat += self.timing.interval
                    if next_beat < now:  # fell behind (a long pause): do not burst to catch up
                        next_beat = now + self.timing.interval
                self.tick(heartbeat=beat)
                wake = next_beat
                offset = loop.time() - self._monotonic()  # machine deadlines are on our monotonic clock
                for machine in self.machines.values():
                    deadline = machine.next_deadline()
                    if deadline is not None and machine.role is Role.STANDBY:
                        at = deadline + offset + DEADLINE_SLACK
                        if at > loop.time():  # a passed deadline has been acted on (or waits on the API)
                            wake = min(wake, at)
                # asyncio.timeout, not wait_for (3.11's wait_for can swallow a cancellation)
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(max(0.0, wake - loop.time())):
                        await self._wake.wait()
                self._wake.clear()
        finally:
            protocol.close()
            self._transport = None
            for vip in list(self._announcements):
                self._cancel_announcements(vip)
            for task in list(self._tasks):
                task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await asyncio.gather(*self._tasks, return_exceptions=True)

    # --- graceful stop ------------------------------------------------------------------------------

    async def hand_over(self, timeout: float = HANDOVER_TIMEOUT) -> list[str]:
        """Hand the groups this node holds to its peers (SIGTERM); returns the groups handed over.

        Call while ``run`` is still running (its heartbeats keep the peers waiting while the Leases are
        released), then cancel ``run``. Bounded by ``timeout`` (plus the few ms of the final heartbeats).
        The IPVS table is not touched: the peers hold the same one, and synced connections continue.
        """
        self._leaving = True
        for task in list(self._tasks):  # a renewal in flight must not land after our release
            task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await asyncio.gather(*self._tasks, return_exceptions=True)
        now = self._monotonic()
        candidates: dict[str, GroupMachine] = {}
        for group, machine in sorted(self.machines.items()):
            if not machine.holds_group():
                continue
            if not machine.live_peers(now):
                logger.warning("group %s: no peer heard standing by, keeping its VIPs and Lease for the "
                               "restarted agent", group)
                continue
            candidates[group] = machine
        released: dict[str, LeaseView] = {}
        if candidates:
            try:
                async with asyncio.timeout(timeout):
                    results = await asyncio.gather(
                        *(self._release(group) for group in candidates), return_exceptions=True)
            except TimeoutError:
                results = [TimeoutError(f"not within {timeout:.1f} s")] * len(candidates)
            for (group, _machine), result in zip(candidates.items(), results, strict=True):
                if isinstance(result, LeaseView):
                    released[group] = result
                else:
                    logger.warning("group %s: Lease not released (%s): keeping its VIPs for the restarted "
                                   "agent; the peers take over when they notice the silence", group, result)
        groups = self._groups or {}
        owned = self._vips.owned()
        held_terms = {group: _held_term(self.machines[group]) for group in released}  # before stepping down
        for group, view in released.items():
            for vip in sorted(groups.get(group, frozenset()) & owned):
                self._release_vip(vip)
            self.machines[group].handed_over(view, self._monotonic())
            logger.info("group %s: handed over (Lease holder now %r)", group, view.holder)
        self.handed_over = sorted(released)
        for repeat in range(LEAVING_REPEATS):
            if repeat:
                await asyncio.sleep(LEAVING_SPACING)
            self._send_heartbeat(leaving=held_terms)
        self._silent = True
        return self.handed_over

    async def _release(self, group: str) -> LeaseView:
        """The group's Lease released; a Lease that already names someone else counts too (not ours)."""
        try:
            async with asyncio.timeout(self._lease_timeout):
                return await self._store.release(group, self.node)
        except LeaseConflictError as conflict:
            return conflict.current


def _held_term(machine: GroupMachine) -> int:
    """The term a holder holds the group in (a restarted holder's is the Lease's, not yet its own)."""
    if machine.role is Role.ACTIVE or machine.lease is None:
        return machine.term
    return machine.lease.transitions
