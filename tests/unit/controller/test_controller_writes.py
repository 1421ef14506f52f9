"""Which writes one reconcile sends: the ResolvedService first, the finalizer only once a director reports
the service, the status from its own lane once what it describes is published, and nothing when nothing
changed. The API client is a recording fake (the narrow interface the reconciler uses)."""

from __future__ import annotations

import itertools
from typing import Any

from controller_fixtures import add, pool, vip_pool, virtual_service, world_with
from lvs_controller.reconciler import FINALIZER, Reconciler
from lvs_controller.world import Kind
from lvs_kube import resources as res

KEY = ("shop", "web")


class RecordingClient:
    """Answers writes like an API server (the object with a new resourceVersion) and records them."""

    def __init__(self, reconciler_world: Any) -> None:
        self.world = reconciler_world
        self.writes: list[str] = []
        self._versions = itertools.count(50000)

    def _stored(self, kind: Kind, namespace: str, name: str) -> dict[str, Any]:
        return dict(self.world.get(kind, (namespace, name)) or {})

    async def apply(self, resource: res.Resource, body: dict[str, Any], **_: Any) -> dict[str, Any]:
        self.writes.append(f"apply {resource.kind}")
        metadata = {**body["metadata"], "resourceVersion": str(next(self._versions))}
        return {**body, "metadata": metadata}

    async def patch(
        self, resource: res.Resource, name: str, patch: dict[str, Any], namespace: str | None = None
    ) -> dict[str, Any]:
        self.writes.append(f"patch {resource.kind}")
        current = self._stored(Kind.VIRTUAL_SERVICE, namespace or "", name)
        metadata = {**current["metadata"], **patch["metadata"], "resourceVersion": str(next(self._versions))}
        return {**current, "metadata": metadata}

    async def patch_status(
        self, resource: res.Resource, name: str, status: dict[str, Any], namespace: str | None = None
    ) -> dict[str, Any]:
        self.writes.append(f"patch {resource.kind}/status")
        current = self._stored(Kind.VIRTUAL_SERVICE, namespace or "", name)
        metadata = {**current["metadata"], "resourceVersion": str(next(self._versions))}
        return {**current, "metadata": metadata, "status": status}


class RecordingEvents:
    def __init__(self) -> None:
        self.reasons: list[str] = []

    async def emit(self, obj: Any, event_type: str, reason: str, message: str) -> None:
        self.reasons.append(reason)


def setup() -> tuple[Reconciler, RecordingClient]:
    world, reconciler = world_with(
        (Kind.VIP_POOL, vip_pool()),
        (Kind.REAL_SERVER_POOL, pool()),
        (Kind.VIRTUAL_SERVICE, virtual_service("web")),
    )
    client = RecordingClient(world)
    reconciler.client = client  # type: ignore[assignment]
    reconciler.recorder = RecordingEvents()  # type: ignore[assignment]
    return reconciler, client


def report_listing(name: str) -> dict[str, Any]:
    entry = {"programmed": True, "reason": "Programmed", "acceptedGeneration": 1, "active": True}
    return {
        "kind": "DirectorReport",
        "metadata": {"name": "node-1", "resourceVersion": "70000"},
        "spec": {"nodeName": "node-1"},
        "status": {"services": {f"shop/{name}": entry}, "vipGroups": []},
    }


async def test_new_service_publishes_and_writes_status_without_a_finalizer_then_nothing() -> None:
    reconciler, client = setup()
    assert await reconciler.reconcile(KEY) is None
    assert client.writes == ["apply ResolvedService", "patch VirtualService/status"]
    vs = reconciler.world.get(Kind.VIRTUAL_SERVICE, KEY)
    assert vs is not None and FINALIZER not in (vs["metadata"].get("finalizers") or [])
    client.writes.clear()
    await reconciler.reconcile(KEY)
    assert client.writes == []  # nothing changed: no write at all


async def test_finalizer_is_added_once_a_director_reports_the_service() -> None:
    reconciler, client = setup()
    await reconciler.reconcile(KEY)
    add(reconciler, Kind.DIRECTOR_REPORT, report_listing("web"))
    client.writes.clear()
    await reconciler.reconcile(KEY)
    assert client.writes[0] == "patch VirtualService"
    vs = reconciler.world.get(Kind.VIRTUAL_SERVICE, KEY)
    assert vs is not None and FINALIZER in vs["metadata"]["finalizers"]
    assert "patch VirtualService/status" in client.writes  # Programmed now
    client.writes.clear()
    await reconciler.reconcile(KEY)
    assert client.writes == []


async def test_status_lane_writes_only_what_is_published() -> None:
    reconciler, client = setup()
    due: list[tuple[str, str]] = []
    reconciler.on_status_due = due.append
    # Before the reconcile published anything, the status lane must not announce it.
    await reconciler.reconcile_status(KEY)
    assert client.writes == []
    await reconciler.reconcile(KEY)
    assert client.writes == ["apply ResolvedService"]
    assert due == [KEY]
    await reconciler.reconcile_status(KEY)
    assert client.writes == ["apply ResolvedService", "patch VirtualService/status"]
    vs = reconciler.world.get(Kind.VIRTUAL_SERVICE, KEY)
    assert vs is not None
    accepted = [c for c in vs["status"]["conditions"] if c["type"] == "Accepted"]
    assert accepted[0]["status"] == "True"
    await reconciler.reconcile_status(KEY)
    assert client.writes == ["apply ResolvedService", "patch VirtualService/status"]
    # A reconcile that changes nothing does not even ask the status lane.
    due.clear()
    await reconciler.reconcile(KEY)
    assert due == []
    assert client.writes == ["apply ResolvedService", "patch VirtualService/status"]


async def test_rejected_service_gets_its_status_and_a_warning_event_from_the_status_lane() -> None:
    reconciler, client = setup()
    reconciler.on_status_due = lambda key: None
    bad = virtual_service("web", vip="192.0.2.10")
    bad["metadata"]["resourceVersion"] = "80000"
    add(reconciler, Kind.VIRTUAL_SERVICE, bad)
    await reconciler.reconcile(KEY)
    assert client.writes == []  # nothing accepted: nothing to publish
    await reconciler.reconcile_status(KEY)
    assert client.writes == ["patch VirtualService/status"]
    assert reconciler.recorder.reasons == ["VIPNotInPool"]  # type: ignore[attr-defined]
