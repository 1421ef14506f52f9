"""A graceful stop hands the groups over: Lease released (term kept), VIPs off the interface, a "leaving"
heartbeat that makes the standby take over at once. Heartbeat encoding, the state machine on a fake clock,
the Lease stores (file, and Kubernetes through the embedded API server), and two runners on loopback."""

from __future__ import annotations

import asyncio
import contextlib
import socket
import struct
import time
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path

import pytest
from agent_fakes import FakeVipAddresses
from lvs_agent.failover.heartbeat import GroupClaim, decode, encode
from lvs_agent.failover.lease import (
    FileLeaseStore,
    KubeLeaseStore,
    LeaseConflictError,
    LeaseStore,
    LeaseUnavailableError,
    lease_name,
)
from lvs_agent.failover.machine import ActionKind, FailoverTiming, GroupMachine, LeaseView, Role
from lvs_agent.failover.runner import FailoverRunner, Peer
from lvs_apiserver.testing import ServerThread
from lvs_kube.client import KubeClient
from lvs_kube.config import load_config
from lvs_kube.resources import LEASE, NAMESPACE

pytestmark = pytest.mark.timeout(120)

VIP = "203.0.113.10"
GROUP = VIP
SECRET = b"s3cret"
TIMING = FailoverTiming()
DEADLINE = 20.0  # generous: a passing test never waits this long, each wait ends on its condition


async def wait_until(predicate: Callable[[], bool], what: str, timeout: float = DEADLINE) -> float:
    start = time.monotonic()
    while not predicate():
        if time.monotonic() - start > timeout:
            raise AssertionError(f"not within {timeout:.0f} s: {what}")
        await asyncio.sleep(0.005)
    return time.monotonic() - start


# --- heartbeats -------------------------------------------------------------------------------------


def test_a_leaving_claim_round_trips_and_reads_as_active_to_an_agent_that_predates_it() -> None:
    claims = [GroupClaim("g-leaving", False, 4, leaving=True), GroupClaim("g-active", True, 2),
              GroupClaim("g-standby", False, 0)]
    [datagram] = encode(SECRET, "director-a", b"\x01" * 8, first_sequence=1, sent_ns=time.time_ns(),
                        claims=claims)
    assert list(decode(SECRET, datagram).claims) == claims
    # the state byte of the first claim: an older agent decoded it with bool(), so "leaving" is one more
    # active heartbeat to it, then silence: it takes over after the usual detection time
    offset = datagram.index(b"g-leaving") + len(b"g-leaving")
    state, term = struct.unpack_from("!BQ", datagram, offset)
    assert (state, term) == (2, 4)
    assert bool(state)


# --- the state machine, fake clock ------------------------------------------------------------------


def standby_of(holder: str, term: int, peers: list[str], node: str = "director-b") -> GroupMachine:
    machine = GroupMachine(GROUP, node, peers, TIMING, started_at=0.0)
    machine.lease_read(LeaseView(holder, term), now=0.0)
    for step in range(1, 21):  # one second of the holder's heartbeats
        machine.heartbeat(holder, True, term, step * TIMING.interval)
        assert machine.decide(step * TIMING.interval) == []
    return machine


def test_a_leaving_holder_is_taken_over_at_once_not_after_its_silence() -> None:
    machine = standby_of("director-a", 3, ["director-a"])
    now = 1.0 + TIMING.interval / 5  # well within dead_after of its last active heartbeat
    assert machine.decide(now) == []  # silence alone: not yet
    machine.heartbeat("director-a", False, 3, now, leaving=True)
    [action] = machine.decide(now)
    assert action.kind is ActionKind.ACQUIRE_LEASE
    assert action.expected == LeaseView("director-a", 3)
    assert not machine.live_peers(now)
    machine.lease_acquired(LeaseView("director-b", 4), now)
    assert (machine.role, machine.term) == (Role.ACTIVE, 4)


def test_leaving_in_an_older_term_does_not_free_the_group() -> None:
    machine = standby_of("director-a", 3, ["director-a"])
    machine.heartbeat("director-a", False, 2, 1.01, leaving=True)  # a stale term: not the holder's
    assert machine.decide(1.01) == []


def test_after_a_leaving_holder_the_standbys_still_go_in_preference_order() -> None:
    peers = {"director-b": ["director-a", "director-c"], "director-c": ["director-a", "director-b"]}
    machines = {node: standby_of("director-a", 3, others, node) for node, others in peers.items()}
    for step in range(1, 21):  # the standbys hear each other
        for node, machine in machines.items():
            other = "director-c" if node == "director-b" else "director-b"
            machine.heartbeat(other, False, 0, step * TIMING.interval)
    now = 1.0 + TIMING.interval / 5
    for machine in machines.values():
        machine.heartbeat("director-a", False, 3, now, leaving=True)
    decisions = {node: [a.kind for a in machine.decide(now)] for node, machine in machines.items()}
    assert sorted(decisions.values()) == [[], [ActionKind.ACQUIRE_LEASE]]  # the first ranked, alone


def test_handed_over_machine_is_standby_without_the_group() -> None:
    machine = GroupMachine(GROUP, "director-a", ["director-b"], TIMING, started_at=0.0)
    machine.lease_read(LeaseView("", 0, expired=True), 0.0)
    machine.lease_acquired(LeaseView("director-a", 3), 0.1)
    machine.handed_over(LeaseView("", 3), 0.2)
    assert machine.role is Role.STANDBY
    assert not machine.holds_group()
    assert machine.wants_vips() is False


# --- Lease stores -----------------------------------------------------------------------------------


async def test_file_lease_release_clears_the_holder_and_keeps_the_term(tmp_path: Path) -> None:
    store = FileLeaseStore(tmp_path, duration_seconds=10)
    await store.acquire(GROUP, "director-a", None)
    held = await store.acquire(GROUP, "director-b", LeaseView("director-a", 0))
    assert (held.holder, held.transitions) == ("director-b", 1)
    with pytest.raises(LeaseConflictError):
        await store.release(GROUP, "director-a")  # not the holder: nothing written
    assert (await store.read(GROUP)).holder == "director-b"
    released = await store.release(GROUP, "director-b")
    assert (released.holder, released.transitions) == ("", 1)
    assert (await store.read(GROUP)).holder == ""
    # the peer decided to replace director-b (it heard it leave): the released Lease is free to it
    taken = await store.acquire(GROUP, "director-a", LeaseView("director-b", 1))
    assert (taken.holder, taken.transitions) == ("director-a", 2)
    assert taken.activations == {"director-a": 2, "director-b": 1}
    with pytest.raises(LeaseConflictError):  # and once taken, it is taken
        await store.acquire(GROUP, "director-c", LeaseView("director-b", 1))


@pytest.fixture(scope="module")
def apiserver() -> Iterator[ServerThread]:
    server = ServerThread().start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
async def kube(apiserver: ServerThread) -> AsyncIterator[KubeClient]:
    client = KubeClient(load_config(str(apiserver.kubeconfig)))
    try:
        yield client
    finally:
        await client.close()


async def test_kube_lease_release_clears_the_holder_and_keeps_the_term(kube: KubeClient) -> None:
    namespace = "lvs-handover"
    if await kube.get_or_none(NAMESPACE, namespace) is None:
        body = {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": namespace}}
        await kube.create(NAMESPACE, body)
    store = KubeLeaseStore(kube, namespace, duration_seconds=10)
    await store.acquire(GROUP, "director-a", None)
    with pytest.raises(LeaseConflictError):
        await store.release(GROUP, "director-b")
    released = await store.release(GROUP, "director-a")
    assert (released.holder, released.transitions) == ("", 0)
    lease = await kube.get(LEASE, lease_name(GROUP), namespace)
    assert "holderIdentity" not in lease["spec"]
    assert lease["spec"]["leaseTransitions"] == 0
    taken = await store.acquire(GROUP, "director-b", LeaseView("director-a", 0))
    assert (taken.holder, taken.transitions) == ("director-b", 1)
    assert taken.activations == {"director-a": 1, "director-b": 1}


# --- two runners on loopback --------------------------------------------------------------------------


def free_udp_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


class Pair:
    """Two directors heartbeating over loopback, one file Lease store; each can be stopped and restarted."""

    def __init__(self, store: LeaseStore) -> None:
        self.store = store
        self.ports = {"director-a": free_udp_port(), "director-b": free_udp_port()}
        self.peers = [Peer(node, "127.0.0.1", port) for node, port in self.ports.items()]
        self.vips = {node: FakeVipAddresses() for node in self.ports}
        self.runners: dict[str, FailoverRunner] = {}
        self.tasks: dict[str, asyncio.Task[None]] = {}
        for node in self.ports:
            self.start(node)

    def start(self, node: str) -> FailoverRunner:
        runner = FailoverRunner(node=node, peers=self.peers, secret=SECRET, lease_store=self.store,
                                vips=self.vips[node], timing=TIMING, bind=("127.0.0.1", self.ports[node]))
        runner.set_groups({GROUP: frozenset({VIP})})
        self.runners[node] = runner
        self.tasks[node] = asyncio.create_task(runner.run())
        return runner

    async def stop(self, node: str) -> None:
        self.tasks[node].cancel()
        await asyncio.gather(self.tasks[node], return_exceptions=True)

    async def settled(self) -> tuple[str, str]:
        """(active, standby) once one holds the VIP and the other hears it."""
        await wait_until(lambda: any(VIP in fake.vips for fake in self.vips.values()), "a VIP holder")
        [active] = [node for node, fake in self.vips.items() if VIP in fake.vips]
        [standby] = [node for node in self.ports if node != active]
        machine = self.runners[standby].machines[GROUP]
        await wait_until(lambda: machine.lease is not None and machine.lease.holder == active
                         and machine.lease_from_store and bool(machine.live_peers(time.monotonic())),
                         "the standby knows the holder from the store and hears it")
        return active, standby

    async def close(self) -> None:
        for task in self.tasks.values():
            task.cancel()
        await asyncio.gather(*self.tasks.values(), return_exceptions=True)


@contextlib.asynccontextmanager
async def running_pair(store: LeaseStore) -> AsyncIterator[Pair]:
    directors = Pair(store)
    try:
        yield directors
    finally:
        await directors.close()


@pytest.fixture
async def pair(tmp_path: Path) -> AsyncIterator[Pair]:
    async with running_pair(FileLeaseStore(tmp_path, duration_seconds=10)) as directors:
        yield directors


async def test_hand_over_moves_the_group_at_once_and_the_restarted_agent_stays_standby(pair: Pair) -> None:
    active, standby = await pair.settled()
    term = pair.runners[active].status()[GROUP].term
    announced = len(pair.vips[active].announced)
    started = time.monotonic()
    assert await pair.runners[active].hand_over() == [GROUP]
    assert VIP not in pair.vips[active].vips  # off the interface before the peers are told
    await pair.stop(active)
    await wait_until(lambda: VIP in pair.vips[standby].vips, "the standby takes the VIP")
    took = time.monotonic() - started
    # through the leaving heartbeat, not the silence (the figure is bench/failover_bench.py --sigterm's)
    told = pair.runners[standby].machines[GROUP].peer_views[active]
    assert told.leaving and told.term == term, (told, took)  # the term it held, not the Lease's after
    assert took < TIMING.lease_duration / 2, took
    lease = await pair.store.read(GROUP)
    assert (lease.holder, lease.transitions) == (standby, term + 1)
    assert pair.runners[standby].status()[GROUP].term == term + 1
    # the old node's announcements still due (1 s after it took the VIP) were cancelled with the VIP
    await asyncio.sleep(1.2)
    assert len(pair.vips[active].announced) == announced
    # the restarted agent of the old node: standby, takes nothing, the new active keeps the group
    restarted = pair.start(active)
    await wait_until(lambda: restarted.machines[GROUP].lease is not None
                     and restarted.machines[GROUP].lease_from_store, "the restarted agent reads the Lease")
    await asyncio.sleep(0.5)
    assert not pair.vips[active].vips
    assert restarted.status()[GROUP].role is Role.STANDBY
    assert (await pair.store.read(GROUP)).holder == standby
    assert VIP in pair.vips[standby].vips


async def test_without_a_peer_standing_by_the_group_stays_for_the_restarted_agent(tmp_path: Path) -> None:
    store = FileLeaseStore(tmp_path, duration_seconds=10)
    vips = FakeVipAddresses()
    runner = FailoverRunner(node="solo", peers=[Peer("gone", "127.0.0.1", free_udp_port())], secret=SECRET,
                            lease_store=store, vips=vips, timing=TIMING, bind=("127.0.0.1", 0))
    runner.set_groups({GROUP: frozenset({VIP})})
    task = asyncio.create_task(runner.run())
    try:
        # its only peer is never heard (a fresh Lease is free: it takes the group alone)
        await wait_until(lambda: VIP in vips.vips, "the lone director takes the VIP")
        assert await runner.hand_over() == []
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
    assert VIP in vips.vips
    assert (await store.read(GROUP)).holder == "solo"
    # restarted: the Lease still names it, it keeps the VIP and the term (no blip)
    again = FailoverRunner(node="solo", peers=[], secret=SECRET, lease_store=store, vips=vips, timing=TIMING,
                           bind=("127.0.0.1", 0))
    again.set_groups({GROUP: frozenset({VIP})})
    writes = vips.writes
    task = asyncio.create_task(again.run())
    try:
        await wait_until(lambda: again.status()[GROUP].role is Role.ACTIVE
                         and again.machines[GROUP].role is Role.ACTIVE, "re-taken")
        assert again.status()[GROUP].term == 0
        assert vips.writes == writes
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)


class UnreachableStore:
    """The file store, with release failing as when the API server is away (or hanging)."""

    def __init__(self, store: FileLeaseStore, hang: bool) -> None:
        self._store = store
        self._hang = hang
        self.read, self.acquire, self.renew = store.read, store.acquire, store.renew

    async def release(self, group: str, node: str) -> LeaseView:
        if self._hang:
            await asyncio.sleep(3600)
        raise LeaseUnavailableError("connection refused")


@pytest.mark.parametrize("hang", [False, True], ids=["refused", "hanging"])
async def test_a_lease_that_cannot_be_released_keeps_the_vips(tmp_path: Path, hang: bool) -> None:
    async with running_pair(UnreachableStore(FileLeaseStore(tmp_path, duration_seconds=10), hang)) as pair:
        active, _standby = await pair.settled()
        started = time.monotonic()
        assert await pair.runners[active].hand_over(timeout=0.5) == []
        assert time.monotonic() - started < 0.5 + DEADLINE / 4  # bounded by the timeout when it hangs
        assert VIP in pair.vips[active].vips
        assert (await pair.store.read(GROUP)).holder == active


async def test_a_group_no_longer_served_here_is_handed_over_too(pair: Pair) -> None:
    """The node is relabelled out of the group's directorSelector (or the service goes) while active: the
    VIP leaves at once and the peer, told, takes over without waiting for the silence."""
    active, standby = await pair.settled()
    term = pair.runners[active].status()[GROUP].term
    pair.runners[active].set_groups({})
    assert VIP not in pair.vips[active].vips
    await wait_until(lambda: VIP in pair.vips[standby].vips, "the standby takes the VIP")
    told = pair.runners[standby].machines[GROUP].peer_views[active]
    assert told.leaving and told.term == term
    lease = await pair.store.read(GROUP)
    assert (lease.holder, lease.transitions) == (standby, term + 1)
    await asyncio.sleep(0.3)  # the old node's background release found the Lease taken: nothing moves back
    assert VIP in pair.vips[standby].vips and not pair.vips[active].vips
    assert pair.runners[standby].status()[GROUP].role is Role.ACTIVE
