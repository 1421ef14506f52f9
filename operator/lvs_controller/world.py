"""The controller's view of the cluster: every watched object by kind and key, fed by kopf's watch events.

Reconciles read only from here (no API reads in the hot path), so 10,000 VirtualServices reconcile without
10,000 GETs, and a reconcile is a pure function of this snapshot. Pods, Nodes and EndpointSlices are kept
as small projections (what resolution needs), not whole objects.
"""

from __future__ import annotations

import enum
import sys
from collections.abc import Iterator, Mapping
from typing import Any

JsonObject = dict[str, Any]
ObjectKey = tuple[str, str]  # (namespace or "", name)


class Kind(enum.StrEnum):
    VIRTUAL_SERVICE = "VirtualService"
    REAL_SERVER_POOL = "RealServerPool"
    VIP_POOL = "VIPPool"
    RESOLVED_SERVICE = "ResolvedService"
    DIRECTOR_REPORT = "DirectorReport"
    SERVICE = "Service"
    ENDPOINT_SLICE = "EndpointSlice"
    POD = "Pod"
    NODE = "Node"
    NAMESPACE = "Namespace"


def key_of(obj: Mapping[str, Any]) -> ObjectKey:
    metadata = obj.get("metadata") or {}
    return str(metadata.get("namespace") or ""), str(metadata.get("name") or "")


def resource_version_of(obj: Mapping[str, Any]) -> int:
    """resourceVersion as a number when it is one (it is on etcd and on the embedded server), else -1."""
    text = str((obj.get("metadata") or {}).get("resourceVersion") or "")
    return int(text) if text.isdigit() else -1


def _project_pod(pod: Mapping[str, Any]) -> JsonObject:
    metadata = pod.get("metadata") or {}
    status = pod.get("status") or {}
    spec = pod.get("spec") or {}
    ready = any(
        condition.get("type") == "Ready" and condition.get("status") == "True"
        for condition in status.get("conditions") or []
    )
    addresses = [str(entry.get("ip")) for entry in status.get("podIPs") or [] if entry.get("ip")]
    if not addresses and status.get("podIP"):
        addresses = [str(status["podIP"])]
    return {
        "metadata": {
            "namespace": metadata.get("namespace", ""),
            "name": metadata.get("name", ""),
            "labels": dict(metadata.get("labels") or {}),
            "resourceVersion": metadata.get("resourceVersion", ""),
            "deletionTimestamp": metadata.get("deletionTimestamp"),
        },
        "ready": ready,
        "terminating": bool(metadata.get("deletionTimestamp")),
        "addresses": addresses,
        "nodeName": spec.get("nodeName", ""),
    }


def _project_node(node: Mapping[str, Any]) -> JsonObject:
    metadata = node.get("metadata") or {}
    status = node.get("status") or {}
    ready = any(
        condition.get("type") == "Ready" and condition.get("status") == "True"
        for condition in status.get("conditions") or []
    )
    addresses: dict[str, list[str]] = {}
    for entry in status.get("addresses") or []:
        if entry.get("address"):
            addresses.setdefault(str(entry.get("type")), []).append(str(entry["address"]))
    return {
        "metadata": {
            "name": metadata.get("name", ""),
            "labels": dict(metadata.get("labels") or {}),
            "resourceVersion": metadata.get("resourceVersion", ""),
        },
        "ready": ready,
        "unschedulable": bool((node.get("spec") or {}).get("unschedulable")),
        "addresses": addresses,
    }


def _project_namespace(namespace: Mapping[str, Any]) -> JsonObject:
    metadata = namespace.get("metadata") or {}
    return {
        "metadata": {
            "name": metadata.get("name", ""),
            "labels": dict(metadata.get("labels") or {}),
            "resourceVersion": metadata.get("resourceVersion", ""),
        }
    }


_PROJECTIONS = {Kind.POD: _project_pod, Kind.NODE: _project_node, Kind.NAMESPACE: _project_namespace}


SERVICE_NAME_LABEL = "kubernetes.io/service-name"
LAST_APPLIED = "kubectl.kubernetes.io/last-applied-configuration"


def _shared(value: Any) -> Any:
    """A copy whose keys and short strings are interned: every parsed object otherwise carries its own
    copy of "apiVersion", "TCP", "Ready"... (measured: half the memory of a cached ResolvedService)."""
    if isinstance(value, dict):
        return {sys.intern(key): _shared(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_shared(item) for item in value]
    if isinstance(value, str) and len(value) <= 32:
        return sys.intern(value)
    return value


def _slim(obj: Mapping[str, Any]) -> JsonObject:
    """The object without what no reconcile reads and what costs most memory (managedFields, kubectl's
    last-applied annotation: a second copy of the whole spec), with shared strings."""
    slim = dict(obj)
    metadata = dict(slim.get("metadata") or {})
    metadata.pop("managedFields", None)
    annotations = metadata.get("annotations")
    if annotations and LAST_APPLIED in annotations:
        metadata["annotations"] = {k: v for k, v in annotations.items() if k != LAST_APPLIED}
    slim["metadata"] = metadata
    shared: JsonObject = _shared(slim)
    return shared


def _service_of_slice(obj: Mapping[str, Any] | None) -> str:
    labels = ((obj or {}).get("metadata") or {}).get("labels") or {}
    return str(labels.get(SERVICE_NAME_LABEL) or "")


class World:
    """Objects by kind and key; ``apply_event`` keeps the newest version of each.

    Secondary indexes (objects by namespace, EndpointSlices by Service) keep every reconcile's reads
    proportional to what it uses, not to the size of the cluster.
    """

    def __init__(self) -> None:
        self._objects: dict[Kind, dict[ObjectKey, JsonObject]] = {kind: {} for kind in Kind}
        self._by_namespace: dict[Kind, dict[str, dict[ObjectKey, None]]] = {kind: {} for kind in Kind}
        self._slices_by_service: dict[tuple[str, str], dict[ObjectKey, None]] = {}

    def _index(
        self, kind: Kind, key: ObjectKey, previous: JsonObject | None, current: JsonObject | None
    ) -> None:
        if previous is None and current is not None:
            self._by_namespace[kind].setdefault(key[0], {})[key] = None
        elif previous is not None and current is None:
            self._by_namespace[kind].get(key[0], {}).pop(key, None)
        if kind is Kind.ENDPOINT_SLICE:
            old, new = _service_of_slice(previous), _service_of_slice(current)
            if old and (old != new or current is None):
                self._slices_by_service.get((key[0], old), {}).pop(key, None)
            if new and current is not None:
                self._slices_by_service.setdefault((key[0], new), {})[key] = None

    def apply_event(
        self, kind: Kind, event_type: str | None, obj: Mapping[str, Any]
    ) -> tuple[JsonObject | None, JsonObject | None]:
        """Record one watch event; returns (previous, current) as stored (None when absent).

        An event older than what is stored (a write's response arrived first) is ignored, so the cache
        never goes back in time.
        """
        key = key_of(obj)
        store = self._objects[kind]
        previous = store.get(key)
        if event_type == "DELETED":
            if previous is not None and resource_version_of(previous) > resource_version_of(obj) >= 0:
                return previous, previous
            store.pop(key, None)
            self._index(kind, key, previous, None)
            return previous, None
        if previous is not None and resource_version_of(previous) >= resource_version_of(obj) >= 0:
            return previous, previous  # older, or the echo of our own write already stored
        projection = _PROJECTIONS.get(kind)
        current = projection(obj) if projection else _slim(obj)
        store[key] = current
        self._index(kind, key, previous, current)
        return previous, current

    def get(self, kind: Kind, key: ObjectKey) -> JsonObject | None:
        return self._objects[kind].get(key)

    def items(self, kind: Kind) -> Iterator[tuple[ObjectKey, JsonObject]]:
        return iter(list(self._objects[kind].items()))

    def values(self, kind: Kind) -> list[JsonObject]:
        return list(self._objects[kind].values())

    def in_namespace(self, kind: Kind, namespace: str) -> list[JsonObject]:
        store = self._objects[kind]
        return [store[key] for key in self._by_namespace[kind].get(namespace, {}) if key in store]

    def slices_of_service(self, namespace: str, service: str) -> list[JsonObject]:
        """EndpointSlices labelled ``kubernetes.io/service-name: service`` in ``namespace``."""
        store = self._objects[Kind.ENDPOINT_SLICE]
        return [store[key] for key in self._slices_by_service.get((namespace, service), {}) if key in store]

    def count(self, kind: Kind) -> int:
        return len(self._objects[kind])
