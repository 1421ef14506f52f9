"""The agent's Kubernetes side against the embedded API server over HTTP: the VIP-group Lease store
(compare-and-swap, terms), the ResolvedService watch (desired-state source) and the DirectorReport writer
(created once, status patched, rate-limited, no write when nothing changed)."""

from __future__ import annotations

import asyncio
import datetime
import uuid
from collections.abc import Callable
from typing import Any

import pytest
from lvs_agent.desired import KubeDesiredStateSource
from lvs_agent.failover.lease import KubeLeaseStore, LeaseConflictError, lease_name
from lvs_agent.failover.machine import LeaseView
from lvs_agent.report import KubeReportSink, ReportWriter
from lvs_api.models import DirectorReportStatus
from lvs_kube.client import KubeClient
from lvs_kube.resources import DIRECTOR_REPORT, LEASE, NAMESPACE, RESOLVED_SERVICE

pytestmark = [pytest.mark.integration, pytest.mark.timeout(120)]

# How long to wait for something the server or the writer will do; generous, as CI may be loaded. A
# passing test never waits this long: each wait ends as soon as its condition holds.
DEADLINE = 30.0


async def eventually(condition: Callable[[], bool], what: str) -> None:
    try:
        async with asyncio.timeout(DEADLINE):
            while not condition():
                await asyncio.sleep(0.01)
    except TimeoutError:
        raise AssertionError(f"not within {DEADLINE:.0f} s: {what}") from None



async def fresh_namespace(client: KubeClient) -> str:
    name = f"agent-{uuid.uuid4().hex[:8]}"
    await client.create(NAMESPACE, {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name}})
    return name


async def test_lease_store_compare_and_swap_and_terms(client: KubeClient) -> None:
    namespace = await fresh_namespace(client)
    store = KubeLeaseStore(client, namespace, duration_seconds=10)
    assert await store.read("203.0.113.10") == LeaseView("", 0, expired=True)
    first = await store.acquire("203.0.113.10", "dir1", LeaseView("", 0, expired=True))
    assert (first.holder, first.transitions, first.expired) == ("dir1", 0, False)
    assert (await store.renew("203.0.113.10", "dir1")).holder == "dir1"
    # dir2 saw dir1 die: takes over, term 1
    taken = await store.acquire("203.0.113.10", "dir2", LeaseView("dir1", 0))
    assert (taken.holder, taken.transitions) == ("dir2", 1)
    # a third director that also decided dir1 was dead loses: the Lease names dir2 now
    with pytest.raises(LeaseConflictError) as conflict:
        await store.acquire("203.0.113.10", "dir3", LeaseView("dir1", 0))
    assert conflict.value.current.holder == "dir2"
    # and the old holder's renewal fails: it must step down
    with pytest.raises(LeaseConflictError):
        await store.renew("203.0.113.10", "dir1")
    lease = await client.get(LEASE, lease_name("203.0.113.10"), namespace)
    assert lease["spec"]["holderIdentity"] == "dir2"
    assert lease["spec"]["leaseTransitions"] == 1
    assert lease["metadata"]["annotations"]["lvs.io/vip-group"] == "203.0.113.10"


async def test_two_candidates_racing_for_one_lease_only_one_wins(client: KubeClient) -> None:
    namespace = await fresh_namespace(client)
    store = KubeLeaseStore(client, namespace)
    await store.acquire("g", "dead", None)
    results = await asyncio.gather(
        *(store.acquire("g", node, LeaseView("dead", 0)) for node in ("a", "b", "c")), return_exceptions=True
    )
    winners = [result for result in results if isinstance(result, LeaseView)]
    assert len(winners) == 1, results
    assert all(isinstance(result, LeaseConflictError) for result in results if result not in winners)
    assert winners[0].transitions == 1


def resolved(name: str, namespace: str, vip: str) -> dict[str, Any]:
    return {
        "apiVersion": "lvs.io/v1alpha1", "kind": "ResolvedService",
        "metadata": {"name": name, "namespace": namespace},
        "spec": {"acceptedGeneration": 1, "virtualServiceUid": f"uid-{name}",
                 "service": {"vip": vip, "ports": [{"port": 80}], "poolRef": {"name": "pool"}},
                 "members": [{"address": "198.51.100.11"}]},
    }


async def test_desired_state_follows_resolved_services(client: KubeClient) -> None:
    namespace = await fresh_namespace(client)
    source = KubeDesiredStateSource(client)
    await client.create(RESOLVED_SERVICE, resolved("web", namespace, "203.0.113.10"), namespace)
    async with asyncio.timeout(DEADLINE):
        state = await source.wait_for_change()
    assert f"{namespace}/web" in state
    assert state[f"{namespace}/web"].spec.service.vip == "203.0.113.10"
    await client.create(RESOLVED_SERVICE, resolved("api", namespace, "203.0.113.20"), namespace)

    async def until(predicate: Callable[[dict[str, Any]], bool]) -> dict[str, Any]:
        async with asyncio.timeout(DEADLINE):
            while True:
                current = dict(await source.wait_for_change())
                if predicate(current):
                    return current

    state = await until(lambda s: f"{namespace}/api" in s)
    assert {f"{namespace}/web", f"{namespace}/api"} <= set(state)
    await client.delete(RESOLVED_SERVICE, "web", namespace)
    state = await until(lambda s: f"{namespace}/web" not in s)
    assert f"{namespace}/api" in state


async def test_director_report_is_created_once_then_status_patched_only_on_change(client: KubeClient) -> None:
    node = f"node-{uuid.uuid4().hex[:6]}"
    writer = ReportWriter(KubeReportSink(client), node, min_interval=0.05, heartbeat_interval=60)
    task = asyncio.create_task(writer.run())
    try:
        status = DirectorReportStatus(heartbeat_time=datetime.datetime.now(datetime.UTC), ipvs_services=3)
        writer.update(status)
        await eventually(lambda: writer.writes >= 1, "the first report write")
        report = await client.get(DIRECTOR_REPORT, node)
        assert report["spec"]["nodeName"] == node
        assert report["status"]["ipvsServices"] == 3
        # same content, newer timestamp: no write
        writer.update(status.model_copy(update={"heartbeat_time": datetime.datetime.now(datetime.UTC)}))
        await asyncio.sleep(0.3)
        assert writer.writes == 1
        writer.update(status.model_copy(update={"ipvs_services": 4}))
        await eventually(lambda: writer.writes >= 2, "the write of the changed status")
        assert writer.writes == 2
        assert (await client.get(DIRECTOR_REPORT, node))["status"]["ipvsServices"] == 4
    finally:
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task


async def test_director_report_drops_a_service_the_agent_no_longer_reports(client: KubeClient) -> None:
    # A merge patch would keep "gone" forever and hold the controller's finalizer on its VirtualService.
    node = f"node-{uuid.uuid4().hex[:6]}"
    sink = KubeReportSink(client)
    both = {"services": {"ns/kept": {"programmed": True}, "ns/gone": {"programmed": True}}}
    await sink.write(node, both)
    assert set((await client.get(DIRECTOR_REPORT, node))["status"]["services"]) == {"ns/kept", "ns/gone"}
    await sink.write(node, {"services": {"ns/kept": {"programmed": True}}})
    assert set((await client.get(DIRECTOR_REPORT, node))["status"]["services"]) == {"ns/kept"}
    # A restarted agent (a new sink) that reports nothing any more empties the map too.
    await KubeReportSink(client).write(node, {"ipvsServices": 0})
    assert not (await client.get(DIRECTOR_REPORT, node))["status"].get("services")
