"""Drives one ``GroupMachine`` per VIP group: heartbeats over UDP, Lease calls, VIPs on the interface.

Every ``interval`` the runner sends one heartbeat (all groups' claims) to every peer, asks each machine
what to do, starts Lease calls in the background (at most one in flight per group, each with a
timeout, so a slow API server never delays heartbeats), and makes the VIPs on the agent's interface
match each machine's intent. A VIP newly taken is announced at once, then again after 100 ms and 1 s
(a neighbour may drop the first frame).
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
from lvs_agent.failover.machine import Action, ActionKind, FailoverTiming, GroupMachine, Role

logger = logging.getLogger("lvs_agent.failover")

ANNOUNCE_DELAYS = (0.0, 0.1, 1.0)
DEADLINE_SLACK = 0.001  # wake just after a deadline, so that it has passed
OWNED_REFRESH = 1.0  # an address dump per heartbeat would cost more than the rest of a tick


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

    # --- desired groups -----------------------------------------------------------------------------

    def set_groups(self, groups: Mapping[str, frozenset[str]],
                   gateways: Mapping[str, str | None] | None = None) -> None:
        """The VIP groups this node serves and their addresses (from the reconcile loop). ``gateways``
        names the addresses that are NAT gateways, with the interface to announce them on (None: the
        interface of the route towards them); they move with their group exactly like its VIPs."""
        self._gateways = dict(gateways or {})
        now = self._monotonic()
        peer_names = [peer.node for peer in self.peers]
        for group in groups:
            if group not in self.machines:
                self.machines[group] = GroupMachine(group, self.node, peer_names, self.timing, now)
        for group in list(self.machines):
            if group not in groups:
                del self.machines[group]
                self._last_role.pop(group, None)
                self._role_changed_at.pop(group, None)
        self._groups = {group: frozenset(vips) for group, vips in groups.items()}

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
                machine.heartbeat(beat.node, claim.active, claim.term, now)

    def _send_heartbeat(self) -> None:
        if self._transport is None or not self.peers:
            return
        claims = [GroupClaim(group, machine.role is Role.ACTIVE, machine.term)
                  for group, machine in sorted(self.machines.items())]
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
        for delay in ANNOUNCE_DELAYS[1:]:
            loop.call_later(delay, self._announce, vip)

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
            self._vips.remove(vip)
            self._owned = self._owned - {vip}
            logger.info("released VIP %s", vip)

    # --- the loop -----------------------------------------------------------------------------------

    def tick(self, heartbeat: bool = True) -> None:
        """One round: heartbeat out, decisions, Lease calls started, VIPs matched to intent."""
        if heartbeat:
            self._send_heartbeat()
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
                await asyncio.sleep(max(0.0, wake - loop.time()))
        finally:
            protocol.close()
            for task in list(self._tasks):
                task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await asyncio.gather(*self._tasks, return_exceptions=True)
