"""An in-memory ``IpvsKernel`` for unit tests of the layers above the netlink adapter.

It answers operations with the errno the kernel gives for the same request (``ip_vs_ctl.c``; the kernel
tests run the same operations against both and compare): EEXIST for an add of something present, ESRCH for
any operation on a missing service, ENOENT for a missing destination or an unknown scheduler, ERANGE for a
lower threshold above the upper one, EINVAL for a bad IPv6 netmask, a GUE tunnel without a port, or a
destination of another family that is not tunnelled.
"""

from __future__ import annotations

import errno
import ipaddress
from collections.abc import Iterable, Sequence

from lvs_api.ipvs import (
    DestConfig,
    DestKey,
    Family,
    ForwardMethod,
    Op,
    OpKind,
    ServiceConfig,
    ServiceKey,
    Table,
    TunnelType,
    VirtualServer,
)

from lvs_agent.netlink.codec import Counters, DaemonState, DestStats, SyncDaemon
from lvs_agent.netlink.kernel import ApplyResult, IpvsError, OpFailure, ServiceStats, StatsTable

# every scheduler of a recent kernel ("twos" since 6.2)
ALL_SCHEDULERS = frozenset(
    {"rr", "wrr", "lc", "wlc", "lblc", "lblcr", "dh", "sh", "sed", "nq", "fo", "ovf", "mh", "twos"}
)


class FakeIpvsKernel:
    """Implements ``IpvsKernel`` in memory. ``writes`` counts requests as the real adapter does
    (one per operation), ``history`` keeps every operation handed to ``apply``."""

    def __init__(self, table: Table | None = None, *, schedulers: Iterable[str] = ALL_SCHEDULERS) -> None:
        self._services: dict[ServiceKey, tuple[ServiceConfig, dict[DestKey, DestConfig]]] = {
            key: (vs.config, dict(vs.dests)) for key, vs in (table or {}).items()
        }
        self.schedulers = frozenset(schedulers)
        self.writes = 0
        self.history: list[Op] = []
        self.counters: dict[tuple[ServiceKey, DestKey | None], Counters] = {}
        self._injected: dict[tuple[OpKind, ServiceKey, DestKey | None], int] = {}
        self.closed = False

    def inject_failure(
        self, kind: OpKind, service: ServiceKey, dest: DestKey | None = None, *, code: int
    ) -> None:
        """Make the next operation of that kind on that target fail with ``code`` (once)."""
        self._injected[(kind, service, dest)] = code

    # ------------------------------------------------------------------------------------- IpvsKernel

    def dump(self) -> Table:
        return {key: VirtualServer(config, dict(dests)) for key, (config, dests) in self._services.items()}

    def dump_stats(self) -> StatsTable:
        zero = Counters()
        return {
            key: ServiceStats(
                self.counters.get((key, None), zero),
                {dest: DestStats(self.counters.get((key, dest), zero), 0, 0, 0) for dest in dests},
            )
            for key, (_, dests) in self._services.items()
        }

    def apply(self, ops: Sequence[Op]) -> ApplyResult:
        failures: list[OpFailure] = []
        for position, op in enumerate(ops):
            self.history.append(op)
            self.writes += 1
            code = self._injected.pop((op.kind, op.service, op.dest), 0) or self._apply_one(op)
            if code:
                failures.append(OpFailure(position, op, code))
        return ApplyResult(sent=len(ops), failures=tuple(failures))

    def close(self) -> None:
        self.closed = True

    # ------------------------------------------------------------------------------------ the kernel

    def _check_service_config(self, key: ServiceKey, config: ServiceConfig | None) -> int:
        if config is None:
            return errno.EINVAL
        if key.family == Family.INET6 and not 1 <= config.netmask <= 128:
            return errno.EINVAL
        if config.scheduler not in self.schedulers:
            return errno.ENOENT
        return 0

    @staticmethod
    def _check_dest_config(service: ServiceKey, dest: DestKey, config: DestConfig | None) -> int:
        if config is None:
            return errno.EINVAL
        if dest.family != service.family and config.forward != ForwardMethod.TUNNEL:
            return errno.EINVAL
        if config.lower_threshold > config.upper_threshold:
            return errno.ERANGE
        if config.tunnel_type == TunnelType.GUE and config.tunnel_port == 0:
            return errno.EINVAL
        return 0

    def _apply_one(self, op: Op) -> int:
        entry = self._services.get(op.service)
        if op.kind == OpKind.ADD_SERVICE:
            if entry is not None:
                return errno.EEXIST
            code = self._check_service_config(op.service, op.service_config)
            if not code and op.service_config is not None:
                self._services[op.service] = (op.service_config, {})
            return code
        if entry is None:
            return errno.ESRCH
        _, dests = entry
        if op.kind == OpKind.EDIT_SERVICE:
            code = self._check_service_config(op.service, op.service_config)
            if not code and op.service_config is not None:
                self._services[op.service] = (op.service_config, dests)
            return code
        if op.kind == OpKind.DEL_SERVICE:
            del self._services[op.service]
            return 0
        if op.dest is None:
            return errno.EINVAL
        present = op.dest in dests
        if op.kind == OpKind.DEL_DEST:
            if not present:
                return errno.ENOENT
            del dests[op.dest]
            return 0
        if op.kind == OpKind.ADD_DEST and present:
            return errno.EEXIST
        if op.kind == OpKind.EDIT_DEST and not present:
            return errno.ENOENT
        code = self._check_dest_config(op.service, op.dest, op.dest_config)
        if not code and op.dest_config is not None:
            dests[op.dest] = op.dest_config
        return code


class FakeSyncDaemons:
    """Implements ``SyncDaemonControl`` in memory, with the kernel's errors (``ip_vs_sync.c``): EEXIST
    starting a daemon that runs, ESRCH stopping one that does not, ENODEV for an interface not in
    ``interfaces``, EINVAL for a group that is not a multicast address or a name the kernel cannot take.
    ``daemons()`` reports what was asked for, so settings left to the kernel read back as ``None``."""

    def __init__(self, interfaces: Iterable[str] = ("eth0",)) -> None:
        self.interfaces = frozenset(interfaces)
        self.running: dict[DaemonState, SyncDaemon] = {}
        self.requests = 0

    def daemons(self) -> list[SyncDaemon]:
        return [self.running[state] for state in sorted(self.running)]

    def start_daemon(self, daemon: SyncDaemon) -> None:
        self.requests += 1
        if not 0 < len(daemon.interface.encode()) < 16:
            raise IpvsError(errno.EINVAL, f"interface name {daemon.interface!r}")
        if daemon.group is not None:
            try:
                multicast = ipaddress.ip_address(daemon.group).is_multicast
            except ValueError:
                multicast = False
            if not multicast:
                raise IpvsError(errno.EINVAL, f"sync group {daemon.group} is not multicast")
        if daemon.state in self.running:
            raise IpvsError(errno.EEXIST, f"{daemon.state.label} sync daemon already running")
        if daemon.interface not in self.interfaces:
            raise IpvsError(errno.ENODEV, f"no interface {daemon.interface}")
        self.running[daemon.state] = daemon

    def stop_daemon(self, state: DaemonState) -> None:
        self.requests += 1
        if self.running.pop(state, None) is None:
            raise IpvsError(errno.ESRCH, f"no {state.label} sync daemon")
