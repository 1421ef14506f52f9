"""Fakes behind the agent's narrow interfaces, for fast unit tests (the kernel tests use the real ones)."""

from __future__ import annotations

from lvs_agent.addresses import VipConflictError, canonical_vip


class FakeVipAddresses:
    """In-memory ``VipAddresses`` for unit tests: records announcements, models foreign addresses."""

    def __init__(self, foreign: dict[str, list[str]] | None = None,
                 routes: dict[str, str] | None = None) -> None:
        self.interface_exists = False
        self.routes = dict(routes or {})  # address -> interface of its connected route
        self.announced_on: list[tuple[str, str | None]] = []
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

    def announce(self, vip: str, interface: str | None = None) -> None:
        self.announced.append(canonical_vip(vip))
        self.announced_on.append((canonical_vip(vip), interface))

    def interface_towards(self, address: str) -> str | None:
        return self.routes.get(canonical_vip(address))

