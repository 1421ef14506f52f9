"""A tiny pure model of the kernel's IPVS table, for tests: apply planner ops the way the kernel would.

Errors mirror the kernel's answers (``ip_vs_ctl.c``): adding what exists is EEXIST, touching a service
that does not exist is ESRCH, touching a destination that does not exist is ENOENT. The input table is
never modified; untouched services are shared with the result, not copied.
"""

from __future__ import annotations

from collections.abc import Iterable

from lvs_api.ipvs import DestConfig, DestKey, Op, OpKind, ServiceKey, Table, VirtualServer

__all__ = ["SimulatedKernelError", "apply_ops"]


class SimulatedKernelError(Exception):
    """An op the kernel would refuse; ``errno_name`` is what it would answer."""

    def __init__(self, errno_name: str, op: Op) -> None:
        super().__init__(f"{errno_name}: {op.kind.value} {op.service} {op.dest or ''}".rstrip())
        self.errno_name = errno_name
        self.op = op


def apply_ops(table: Table, ops: Iterable[Op]) -> dict[ServiceKey, VirtualServer]:
    """The table after ``ops``, applied in order; raises :class:`SimulatedKernelError` like the kernel."""
    result: dict[ServiceKey, VirtualServer] = dict(table)
    copied: set[ServiceKey] = set()  # services whose dests dict is already our own copy

    def own_dests(key: ServiceKey) -> dict[DestKey, DestConfig]:
        server = result[key]
        if key not in copied:
            server = VirtualServer(server.config, dict(server.dests))
            result[key] = server
            copied.add(key)
        dests = server.dests
        assert isinstance(dests, dict)
        return dests

    for op in ops:
        key = op.service
        if op.kind is OpKind.ADD_SERVICE:
            if key in result:
                raise SimulatedKernelError("EEXIST", op)
            if op.service_config is None:
                raise SimulatedKernelError("EINVAL", op)
            result[key] = VirtualServer(op.service_config, {})
            copied.add(key)
            continue
        if key not in result:
            raise SimulatedKernelError("ESRCH", op)
        if op.kind is OpKind.EDIT_SERVICE:
            if op.service_config is None:
                raise SimulatedKernelError("EINVAL", op)
            result[key] = VirtualServer(op.service_config, result[key].dests)
        elif op.kind is OpKind.DEL_SERVICE:
            del result[key]
            copied.discard(key)
        else:
            if op.dest is None:
                raise SimulatedKernelError("EINVAL", op)
            dests = own_dests(key)
            present = op.dest in dests
            if op.kind is OpKind.ADD_DEST:
                if present:
                    raise SimulatedKernelError("EEXIST", op)
            elif not present:
                raise SimulatedKernelError("ENOENT", op)
            if op.kind is OpKind.DEL_DEST:
                del dests[op.dest]
            else:
                if op.dest_config is None:
                    raise SimulatedKernelError("EINVAL", op)
                dests[op.dest] = op.dest_config
    return result
