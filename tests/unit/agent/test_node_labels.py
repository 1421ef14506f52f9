"""The agent follows its Node's labels: relabelling a director node adds or removes the services whose
directorSelector matches it at the next pass, without a pod restart. The watch itself on a fake reader,
then the agent's wiring (``_follow_node_labels``) against the embedded API server with a real reconcile
loop over the fake IPVS kernel."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import Any

import pytest
import yaml
from lvs_agent import __main__ as agent_main
from lvs_agent import nodewatch
from lvs_agent.config import AgentConfig
from lvs_agent.desired import FileDesiredStateSource
from lvs_agent.netlink import FakeIpvsKernel
from lvs_agent.nodewatch import NodeLabelWatch
from lvs_agent.ownership import OwnershipRecord
from lvs_agent.reconcile import ReconcileLoop, Reconciler
from lvs_api.compiler import compile_resolved
from lvs_api.planner import plan
from lvs_apiserver.testing import ServerThread
from lvs_kube.client import KubeClient
from lvs_kube.config import load_config
from lvs_kube.resources import NODE

pytestmark = pytest.mark.timeout(120)

DEADLINE = 20.0  # generous; every wait ends as soon as its condition holds


async def eventually(condition: Callable[[], bool], what: str) -> None:
    end = time.monotonic() + DEADLINE
    while not condition():
        assert time.monotonic() < end, f"not within {DEADLINE:.0f} s: {what}"
        await asyncio.sleep(0.01)


class Labels:
    """A Node's labels as a reader sees them; can fail like an API server that went away."""

    def __init__(self, labels: Mapping[str, str]) -> None:
        self.labels = dict(labels)
        self.failing = False
        self.reads = 0

    async def read(self) -> Mapping[str, str]:
        self.reads += 1
        if self.failing:
            raise OSError("connection refused")
        return dict(self.labels)


async def test_a_change_is_reported_once_and_the_same_labels_are_not() -> None:
    node = Labels({"lvs.io/director": "true"})
    seen: list[dict[str, str]] = []
    watch = NodeLabelWatch(node.read, node.labels, seen.append, interval=0.01)
    assert not await watch.check()
    node.labels["zone"] = "a"
    assert await watch.check()
    assert not await watch.check()
    del node.labels["lvs.io/director"]
    assert await watch.check()
    assert seen == [{"lvs.io/director": "true", "zone": "a"}, {"zone": "a"}]
    assert watch.labels == {"zone": "a"}


async def test_the_watch_keeps_its_labels_while_reads_fail_and_catches_up_after() -> None:
    node = Labels({"tier": "edge"})
    seen: list[dict[str, str]] = []
    watch = NodeLabelWatch(node.read, node.labels, seen.append, interval=0.01)
    task = asyncio.create_task(watch.run())
    try:
        node.failing = True
        node.labels = {"tier": "core"}
        await eventually(lambda: watch.failures >= 2, "failed reads retried")
        assert seen == [] and watch.labels == {"tier": "edge"}
        node.failing = False
        await eventually(lambda: seen == [{"tier": "core"}], "the change once reads work again")
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)


async def test_a_read_that_never_returns_times_out_and_the_watch_goes_on(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(nodewatch, "READ_TIMEOUT", 0.05)
    answers: list[dict[str, str] | None] = [None, {"tier": "core"}]  # None: hang

    async def read() -> Mapping[str, str]:
        answer = answers.pop(0) if answers else {"tier": "core"}
        if answer is None:
            await asyncio.Event().wait()
        return answer or {}

    seen: list[dict[str, str]] = []
    watch = NodeLabelWatch(read, {"tier": "edge"}, seen.append, interval=0.01)
    task = asyncio.create_task(watch.run())
    try:
        await eventually(lambda: seen == [{"tier": "core"}], "the change after the hung read")
        assert watch.failures == 1
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)


# --- the agent's wiring against an API server -----------------------------------------------------------

NODE_NAME = "director-7"
SELECTED = {"matchLabels": {"lvs.io/edge": "true"}}


def resolved(name: str, vip: str, selector: dict[str, Any] | None) -> dict[str, Any]:
    service: dict[str, Any] = {"vip": vip, "ports": [{"port": 80}], "poolRef": {"name": "pool"}}
    if selector is not None:
        service["directorSelector"] = selector
    return {
        "apiVersion": "lvs.io/v1alpha1", "kind": "ResolvedService",
        "metadata": {"name": name, "namespace": "shop"},
        "spec": {"acceptedGeneration": 1, "virtualServiceUid": f"uid-{name}", "service": service,
                 "members": [{"address": "198.51.100.11"}]},
    }


@pytest.fixture(scope="module")
def apiserver() -> Iterator[ServerThread]:
    server = ServerThread().start()
    try:
        yield server
    finally:
        server.stop()


async def test_relabelling_the_node_adds_and_removes_the_services_that_select_it(
    apiserver: ServerThread, tmp_path: Path
) -> None:
    desired = tmp_path / "desired.yaml"
    desired.write_text(yaml.safe_dump_all([resolved("edge", "203.0.113.20", SELECTED),
                                           resolved("everywhere", "203.0.113.21", None)]))
    kernel = FakeIpvsKernel()
    client = KubeClient(load_config(str(apiserver.kubeconfig)))
    tasks: list[asyncio.Task[Any]] = []
    try:
        node = {"apiVersion": "v1", "kind": "Node", "metadata": {"name": NODE_NAME, "labels": {"zone": "a"}}}
        await client.create(NODE, node)
        config = AgentConfig(node=NODE_NAME)
        labels = await agent_main._node_labels(config, client)
        assert labels == {"zone": "a"}
        record = OwnershipRecord(tmp_path / "owned.json")
        reconciler = Reconciler(node_labels=labels, kernel=kernel, record=record,
                                compile_service=compile_resolved, plan=plan)
        loop = ReconcileLoop(reconciler, FileDesiredStateSource(str(desired)), resync_interval=3600)
        watch = agent_main._follow_node_labels(config, client, labels, reconciler, loop.kick)
        watch.interval = 0.05
        tasks = [asyncio.create_task(loop.run()), asyncio.create_task(watch.run())]

        def vips() -> set[str]:
            return {key.address for key in kernel.dump()}

        await eventually(lambda: vips() == {"203.0.113.21"}, "only the unselective service at first")
        passes = loop.passes

        async def relabel(new: dict[str, str | None]) -> None:
            await client.patch(NODE, NODE_NAME, {"metadata": {"labels": new}})

        await relabel({"lvs.io/edge": "true"})
        await eventually(lambda: vips() == {"203.0.113.20", "203.0.113.21"}, "the selecting service added")
        # a pass kicked by the change (the resync is an hour away; a pass is counted when it ends)
        await eventually(lambda: loop.passes > passes, "the kicked pass counted")
        assert reconciler.node_labels == {"zone": "a", "lvs.io/edge": "true"}
        await relabel({"lvs.io/edge": None})
        await eventually(lambda: vips() == {"203.0.113.21"}, "the selecting service removed")

        def edge_reason() -> str:
            outcome = reconciler.last.outcomes.get("shop/edge") if reconciler.last else None
            return outcome.reason if outcome else ""

        # the kernel changes in the middle of the pass, its result is recorded at the end
        await eventually(lambda: edge_reason() == "NotSelected", "shop/edge reported NotSelected")
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        await client.close()
