"""Kubernetes Events (core/v1, which ``kubectl describe`` and ``kubectl get events`` show everywhere).

Repeats of the same (object, type, reason, message) from this process bump ``count`` on the existing Event
instead of creating a new one, like client-go's event correlator, so a flapping object cannot flood etcd.
"""

from __future__ import annotations

import datetime
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal

from lvs_kube.client import JsonObject, KubeClient
from lvs_kube.errors import ApiError, NotFound
from lvs_kube.resources import CORE_EVENT

EventType = Literal["Normal", "Warning"]
MAX_MESSAGE_LENGTH = 1024


def now_rfc3339() -> str:
    return datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


@dataclass
class _Emitted:
    name: str
    namespace: str
    count: int


def involved_object(obj: Mapping[str, Any]) -> JsonObject:
    """The ObjectReference of ``obj`` for an Event's ``involvedObject``."""
    metadata = obj.get("metadata") or {}
    reference: JsonObject = {
        "apiVersion": obj.get("apiVersion", ""),
        "kind": obj.get("kind", ""),
        "name": metadata.get("name", ""),
        "uid": metadata.get("uid", ""),
    }
    if metadata.get("namespace"):
        reference["namespace"] = metadata["namespace"]
    return reference


class EventRecorder:
    """Posts Events about objects on behalf of one component."""

    def __init__(self, client: KubeClient, component: str, instance: str = "") -> None:
        self._client = client
        self._component = component
        self._instance = instance or component
        self._emitted: dict[tuple[str, str, str, str], _Emitted] = {}

    async def emit(self, obj: Mapping[str, Any], event_type: EventType, reason: str, message: str) -> None:
        """Record an Event; API failures are swallowed (events are best effort, never block a reconcile)."""
        reference = involved_object(obj)
        message = message[:MAX_MESSAGE_LENGTH]
        key = (str(reference["uid"] or reference["name"]), event_type, reason, message)
        timestamp = now_rfc3339()
        previous = self._emitted.get(key)
        try:
            if previous is not None:
                previous.count += 1
                try:
                    await self._client.patch(
                        CORE_EVENT,
                        previous.name,
                        {"count": previous.count, "lastTimestamp": timestamp},
                        previous.namespace,
                    )
                    return
                except NotFound:
                    del self._emitted[key]
            namespace = str(reference.get("namespace") or "default")
            body: JsonObject = {
                "apiVersion": "v1",
                "kind": "Event",
                "metadata": {"generateName": f"{reference['name']}.", "namespace": namespace},
                "involvedObject": reference,
                "type": event_type,
                "reason": reason,
                "message": message,
                "source": {"component": self._component},
                "reportingComponent": self._component,
                "reportingInstance": self._instance,
                "firstTimestamp": timestamp,
                "lastTimestamp": timestamp,
                "count": 1,
            }
            created = await self._client.create(CORE_EVENT, body, namespace)
            name = str((created.get("metadata") or {}).get("name") or "")
            if name:
                self._emitted[key] = _Emitted(name, namespace, 1)
        except (ApiError, OSError, TimeoutError):
            return
