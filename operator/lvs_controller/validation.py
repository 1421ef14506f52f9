"""Validation beyond the schema: what one object cannot know alone (pure functions over the cache).

Every problem carries a CamelCase reason for the ``Accepted`` condition, the field it is about and the
fix, so ``kubectl describe`` tells the user what to change. Checks:

- the spec parses with the shared pydantic models (the same rules the CRD's CEL enforces);
- tenancy: the VIP lies in a VIPPool that admits the namespace (by name or namespace labels), and Exec
  health checks only where that pool allows them;
- claims: (VIP, protocol, port) and (family, firewall mark) belong to one VirtualService cluster-wide.
  A claim already programmed (present in a ResolvedService) is owned by that VirtualService; among
  claimants with nothing programmed the oldest (creationTimestamp, then namespace/name) wins. So the
  first claimant keeps working and the second gets ``Conflict=True`` naming the owner. Firewall-mark
  services are keyed by (mark, family) in the kernel, independent of the VIP, hence the cluster-wide key;
- the pool exists and parses, its static members and fallback have the VIP's family;
- forwarding fits the members: DirectRouting and Tunnel cannot rewrite ports, so explicit member, selector
  or fallback ports that differ from the virtual ports are rejected.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from lvs_api.models import (
    CheckType,
    Forwarding,
    LabelSelector,
    RealServerPoolSpec,
    VIPPoolSpec,
    VirtualServiceSpec,
    is_ipv6,
)
from lvs_api.validation import FieldError, validate_model
from pydantic import ValidationError

from lvs_controller.world import JsonObject, Kind, ObjectKey, World

NAMESPACE_NAME_LABEL = "kubernetes.io/metadata.name"


@dataclass(frozen=True)
class Problem:
    """Why a spec is not accepted: condition reason, the field, what is wrong and how to fix it."""

    reason: str
    field: str
    message: str
    fix: str

    def text(self) -> str:
        return f"{self.field}: {self.message}; fix: {self.fix}"


Claim = tuple[Any, ...]  # ("port", vip, protocol, port) or ("mark", family, mark)


def parse_spec(
    obj: Mapping[str, Any], model: type[Any], prefix: str = "spec"
) -> tuple[Any | None, list[Problem]]:
    """Validate ``obj['spec']`` with a pydantic model; problems name the field path and the fix.

    The messages come from lvs_api.validation (the same rules the CRD carries as CEL), so the controller
    reports exactly what an API server with CEL would have refused.
    """
    spec = obj.get("spec") or {}
    try:
        return model.model_validate(spec), []
    except ValidationError:
        errors = validate_model(model, spec, prefix)
        if not errors:  # cannot happen if both agree; keep a message anyway
            errors = [FieldError(prefix, "invalid", "correct the value (kubectl explain)")]
        return None, [Problem("InvalidSpec", error.path, error.message, error.fix) for error in errors]


def claims_of(spec: VirtualServiceSpec) -> set[Claim]:
    if spec.firewall_mark is not None:
        return {("mark", 6 if spec.ipv6 else 4, spec.firewall_mark)}
    return {("port", spec.vip, port.protocol.value, port.port) for port in spec.ports}


def describe_claim(claim: Claim) -> tuple[str, str]:
    """(field, human text) of a claim, for messages."""
    if claim[0] == "mark":
        return "spec.firewallMark", f"firewall mark {claim[2]} (IPv{claim[1]})"
    return "spec.ports", f"{claim[2]} port {claim[3]} on VIP {claim[1]}"


def namespace_labels(world: World, namespace: str) -> dict[str, str]:
    obj = world.get(Kind.NAMESPACE, ("", namespace))
    labels = dict(((obj or {}).get("metadata") or {}).get("labels") or {})
    labels.setdefault(NAMESPACE_NAME_LABEL, namespace)
    return labels


def admits(pool: VIPPoolSpec, namespace: str, labels: Mapping[str, str]) -> bool:
    if namespace in pool.namespaces:
        return True
    selector: LabelSelector | None = pool.namespace_selector
    return selector is not None and selector.matches(dict(labels))


def vip_in_pool(vip: str, pool: VIPPoolSpec) -> bool:
    address = ipaddress.ip_address(vip)
    return any(address in ipaddress.ip_network(block) for block in pool.addresses)


def check_tenancy(spec: VirtualServiceSpec, namespace: str, world: World) -> list[Problem]:
    containing: list[tuple[str, VIPPoolSpec]] = []
    for (_ns, name), obj in world.items(Kind.VIP_POOL):
        pool, problems = parse_spec(obj, VIPPoolSpec)
        if pool is None or problems:
            continue
        if vip_in_pool(spec.vip, pool):
            containing.append((name, pool))
    if not containing:
        return [
            Problem(
                "VIPNotInPool",
                "spec.vip",
                f"{spec.vip} is not inside any VIPPool",
                "choose a VIP from a VIPPool that admits this namespace, or ask a cluster admin to add one",
            )
        ]
    labels = namespace_labels(world, namespace)
    admitting = [(name, pool) for name, pool in containing if admits(pool, namespace, labels)]
    if not admitting:
        names = ", ".join(sorted(name for name, _ in containing))
        return [
            Problem(
                "NamespaceNotAllowed",
                "spec.vip",
                f"{spec.vip} belongs to VIPPool {names}, which does not admit namespace {namespace}",
                "use a VIP from a VIPPool that lists this namespace (spec.namespaces or namespaceSelector)",
            )
        ]
    if spec.health_check.type is CheckType.EXEC and not any(p.allow_exec_health_checks for _, p in admitting):
        return [
            Problem(
                "ExecCheckNotAllowed",
                "spec.healthCheck.type",
                f"Exec health checks are not allowed for VIPs of VIPPool {admitting[0][0]}",
                "use a TCP, HTTP(S), UDP or DNS check, or ask an admin to allow Exec checks on the pool "
                "(spec.allowExecHealthChecks)",
            )
        ]
    return []


def _creation_order(obj: Mapping[str, Any]) -> tuple[str, str, str]:
    metadata = obj.get("metadata") or {}
    return (
        str(metadata.get("creationTimestamp") or "9999"),
        str(metadata.get("namespace") or ""),
        str(metadata.get("name") or ""),
    )


def established_claims(world: World, key: ObjectKey) -> set[Claim]:
    """Claims of what is programmed for ``key`` now (its ResolvedService), if anything."""
    resolved = world.get(Kind.RESOLVED_SERVICE, key)
    if resolved is None:
        return set()
    service = (resolved.get("spec") or {}).get("service")
    if not isinstance(service, dict):
        return set()
    try:
        return claims_of(VirtualServiceSpec.model_validate(service))
    except ValidationError:
        return set()


@dataclass(frozen=True)
class ConflictFinding:
    owner: ObjectKey
    claim: Claim

    def problem(self) -> Problem:
        field, text = describe_claim(self.claim)
        reason = "FirewallMarkConflict" if self.claim[0] == "mark" else "PortConflict"
        return Problem(
            reason,
            field,
            f"{text} is already claimed by VirtualService {self.owner[0]}/{self.owner[1]}",
            "choose another port, firewall mark or VIP, or remove it from the other VirtualService",
        )


def find_conflict(
    key: ObjectKey,
    obj: Mapping[str, Any],
    spec: VirtualServiceSpec,
    candidates: Iterable[tuple[ObjectKey, JsonObject]],
    world: World,
) -> ConflictFinding | None:
    """The first claim of ``spec`` that another VirtualService owns (see the module docstring)."""
    mine = claims_of(spec)
    my_established = established_claims(world, key)
    my_order = _creation_order(obj)
    for other_key, other in sorted(candidates, key=lambda item: _creation_order(item[1])):
        if other_key == key:
            continue
        theirs_established = established_claims(world, other_key)
        for claim in sorted(mine & theirs_established, key=repr):
            if claim in my_established and my_order < _creation_order(other):
                continue  # both programmed it (a race or a manual edit): the older one keeps it
            return ConflictFinding(other_key, claim)
        if (other.get("metadata") or {}).get("deletionTimestamp"):
            continue
        if _creation_order(other) >= my_order:
            continue
        other_spec, problems = parse_spec(other, VirtualServiceSpec)
        if other_spec is None or problems:
            continue
        for claim in sorted(mine & claims_of(other_spec), key=repr):
            if claim in my_established:
                continue  # ours is programmed; the older spec is the newcomer for this claim
            return ConflictFinding(other_key, claim)
    return None


def check_pool(
    spec: VirtualServiceSpec, namespace: str, world: World
) -> tuple[RealServerPoolSpec | None, list[Problem]]:
    obj = world.get(Kind.REAL_SERVER_POOL, (namespace, spec.pool_ref.name))
    if obj is None:
        return None, [
            Problem(
                "PoolNotFound",
                "spec.poolRef.name",
                f"RealServerPool {namespace}/{spec.pool_ref.name} does not exist",
                "create the RealServerPool or point poolRef at an existing one in this namespace",
            )
        ]
    pool, problems = parse_spec(obj, RealServerPoolSpec, prefix=f"RealServerPool {spec.pool_ref.name} spec")
    if pool is None:
        return None, [Problem("InvalidPool", p.field, p.message, p.fix) for p in problems]
    return pool, check_members_fit(spec, pool)


def check_members_fit(spec: VirtualServiceSpec, pool: RealServerPoolSpec) -> list[Problem]:
    problems: list[Problem] = []
    wrong_family = [m.address for m in pool.members if is_ipv6(m.address) != spec.ipv6]
    if wrong_family:
        family = "IPv6" if spec.ipv6 else "IPv4"
        problems.append(
            Problem(
                "FamilyMismatch",
                f"RealServerPool {spec.pool_ref.name} spec.members",
                f"members {', '.join(wrong_family[:5])} are not {family} like the VIP {spec.vip}",
                f"use {family} members, or a pool of the VIP's family",
            )
        )
    if spec.forwarding is not Forwarding.NAT and spec.firewall_mark is None:
        virtual_ports = {port.port for port in spec.ports}
        rewritten = [
            f"{m.address}:{m.port}"
            for m in pool.members
            if m.port is not None and m.port not in virtual_ports
        ]
        selector = pool.selector
        selector_port: int | None = None
        if selector is not None:
            source = selector.pods or selector.nodes
            selector_port = source.port if source is not None else None
        if selector_port is not None and selector_port not in virtual_ports:
            rewritten.append(f"selector port {selector_port}")
        rewritten += [
            f"fallback {m.address}:{m.port}" for m in spec.fallback if m.port and m.port not in virtual_ports
        ]
        if rewritten:
            problems.append(
                Problem(
                    "ForwardingMismatch",
                    "spec.forwarding",
                    f"{spec.forwarding.value} cannot rewrite ports, but {', '.join(rewritten[:5])} "
                    f"differ from the virtual ports {sorted(virtual_ports)}",
                    "remove the member ports (real servers listen on the VIP port) or use forwarding: NAT",
                )
            )
    return problems
