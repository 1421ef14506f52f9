"""Builders of API objects as the watch delivers them (plain dicts), for the controller's unit tests."""

from __future__ import annotations

import itertools
from typing import Any

from lvs_controller.reconciler import Reconciler
from lvs_controller.world import Kind, World

_versions = itertools.count(1)


def meta(name: str, namespace: str | None = None, **extra: Any) -> dict[str, Any]:
    metadata: dict[str, Any] = {
        "name": name,
        "uid": f"uid-{namespace}-{name}",
        "resourceVersion": str(next(_versions)),
        "generation": 1,
        "creationTimestamp": "2026-01-01T00:00:00Z",
    }
    if namespace is not None:
        metadata["namespace"] = namespace
    metadata.update(extra)
    return metadata


def virtual_service(name: str, namespace: str = "shop", **spec: Any) -> dict[str, Any]:
    base: dict[str, Any] = {"vip": "203.0.113.10", "ports": [{"port": 80}], "poolRef": {"name": "web"}}
    base.update(spec)
    created = spec.pop("created", None)
    base.pop("created", None)
    metadata = meta(name, namespace)
    if created:
        metadata["creationTimestamp"] = created
    return {"apiVersion": "lvs.io/v1alpha1", "kind": "VirtualService", "metadata": metadata, "spec": base}


def pool(name: str = "web", namespace: str = "shop", **spec: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "members": [{"address": "198.51.100.11"}, {"address": "198.51.100.12", "weight": 2}]
    }
    body.update(spec)
    return {
        "apiVersion": "lvs.io/v1alpha1",
        "kind": "RealServerPool",
        "metadata": meta(name, namespace),
        "spec": body,
    }


def vip_pool(
    name: str = "public", addresses: tuple[str, ...] = ("203.0.113.0/24",), **spec: Any
) -> dict[str, Any]:
    body: dict[str, Any] = {"addresses": list(addresses), "namespaces": ["shop"]}
    body.update(spec)
    return {"apiVersion": "lvs.io/v1alpha1", "kind": "VIPPool", "metadata": meta(name), "spec": body}


def endpoint_slice(
    service: str,
    endpoints: list[dict[str, Any]],
    name: str | None = None,
    namespace: str = "shop",
    ports: list[dict[str, Any]] | None = None,
) -> dict[str, Any]:
    return {
        "apiVersion": "discovery.k8s.io/v1",
        "kind": "EndpointSlice",
        "metadata": meta(name or f"{service}-abc", namespace, labels={"kubernetes.io/service-name": service}),
        "addressType": "IPv4",
        "endpoints": endpoints,
        "ports": ports if ports is not None else [{"name": "http", "port": 8080, "protocol": "TCP"}],
    }


def endpoint(
    address: str, ready: bool = True, serving: bool = True, terminating: bool = False
) -> dict[str, Any]:
    return {
        "addresses": [address],
        "conditions": {"ready": ready, "serving": serving, "terminating": terminating},
    }


def world_with(*objects: tuple[Kind, dict[str, Any]]) -> tuple[World, Reconciler]:
    world = World()
    reconciler = Reconciler(client=None, world=world, recorder=None)  # type: ignore[arg-type]
    for kind, obj in objects:
        add(reconciler, kind, obj)
    return world, reconciler


def add(
    reconciler: Reconciler, kind: Kind, obj: dict[str, Any], event: str = "ADDED"
) -> set[tuple[str, str]]:
    previous, current = reconciler.world.apply_event(kind, event, obj)
    return reconciler.index.update(reconciler.world, kind, previous, current)
