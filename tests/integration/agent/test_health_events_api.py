"""Health Events against the embedded API server: two directors' health engines check the same members on
loopback, one active for the VIP group and one standby. The active one's transitions show up as Events on
the VirtualService (``kubectl events --for``), naming member, check and last result; the standby posts
nothing; fifty members failing at once make one Event."""

from __future__ import annotations

import asyncio
import json
import re
import socket
import time
from collections.abc import Callable
from typing import Any

import pytest
from lvs_agent.events import HealthEventWriter, KubeEventSink, engine_member_state
from lvs_agent.health import CheckSpec, HealthEngine, NetworkProber, TcpProbe, Timing
from lvs_api.models import ResolvedService
from lvs_kube.client import KubeClient
from lvs_kube.resources import CORE_EVENT, VIRTUAL_SERVICE

pytestmark = [pytest.mark.integration, pytest.mark.timeout(180)]

CHECK = CheckSpec(TcpProbe(), Timing(interval=0.2, timeout=0.5, rise=1, fall=1, jitter=0.0))



def virtual_service(namespace: str, name: str, vip: str) -> dict[str, Any]:
    return {
        "apiVersion": "lvs.io/v1alpha1",
        "kind": "VirtualService",
        "metadata": {"name": name, "namespace": namespace},
        "spec": {"vip": vip, "ports": [{"port": 80}], "poolRef": {"name": "web"}, "vipGroup": "front"},
    }


def refusing_ports(count: int) -> list[socket.socket]:
    """Loopback ports bound but not listening: connecting is refused, and while they stay bound the ports
    are distinct and nobody else gets them."""
    sockets = []
    for _ in range(count):
        bound = socket.socket()
        bound.bind(("127.0.0.1", 0))
        sockets.append(bound)
    return sockets


async def eventually(predicate: Callable[[], Any], what: str, timeout: float = 60.0) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        result = predicate()
        if asyncio.iscoroutine(result):
            result = await result
        if result:
            return result
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        await asyncio.sleep(0.1)


class Director:
    """One director's health side as the agent wires it: engine -> event writer -> the API."""

    def __init__(self, client: KubeClient, node: str) -> None:
        self.node = node
        # a window well over the checks' spread (first probes fall within one 0.2 s interval)
        self.events = HealthEventWriter(KubeEventSink(client, node), window=1.0)
        self.engine = HealthEngine(NetworkProber(), event_hook=self.events.offer, event_min_interval=0.2)
        self.events.member_state = engine_member_state(self.engine)
        self.task: asyncio.Task[None] | None = None

    async def __aenter__(self) -> Director:
        await self.engine.start()
        self.task = asyncio.create_task(self.events.run())
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        assert self.task is not None
        self.task.cancel()
        await asyncio.gather(self.task, return_exceptions=True)
        await self.engine.stop()


def resolved_for(vs: dict[str, Any]) -> ResolvedService:
    """The controller's ResolvedService of ``vs`` (its owner reference carries the uid Events point at)."""
    metadata = vs["metadata"]
    owner = {"apiVersion": "lvs.io/v1alpha1", "kind": "VirtualService", "name": metadata["name"],
             "uid": metadata["uid"], "controller": True}
    return ResolvedService.model_validate({
        "metadata": {"name": metadata["name"], "namespace": metadata["namespace"],
                     "ownerReferences": [owner]},
        "spec": {"acceptedGeneration": 1, "virtualServiceUid": metadata["uid"], "service": vs["spec"],
                 "members": []},
    })


async def events_of(client: KubeClient, namespace: str, name: str) -> list[dict[str, Any]]:
    listed = await client.list(CORE_EVENT, namespace)
    return [event for event in listed.items if event["involvedObject"].get("name") == name]


async def test_the_active_directors_transitions_become_events_on_the_virtual_service(
    client: KubeClient, namespace: str, kubectl: Callable[..., Any]
) -> None:
    created = await client.create(VIRTUAL_SERVICE, virtual_service(namespace, "web", "203.0.113.10"))
    created_batch = await client.create(VIRTUAL_SERVICE, virtual_service(namespace, "batch", "203.0.113.11"))
    service, batch = f"{namespace}/web", f"{namespace}/batch"
    listener = await asyncio.start_server(lambda _reader, writer: writer.close(), "127.0.0.1", 0)
    port = listener.sockets[0].getsockname()[1]
    member = f"127.0.0.1:{port}"
    async with Director(client, "director-a") as active, Director(client, "director-b") as standby:
        for director in (active, standby):
            director.events.sync({service: resolved_for(created), batch: resolved_for(created_batch)})
        active.engine.set_active("front", True)
        standby.engine.set_active("front", False)
        for director in (active, standby):
            director.engine.subscribe(service, member, "127.0.0.1", port, CHECK, group="front")
        await eventually(lambda: active.events.posted >= 1, "MemberHealthy posted")

        listener.close()
        await listener.wait_closed()
        await eventually(lambda: active.events.posted >= 2, "MemberUnhealthy posted")
        # the standby probed too and saw the same failure: it just does not post
        await eventually(lambda: standby.engine.health(service, member) is False, "the standby's verdict")

        # a rack outage in miniature: fifty members of one service fail together -> one Event
        refusing = refusing_ports(50)
        try:
            for bound in refusing:
                port_ = bound.getsockname()[1]
                active.engine.subscribe(batch, f"127.0.0.1:{port_}", "127.0.0.1", port_, CHECK, group="front")
            await eventually(lambda: active.events.posted >= 3, "the batch's Event posted")
        finally:
            for bound in refusing:
                bound.close()
        assert (active.events.posted, active.events.failed) == (3, 0)
        assert standby.events.posted == 0 and standby.events.stats()["offered"] == 0

    web_events = await events_of(client, namespace, "web")
    assert {(e["reason"], e["type"]) for e in web_events} == {("MemberHealthy", "Normal"),
                                                              ("MemberUnhealthy", "Warning")}
    for event in web_events:
        assert (event["reportingComponent"], event["reportingInstance"]) == ("lvs-agent", "director-a")
        assert event["involvedObject"] == {"apiVersion": "lvs.io/v1alpha1", "kind": "VirtualService",
                                           "name": "web", "namespace": namespace,
                                           "uid": created["metadata"]["uid"]}
        assert member in event["message"] and "TCP" in event["message"]
    [down] = [e for e in web_events if e["reason"] == "MemberUnhealthy"]
    # the last error, as the probe said it (refused, or reset when the listener closed mid-handshake)
    assert re.search(r"last: ECONN(REFUSED|RESET)", down["message"]), down["message"]
    [batch_event] = await events_of(client, namespace, "batch")
    assert batch_event["message"].startswith("50 members unhealthy: member 127.0.0.1:")
    assert batch_event["message"].endswith(" more") and len(batch_event["message"]) <= 1024

    # what an operator types
    shown = await asyncio.to_thread(kubectl, "events", "-n", namespace, "--for", "virtualservice/web")
    assert "MemberUnhealthy" in shown.stdout and "MemberHealthy" in shown.stdout, shown.stdout
    assert member in shown.stdout
    listed = await asyncio.to_thread(kubectl, "get", "events", "-n", namespace, "-o", "json")
    items = json.loads(listed.stdout)["items"]
    reasons = {(item["involvedObject"]["name"], item["reason"]) for item in items}
    assert reasons == {("web", "MemberHealthy"), ("web", "MemberUnhealthy"), ("batch", "MemberUnhealthy")}
