"""Two failover runners in one event loop, heartbeating over real UDP on loopback and sharing a file
Lease store: one takes the VIP, and when it dies the other takes over within the detection time."""

from __future__ import annotations

import asyncio
import socket
import time
from pathlib import Path

import pytest
from agent_fakes import FakeVipAddresses
from lvs_agent.failover.lease import FileLeaseStore
from lvs_agent.failover.machine import FailoverTiming, Role
from lvs_agent.failover.runner import FailoverRunner, Peer

# a hang (a blocked event loop, a stuck thread) fails with a traceback instead of stalling the suite
pytestmark = pytest.mark.timeout(120)

VIP = "203.0.113.10"
GROUP = VIP


def free_udp_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


async def wait_until(predicate: object, timeout: float) -> float:
    assert callable(predicate)
    start = time.monotonic()
    while not predicate():
        if time.monotonic() - start > timeout:
            raise AssertionError("condition not met in time")
        await asyncio.sleep(0.005)
    return time.monotonic() - start


async def test_one_active_then_takeover_after_the_active_dies(tmp_path: Path) -> None:
    ports = {"director-a": free_udp_port(), "director-b": free_udp_port()}
    peers = [Peer(node, "127.0.0.1", port) for node, port in ports.items()]
    store = FileLeaseStore(tmp_path, duration_seconds=10)
    vips = {node: FakeVipAddresses() for node in ports}
    timing = FailoverTiming()
    runners = {
        node: FailoverRunner(node=node, peers=peers, secret=b"s3cret", lease_store=store, vips=vips[node],
                             timing=timing, bind=("127.0.0.1", port))
        for node, port in ports.items()
    }
    for runner in runners.values():
        runner.set_groups({GROUP: frozenset({VIP})})
    tasks = {node: asyncio.create_task(runner.run()) for node, runner in runners.items()}
    try:
        await wait_until(lambda: any(VIP in fake.vips for fake in vips.values()), timeout=10)
        await asyncio.sleep(0.5)
        holders = [node for node, fake in vips.items() if VIP in fake.vips]
        assert len(holders) == 1
        [active] = holders
        [standby] = [node for node in ports if node != active]
        assert runners[active].status()[GROUP].role is Role.ACTIVE
        assert runners[standby].status()[GROUP].role is Role.STANDBY
        assert vips[active].announced.count(VIP) >= 1
        tasks[active].cancel()  # the active director dies (its VIP stays behind, as after a crash)
        gap = await wait_until(lambda: VIP in vips[standby].vips, timeout=10)
        # the heartbeat path, not the Lease running out (the figure itself is bench/failover_bench.py's)
        assert gap < timing.lease_duration / 2, gap
        assert runners[standby].status()[GROUP].term == 1
        assert (await store.read(GROUP)).holder == standby
    finally:
        for task in tasks.values():
            task.cancel()
        await asyncio.gather(*tasks.values(), return_exceptions=True)


async def test_a_wrong_secret_is_not_a_peer(tmp_path: Path) -> None:
    ports = {"director-a": free_udp_port(), "director-b": free_udp_port()}
    peers = [Peer(node, "127.0.0.1", port) for node, port in ports.items()]
    store = FileLeaseStore(tmp_path, duration_seconds=10)
    runners = {
        node: FailoverRunner(node=node, peers=peers, secret=node.encode(), lease_store=store,
                             vips=FakeVipAddresses(), bind=("127.0.0.1", port))
        for node, port in ports.items()
    }
    for runner in runners.values():
        runner.set_groups({GROUP: frozenset({VIP})})
    tasks = [asyncio.create_task(runner.run()) for runner in runners.values()]
    try:
        await asyncio.sleep(0.5)
        assert all(not runner.machines[GROUP].live_peers(time.monotonic()) for runner in runners.values())
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)


async def test_a_vip_on_a_foreign_interface_is_reported_and_never_taken(tmp_path: Path) -> None:
    vips = FakeVipAddresses(foreign={VIP: ["kube-ipvs0"]})
    runner = FailoverRunner(node="solo", peers=[], secret=b"", lease_store=FileLeaseStore(tmp_path),
                            vips=vips, bind=("127.0.0.1", 0))
    runner.set_groups({"front": frozenset({VIP, "203.0.113.11"})})
    task = asyncio.create_task(runner.run())
    try:
        await wait_until(lambda: "203.0.113.11" in vips.vips, timeout=10)
        await asyncio.sleep(0.2)
        status = runner.status()["front"]
        assert status.role is Role.ACTIVE
        assert status.conflicts == {VIP: ["kube-ipvs0"]}
        assert VIP not in vips.vips
        # the group goes away: our VIP is released, the foreign one was never ours
        runner.set_groups({})
        await wait_until(lambda: not vips.vips, timeout=10)
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)


GATEWAY = "198.51.100.1"


async def test_the_nat_gateway_follows_the_active_director_and_is_announced_to_the_real_servers(
    tmp_path: Path,
) -> None:
    ports = {"director-a": free_udp_port(), "director-b": free_udp_port()}
    peers = [Peer(node, "127.0.0.1", port) for node, port in ports.items()]
    store = FileLeaseStore(tmp_path, duration_seconds=10)
    # director-b has no interface named for the gateway: it finds it by its route towards the address
    gateways: dict[str, dict[str, str | None]] = {"director-a": {GATEWAY: "eth1"},
                                                  "director-b": {GATEWAY: None}}
    vips = {"director-a": FakeVipAddresses(), "director-b": FakeVipAddresses(routes={GATEWAY: "ens4"})}
    runners = {
        node: FailoverRunner(node=node, peers=peers, secret=b"s3cret", lease_store=store, vips=vips[node],
                             bind=("127.0.0.1", port))
        for node, port in ports.items()
    }
    for node, runner in runners.items():
        runner.set_groups({GROUP: frozenset({VIP, GATEWAY})}, gateways[node])
    tasks = {node: asyncio.create_task(runner.run()) for node, runner in runners.items()}
    try:
        await wait_until(lambda: any(GATEWAY in fake.vips for fake in vips.values()), timeout=10)
        await asyncio.sleep(0.3)
        [active] = [node for node, fake in vips.items() if GATEWAY in fake.vips]
        [standby] = [node for node in ports if node != active]
        assert VIP in vips[active].vips and not vips[standby].vips
        expected = {"director-a": "eth1", "director-b": "ens4"}
        assert (GATEWAY, expected[active]) in vips[active].announced_on
        assert (VIP, None) in vips[active].announced_on  # the VIP still goes to the uplink
        tasks[active].cancel()
        await wait_until(lambda: {VIP, GATEWAY} <= vips[standby].vips, timeout=10)
        await wait_until(lambda: (GATEWAY, expected[standby]) in vips[standby].announced_on, timeout=10)
        # the group leaves the standby-turned-active node: the gateway goes with the VIP
        runners[standby].set_groups({})
        await wait_until(lambda: not vips[standby].vips, timeout=10)
    finally:
        for task in tasks.values():
            task.cancel()
        await asyncio.gather(*tasks.values(), return_exceptions=True)


async def test_a_nat_gateway_on_a_foreign_interface_is_a_conflict_not_taken(tmp_path: Path) -> None:
    vips = FakeVipAddresses(foreign={GATEWAY: ["eth1"]})
    runner = FailoverRunner(node="solo", peers=[], secret=b"", lease_store=FileLeaseStore(tmp_path),
                            vips=vips, bind=("127.0.0.1", 0))
    runner.set_groups({"front": frozenset({VIP, GATEWAY})}, {GATEWAY: "eth1"})
    task = asyncio.create_task(runner.run())
    try:
        await wait_until(lambda: VIP in vips.vips, timeout=10)
        await asyncio.sleep(0.2)
        assert runner.status()["front"].conflicts == {GATEWAY: ["eth1"]}
        assert GATEWAY not in vips.vips
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
