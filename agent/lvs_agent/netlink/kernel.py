"""The narrow interface between the agent's reconcile loop and kernel IPVS.

Two implementations: :class:`lvs_agent.netlink.adapter.IpvsNetlink` (real kernel, generic netlink) and
:class:`lvs_agent.netlink.fake.FakeIpvsKernel` (in memory, same errors, for unit tests of higher layers).
"""

from __future__ import annotations

import errno
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import NamedTuple, Protocol

from lvs_api.ipvs import DestKey, Op, ServiceKey, Table

from lvs_agent.netlink.codec import Counters, DaemonState, DestStats, SyncDaemon


class ServiceStats(NamedTuple):
    """Counters of one service and of each of its destinations."""

    counters: Counters
    dests: Mapping[DestKey, DestStats]


StatsTable = Mapping[ServiceKey, ServiceStats]


class OpFailure(NamedTuple):
    """One operation the kernel refused. ``position`` is its index in the ``apply`` argument."""

    position: int
    op: Op
    errno: int

    def __str__(self) -> str:
        name = errno.errorcode.get(self.errno, str(self.errno))
        target = f"{self.op.service} -> {self.op.dest}" if self.op.dest is not None else str(self.op.service)
        return f"{self.op.kind.value} {target}: {name}"


@dataclass(frozen=True)
class ApplyResult:
    """What ``apply`` did. ``sent`` counts requests handed to the kernel (netlink writes); ``failures``
    lists each refused operation with its errno. ``complete`` is False when some error reports were lost
    (receive buffer overrun): the caller must then read the kernel back before trusting the result."""

    sent: int
    failures: tuple[OpFailure, ...] = ()
    complete: bool = True

    @property
    def ok(self) -> bool:
        return self.complete and not self.failures


class IpvsError(OSError):
    """A kernel request that is not a batched operation failed (a dump, the family lookup).
    Branch on ``.errno`` only."""


class IpvsKernel(Protocol):
    """What the reconcile loop needs from kernel IPVS. Implementations never flush and never touch an
    entry that an ``Op`` does not name."""

    def dump(self) -> Table:
        """Every service in the kernel (ours and foreign) with its destinations."""
        ...

    def dump_stats(self) -> StatsTable:
        """Counters for every service and destination."""
        ...

    def apply(self, ops: Sequence[Op]) -> ApplyResult:
        """Apply operations in order. A failed operation does not stop the ones after it."""
        ...

    def close(self) -> None: ...


class SyncDaemonControl(Protocol):
    """The kernel's IPVS connection-sync daemons (``IPVS_CMD_*_DAEMON``), kept apart from ``IpvsKernel``:
    only the agent's start-up needs them, not the reconcile loop. Errors are :class:`IpvsError`; branch
    on ``.errno``: EEXIST (that daemon already runs), ESRCH (stopping one that does not), ENODEV (no such
    interface), EINVAL (a group that is not multicast, or a request that cannot be encoded)."""

    def daemons(self) -> list[SyncDaemon]:
        """The daemons the kernel runs (at most one master and one backup)."""
        ...

    def start_daemon(self, daemon: SyncDaemon) -> None: ...

    def stop_daemon(self, state: DaemonState) -> None: ...
