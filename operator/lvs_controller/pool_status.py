"""Status of RealServerPools and VIPPools (pure): what their printer columns show.

- RealServerPool: ``Accepted`` (the spec is valid), ``Resolved`` (members found), ``resolvedMembers``
  (members taking new connections, in the family of the VirtualServices using it), ``usedBy``.
- VIPPool: ``Accepted``, ``claimedAddresses`` (distinct VIPs inside it that a ResolvedService programs).

Same rules as the VirtualService status: lastTransitionTime moves only on a status change, so an unchanged
situation folds to an identical status and causes no write.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable, Mapping
from typing import Any

from lvs_api.models import RealServerPoolSpec, VIPPoolSpec, is_ipv6

from lvs_controller.resolution import resolve_pool_members
from lvs_controller.status import now_rfc3339
from lvs_controller.validation import parse_spec
from lvs_controller.world import JsonObject, Kind, ObjectKey, World

MAX_USED_BY = 256


def _condition(  # noqa: PLR0917
    kind: str, ok: bool, reason: str, message: str, generation: int, previous: Mapping[str, Any], now: str
) -> JsonObject:
    status = "True" if ok else "False"
    before = next((c for c in previous.get("conditions") or [] if c.get("type") == kind), None)
    transition = now
    if before is not None and before.get("status") == status and before.get("lastTransitionTime"):
        transition = str(before["lastTransitionTime"])
    return {
        "type": kind,
        "status": status,
        "reason": reason,
        "message": message,
        "observedGeneration": generation,
        "lastTransitionTime": transition,
    }


def _generation(obj: Mapping[str, Any]) -> int:
    return int((obj.get("metadata") or {}).get("generation") or 1)


def pool_status(
    key: ObjectKey,
    pool_obj: Mapping[str, Any],
    users: Iterable[ObjectKey],
    world: World,
    now: str | None = None,
) -> JsonObject:
    now = now or now_rfc3339()
    previous = pool_obj.get("status") or {}
    generation = _generation(pool_obj)
    used_by = sorted(name for namespace, name in users if namespace == key[0])
    spec, problems = parse_spec(pool_obj, RealServerPoolSpec)
    conditions: list[JsonObject] = []
    resolved = 0
    if spec is None:
        first = problems[0]
        conditions.append(
            _condition("Accepted", False, "InvalidSpec", first.text(), generation, previous, now)
        )
        conditions.append(
            _condition("Resolved", False, "InvalidSpec", "the spec is not valid", generation, previous, now)
        )
    else:
        conditions.append(
            _condition("Accepted", True, "Accepted", "spec is valid", generation, previous, now)
        )
        ipv6 = _family_of_users(key[0], used_by, world, spec)
        members = resolve_pool_members(spec, key[0], ipv6, world)
        resolved = sum(1 for m in members if not m.terminating and m.weight > 0)
        family = "IPv6" if ipv6 else "IPv4"
        if resolved:
            conditions.append(
                _condition(
                    "Resolved",
                    True,
                    "MembersFound",
                    f"{resolved} {family} members",
                    generation,
                    previous,
                    now,
                )
            )
        else:
            conditions.append(
                _condition(
                    "Resolved", False, "NoMembers", f"no usable {family} member", generation, previous, now
                )
            )
    return {
        "observedGeneration": generation,
        "conditions": conditions,
        "resolvedMembers": resolved,
        "usedBy": used_by[:MAX_USED_BY],
    }


def _family_of_users(namespace: str, used_by: list[str], world: World, spec: RealServerPoolSpec) -> bool:
    for name in used_by:
        vs = world.get(Kind.VIRTUAL_SERVICE, (namespace, name))
        vip = str(((vs or {}).get("spec") or {}).get("vip") or "")
        if vip:
            return is_ipv6(vip)
    return bool(spec.members) and is_ipv6(spec.members[0].address)


def vip_pool_status(pool_obj: Mapping[str, Any], world: World, now: str | None = None) -> JsonObject:
    now = now or now_rfc3339()
    previous = pool_obj.get("status") or {}
    generation = _generation(pool_obj)
    spec, problems = parse_spec(pool_obj, VIPPoolSpec)
    if spec is None:
        condition = _condition(
            "Accepted", False, "InvalidSpec", problems[0].text(), generation, previous, now
        )
        return {"observedGeneration": generation, "conditions": [condition], "claimedAddresses": 0}
    networks = [ipaddress.ip_network(block) for block in spec.addresses]
    claimed: set[str] = set()
    for _key, resolved in world.items(Kind.RESOLVED_SERVICE):
        vip = str((((resolved.get("spec") or {}).get("service")) or {}).get("vip") or "")
        if vip and any(ipaddress.ip_address(vip) in network for network in networks):
            claimed.add(vip)
    condition = _condition("Accepted", True, "Accepted", "spec is valid", generation, previous, now)
    return {"observedGeneration": generation, "conditions": [condition], "claimedAddresses": len(claimed)}


POOL_STATUS_FIELDS = ("observedGeneration", "conditions", "resolvedMembers", "usedBy", "claimedAddresses")


def pool_status_differs(desired: Mapping[str, Any], current: Mapping[str, Any] | None) -> bool:
    current = current or {}
    return any(desired.get(name) != current.get(name) for name in POOL_STATUS_FIELDS if name in desired)
