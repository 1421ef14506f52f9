"""IPVS connection synchronisation: the kernel's sync daemons, so established connections survive failover.

Every director runs both kernel daemons all the time, on the interface facing its peers:

- ``master``: multicasts (or unicasts, with ``--mcast-group`` set to a peer) the connection entries this
  director creates, i.e. the ones it handles while active;
- ``backup``: receives the peers' entries into its own connection table.

Keeping both running, rather than switching master/backup at every role change (keepalived's
``lvs_sync_daemon`` way), means there is no window at failover during which entries are neither sent nor
received: the standby already holds the active's connections when the VIP moves. A director that has no
connections (the standby) sends nothing, so the cost is one idle kernel thread.

The daemons are started with ``ipvsadm --start-daemon`` (the agent image ships ipvsadm); the netlink
adapter may take this over (``IPVS_CMD_NEW_DAEMON``) without changing this interface.
"""

from __future__ import annotations

import logging
import re
import subprocess
from dataclasses import dataclass
from typing import Protocol

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


_DAEMON_LINE = re.compile(r"^(master|backup) sync daemon \(mcast=([^,]+),")


class IpvsadmSyncDaemons:
    def __init__(self, ipvsadm: str = "ipvsadm") -> None:
        self._ipvsadm = ipvsadm

    def running(self) -> dict[str, str]:
        done = subprocess.run([self._ipvsadm, "-L", "--daemon"], capture_output=True, text=True, check=False)
        if done.returncode != 0:
            raise OSError(f"ipvsadm -L --daemon failed: {done.stderr.strip()}")
        found: dict[str, str] = {}
        for line in done.stdout.splitlines():
            match = _DAEMON_LINE.match(line.strip())
            if match:
                found[match.group(1)] = match.group(2)
        return found

    def ensure(self, config: SyncDaemonConfig) -> list[str]:
        running = self.running()
        started: list[str] = []
        for state in ("master", "backup"):
            if state in running:
                continue
            command = [self._ipvsadm, "--start-daemon", state, "--mcast-interface", config.interface,
                       "--syncid", str(config.sync_id)]
            if config.multicast_group:
                command += ["--mcast-group", config.multicast_group]
            done = subprocess.run(command, capture_output=True, text=True, check=False)
            if done.returncode != 0:
                raise OSError(f"{' '.join(command)} failed: {done.stderr.strip()}")
            logger.info("started IPVS %s sync daemon on %s (syncid %d)",
                        state, config.interface, config.sync_id)
            started.append(state)
        return started
