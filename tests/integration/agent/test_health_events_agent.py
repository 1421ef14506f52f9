"""The whole agent (``run_agent``) against the embedded API server, as __main__ wires it: its DirectorReport
counts the members honestly and its health Events land on the VirtualService.

Only the two kernel-facing classes are swapped for fakes (IPVS netlink, VIP addresses); the desired state
and the Leases come from files; the members are loopback ports, one listening (and a second member checked
through it) and one refusing."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import socket
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest
import yaml
from lvs_agent import __main__ as agent_main
from lvs_agent.config import load_config
from lvs_agent.netlink import FakeIpvsKernel
from lvs_apiserver.testing import ServerThread
from lvs_kube.client import KubeClient
from lvs_kube.config import load_config as load_kube_config
from lvs_kube.resources import CORE_EVENT, DIRECTOR_REPORT, VIRTUAL_SERVICE

pytestmark = [pytest.mark.integration, pytest.mark.timeout(180)]

LOOPBACK = "127.0.0.1"
VIP = "203.0.113.41"
NODE = "director-events"


class MemoryVips:
    """The agent's VIP addresses without the host (no rtnetlink here)."""

    def __init__(self, *_args: object) -> None:
        self.vips: set[str] = set()
        self.problems: dict[str, str] = {}

    def ensure_interface(self) -> None:
        return None

    def owned(self) -> frozenset[str]:
        return frozenset(self.vips)

    def foreign_holders(self, vip: str) -> list[str]:
        return []

    def add(self, vip: str) -> None:
        self.vips.add(vip)

    def remove(self, vip: str) -> None:
        self.vips.discard(vip)

    def announce(self, vip: str, *_args: object) -> None:
        return None

    def close(self) -> None:
        return None



async def until(condition: Callable[[], Awaitable[Any]], what: str, timeout: float = 90.0) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        result = await condition()
        if result:
            return result
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        await asyncio.sleep(0.2)


async def accept_forever(server: socket.socket) -> None:
    """Accept and close connections on a plain listening socket (the health check only connects)."""
    server.setblocking(False)
    loop = asyncio.get_running_loop()
    while True:
        connection, _ = await loop.sock_accept(server)
        connection.close()


async def test_the_agent_reports_honest_counts_and_posts_health_events(
    client: KubeClient, namespace: str, apiserver: ServerThread, tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    listening = await asyncio.start_server(lambda _reader, writer: writer.close(), LOOPBACK, 0)
    up_port = listening.sockets[0].getsockname()[1]
    refusing = socket.socket()  # bound, not listening: connections are refused
    refusing.bind((LOOPBACK, 0))
    down_port = refusing.getsockname()[1]
    check = {"type": "TCP", "intervalSeconds": 0.5, "timeoutSeconds": 0.4, "rise": 1, "fall": 1}
    spec = {"vip": VIP, "ports": [{"port": 80}], "poolRef": {"name": "pool"}, "healthCheck": check}
    vs = await client.create(VIRTUAL_SERVICE, {"apiVersion": "lvs.io/v1alpha1", "kind": "VirtualService",
                                               "metadata": {"name": "web", "namespace": namespace},
                                               "spec": spec})
    owner = {"apiVersion": "lvs.io/v1alpha1", "kind": "VirtualService", "name": "web",
             "uid": vs["metadata"]["uid"], "controller": True}
    desired = tmp_path / "desired.yaml"
    desired.write_text(yaml.safe_dump({
        "apiVersion": "lvs.io/v1alpha1", "kind": "ResolvedService",
        "metadata": {"name": "web", "namespace": namespace, "ownerReferences": [owner]},
        "spec": {"acceptedGeneration": 1, "virtualServiceUid": vs["metadata"]["uid"], "service": spec,
                 # the third member is checked through the first one's port (checkPort): two members, one
                 # verdict; the report counts members, not checks
                 "members": [{"address": LOOPBACK, "port": up_port},
                             {"address": LOOPBACK, "port": down_port},
                             {"address": LOOPBACK, "port": 9, "checkPort": up_port}]},
    }))
    kernel = FakeIpvsKernel()
    monkeypatch.setattr(agent_main, "IpvsNetlink", lambda netns=None: kernel)
    monkeypatch.setattr(agent_main, "NetlinkVipAddresses", MemoryVips)
    monkeypatch.setattr(agent_main, "load_kube_config", lambda: load_kube_config(str(apiserver.kubeconfig)))
    config = load_config([
        "--node", NODE, "--source", f"file:{desired}", "--lease", f"file:{tmp_path / 'leases'}",
        "--record", str(tmp_path / "owned.json"), "--heartbeat-bind", LOOPBACK, "--heartbeat-port", "0",
        "--lease-duration", "2",
    ])
    agent = asyncio.create_task(agent_main.run_agent(config))
    key = f"{namespace}/web"
    accepting: list[asyncio.Task[None]] = []
    try:
        async def counted() -> Any:
            assert not agent.done(), agent
            report = await client.get_or_none(DIRECTOR_REPORT, NODE)
            service = ((report or {}).get("status") or {}).get("services", {}).get(key) or {}
            return service if service.get("active") and service.get("totalMembers") == 3 and service.get(
                "healthyMembers") == 2 else None

        service = await until(counted, "the report: 2 of 3 members healthy, on the active director")
        assert [(m["port"], m["healthy"]) for m in service["members"]] == [(down_port, False)]

        # Events tell transitions seen while active (the first verdicts may come before the Lease is won):
        # flip both members now that the group is active here
        listening.close()
        refusing.listen()
        accepting.append(asyncio.create_task(accept_forever(refusing)))

        async def posted() -> list[dict[str, Any]]:
            listed = await client.list(CORE_EVENT, namespace)
            found = [e for e in listed.items if e["involvedObject"].get("uid") == vs["metadata"]["uid"]]
            # one Event may name both members (changes of a service within 5 s go out together)
            wanted = (("MemberUnhealthy", up_port), ("MemberHealthy", down_port))
            flipped = {reason for reason, port in wanted for e in found
                       if e["reason"] == reason and f"member {LOOPBACK}:{port} " in e["message"]}
            return found if len(flipped) == 2 else []

        events = await until(posted, "MemberHealthy and MemberUnhealthy on the VirtualService")
        for event in events:
            assert (event["reportingComponent"], event["reportingInstance"]) == ("lvs-agent", NODE)
        # (a member's Events are at least 30 s apart: the flip's waits for its first verdict's, if posted)
        [down] = [e for e in events if e["reason"] == "MemberUnhealthy" and f":{up_port} " in e["message"]]
        assert "last: ECONN" in down["message"], down["message"]
        assert down["type"] == "Warning" and down["involvedObject"]["name"] == "web"
        [back] = [e for e in events if e["reason"] == "MemberHealthy" and f":{down_port} " in e["message"]]
        assert back["type"] == "Normal"
    finally:
        if not agent.done():
            if signal.getsignal(signal.SIGTERM) is signal.SIG_DFL:  # handler not installed yet
                agent.cancel()
            else:
                os.kill(os.getpid(), signal.SIGTERM)  # the agent's own handler: a clean stop
        with contextlib.suppress(asyncio.CancelledError):
            async with asyncio.timeout(60):
                await agent
        for task in accepting:
            task.cancel()
        await asyncio.gather(*accepting, return_exceptions=True)
        listening.close()
        refusing.close()
