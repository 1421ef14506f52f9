"""The whole agent (``run_agent``) with its endpoint on: /healthz from the start, /readyz once the first
pass is done, and /metrics fed by the wired parts (reconcile, IPVS counters, health, VIP-group role).

Only the two kernel-facing classes are swapped for their fakes (IPVS netlink, VIP addresses); the desired
state and the Leases come from files, the health check probes a listener on 127.0.0.1."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import socket
from pathlib import Path

import aiohttp
import pytest
import yaml
from agent_fakes import FakeVipAddresses
from lvs_agent import __main__ as agent_main
from lvs_agent.config import load_config
from lvs_agent.netlink import FakeIpvsKernel
from prometheus_client.parser import text_string_to_metric_families

pytestmark = pytest.mark.timeout(120)

LOOPBACK = "127.0.0.1"
VIP = "203.0.113.40"


class ClosableFakeVips(FakeVipAddresses):
    def __init__(self, *_args: object) -> None:
        super().__init__()

    def close(self) -> None:
        pass


def free_tcp_port() -> int:
    with socket.socket() as sock:
        sock.bind((LOOPBACK, 0))
        port: int = sock.getsockname()[1]
        return port


async def get(port: int, path: str) -> tuple[int, str]:
    try:
        url = f"http://{LOOPBACK}:{port}{path}"
        async with aiohttp.ClientSession() as session, session.get(url) as reply:
            return reply.status, await reply.text()
    except aiohttp.ClientConnectionError:
        return 0, "not listening"


async def until(condition: object, what: str, deadline: float = 30.0) -> None:
    loop = asyncio.get_running_loop()
    end = loop.time() + deadline
    while not await condition():  # type: ignore[operator]
        assert loop.time() < end, f"{what}: not reached in time"
        await asyncio.sleep(0.05)


async def test_agent_serves_probes_and_metrics_of_its_parts(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    member = await asyncio.start_server(lambda _r, w: w.close(), LOOPBACK, 0)
    member_port = member.sockets[0].getsockname()[1]
    desired = tmp_path / "desired.yaml"
    desired.write_text(yaml.safe_dump({
        "apiVersion": "lvs.io/v1alpha1", "kind": "ResolvedService",
        "metadata": {"name": "web", "namespace": "shop"},
        "spec": {
            "acceptedGeneration": 1, "virtualServiceUid": "uid-web",
            "service": {"vip": VIP, "ports": [{"port": 80, "targetPort": member_port}],
                        "poolRef": {"name": "pool"},
                        "healthCheck": {"type": "TCP", "intervalSeconds": 0.5, "timeoutSeconds": 0.4,
                                        "rise": 1, "fall": 1}},
            "members": [{"address": LOOPBACK}],
        },
    }))
    kernel = FakeIpvsKernel()
    monkeypatch.setattr(agent_main, "IpvsNetlink", lambda netns=None: kernel)
    monkeypatch.setattr(agent_main, "NetlinkVipAddresses", ClosableFakeVips)
    port = free_tcp_port()
    config = load_config([
        "--node", "node-a", "--source", f"file:{desired}", "--lease", f"file:{tmp_path / 'leases'}",
        "--no-report", "--record", str(tmp_path / "owned.json"), "--heartbeat-bind", LOOPBACK,
        "--heartbeat-port", "0", "--lease-duration", "2", "--metrics-port", str(port),
        "--metrics-address", LOOPBACK,
    ])
    agent = asyncio.create_task(agent_main.run_agent(config))
    try:
        async def healthy() -> bool:
            assert not agent.done(), agent
            return (await get(port, "/healthz"))[0] == 200

        async def ready() -> bool:
            return (await get(port, "/readyz"))[0] == 200

        await until(healthy, "/healthz")
        await until(ready, "/readyz")

        samples: dict[tuple[str, tuple[tuple[str, str], ...]], float] = {}

        async def reported() -> bool:
            status, text = await get(port, "/metrics")
            assert status == 200
            samples.clear()
            for family in text_string_to_metric_families(text):
                for sample in family.samples:
                    samples[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
            role = ("lvs_agent_vip_group_role", (("group", VIP), ("role", "active")))
            healthy_member = ("lvs_agent_health_members", (("check", "TCP"), ("state", "healthy")))
            return samples.get(role) == 1 and samples.get(healthy_member) == 1

        await until(reported, "VIP group active and member healthy in /metrics")
        assert samples[("lvs_agent_reconcile_passes_total", (("result", "ok"),))] >= 1
        assert samples[("lvs_agent_ipvs_owned_services", ())] == 1
        assert samples[("lvs_agent_reconcile_ops_total", (("op", "add-service"),))] == 1
        service = (("service", f"TCP {VIP}:80"), ("virtualservice", "shop/web"))
        assert samples[("lvs_agent_ipvs_service_connections_total", service)] == 0
        assert samples[("lvs_agent_vip_group_role_changes_total", (("role", "active"),))] >= 1
        assert samples[("lvs_agent_ipvs_stats_timestamp_seconds", ())] > 0
    finally:
        if not agent.done():
            if signal.getsignal(signal.SIGTERM) is signal.SIG_DFL:  # handler not installed yet
                agent.cancel()
            else:
                os.kill(os.getpid(), signal.SIGTERM)  # the agent's own handler: a clean stop
        with contextlib.suppress(asyncio.CancelledError):
            async with asyncio.timeout(30):
                await agent
        member.close()
    assert (await get(port, "/healthz"))[0] == 0  # the endpoint closed with the agent
