"""Which VirtualServices a watch event may change: indexes from referenced objects back to them.

Kept incrementally (each event updates the index with the previous and current version of the object), so
a change among 10,000 VirtualServices costs a few dict lookups, not a scan.
"""

from __future__ import annotations

import ipaddress
from collections import defaultdict
from collections.abc import Mapping
from typing import Any

from lvs_controller.world import JsonObject, Kind, ObjectKey, World, key_of

SERVICE_NAME_LABEL = "kubernetes.io/service-name"


def _spec(obj: Mapping[str, Any] | None) -> Mapping[str, Any]:
    spec = (obj or {}).get("spec")
    return spec if isinstance(spec, Mapping) else {}


def _address(value: Any) -> str:
    """Canonical text of an address (the models store it so; a raw watch object may not)."""
    try:
        return str(ipaddress.ip_address(str(value)))
    except ValueError:
        return str(value)


def _vs_links(obj: Mapping[str, Any] | None) -> tuple[set[str], set[str], set[str]]:
    """(addresses: the VIP and the natGateway, firewall-mark claims, pool names) referenced by a
    VirtualService or a ResolvedService."""
    if obj is None:
        return set(), set(), set()
    spec = _spec(obj)
    if obj.get("kind") == "ResolvedService":
        service = spec.get("service")
        spec = service if isinstance(service, Mapping) else {}
    vips = {_address(spec["vip"])} if spec.get("vip") else set()
    gateway = spec.get("natGateway")
    if isinstance(gateway, Mapping) and gateway.get("address"):
        vips.add(_address(gateway["address"]))
    marks = {str(spec["firewallMark"])} if spec.get("firewallMark") else set()
    pool_ref = spec.get("poolRef")
    pools = {str(pool_ref["name"])} if isinstance(pool_ref, Mapping) and pool_ref.get("name") else set()
    return vips, marks, pools


def _pool_links(obj: Mapping[str, Any] | None) -> tuple[set[str], bool, bool]:
    """(Service names, selects pods, selects nodes) of a RealServerPool."""
    selector = _spec(obj).get("selector")
    if not isinstance(selector, Mapping):
        return set(), False, False
    service = selector.get("service")
    services = {str(service["name"])} if isinstance(service, Mapping) and service.get("name") else set()
    return services, selector.get("pods") is not None, selector.get("nodes") is not None


def _status_only(previous: Mapping[str, Any] | None, current: Mapping[str, Any] | None) -> bool:
    """Both versions exist and only what validation and resolution do not read (status) differs."""
    if previous is None or current is None:
        return False
    return bool(
        previous.get("spec") == current.get("spec")
        and (previous.get("metadata") or {}).get("deletionTimestamp")
        == (current.get("metadata") or {}).get("deletionTimestamp")
    )


class DependencyIndex:
    def __init__(self) -> None:
        self.by_vip: dict[str, set[ObjectKey]] = defaultdict(set)
        self.by_mark: dict[str, set[ObjectKey]] = defaultdict(set)
        self.by_pool: dict[ObjectKey, set[ObjectKey]] = defaultdict(set)
        self.pools_by_service: dict[ObjectKey, set[ObjectKey]] = defaultdict(set)
        self.pod_pools: dict[str, set[ObjectKey]] = defaultdict(set)
        self.node_pools: set[ObjectKey] = set()
        self.virtual_services: set[ObjectKey] = set()
        # VS links by source kind, so VS and RS links of one key are tracked separately.
        self._links: dict[tuple[Kind, ObjectKey], tuple[set[str], set[str], set[str]]] = {}

    def _relink_service(self, kind: Kind, key: ObjectKey, obj: Mapping[str, Any] | None) -> None:
        namespace = key[0]
        old_vips, old_marks, old_pools = self._links.pop((kind, key), (set(), set(), set()))
        for vip in old_vips:
            self.by_vip[vip].discard(key)
        for mark in old_marks:
            self.by_mark[mark].discard(key)
        for pool in old_pools:
            self.by_pool[(namespace, pool)].discard(key)
        if obj is None:
            return
        links = _vs_links(obj)
        self._links[(kind, key)] = links
        vips, marks, pools = links
        for vip in vips:
            self.by_vip[vip].add(key)
        for mark in marks:
            self.by_mark[mark].add(key)
        for pool in pools:
            self.by_pool[(namespace, pool)].add(key)

    def _relink_pool(self, key: ObjectKey, previous: JsonObject | None, current: JsonObject | None) -> None:
        namespace = key[0]
        services, pods, nodes = _pool_links(previous)
        for service in services:
            self.pools_by_service[(namespace, service)].discard(key)
        self.pod_pools[namespace].discard(key)
        self.node_pools.discard(key)
        services, pods, nodes = _pool_links(current)
        for service in services:
            self.pools_by_service[(namespace, service)].add(key)
        if pods:
            self.pod_pools[namespace].add(key)
        if nodes:
            self.node_pools.add(key)

    def _services_of_pools(self, pools: set[ObjectKey]) -> set[ObjectKey]:
        keys: set[ObjectKey] = set()
        for pool in pools:
            keys |= self.by_pool.get(pool, set())
        return keys

    def _claim_neighbours(self, key: ObjectKey, kind: Kind) -> set[ObjectKey]:
        vips, marks, _ = self._links.get((kind, key), (set(), set(), set()))
        keys: set[ObjectKey] = set()
        for vip in vips:
            keys |= self.by_vip.get(vip, set())
        for mark in marks:
            keys |= self.by_mark.get(mark, set())
        return keys

    def update(
        self, world: World, kind: Kind, previous: JsonObject | None, current: JsonObject | None
    ) -> set[ObjectKey]:
        """Record the event in the indexes and return the VirtualService keys to reconcile."""
        obj = current if current is not None else previous
        if obj is None:
            return set()
        key = key_of(obj)
        if kind in (Kind.VIRTUAL_SERVICE, Kind.RESOLVED_SERVICE):
            # Neighbours on the same VIP/mark before and after: a freed or newly taken claim changes them.
            affected = self._claim_neighbours(key, kind)
            self._relink_service(kind, key, current)
            affected |= self._claim_neighbours(key, kind)
            if kind is Kind.VIRTUAL_SERVICE:
                if current is None:
                    self.virtual_services.discard(key)
                else:
                    self.virtual_services.add(key)
            affected.add(key)
            return affected
        if kind is Kind.REAL_SERVER_POOL:
            self._relink_pool(key, previous, current)
            if _status_only(previous, current):
                return set()  # its status (ours) changed: nothing a VirtualService reads
            return set(self.by_pool.get(key, set()))
        if kind is Kind.SERVICE:
            return self._services_of_pools(self.pools_by_service.get(key, set()))
        if kind is Kind.ENDPOINT_SLICE:
            names = {
                str(((o or {}).get("metadata") or {}).get("labels", {}).get(SERVICE_NAME_LABEL) or "")
                for o in (previous, current)
            }
            pools: set[ObjectKey] = set()
            for name in names - {""}:
                pools |= self.pools_by_service.get((key[0], name), set())
            return self._services_of_pools(pools)
        if kind is Kind.POD:
            return self._services_of_pools(self.pod_pools.get(key[0], set()))
        if kind is Kind.NODE:
            return self._services_of_pools(self.node_pools)
        if kind is Kind.VIP_POOL:
            if _status_only(previous, current):
                return set()  # claimedAddresses moved: no VirtualService depends on it
            return set(self.virtual_services)
        if kind is Kind.NAMESPACE:
            return {vs for vs in self.virtual_services if vs[0] == key[1]}
        if kind is Kind.DIRECTOR_REPORT:
            return self._report_changes(previous, current)
        return set()

    def _report_changes(self, previous: JsonObject | None, current: JsonObject | None) -> set[ObjectKey]:
        """Only the services whose entry changed (heartbeats alone reconcile nothing)."""
        before = (previous or {}).get("status") or {}
        after = (current or {}).get("status") or {}
        old_services = before.get("services") or {}
        new_services = after.get("services") or {}
        affected: set[ObjectKey] = set()
        for name in set(old_services) | set(new_services):
            if old_services.get(name) != new_services.get(name) and "/" in name:
                namespace, _, vs_name = name.partition("/")
                affected.add((namespace, vs_name))
        old_groups = {str(g.get("name")): g for g in before.get("vipGroups") or [] if isinstance(g, dict)}
        new_groups = {str(g.get("name")): g for g in after.get("vipGroups") or [] if isinstance(g, dict)}
        for name in set(old_groups) | set(new_groups):
            if old_groups.get(name) != new_groups.get(name):
                for group in (old_groups.get(name), new_groups.get(name)):
                    for vip in (group or {}).get("vips") or []:
                        affected |= self.by_vip.get(_address(vip), set())
        return {key for key in affected if key in self.virtual_services}
