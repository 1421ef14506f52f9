"""Failover fields end to end, without a kernel: two directors built from the agent's own parts (failover
runner heartbeating over loopback UDP, the group's Lease in the API server through KubeLeaseStore,
reconcile on the in-memory IPVS kernel, DirectorReports written by the report writer) and the real
controller as a process folding their reports into the VirtualService's `activeDirector`,
`failoverCount` and `lastFailoverTime`. Directors die by having their tasks cancelled: their last report
stays behind, as after a crash. Steps: first activation, failover, a controller restart, an agent restart
that keeps the role, failback."""

from __future__ import annotations

import asyncio
import concurrent.futures
import datetime
import socket
import threading
import uuid
from collections.abc import Callable, Coroutine, Iterator
from pathlib import Path
from typing import Any, TypeVar

import pytest
from conftest import Cluster, ControllerProcess, wait_for
from lvs_agent.addresses import canonical_vip
from lvs_agent.failover.lease import KubeLeaseStore
from lvs_agent.failover.machine import FailoverTiming, Role
from lvs_agent.failover.runner import FailoverRunner, Peer
from lvs_agent.netlink import FakeIpvsKernel
from lvs_agent.ownership import OwnershipRecord
from lvs_agent.reconcile import Reconciler
from lvs_agent.report import KubeReportSink, ReportWriter, build_status
from lvs_api.compiler import compile_resolved
from lvs_api.models import ResolvedService
from lvs_api.planner import plan
from lvs_kube.client import KubeClient
from lvs_kube.config import load_config
from lvs_kube.resources import DIRECTOR_REPORT, RESOLVED_SERVICE

pytestmark = [pytest.mark.integration, pytest.mark.timeout(300)]

T = TypeVar("T")
VIP = "203.0.113.250"
SECRET = b"e2e failover secret"


class MemoryVips:
    """The VIP interface in memory (the kernel tests use the real one)."""

    def __init__(self) -> None:
        self.vips: set[str] = set()

    def ensure_interface(self) -> None:
        pass

    def owned(self) -> frozenset[str]:
        return frozenset(self.vips)

    def add(self, vip: str) -> None:
        self.vips.add(canonical_vip(vip))

    def remove(self, vip: str) -> None:
        self.vips.discard(canonical_vip(vip))

    def announce(self, vip: str, interface: str | None = None) -> None:
        pass

    def interface_towards(self, address: str) -> str | None:
        return None


class Loop:
    """An asyncio loop in a thread: the directors live there while the test drives kubectl."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()

    def run(self, coroutine: Coroutine[Any, Any, T], timeout: float = 30.0) -> T:
        future: concurrent.futures.Future[T] = asyncio.run_coroutine_threadsafe(coroutine, self.loop)
        return future.result(timeout)

    def close(self) -> None:
        async def cancel_left_over() -> None:  # directors a failed test left running
            tasks = [task for task in asyncio.all_tasks() if task is not asyncio.current_task()]
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)

        self.run(cancel_left_over())
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(10)
        self.loop.close()


def free_udp_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


class Director:
    """One director's agent: failover runner, reconcile on a fake kernel, DirectorReport writer."""

    def __init__(self, node: str, peers: list[Peer], cluster: Cluster, namespace: str, workdir: Path) -> None:
        self.node, self.peers, self.cluster, self.namespace = node, peers, cluster, namespace
        self.record = workdir / f"owned-{node}.json"
        self.tasks: list[asyncio.Task[None]] = []
        self.runner: FailoverRunner | None = None
        self.client: KubeClient | None = None

    async def start(self) -> None:
        self.client = client = KubeClient(load_config(str(self.cluster.server.kubeconfig)))
        port = next(peer.port for peer in self.peers if peer.node == self.node)
        self.runner = runner = FailoverRunner(
            node=self.node, peers=self.peers, secret=SECRET, vips=MemoryVips(), timing=FailoverTiming(),
            lease_store=KubeLeaseStore(client, self.namespace, duration_seconds=10), bind=("127.0.0.1", port))
        reconciler = Reconciler(node_labels={}, kernel=FakeIpvsKernel(), record=OwnershipRecord(self.record),
                                compile_service=compile_resolved, plan=plan,
                                health=lambda _key, _member: True)
        resolved = ResolvedService.model_validate(await client.get(RESOLVED_SERVICE, "web", self.namespace))
        result = reconciler.reconcile_once({f"{self.namespace}/web": resolved})
        runner.set_groups(result.groups)
        writer = ReportWriter(KubeReportSink(client), self.node, min_interval=0.1, heartbeat_interval=2.0)

        async def report() -> None:
            while True:
                writer.update(build_status(result, groups=runner.status()))
                await asyncio.sleep(0.05)

        self.tasks = [asyncio.create_task(runner.run()), asyncio.create_task(writer.run()),
                      asyncio.create_task(report())]

    async def kill(self) -> None:
        for task in self.tasks:
            task.cancel()
        await asyncio.gather(*self.tasks, return_exceptions=True)
        if self.client is not None:
            await self.client.close()

    def role(self) -> Role | None:
        return self.runner.status()[VIP].role if self.runner and VIP in self.runner.status() else None


@pytest.fixture
def loop() -> Iterator[Loop]:
    running = Loop()
    yield running
    running.close()


def report_group(cluster: Cluster, node: str) -> dict[str, Any]:
    report = cluster.get(f"{DIRECTOR_REPORT.plural}.lvs.io", node) or {}
    groups = ((report.get("status") or {}).get("vipGroups")) or [{}]
    return dict(groups[0])


def heartbeat_time(cluster: Cluster, node: str) -> Any:
    return ((cluster.get(f"{DIRECTOR_REPORT.plural}.lvs.io", node) or {}).get("status") or {}).get(
        "heartbeatTime")


def failover_status(cluster: Cluster, namespace: str) -> tuple[Any, Any, Any]:
    status = (cluster.get("virtualservices.lvs.io", "web", namespace) or {}).get("status") or {}
    return status.get("activeDirector"), status.get("failoverCount"), status.get("lastFailoverTime")


def parse_time(text: Any) -> datetime.datetime:
    return datetime.datetime.fromisoformat(str(text).replace("Z", "+00:00"))


def same_time(left: Any, right: Any) -> bool:
    return left is not None and right is not None and parse_time(left) == parse_time(right)


def test_failover_fields_through_failover_restarts_and_failback(
    cluster: Cluster, namespace: str, start_controller: Callable[..., ControllerProcess], loop: Loop,
    tmp_path: Path,
) -> None:
    vip = VIP
    cluster.apply(
        {"apiVersion": "lvs.io/v1alpha1", "kind": "VIPPool", "metadata": {"name": f"e2e-{namespace}"},
         "spec": {"addresses": [f"{vip}/32"], "namespaces": [namespace]}},
        {"apiVersion": "lvs.io/v1alpha1", "kind": "RealServerPool", "metadata": {"name": "web",
         "namespace": namespace}, "spec": {"members": [{"address": "198.51.100.11"}]}},
        {"apiVersion": "lvs.io/v1alpha1", "kind": "VirtualService",
         "metadata": {"name": "web", "namespace": namespace},
         "spec": {"vip": vip, "ports": [{"port": 80}], "poolRef": {"name": "web"}}},
    )
    controller = start_controller(f"e2e-{uuid.uuid4().hex[:6]}")
    wait_for(lambda: cluster.get("resolvedservices.lvs.io", "web", namespace), timeout=60, what="published")
    nodes = [f"dir-a-{namespace}", f"dir-b-{namespace}"]
    peers = [Peer(node, "127.0.0.1", free_udp_port()) for node in nodes]

    def director(node: str) -> Director:
        started = Director(node, peers, cluster, namespace, tmp_path)
        loop.run(started.start())
        return started

    a_node, b_node = nodes
    a = director(a_node)  # alone: the first activation
    wait_for(lambda: a.role() is Role.ACTIVE, timeout=30, what="a active")
    b = director(b_node)
    wait_for(lambda: report_group(cluster, b_node).get("role") == "Standby", timeout=30, what="b standby")
    wait_for(lambda: failover_status(cluster, namespace) == (a_node, 0, None), timeout=30,
             what="first activation: active a, no failover")
    first_since = report_group(cluster, a_node)["since"]

    # a crashes: b takes over; a's last report still says Active
    loop.run(a.kill())
    wait_for(lambda: b.role() is Role.ACTIVE, timeout=30, what="b takes over")
    wait_for(lambda: report_group(cluster, b_node).get("role") == "Active", timeout=30, what="b reports")
    takeover = report_group(cluster, b_node)
    assert takeover["failovers"] == 1
    assert report_group(cluster, a_node)["role"] == "Active"  # the stale report
    wait_for(lambda: failover_status(cluster, namespace)[:2] == (b_node, 1), timeout=30, what="failover")
    assert same_time(failover_status(cluster, namespace)[2], takeover["since"])
    assert parse_time(takeover["since"]) > parse_time(first_since)
    after_failover = failover_status(cluster, namespace)

    # the controller restarts, then b's agent restarts while nobody else can take over: same role, same
    # since, same count; nothing in the status moves
    controller.stop()
    controller = start_controller(f"e2e-{uuid.uuid4().hex[:6]}")
    controller.wait_primed(60)
    loop.run(b.kill())
    b = director(b_node)
    wait_for(lambda: b.role() is Role.ACTIVE, timeout=30, what="restarted b active again")
    heartbeat = heartbeat_time(cluster, b_node)
    wait_for(lambda: heartbeat_time(cluster, b_node) != heartbeat, timeout=30, what="restarted b reports")
    restarted = report_group(cluster, b_node)
    assert (restarted["role"], restarted["failovers"], restarted["since"]) == (
        "Active", 1, takeover["since"])
    assert failover_status(cluster, namespace) == after_failover

    # a comes back as standby; b crashes; a takes the VIP back: the second failover
    a = director(a_node)
    wait_for(lambda: report_group(cluster, a_node).get("role") == "Standby", timeout=30, what="a standby")
    wait_for(lambda: bool(a.runner and a.runner.machines[VIP].peer_views.get(b_node)), timeout=30,
             what="a hears b")
    loop.run(b.kill())
    wait_for(lambda: a.role() is Role.ACTIVE, timeout=30, what="failback to a")
    wait_for(lambda: report_group(cluster, a_node).get("failovers") == 2, timeout=30, what="a reports")
    failback = report_group(cluster, a_node)
    wait_for(lambda: failover_status(cluster, namespace)[:2] == (a_node, 2), timeout=30, what="failback")
    assert same_time(failover_status(cluster, namespace)[2], failback["since"])
    loop.run(a.kill())
