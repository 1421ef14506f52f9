"""IPVS connection synchronisation: the kernel's sync daemons, so established connections survive failover.

Every director runs both kernel daemons all the time, on the interface facing its peers:

- ``master``: multicasts (or unicasts, with ``--mcast-group`` set to a peer) the connection entries this
  director creates, i.e. the ones it handles while active;
- ``backup``: receives the peers' entries into its own connection table.

Keeping both running, rather than switching master/backup at every role change (keepalived's
``lvs_sync_daemon`` way), means there is no window at failover during which entries are neither sent nor
received: the standby already holds the active's connections when the VIP moves. A director that has no
connections (the standby) sends nothing, so the cost is one idle kernel thread.

The daemons are started over generic netlink (``IPVS_CMD_NEW_DAEMON``, through the agent's own codec), so
the agent image needs no ``ipvsadm``.
"""

from __future__ import annotations

import errno
import logging
from dataclasses import dataclass
from typing import Protocol

from lvs_agent.netlink import DaemonState, IpvsError, SyncDaemon, SyncDaemonControl

logger = logging.getLogger("lvs_agent.syncd")


@dataclass(frozen=True)
class SyncDaemonConfig:
    interface: str
    sync_id: int = 0  # 0..255; directors of one cluster share it; another cluster on the segment uses another
    multicast_group: str | None = None  # default 224.0.0.81 (the kernel's)


class SyncDaemons(Protocol):
    def running(self) -> dict[str, str]:
        """State ("master"/"backup") -> interface of the daemons the kernel runs."""

    def ensure(self, config: SyncDaemonConfig) -> list[str]:
        """Start whichever of master and backup is not running; returns the states started."""


class NetlinkSyncDaemons:
    """``SyncDaemons`` over generic netlink. Raises :class:`IpvsError` (an ``OSError``) when the kernel
    refuses, with its errno: ENODEV for a missing interface, EINVAL for a group that is not multicast."""

    def __init__(self, control: SyncDaemonControl) -> None:
        self._control = control

    def running(self) -> dict[str, str]:
        return {daemon.state.label: daemon.interface for daemon in self._control.daemons()}

    def ensure(self, config: SyncDaemonConfig) -> list[str]:
        running = self.running()
        started: list[str] = []
        for state in (DaemonState.MASTER, DaemonState.BACKUP):
            if state.label in running:
                continue
            daemon = SyncDaemon(state, config.interface, config.sync_id, group=config.multicast_group)
            try:
                self._control.start_daemon(daemon)
            except IpvsError as exc:
                if exc.errno == errno.EEXIST:
                    continue  # started by someone else since we looked: it runs, which is all we want
                raise
            logger.info("started IPVS %s sync daemon on %s (syncid %d)",
                        state.label, config.interface, config.sync_id)
            started.append(state.label)
        return started
