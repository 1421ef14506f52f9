"""An EndpointSlice controller (opt-in): Services with a selector get one EndpointSlice per address
family listing the matching Pods that have a status.podIP, like kube-controller-manager maintains them.
There is no kubelet here: Pods get their IP and Ready condition from whoever patches their status."""

from __future__ import annotations

import ipaddress
import logging
from typing import Any

from .errors import ApiError
from .semantics import ObjectService, WriteOptions

JsonDict = dict[str, Any]
logger = logging.getLogger(__name__)

MANAGED_BY = "endpointslice-controller.k8s.io"
SERVICE_NAME_LABEL = "kubernetes.io/service-name"


def _ready(pod: JsonDict) -> bool:
    conditions = (pod.get("status") or {}).get("conditions") or []
    return any(c.get("type") == "Ready" and c.get("status") == "True" for c in conditions)


def _target_port(service_port: JsonDict, pod: JsonDict) -> int | None:
    target = service_port.get("targetPort", service_port.get("port"))
    if isinstance(target, int):
        return target
    for container in (pod.get("spec") or {}).get("containers") or []:
        for port in container.get("ports") or []:
            if port.get("name") == target:
                return int(port.get("containerPort"))
    return None


def desired_slices(service: JsonDict, pods: list[JsonDict]) -> list[JsonDict]:
    selector: dict[str, str] = (service.get("spec") or {}).get("selector") or {}
    meta = service["metadata"]
    members = [
        pod
        for pod in pods
        if selector
        and all((pod["metadata"].get("labels") or {}).get(k) == v for k, v in selector.items())
        and (pod.get("status") or {}).get("podIP")
    ]
    by_family: dict[str, list[JsonDict]] = {}
    for pod in members:
        address = pod["status"]["podIP"]
        family = "IPv6" if ipaddress.ip_address(address).version == 6 else "IPv4"
        by_family.setdefault(family, []).append(pod)
    service_ports = (service.get("spec") or {}).get("ports") or []
    slices = []
    for family, family_pods in sorted(by_family.items()):
        ports = []
        for service_port in service_ports:
            resolved = _target_port(service_port, family_pods[0])
            if resolved is None:
                continue
            entry: JsonDict = {"port": resolved, "protocol": service_port.get("protocol", "TCP")}
            if service_port.get("name"):
                entry["name"] = service_port["name"]
            ports.append(entry)
        endpoints = []
        for pod in sorted(family_pods, key=lambda p: p["metadata"]["name"]):
            terminating = bool(pod["metadata"].get("deletionTimestamp"))
            ready = _ready(pod) and not terminating
            endpoint: JsonDict = {
                "addresses": [pod["status"]["podIP"]],
                "conditions": {"ready": ready, "serving": _ready(pod), "terminating": terminating},
                "targetRef": {
                    "kind": "Pod",
                    "name": pod["metadata"]["name"],
                    "namespace": pod["metadata"].get("namespace", ""),
                    "uid": pod["metadata"].get("uid", ""),
                },
            }
            node = (pod.get("spec") or {}).get("nodeName")
            if node:
                endpoint["nodeName"] = node
            endpoints.append(endpoint)
        slices.append(
            {
                "apiVersion": "discovery.k8s.io/v1",
                "kind": "EndpointSlice",
                "metadata": {
                    "name": f"{meta['name']}-{family.lower()}",
                    "namespace": meta.get("namespace", ""),
                    "labels": {
                        SERVICE_NAME_LABEL: meta["name"],
                        "endpointslice.kubernetes.io/managed-by": MANAGED_BY,
                    },
                    "ownerReferences": [
                        {
                            "apiVersion": "v1",
                            "kind": "Service",
                            "name": meta["name"],
                            "uid": meta.get("uid", ""),
                            "controller": True,
                            "blockOwnerDeletion": True,
                        }
                    ],
                },
                "addressType": family,
                "endpoints": endpoints,
                "ports": ports,
            }
        )
    return slices


def reconcile_endpoint_slices(objects: ObjectService) -> None:
    services_type = objects.registry.lookup("", "v1", "services")
    slices_type = objects.registry.lookup("discovery.k8s.io", "v1", "endpointslices")
    assert services_type is not None and slices_type is not None
    pods_by_namespace: dict[str, list[JsonDict]] = {}
    for pod in objects.store.list(("", "pods")):
        pods_by_namespace.setdefault(pod["metadata"].get("namespace", ""), []).append(pod)
    wanted: dict[tuple[str, str], JsonDict] = {}
    for service in objects.store.list(services_type.storage_key):
        if service["metadata"].get("deletionTimestamp"):
            continue
        namespace = service["metadata"].get("namespace", "")
        for endpoint_slice in desired_slices(service, pods_by_namespace.get(namespace, [])):
            wanted[(namespace, endpoint_slice["metadata"]["name"])] = endpoint_slice
    options = WriteOptions(field_manager="endpointslice-controller")
    for current in objects.store.list(slices_type.storage_key):
        labels = current["metadata"].get("labels") or {}
        key = (current["metadata"].get("namespace", ""), current["metadata"]["name"])
        if labels.get("endpointslice.kubernetes.io/managed-by") != MANAGED_BY:
            continue
        desired = wanted.pop(key, None)
        try:
            if desired is None:
                objects.delete(slices_type, key[0], key[1], options=WriteOptions())
            elif any(
                current.get(field) != desired.get(field) for field in ("endpoints", "ports", "addressType")
            ):
                updated = {**current, "endpoints": desired["endpoints"], "ports": desired["ports"]}
                objects.update(slices_type, key[0], key[1], updated, options=options)
        except ApiError as error:
            logger.warning("endpointslice %s/%s: %s", key[0], key[1], error.message)
    for (namespace, _), desired in wanted.items():
        try:
            objects.create(slices_type, namespace, desired, options)
        except ApiError as error:
            logger.warning("endpointslice %s/%s: %s", namespace, desired["metadata"]["name"], error.message)
