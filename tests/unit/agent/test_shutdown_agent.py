"""SIGTERM to the whole agent (``run_agent``) while it is the active director: it hands its VIP group to
its peer (Lease released, VIP off its interface, "leaving" heartbeat) and leaves its IPVS table as it is.
The peer is a failover runner in the same event loop, heartbeating over loopback; the kernel-facing
classes are the in-memory fakes, desired state and Leases come from files."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import socket
import time
from collections.abc import Callable
from pathlib import Path

import pytest
import yaml
from agent_fakes import FakeVipAddresses
from lvs_agent import __main__ as agent_main
from lvs_agent.config import load_config
from lvs_agent.failover.lease import FileLeaseStore
from lvs_agent.failover.machine import FailoverTiming, Role
from lvs_agent.failover.runner import FailoverRunner, Peer
from lvs_agent.netlink import FakeIpvsKernel

pytestmark = pytest.mark.timeout(120)

LOOPBACK = "127.0.0.1"
VIP = "203.0.113.41"
DEADLINE = 30.0  # generous; every wait ends as soon as its condition holds


class ClosableFakeVips(FakeVipAddresses):
    made: list[ClosableFakeVips] = []

    def __init__(self, *_args: object) -> None:
        super().__init__()
        ClosableFakeVips.made.append(self)

    def close(self) -> None:
        pass


def free_udp_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
        probe.bind((LOOPBACK, 0))
        return int(probe.getsockname()[1])


async def eventually(condition: Callable[[], bool], what: str) -> None:
    end = time.monotonic() + DEADLINE
    while not condition():
        assert time.monotonic() < end, f"not within {DEADLINE:.0f} s: {what}"
        await asyncio.sleep(0.01)


async def test_sigterm_hands_the_group_to_the_peer_and_keeps_the_ipvs_table(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    desired = tmp_path / "desired.yaml"
    desired.write_text(yaml.safe_dump({
        "apiVersion": "lvs.io/v1alpha1", "kind": "ResolvedService",
        "metadata": {"name": "web", "namespace": "shop"},
        "spec": {"acceptedGeneration": 1, "virtualServiceUid": "uid-web",
                 "service": {"vip": VIP, "ports": [{"port": 80}], "poolRef": {"name": "pool"}},
                 "members": [{"address": "198.51.100.11"}]},
    }))
    secret = tmp_path / "secret"
    secret.write_text("s3cret\n")
    leases = tmp_path / "leases"
    ports = {"node-a": free_udp_port(), "node-b": free_udp_port()}
    kernel = FakeIpvsKernel()
    ClosableFakeVips.made.clear()
    monkeypatch.setattr(agent_main, "IpvsNetlink", lambda netns=None: kernel)
    monkeypatch.setattr(agent_main, "NetlinkVipAddresses", ClosableFakeVips)
    config = load_config([
        "--node", "node-a", "--source", f"file:{desired}", "--lease", f"file:{leases}", "--no-report",
        "--record", str(tmp_path / "owned.json"), "--heartbeat-bind", LOOPBACK,
        "--heartbeat-port", str(ports["node-a"]), "--peer", f"node-b={LOOPBACK}:{ports['node-b']}",
        "--secret-file", str(secret), "--lease-duration", "10",
    ])
    agent = asyncio.create_task(agent_main.run_agent(config))
    peer_vips = FakeVipAddresses()
    peer = FailoverRunner(node="node-b", peers=[Peer("node-a", LOOPBACK, ports["node-a"])], secret=b"s3cret",
                          lease_store=FileLeaseStore(leases, 10), vips=peer_vips, timing=FailoverTiming(),
                          bind=(LOOPBACK, ports["node-b"]))
    peer_task: asyncio.Task[None] | None = None
    try:
        await eventually(lambda: bool(ClosableFakeVips.made) and VIP in ClosableFakeVips.made[0].vips,
                         "the agent takes the VIP (it starts alone)")
        own_vips = ClosableFakeVips.made[0]
        peer.set_groups({VIP: frozenset({VIP})})
        peer_task = asyncio.create_task(peer.run())
        machine = peer.machines[VIP]
        await eventually(lambda: machine.lease is not None and machine.lease.holder == "node-a"
                         and machine.lease_from_store and bool(machine.live_peers(time.monotonic())),
                         "the peer stands by, hearing the agent")
        await eventually(lambda: signal.getsignal(signal.SIGTERM) is not signal.SIG_DFL,
                         "the agent's signal handler")
        table = kernel.dump()
        writes = kernel.writes
        assert table
        os.kill(os.getpid(), signal.SIGTERM)
        async with asyncio.timeout(DEADLINE):
            await agent
        assert VIP not in own_vips.vips
        await eventually(lambda: VIP in peer_vips.vips, "the peer takes the VIP")
        assert machine.peer_views["node-a"].leaving  # told, not guessed from silence
        assert peer.status()[VIP].role is Role.ACTIVE
        lease = await FileLeaseStore(leases).read(VIP)
        assert (lease.holder, lease.transitions) == ("node-b", 1)
        assert kernel.dump() == table and kernel.writes == writes  # IPVS left exactly as it was
    finally:
        if not agent.done():
            agent.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await agent
        if peer_task is not None:
            peer_task.cancel()
            await asyncio.gather(peer_task, return_exceptions=True)
