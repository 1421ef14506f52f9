"""When a director took its role (`since`) and how many times it became active (`failovers`): both come
from the group's Lease, so they stay the same across heartbeats and across an agent restart that keeps the
role, and a takeover or failback moves them exactly once."""

from __future__ import annotations

import asyncio
import datetime
import json
import socket
import time
from collections.abc import Callable
from pathlib import Path

import pytest
from agent_fakes import FakeVipAddresses
from lvs_agent.failover.lease import FileLeaseStore, lease_name
from lvs_agent.failover.machine import FailoverTiming, GroupMachine, LeaseView, Role
from lvs_agent.failover.runner import FailoverRunner, Peer

pytestmark = pytest.mark.timeout(120)

VIP = "203.0.113.10"
GROUP = VIP


# --- the stores: acquire time and activation counts ---------------------------------------------------


async def test_takeover_and_failback_count_activations_and_stamp_the_acquire_time(tmp_path: Path) -> None:
    store = FileLeaseStore(tmp_path, duration_seconds=10)
    first = await store.acquire(GROUP, "a", None)
    assert first.acquired is not None and dict(first.activations or {}) == {"a": 1}
    renewed = await store.renew(GROUP, "a")
    assert (renewed.acquired, renewed.activations) == (first.acquired, {"a": 1})
    again = await store.acquire(GROUP, "a", renewed)  # a restarted holder re-takes its own Lease
    assert (again.transitions, again.acquired, again.activations) == (0, first.acquired, {"a": 1})
    taken = await store.acquire(GROUP, "b", again)
    assert taken.transitions == 1 and dict(taken.activations or {}) == {"a": 1, "b": 1}
    assert taken.acquired is not None and taken.acquired >= first.acquired
    back = await store.acquire(GROUP, "a", taken)
    assert back.transitions == 2 and dict(back.activations or {}) == {"a": 2, "b": 1}
    read = await store.read(GROUP)
    assert (read.acquired, read.activations) == (back.acquired, {"a": 2, "b": 1})


async def test_a_lease_written_before_the_counts_existed_counts_its_holder_once(tmp_path: Path) -> None:
    store = FileLeaseStore(tmp_path, duration_seconds=10)
    legacy = {"holder": "a", "transitions": 3, "renewed": time.time(), "duration": 10}
    (tmp_path / f"{lease_name(GROUP)}.json").write_text(json.dumps(legacy))
    view = await store.read(GROUP)
    assert (view.acquired, view.activations) == (None, {})
    again = await store.acquire(GROUP, "a", view)
    assert again.transitions == 3 and again.activations == {"a": 1} and again.acquired is not None


# --- the machine: heartbeats keep what the store said ---------------------------------------------------


def test_a_heartbeat_of_the_same_term_keeps_the_acquire_time_and_a_new_term_drops_it() -> None:
    acquired = datetime.datetime(2026, 1, 1, tzinfo=datetime.UTC)
    machine = GroupMachine(GROUP, "b", ["a"], FailoverTiming(), started_at=0.0)
    machine.lease_read(LeaseView("a", 4, acquired=acquired, activations={"a": 2, "b": 3}), now=0.0)
    machine.heartbeat("a", active=True, term=4, now=0.05)
    assert machine.lease is not None and machine.lease.acquired == acquired
    assert (machine.role_since(), machine.activations) == (acquired, 3)
    machine.heartbeat("c", active=True, term=5, now=0.1)  # not a configured peer: ignored
    assert machine.role_since() == acquired
    machine.peers = ["a", "c"]
    machine.heartbeat("c", active=True, term=5, now=0.15)  # c took over: when, only the store knows
    assert machine.role_since() is None
    assert machine.activations == 3  # only our own acquire changes our count


def test_a_standby_that_heard_the_holder_first_still_reads_the_store_once() -> None:
    machine = GroupMachine(GROUP, "b", ["a"], FailoverTiming(), started_at=0.0)
    machine.heartbeat("a", active=True, term=1, now=0.01)
    [action] = machine.decide(0.02)
    assert action.kind.value == "read-lease"
    machine.lease_read(LeaseView("a", 1, activations={"a": 1, "b": 1}), now=0.03)
    machine.heartbeat("a", active=True, term=1, now=0.05)
    assert machine.decide(0.06) == []  # a live active peer: nothing to do, no more reads
    assert machine.activations == 1


# --- the runner: `since` and the count across a restart and a takeover --------------------------------


def free_udp_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


async def wait_until(predicate: Callable[[], bool], timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError("condition not met in time")
        await asyncio.sleep(0.005)


def new_runner(node: str, ports: dict[str, int], store: FileLeaseStore,
               vips: FakeVipAddresses) -> FailoverRunner:
    runner = FailoverRunner(node=node, peers=[Peer(name, "127.0.0.1", port) for name, port in ports.items()],
                            secret=b"s3cret", lease_store=store, vips=vips, timing=FailoverTiming(),
                            bind=("127.0.0.1", ports[node]))
    runner.set_groups({GROUP: frozenset({VIP})})
    return runner


async def stop(task: asyncio.Task[None]) -> None:
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)


async def test_since_and_count_stay_across_a_restart_and_move_once_on_a_takeover(tmp_path: Path) -> None:
    ports = {"director-a": free_udp_port(), "director-b": free_udp_port()}
    store = FileLeaseStore(tmp_path, duration_seconds=10)
    vips = {node: FakeVipAddresses() for node in ports}
    runners = {node: new_runner(node, ports, store, vips[node]) for node in ports}
    tasks = {node: asyncio.create_task(runner.run()) for node, runner in runners.items()}
    try:
        await wait_until(lambda: sum(r.status()[GROUP].role is Role.ACTIVE for r in runners.values()) == 1)
        [active] = [node for node, r in runners.items() if r.status()[GROUP].role is Role.ACTIVE]
        [standby] = [node for node in ports if node != active]
        lease = await store.read(GROUP)
        await wait_until(lambda: runners[standby].status()[GROUP].since == lease.acquired)
        started = runners[active].status()[GROUP]
        assert (started.since, started.activations) == (lease.acquired, 1)
        assert runners[standby].status()[GROUP].activations == 0

        # the active agent restarts (its VIP stays): same term, same since, same count
        await stop(tasks[active])
        runners[active] = new_runner(active, ports, store, vips[active])
        tasks[active] = asyncio.create_task(runners[active].run())
        await wait_until(lambda: runners[active].status()[GROUP].role is Role.ACTIVE)
        kept = runners[active].status()[GROUP]
        assert (kept.term, kept.since, kept.activations) == (0, lease.acquired, 1)
        assert runners[standby].status()[GROUP].role is Role.STANDBY
        # the standby must hear it active again, or only the Lease's expiry proves it gone (rule 2)
        await wait_until(lambda: runners[standby].machines[GROUP].peer_views[active].active)

        # the active dies: the standby takes over with a later since and its first activation
        await stop(tasks[active])
        await wait_until(lambda: runners[standby].status()[GROUP].role is Role.ACTIVE)
        taken = runners[standby].status()[GROUP]
        after = await store.read(GROUP)
        assert (taken.term, taken.since, taken.activations) == (1, after.acquired, 1)
        assert lease.acquired is not None and taken.since is not None and taken.since > lease.acquired
        assert after.activations == {active: 1, standby: 1}

        # the old active comes back: standby under the new holder, since = the takeover, count kept
        runners[active] = new_runner(active, ports, store, vips[active])
        tasks[active] = asyncio.create_task(runners[active].run())
        await wait_until(lambda: runners[active].status()[GROUP].activations == 1
                         and runners[active].status()[GROUP].since == after.acquired)
        assert runners[active].status()[GROUP].role is Role.STANDBY
    finally:
        for task in tasks.values():
            await stop(task)


def test_a_restarted_holder_reports_the_role_it_keeps_while_it_re_takes_the_lease() -> None:
    acquired = datetime.datetime(2026, 1, 1, tzinfo=datetime.UTC)
    machine = GroupMachine(GROUP, "a", ["b"], FailoverTiming(), started_at=0.0)
    assert not machine.holds_group() and machine.role_since() is None
    machine.lease_read(LeaseView("a", 2, acquired=acquired, activations={"a": 2}), now=0.0)
    assert machine.role is Role.STANDBY and machine.wants_vips() is None  # keeps its VIPs
    assert (machine.holds_group(), machine.role_since()) == (True, acquired)
    [action] = machine.decide(0.01)
    assert action.kind.value == "acquire-lease"
    machine.lease_acquired(LeaseView("a", 2, acquired=acquired, activations={"a": 2}), now=0.02)
    assert (machine.role, machine.term, machine.role_since(), machine.activations) == (
        Role.ACTIVE, 2, acquired, 2)
    # had b taken the Lease meanwhile, the write fails and a is a plain standby
    other = GroupMachine(GROUP, "a", ["b"], FailoverTiming(), started_at=0.0)
    other.lease_read(LeaseView("a", 2, acquired=acquired), now=0.0)
    other.decide(0.01)
    later = datetime.datetime(2026, 1, 2, tzinfo=datetime.UTC)
    other.lease_lost(LeaseView("b", 3, acquired=later), now=0.02)
    assert (other.holds_group(), other.role_since()) == (False, later)
