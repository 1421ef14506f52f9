"""Pool resolution (pure): a VirtualService spec and its pool, plus the cache, give the member list.

- static members as written;
- Service members from the Service's EndpointSlices (label ``kubernetes.io/service-name``) of the VIP's
  family: serving endpoints become members; terminating ones stay, drained (weight 0, ``terminating``) so
  established connections finish; endpoints neither ready nor terminating (starting up) are left out;
- pod members: pod IPs of the VIP's family; a pod being deleted is drained like a terminating endpoint;
  unready pods are left out;
- node members: Ready nodes' InternalIP/ExternalIP of the VIP's family; a cordoned node is drained.

The output is sorted and de-duplicated so the same inputs always give byte-identical ResolvedServices
(no spurious writes).
"""

from __future__ import annotations

import functools
import ipaddress
from collections import OrderedDict
from collections.abc import Iterable, Mapping
from typing import Any

from lvs_api.models import (
    MemberSelector,
    MemberSource,
    RealServerPoolSpec,
    ResolvedMember,
    ServiceMembers,
    VirtualServiceSpec,
    is_ipv6,
)

from lvs_controller.world import Kind, World


def _family_matches(address: str, ipv6: bool) -> bool:
    return bool(address) and is_ipv6(address) == ipv6


def _selected_port_of_slice(
    endpoint_slice: Mapping[str, Any], service: Mapping[str, Any] | None, wanted: int | str | None
) -> tuple[bool, int | None]:
    """(usable, port) of a slice for the pool's ``selector.service.port``.

    ``None`` keeps the VirtualService port (member port None). A name picks the slice port of that name;
    a number is a *Service* port, mapped to its name through the Service, then to the slice port.
    """
    if wanted is None:
        return True, None
    ports = endpoint_slice.get("ports") or []
    name: str | None = wanted if isinstance(wanted, str) else None
    if isinstance(wanted, int):
        service_ports = ((service or {}).get("spec") or {}).get("ports") or []
        matching = [p for p in service_ports if p.get("port") == wanted]
        if not matching:
            return False, None
        name = str(matching[0].get("name") or "")
    for port in ports:
        if str(port.get("name") or "") == (name or "") and port.get("port"):
            return True, int(port["port"])
    return False, None


def _member(
    selector: MemberSelector,
    address: str,
    port: int | None,
    source: MemberSource,
    *,
    ready: bool = True,
    serving: bool = True,
    terminating: bool = False,
    node_name: str | None = None,
    target: str | None = None,
) -> ResolvedMember:
    return ResolvedMember(
        address=address,
        port=port,
        weight=0 if terminating else selector.weight,
        upper_threshold=selector.upper_threshold,
        lower_threshold=selector.lower_threshold,
        source=source,
        ready=ready,
        serving=serving,
        terminating=terminating,
        node_name=node_name or None,
        check_port=selector.check_port,
        target=target,
    )


def service_members(
    selector: MemberSelector, service_ref: ServiceMembers, namespace: str, ipv6: bool, world: World
) -> list[ResolvedMember]:
    service = world.get(Kind.SERVICE, (namespace, service_ref.name))
    members: list[ResolvedMember] = []
    for endpoint_slice in world.slices_of_service(namespace, service_ref.name):
        if endpoint_slice.get("addressType") != ("IPv6" if ipv6 else "IPv4"):
            continue
        usable, port = _selected_port_of_slice(endpoint_slice, service, service_ref.port)
        if not usable:
            continue
        for endpoint in endpoint_slice.get("endpoints") or []:
            conditions = endpoint.get("conditions") or {}
            # Per the EndpointSlice API, a nil ready/serving means true (unknown treated as ready).
            ready = conditions.get("ready") is not False
            serving = conditions.get("serving", conditions.get("ready")) is not False
            terminating = conditions.get("terminating") is True
            if not serving and not terminating:
                continue
            target_ref = endpoint.get("targetRef") or {}
            target = (
                f"{str(target_ref.get('kind', '')).lower()}/{target_ref.get('name')}" if target_ref else None
            )
            for address in endpoint.get("addresses") or []:
                if not _family_matches(str(address), ipv6):
                    continue
                members.append(
                    _member(
                        selector,
                        str(address),
                        port,
                        MemberSource.SERVICE,
                        ready=ready,
                        serving=serving,
                        terminating=terminating,
                        node_name=endpoint.get("nodeName"),
                        target=target,
                    )
                )
    return members


def pod_members(selector: MemberSelector, namespace: str, ipv6: bool, world: World) -> list[ResolvedMember]:
    assert selector.pods is not None
    members = []
    for pod in world.in_namespace(Kind.POD, namespace):
        labels = (pod.get("metadata") or {}).get("labels") or {}
        if not selector.pods.selector.matches(labels):
            continue
        terminating = bool(pod.get("terminating"))
        if not pod.get("ready") and not terminating:
            continue
        for address in pod.get("addresses") or []:
            if _family_matches(address, ipv6):
                members.append(
                    _member(
                        selector,
                        address,
                        selector.pods.port,
                        MemberSource.POD,
                        ready=bool(pod.get("ready")),
                        terminating=terminating,
                        node_name=pod.get("nodeName") or None,
                        target=f"pod/{pod['metadata']['name']}",
                    )
                )
                break
    return members


def node_members(selector: MemberSelector, ipv6: bool, world: World) -> list[ResolvedMember]:
    assert selector.nodes is not None
    members = []
    for node in world.values(Kind.NODE):
        labels = (node.get("metadata") or {}).get("labels") or {}
        if not selector.nodes.selector.matches(labels) or not node.get("ready"):
            continue
        name = str(node["metadata"]["name"])
        addresses = (node.get("addresses") or {}).get(selector.nodes.address_type.value) or []
        for address in addresses:
            if _family_matches(address, ipv6):
                members.append(
                    _member(
                        selector,
                        address,
                        selector.nodes.port,
                        MemberSource.NODE,
                        terminating=bool(node.get("unschedulable")),
                        node_name=name,
                        target=f"node/{name}",
                    )
                )
                break
    return members


def _dedupe_sorted(members: Iterable[ResolvedMember]) -> list[ResolvedMember]:
    """One member per (address, port); a live entry beats a draining duplicate (e.g. two slices)."""
    chosen: dict[tuple[str, int], ResolvedMember] = {}
    for member in members:
        key = (member.address, member.port or 0)
        existing = chosen.get(key)
        if existing is None or (existing.terminating and not member.terminating):
            chosen[key] = member
    return [
        chosen[key] for key in sorted(chosen, key=lambda k: (is_ipv6(k[0]), _address_sort_key(k[0]), k[1]))
    ]


@functools.lru_cache(maxsize=65536)
def _address_sort_key(address: str) -> tuple[int, ...]:
    return tuple(ipaddress.ip_address(address).packed)


def resolve_members(
    spec: VirtualServiceSpec, pool: RealServerPoolSpec, namespace: str, world: World
) -> list[ResolvedMember]:
    return resolve_pool_members(pool, namespace, spec.ipv6, world)


_STATIC_MEMBERS: OrderedDict[tuple[int, bool], tuple[RealServerPoolSpec, list[ResolvedMember]]] = (
    OrderedDict()
)
STATIC_CACHE_SIZE = 256


def static_members(pool: RealServerPoolSpec, ipv6: bool) -> list[ResolvedMember]:
    """The pool's static members of one family, sorted, built once per parsed pool version.

    Pool specs come from the controller's parse cache (one frozen model per object version), so a pool
    shared by many VirtualServices is not turned into members again for each (a burst of 1,000 spent a
    third of the controller's CPU here).
    """
    key = (id(pool), ipv6)
    entry = _STATIC_MEMBERS.get(key)
    if entry is not None and entry[0] is pool:
        _STATIC_MEMBERS.move_to_end(key)
        return list(entry[1])
    members = _dedupe_sorted(
        ResolvedMember(
            address=m.address,
            port=m.port,
            weight=m.weight,
            upper_threshold=m.upper_threshold,
            lower_threshold=m.lower_threshold,
            source=MemberSource.STATIC,
            check_port=m.check_port,
        )
        for m in pool.members
        if _family_matches(m.address, ipv6)
    )
    _STATIC_MEMBERS[key] = (pool, members)
    while len(_STATIC_MEMBERS) > STATIC_CACHE_SIZE:
        _STATIC_MEMBERS.popitem(last=False)
    return list(members)


def resolve_pool_members(
    pool: RealServerPoolSpec, namespace: str, ipv6: bool, world: World
) -> list[ResolvedMember]:
    """The pool's members of one address family."""
    members = static_members(pool, ipv6)
    selector = pool.selector
    if selector is None:
        return members  # already de-duplicated and sorted
    if selector is not None:
        if selector.service is not None:
            members += service_members(selector, selector.service, namespace, ipv6, world)
        elif selector.pods is not None:
            members += pod_members(selector, namespace, ipv6, world)
        elif selector.nodes is not None:
            members += node_members(selector, ipv6, world)
    return _dedupe_sorted(members)


def resolve_fallback(spec: VirtualServiceSpec) -> list[ResolvedMember]:
    return _dedupe_sorted(
        ResolvedMember(address=m.address, port=m.port, weight=m.weight, source=MemberSource.STATIC)
        for m in spec.fallback
    )
