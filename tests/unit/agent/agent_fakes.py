"""Fakes behind the agent's narrow interfaces, for fast unit tests (the kernel tests use the real ones)."""

from __future__ import annotations

from collections.abc import Set as AbstractSet
from typing import Any

from lvs_agent.addresses import VipConflictError, canonical_vip
from lvs_api.ipvs import Op, OpKind, Table


class FakeVipAddresses:
    """In-memory ``VipAddresses`` for unit tests: records announcements, models foreign addresses."""

    def __init__(self, foreign: dict[str, list[str]] | None = None) -> None:
        self.interface_exists = False
        self.vips: set[str] = set()
        self.foreign = dict(foreign or {})
        self.announced: list[str] = []
        self.writes = 0

    def ensure_interface(self) -> None:
        self.interface_exists = True

    def owned(self) -> frozenset[str]:
        return frozenset(self.vips)

    def foreign_holders(self, vip: str) -> list[str]:
        return list(self.foreign.get(canonical_vip(vip), []))

    def add(self, vip: str) -> None:
        vip = canonical_vip(vip)
        if self.foreign_holders(vip):
            raise VipConflictError(vip, self.foreign_holders(vip))
        if vip not in self.vips:
            self.vips.add(vip)
            self.writes += 1

    def remove(self, vip: str) -> None:
        vip = canonical_vip(vip)
        if vip in self.vips:
            self.vips.discard(vip)
            self.writes += 1

    def announce(self, vip: str) -> None:
        self.announced.append(canonical_vip(vip))


# --- a minimal planner, only until lvs_api's lands (tests/unit/agent/test_reconcile.py) ----

def simple_plan(desired: Table, observed: Table, owned: AbstractSet[Any]) -> list[Op]:
    """Minimal diff over owned keys; never touches a key it does not own."""
    ops: list[Op] = []
    for key, virtual in desired.items():
        current = observed.get(key)
        if current is None:
            ops.append(Op(OpKind.ADD_SERVICE, key, virtual.config))
            ops += [Op(OpKind.ADD_DEST, key, None, dest, config) for dest, config in virtual.dests.items()]
            continue
        if key not in owned:
            continue
        if current.config != virtual.config:
            ops.append(Op(OpKind.EDIT_SERVICE, key, virtual.config))
        for dest, config in virtual.dests.items():
            if dest not in current.dests:
                ops.append(Op(OpKind.ADD_DEST, key, None, dest, config))
            elif current.dests[dest] != config:
                ops.append(Op(OpKind.EDIT_DEST, key, None, dest, config))
        ops += [Op(OpKind.DEL_DEST, key, None, dest) for dest in current.dests if dest not in virtual.dests]
    ops += [Op(OpKind.DEL_SERVICE, key) for key in owned if key in observed and key not in desired]
    return ops
