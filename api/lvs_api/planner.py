"""The diff planner: (desired table, observed kernel table, owned keys) -> ordered kernel operations.

Rules it keeps:

- Never a flush, and never an operation on a service that is not owned. A desired key that the kernel
  already holds but that is not ours (kube-proxy, keepalived, an operator's ipvsadm rules) is a
  *conflict*: reported, never touched.
- A desired key absent from the kernel is added (even if it was recorded as owned: it was deleted behind
  our back); an owned key in the kernel that is no longer desired is deleted, destinations and all (one
  DEL_SERVICE, no per-destination deletes first).
- Service attribute changes are one EDIT_SERVICE; weight, threshold, forwarding-method and tunnel changes
  are one EDIT_DEST each (the kernel's IPVS_CMD_SET_DEST updates the forwarding method in place, see
  ``__ip_vs_update_dest`` in net/netfilter/ipvs/ip_vs_ctl.c).
- Order: service adds and edits, then destination adds, edits, deletes, and service deletes last. Adds
  before deletes is make-before-break: a service never drops to zero destinations mid-plan, and a VIP
  moving to a new port is served on the new one before the old one goes.
- Cost is proportional to what changed: a service whose desired and observed entries are equal (``is``
  or ``==``) is skipped without looking at its destinations, and ``only=`` restricts the plan to the keys
  a caller knows changed (O(changed) instead of one comparison per service).

Kernel-only service flags (``HASHED``) are ignored when comparing.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping, Sequence
from collections.abc import Set as AbstractSet
from typing import overload

from lvs_api.ipvs import (
    KERNEL_ONLY_SERVICE_FLAGS,
    DestConfig,
    DestKey,
    Op,
    OpKind,
    ServiceConfig,
    ServiceKey,
    Table,
    VirtualServer,
)

__all__ = ["Plan", "plan"]

_FLAG_MASK = ~KERNEL_ONLY_SERVICE_FLAGS


class Plan(Sequence[Op]):
    """The ordered operations (the plan is itself the sequence of ops) plus the conflicts found."""

    __slots__ = ("conflicts", "ops")

    def __init__(self, ops: list[Op], conflicts: list[ServiceKey]) -> None:
        self.ops = ops
        self.conflicts = conflicts

    @overload
    def __getitem__(self, index: int) -> Op: ...
    @overload
    def __getitem__(self, index: slice) -> Sequence[Op]: ...
    def __getitem__(self, index: int | slice) -> Op | Sequence[Op]:
        return self.ops[index]

    def __len__(self) -> int:
        return len(self.ops)

    def __iter__(self) -> Iterator[Op]:
        return iter(self.ops)

    def __repr__(self) -> str:
        return f"Plan(ops={self.ops!r}, conflicts={self.conflicts!r})"


def _same_config(desired: ServiceConfig, observed: ServiceConfig) -> bool:
    if desired == observed:
        return True
    return desired._replace(flags=desired.flags & _FLAG_MASK) == observed._replace(
        flags=observed.flags & _FLAG_MASK
    )


class _Builder:
    __slots__ = ("conflicts", "dest_adds", "dest_dels", "dest_edits", "service_dels", "service_ops")

    def __init__(self) -> None:
        self.service_ops: list[Op] = []
        self.dest_adds: list[Op] = []
        self.dest_edits: list[Op] = []
        self.dest_dels: list[Op] = []
        self.service_dels: list[Op] = []
        self.conflicts: list[ServiceKey] = []

    def add_service(self, key: ServiceKey, server: VirtualServer) -> None:
        self.service_ops.append(Op(OpKind.ADD_SERVICE, key, server.config))
        adds = self.dest_adds
        for dest, config in server.dests.items():
            adds.append(Op(OpKind.ADD_DEST, key, None, dest, config))

    def update_service(self, key: ServiceKey, desired: VirtualServer, observed: VirtualServer) -> None:
        if not _same_config(desired.config, observed.config):
            self.service_ops.append(Op(OpKind.EDIT_SERVICE, key, desired.config))
        want: Mapping[DestKey, DestConfig] = desired.dests
        have: Mapping[DestKey, DestConfig] = observed.dests
        if want is have or want == have:
            return
        for dest, config in want.items():
            current = have.get(dest)
            if current is None:
                self.dest_adds.append(Op(OpKind.ADD_DEST, key, None, dest, config))
            elif current != config:
                self.dest_edits.append(Op(OpKind.EDIT_DEST, key, None, dest, config))
        for dest in have:
            if dest not in want:
                self.dest_dels.append(Op(OpKind.DEL_DEST, key, None, dest, None))

    def delete_service(self, key: ServiceKey) -> None:
        self.service_dels.append(Op(OpKind.DEL_SERVICE, key))

    def plan_key(
        self, key: ServiceKey, desired: Table, observed: Table, owned: AbstractSet[ServiceKey]
    ) -> None:
        want = desired.get(key)
        have = observed.get(key)
        if want is None:
            if have is not None and key in owned:
                self.delete_service(key)
            return
        if have is None:
            self.add_service(key, want)
        elif key not in owned:
            self.conflicts.append(key)
        elif want is not have and want != have:
            self.update_service(key, want, have)

    def build(self) -> Plan:
        ops = self.service_ops + self.dest_adds + self.dest_edits + self.dest_dels + self.service_dels
        return Plan(ops, self.conflicts)


def plan(
    desired: Table,
    observed: Table,
    owned: AbstractSet[ServiceKey],
    *,
    only: Iterable[ServiceKey] | None = None,
) -> Plan:
    """Operations that turn ``observed`` into ``desired`` on the keys we own, touching nothing else.

    ``owned``: keys of services this agent created (its ownership record). ``only``: restrict the plan to
    these keys (each is planned exactly as a full plan would: added, edited, deleted or left alone);
    ``None`` plans every desired and owned key.
    """
    builder = _Builder()
    if only is not None:
        for key in dict.fromkeys(only):
            builder.plan_key(key, desired, observed, owned)
        return builder.build()
    for key, want in desired.items():
        have = observed.get(key)
        if have is None:
            builder.add_service(key, want)
        elif key not in owned:
            builder.conflicts.append(key)
        elif want is not have and want != have:
            builder.update_service(key, want, have)
    for key in owned:
        if key not in desired and key in observed:
            builder.delete_service(key)
    return builder.build()
