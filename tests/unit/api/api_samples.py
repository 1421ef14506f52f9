"""Sample objects shared by the lvs_api unit tests (documentation address ranges only)."""

from __future__ import annotations

import copy
from typing import Any


def vs_spec(**overrides: Any) -> dict[str, Any]:
    """A valid VirtualService spec (wire form), with top-level keys replaced by ``overrides``."""
    spec: dict[str, Any] = {
        "vip": "203.0.113.10",
        "ports": [{"port": 80, "protocol": "TCP"}, {"port": 443, "protocol": "TCP"}],
        "scheduler": {"name": "wlc"},
        "forwarding": "NAT",
        "persistence": {"timeoutSeconds": 300, "netmask": "255.255.255.0"},
        "healthCheck": {
            "type": "HTTP",
            "http": {"path": "/healthz", "expectStatus": [200]},
            "intervalSeconds": 2,
            "timeoutSeconds": 1,
            "rise": 2,
            "fall": 3,
        },
        "onFailure": "Quiesce",
        "poolRef": {"name": "web-backends"},
    }
    spec.update(copy.deepcopy(overrides))
    return {key: value for key, value in spec.items() if value is not None}


def virtual_service(name: str = "web", namespace: str = "shop", **overrides: Any) -> dict[str, Any]:
    return {
        "apiVersion": "lvs.io/v1alpha1",
        "kind": "VirtualService",
        "metadata": {"name": name, "namespace": namespace, "generation": 1, "uid": f"uid-{name}"},
        "spec": vs_spec(**overrides),
    }


def pool(name: str = "web-backends", namespace: str = "shop", **spec: Any) -> dict[str, Any]:
    body = spec or {
        "members": [
            {"address": "198.51.100.11", "weight": 1},
            {"address": "198.51.100.12", "weight": 2, "upperThreshold": 100, "lowerThreshold": 50},
        ]
    }
    return {
        "apiVersion": "lvs.io/v1alpha1",
        "kind": "RealServerPool",
        "metadata": {"name": name, "namespace": namespace},
        "spec": body,
    }


def vip_pool(name: str = "shop-vips", **spec: Any) -> dict[str, Any]:
    body = spec or {"addresses": ["203.0.113.0/28", "2001:db8:10::/120"], "namespaces": ["shop"]}
    return {"apiVersion": "lvs.io/v1alpha1", "kind": "VIPPool", "metadata": {"name": name}, "spec": body}
