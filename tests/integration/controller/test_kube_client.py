"""lvs_kube against the embedded API server over HTTP: reads, paging, watch, apply, CAS, events, leases."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator

import pytest
from lvs_apiserver.testing import ServerThread
from lvs_kube import (
    Conflict,
    EventRecorder,
    KubeClient,
    LeaderElector,
    NotFound,
    list_then_watch,
    load_kubeconfig,
)
from lvs_kube import resources as res

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def server() -> Iterator[ServerThread]:
    thread = ServerThread(bookmark_interval=0.5).start()
    try:
        yield thread
    finally:
        thread.stop()


def config_map(name: str, value: str, namespace: str = "default") -> dict[str, object]:
    return {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": name, "namespace": namespace},
        "data": {"value": value},
    }


CONFIG_MAP = res.Resource("", "v1", "configmaps", "ConfigMap", True)


async def test_reads_writes_paging_and_compare_and_swap(server: ServerThread) -> None:
    async with KubeClient(load_kubeconfig(str(server.kubeconfig))) as client:
        for index in range(7):
            await client.create(CONFIG_MAP, config_map(f"page-{index}", str(index)))
        listed = await client.list(CONFIG_MAP, "default", page_size=3)
        names = [
            item["metadata"]["name"] for item in listed.items if item["metadata"]["name"].startswith("page-")
        ]
        assert names == [f"page-{index}" for index in range(7)]
        assert listed.items[0]["kind"] == "ConfigMap"
        assert listed.resource_version

        current = await client.get(CONFIG_MAP, "page-0", "default")
        stale = {**current, "metadata": dict(current["metadata"])}
        current["data"] = {"value": "changed"}
        await client.replace(CONFIG_MAP, current)
        stale["data"] = {"value": "lost update"}
        with pytest.raises(Conflict):
            await client.replace(CONFIG_MAP, stale)

        patched = await client.patch(CONFIG_MAP, "page-1", {"data": {"extra": "x"}}, "default")
        assert patched["data"] == {"value": "1", "extra": "x"}
        applied = await client.apply(CONFIG_MAP, config_map("applied", "a"), field_manager="lvs-test")
        again = await client.apply(CONFIG_MAP, config_map("applied", "a"), field_manager="lvs-test")
        assert again["metadata"]["resourceVersion"] == applied["metadata"]["resourceVersion"]  # no-op apply

        await client.delete(CONFIG_MAP, "page-2", "default")
        assert await client.get_or_none(CONFIG_MAP, "page-2", "default") is None
        assert await client.delete(CONFIG_MAP, "page-2", "default") is None  # missing_ok
        with pytest.raises(NotFound):
            await client.delete(CONFIG_MAP, "page-2", "default", missing_ok=False)
        assert client.writes["apply ConfigMap"] == 2


async def test_list_then_watch_sees_existing_then_changes(server: ServerThread) -> None:
    async with KubeClient(load_kubeconfig(str(server.kubeconfig))) as client:
        await client.create(CONFIG_MAP, config_map("watched-a", "1", "kube-public"))
        seen: list[tuple[str, str]] = []

        async def consume() -> None:
            async for event in list_then_watch(client, CONFIG_MAP, "kube-public"):
                seen.append((event.type, event.object["metadata"]["name"]))
                if event.type == "DELETED":
                    return

        task = asyncio.create_task(consume())
        await asyncio.sleep(0.3)
        await client.create(CONFIG_MAP, config_map("watched-b", "2", "kube-public"))
        await client.delete(CONFIG_MAP, "watched-a", "kube-public")
        await asyncio.wait_for(task, 10)
        assert ("ADDED", "watched-a") in seen
        assert seen[-2:] == [("ADDED", "watched-b"), ("DELETED", "watched-a")]


async def test_events_are_created_then_counted(server: ServerThread) -> None:
    async with KubeClient(load_kubeconfig(str(server.kubeconfig))) as client:
        target = await client.create(CONFIG_MAP, config_map("evented", "1"))
        recorder = EventRecorder(client, "lvs-test")
        await recorder.emit(target, "Warning", "SomethingOdd", "first")
        await recorder.emit(target, "Warning", "SomethingOdd", "first")
        events = [
            e
            for e in (await client.list(res.CORE_EVENT, "default")).items
            if e["involvedObject"]["name"] == "evented"
        ]
        assert len(events) == 1
        assert events[0]["count"] == 2
        assert events[0]["reason"] == "SomethingOdd"
        assert events[0]["involvedObject"]["uid"] == target["metadata"]["uid"]


async def test_two_electors_one_leader_and_takeover(server: ServerThread) -> None:
    async with KubeClient(load_kubeconfig(str(server.kubeconfig))) as client:
        electors = [
            LeaderElector(
                client,
                name="it-lease",
                namespace="default",
                identity=name,
                lease_duration=2,
                renew_deadline=1.5,
                retry_period=0.2,
            )
            for name in ("one", "two")
        ]
        tasks = [asyncio.create_task(elector.run()) for elector in electors]
        async with asyncio.timeout(20):  # poll: a loaded machine may take longer than a retry period
            while not any(elector.is_leader for elector in electors):
                await asyncio.sleep(0.05)
        await asyncio.sleep(0.5)  # a second leader would show within a couple of retry periods
        leaders = [elector for elector in electors if elector.is_leader]
        assert len(leaders) == 1
        leader = leaders[0]
        follower = next(elector for elector in electors if elector is not leader)
        lease = await client.get(res.LEASE, "it-lease", "default")
        assert lease["spec"]["holderIdentity"] == leader.identity
        # Cancelling the leader releases the lease: the follower takes it at its next retry.
        tasks[electors.index(leader)].cancel()
        await asyncio.gather(
            *tasks[electors.index(leader) : electors.index(leader) + 1], return_exceptions=True
        )
        await asyncio.wait_for(follower.wait_for_leadership(), 2)
        lease = await client.get(res.LEASE, "it-lease", "default")
        assert lease["spec"]["holderIdentity"] == follower.identity
        assert lease["spec"]["leaseTransitions"] >= 1
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
