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
- addresses: a VIP moves between directors as one address, so every VirtualService on one VIP must name
  the same VIP group (``spec.vipGroup``, default: the VIP itself). A ``natGateway`` address follows its VIP
  group the same way, so it may be shared only within one group, and never be anyone's VIP. Ownership as
  for ports: what is programmed wins, then the oldest claimant. A programmed use that another
  VirtualService is changing in the same direction (its spec asks for the same group and is otherwise
  valid) does not block, so several VirtualServices on one VIP can move to a new group together;
- natGateway tenancy: a gateway inside a VIPPool range needs a pool that admits the namespace (a gateway
  outside every pool, e.g. on the real servers' private network, is not policed by VIPPools);
- the pool exists and parses, its static members and fallback have the VIP's family;
- forwarding fits the members: DirectRouting and Tunnel cannot rewrite ports, so explicit member, selector
  or fallback ports that differ from the virtual ports are rejected.
"""

from __future__ import annotations

import ipaddress
from collections import OrderedDict
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any, TypeVar

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
from pydantic import BaseModel, ValidationError

from lvs_controller.world import JsonObject, Kind, ObjectKey, World

NAMESPACE_NAME_LABEL = "kubernetes.io/metadata.name"
Model = TypeVar("Model", bound=BaseModel)


@dataclass(frozen=True)
class Problem:
    """Why a spec is not accepted: condition reason, the field, what is wrong and how to fix it."""

    reason: str
    field: str
    message: str
    fix: str

    def text(self) -> str:
        return f"{self.field}: {self.message}; fix: {self.fix}"


Claim = tuple[Any, ...]  # ("port", vip, protocol, port), ("mark", family, mark) or ("address", mine, theirs)


_PARSED: OrderedDict[tuple[type[Any], int], tuple[Any, Any]] = OrderedDict()
PARSE_CACHE_SIZE = 256  # enough for the reconciles in flight and the shared pools; ~25 MB at 1,024


def parse_cached(model: type[Model], data: Any) -> Model:
    """``model.model_validate(data)``, remembered for the very same ``data`` object.

    Cached objects are replaced, never changed in place, when a newer version arrives, and the models
    are frozen, so one parse serves every reconcile that reads this version: a burst of 1,000
    VirtualServices parsed their shared RealServerPool and VIPPools 1,000 times each, and each
    ResolvedService 3 times. The entry keeps ``data`` alive, so its id cannot be reused while cached.
    Raises ValidationError like model_validate (failures are not cached).
    """
    key = (model, id(data))
    entry = _PARSED.get(key)
    if entry is not None and entry[0] is data:
        _PARSED.move_to_end(key)
        parsed: Model = entry[1]
        return parsed
    parsed = model.model_validate(data)
    _PARSED[key] = (data, parsed)
    while len(_PARSED) > PARSE_CACHE_SIZE:
        _PARSED.popitem(last=False)
    return parsed


def parse_spec(
    obj: Mapping[str, Any], model: type[Any], prefix: str = "spec"
) -> tuple[Any | None, list[Problem]]:
    """Validate ``obj['spec']`` with a pydantic model; problems name the field path and the fix.

    The messages come from lvs_api.validation (the same rules the CRD carries as CEL), so the controller
    reports exactly what an API server with CEL would have refused.
    """
    spec = obj.get("spec") or {}
    try:
        return parse_cached(model, spec), []
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


def check_gateway_tenancy(spec: VirtualServiceSpec, namespace: str, world: World) -> list[Problem]:
    """A natGateway inside a VIPPool range needs a pool (among those containing it) admitting the namespace;
    the gateway must not be the service's own VIP either."""
    if spec.nat_gateway is None:
        return []
    gateway = canonical_address(spec.nat_gateway.address)
    if gateway == canonical_address(spec.vip):
        return [
            Problem(
                "NatGatewayIsVIP",
                "spec.natGateway.address",
                f"{gateway} is this VirtualService's own VIP; the real servers need a gateway address of "
                "their own",
                "choose an address on the real servers' network for natGateway.address",
            )
        ]
    containing: list[tuple[str, VIPPoolSpec]] = []
    for (_ns, name), obj in world.items(Kind.VIP_POOL):
        pool, problems = parse_spec(obj, VIPPoolSpec)
        if pool is not None and not problems and vip_in_pool(gateway, pool):
            containing.append((name, pool))
    if not containing:
        return []
    labels = namespace_labels(world, namespace)
    if any(admits(pool, namespace, labels) for _, pool in containing):
        return []
    names = ", ".join(sorted(name for name, _ in containing))
    return [
        Problem(
            "NatGatewayNotAllowed",
            "spec.natGateway.address",
            f"{gateway} lies in VIPPool {names}, which does not admit namespace {namespace}",
            "use a gateway address outside the VIPPools or in one that admits this namespace "
            "(spec.namespaces or namespaceSelector)",
        )
    ]


def _creation_order(obj: Mapping[str, Any]) -> tuple[str, str, str]:
    metadata = obj.get("metadata") or {}
    return (
        str(metadata.get("creationTimestamp") or "9999"),
        str(metadata.get("namespace") or ""),
        str(metadata.get("name") or ""),
    )


def programmed_spec(world: World, key: ObjectKey) -> VirtualServiceSpec | None:
    """The spec programmed for ``key`` now (its ResolvedService), if any."""
    resolved = world.get(Kind.RESOLVED_SERVICE, key)
    if resolved is None:
        return None
    service = (resolved.get("spec") or {}).get("service")
    if not isinstance(service, dict):
        return None
    try:
        return parse_cached(VirtualServiceSpec, service)
    except ValidationError:
        return None


def established_claims(world: World, key: ObjectKey) -> set[Claim]:
    """Claims of what is programmed for ``key`` now (its ResolvedService), if anything."""
    spec = programmed_spec(world, key)
    return claims_of(spec) if spec is not None else set()


def canonical_address(text: str) -> str:
    try:
        return str(ipaddress.ip_address(text))
    except ValueError:
        return text


@dataclass(frozen=True, order=True)
class AddressUse:
    """One address a VirtualService makes a director hold: its VIP or its natGateway, in its VIP group."""

    address: str
    role: str  # "VIP" or "natGateway"
    group: str

    def clashes(self, other: AddressUse) -> bool:
        """Two holders of one address must hold it in the same role and the same VIP group: an address
        has one active director at a time."""
        return self.address == other.address and (self.role != other.role or self.group != other.group)


def vip_group_of(spec: VirtualServiceSpec) -> str:
    """The failover group the agents put the VIP in (the agent's rule: vipGroup, else the VIP itself)."""
    return spec.vip_group or spec.vip


def address_uses(spec: VirtualServiceSpec | None) -> set[AddressUse]:
    if spec is None:
        return set()
    group = vip_group_of(spec)
    uses = {AddressUse(canonical_address(spec.vip), "VIP", group)}
    if spec.nat_gateway is not None:
        uses.add(AddressUse(canonical_address(spec.nat_gateway.address), "natGateway", group))
    return uses


def _is_address(text: str) -> bool:
    try:
        ipaddress.ip_address(text)
    except ValueError:
        return False
    return True


def _describe_group(group: str, vip: str) -> str:
    return "its own group (no vipGroup)" if group == vip else f"vipGroup {group}"


def address_conflict_problem(owner: ObjectKey, mine: AddressUse, theirs: AddressUse) -> Problem:
    other = f"VirtualService {owner[0]}/{owner[1]}"
    if mine.role == "VIP" and theirs.role == "VIP":
        wanted = "no vipGroup" if theirs.group == mine.address else f"vipGroup: {theirs.group}"
        return Problem(
            "VIPGroupConflict",
            "spec.vipGroup",
            f"VIP {mine.address} is in {_describe_group(theirs.group, mine.address)} on {other}, but this "
            f"VirtualService puts it in {_describe_group(mine.group, mine.address)}; a VIP fails over as "
            "one address, so every VirtualService on it must share one vipGroup",
            f"set {wanted} here, or give every VirtualService on VIP {mine.address} the same new vipGroup",
        )
    if mine.role == "natGateway" and theirs.role == "natGateway":
        if _is_address(theirs.group):  # its default group, named by its VIP: no vipGroup can join it
            join = f"give {other} and this VirtualService the same spec.vipGroup"
        else:
            join = f"set spec.vipGroup: {theirs.group} here"
        return Problem(
            "NatGatewayConflict",
            "spec.natGateway.address",
            f"{mine.address} is already the natGateway of {other} in VIP group {theirs.group}, and this "
            f"VirtualService's VIP group is {mine.group}; a gateway follows one group's active director",
            f"{join}, or choose another natGateway address",
        )
    if mine.role == "natGateway":
        return Problem(
            "NatGatewayConflict",
            "spec.natGateway.address",
            f"{mine.address} is the VIP of {other}; an address cannot be both a VIP and a gateway",
            "choose a natGateway address that no VirtualService uses as its VIP",
        )
    return Problem(
        "VIPConflict",
        "spec.vip",
        f"{mine.address} is already the natGateway of {other} (VIP group {theirs.group}); an address "
        "cannot be both a VIP and a gateway",
        "choose another VIP, or change the other VirtualService's natGateway",
    )


@dataclass(frozen=True)
class ConflictFinding:
    owner: ObjectKey
    claim: Claim

    def problem(self) -> Problem:
        if self.claim[0] == "address":
            return address_conflict_problem(self.owner, self.claim[1], self.claim[2])
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


OtherwiseValid = Callable[[ObjectKey, JsonObject, VirtualServiceSpec], bool]


def _first_clash(
    mine: Iterable[AddressUse], theirs: Iterable[AddressUse]
) -> tuple[AddressUse, AddressUse] | None:
    ordered = sorted(theirs)
    for use in sorted(mine):
        for other in ordered:
            if use.clashes(other):
                return use, other
    return None


def find_address_conflict(
    key: ObjectKey,
    obj: Mapping[str, Any],
    spec: VirtualServiceSpec,
    candidates: Iterable[tuple[ObjectKey, JsonObject]],
    world: World,
    *,
    otherwise_valid: OtherwiseValid,
    nested: bool = False,
) -> ConflictFinding | None:
    """The first VIP or natGateway use of ``spec`` that clashes with another VirtualService's (see the
    module docstring). ``otherwise_valid`` tells whether another VirtualService's spec would be accepted
    but for address clashes: only then may its programmed use be overridden by a move it also asks for.
    An older spec that is itself rejected for an address clash (one level deep) does not block."""
    mine = address_uses(spec)
    candidates = list(candidates)
    my_programmed = address_uses(programmed_spec(world, key))
    my_order = _creation_order(obj)
    for other_key, other in sorted(candidates, key=lambda item: _creation_order(item[1])):
        if other_key == key:
            continue
        other_order = _creation_order(other)
        other_spec: VirtualServiceSpec | None = None
        if not (other.get("metadata") or {}).get("deletionTimestamp"):
            parsed, problems = parse_spec(other, VirtualServiceSpec)
            other_spec = parsed if not problems else None
        wanted = address_uses(other_spec)
        for use in sorted(mine):
            clash = _first_clash([use], address_uses(programmed_spec(world, other_key)))
            if clash is None:
                continue
            if use in my_programmed and my_order < other_order:
                continue  # both programmed (a race or an older version): the older one keeps it
            moving_along = (
                other_spec is not None
                and _first_clash([use], wanted) is None
                and otherwise_valid(other_key, other, other_spec)
            )
            if not moving_along:
                return ConflictFinding(other_key, ("address", *clash))
        if other_spec is None or other_order >= my_order:
            continue
        for use in sorted(mine):
            if use in my_programmed:
                continue  # ours is programmed; the older spec is the newcomer for this address
            clash = _first_clash([use], wanted)
            if clash is None:
                continue
            if not nested and other_spec is not None:
                blocked = find_address_conflict(
                    other_key,
                    other,
                    other_spec,
                    candidates,
                    world,
                    otherwise_valid=otherwise_valid,
                    nested=True,
                )
                if blocked is not None:
                    break  # the older spec is rejected itself: its claim does not count
            return ConflictFinding(other_key, ("address", *clash))
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
