"""Kernel IPVS over generic netlink: our codec for the bytes, pyroute2 for the socket.

The reconcile loop depends only on :class:`IpvsKernel` (``dump``, ``dump_stats``, ``apply``, ``close``);
:class:`IpvsNetlink` is the real kernel, :class:`FakeIpvsKernel` an in-memory stand-in for unit tests.
"""

from lvs_agent.netlink.adapter import IpvsNetlink
from lvs_agent.netlink.codec import Counters, DaemonState, DestStats, SyncDaemon
from lvs_agent.netlink.fake import FakeIpvsKernel, FakeSyncDaemons
from lvs_agent.netlink.kernel import (
    ApplyResult,
    IpvsError,
    IpvsKernel,
    OpFailure,
    ServiceStats,
    StatsTable,
    SyncDaemonControl,
)

__all__ = [
    "ApplyResult",
    "Counters",
    "DaemonState",
    "DestStats",
    "FakeIpvsKernel",
    "FakeSyncDaemons",
    "IpvsError",
    "IpvsKernel",
    "IpvsNetlink",
    "OpFailure",
    "ServiceStats",
    "StatsTable",
    "SyncDaemon",
    "SyncDaemonControl",
]


def _conforms(real: IpvsNetlink, fake: FakeIpvsKernel) -> tuple[IpvsKernel, IpvsKernel]:
    """Never called: makes mypy check that both implementations satisfy the IpvsKernel protocol."""
    return real, fake


def _controls_daemons(
    real: IpvsNetlink, fake: FakeSyncDaemons
) -> tuple[SyncDaemonControl, SyncDaemonControl]:
    """Never called: makes mypy check that both implementations satisfy the SyncDaemonControl protocol."""
    return real, fake
