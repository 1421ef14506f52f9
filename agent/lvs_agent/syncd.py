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

Ownership: the kernel runs at most one master and one backup per network namespace and does not say who
started them. Like the IPVS services (lvs_agent.ownership), the agent records the daemons it starts in a
record file (written before the start, so a crash in between never leaves one of ours unrecorded). A
running daemon whose settings (read back from the kernel over netlink) differ from the configured ones is
restarted only if the record says the agent started it with exactly those settings; any other daemon
(keepalived's ``lvs_sync_daemon``, an operator's ``ipvsadm --start-daemon``, one started by an agent from
before the record existed) is left running and reported as foreign. Without a record nothing is owned,
so nothing is ever restarted.
"""

from __future__ import annotations

import errno
import ipaddress
import json
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from lvs_agent.netlink import DaemonState, IpvsError, SyncDaemon, SyncDaemonControl
from lvs_agent.ownership import write_json_atomically

logger = logging.getLogger("lvs_agent.syncd")

# what the kernel uses for a setting left out of IPVS_CMD_NEW_DAEMON (ip_vs_sync.c), as it reads back
KERNEL_DEFAULT_GROUP = "224.0.0.81"
KERNEL_DEFAULT_PORT = 8848
KERNEL_DEFAULT_TTL = 1
_RECORD_FORMAT = 1


@dataclass(frozen=True)
class SyncDaemonConfig:
    interface: str
    sync_id: int = 0  # 0..255; directors of one cluster share it; another cluster on the segment uses another
    multicast_group: str | None = None  # default 224.0.0.81 (the kernel's)

    def daemon(self, state: DaemonState) -> SyncDaemon:
        return SyncDaemon(state, self.interface, self.sync_id, group=self.multicast_group)


def _group(text: str | None) -> ipaddress.IPv4Address | ipaddress.IPv6Address | str:
    text = text or KERNEL_DEFAULT_GROUP
    try:
        return ipaddress.ip_address(text)
    except ValueError:
        return text


def same_settings(left: SyncDaemon, right: SyncDaemon) -> bool:
    """Both run with the same settings, a setting left to the kernel being its default. The payload
    length is not compared: the kernel derives it (from the MTU for a master, and adjusts a backup's)."""
    return (
        left.state == right.state
        and left.interface == right.interface
        and left.sync_id == right.sync_id
        and _group(left.group) == _group(right.group)
        and (left.port or KERNEL_DEFAULT_PORT) == (right.port or KERNEL_DEFAULT_PORT)
        and (left.ttl or KERNEL_DEFAULT_TTL) == (right.ttl or KERNEL_DEFAULT_TTL)
    )


def describe(daemon: SyncDaemon) -> str:
    return (f"{daemon.state.label} on {daemon.interface} syncid {daemon.sync_id} "
            f"group {daemon.group or KERNEL_DEFAULT_GROUP}")


class SyncDaemonRecord:
    """The sync daemons this agent started, in a JSON file beside the IPVS ownership record (a hostPath
    under /run: it survives an agent restart, and is cleared at boot together with the daemons)."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self._daemons = self._load()

    def _load(self) -> dict[DaemonState, SyncDaemon]:
        try:
            data = json.loads(self.path.read_text())
        except FileNotFoundError:
            return {}
        if data.get("format") != _RECORD_FORMAT:
            raise ValueError(f"{self.path}: unknown sync daemon record format {data.get('format')!r}")
        found: dict[DaemonState, SyncDaemon] = {}
        for label, fields in data["daemons"].items():
            state = DaemonState[str(label).upper()]
            found[state] = SyncDaemon(state, str(fields["interface"]), int(fields["sync_id"]),
                                      group=fields.get("group"), port=fields.get("port"),
                                      ttl=fields.get("ttl"))
        return found

    def get(self, state: DaemonState) -> SyncDaemon | None:
        return self._daemons.get(state)

    def set(self, state: DaemonState, daemon: SyncDaemon | None) -> None:
        if self._daemons.get(state) == daemon and (daemon is None or self.path.exists()):
            return
        if daemon is None:
            self._daemons.pop(state, None)
        else:
            self._daemons[state] = daemon
        body: dict[str, Any] = {"format": _RECORD_FORMAT, "daemons": {
            recorded.state.label: {"interface": recorded.interface, "sync_id": recorded.sync_id,
                                   "group": recorded.group, "port": recorded.port, "ttl": recorded.ttl}
            for recorded in self._daemons.values()
        }}
        write_json_atomically(self.path, body)


class SyncDaemons(Protocol):
    def running(self) -> dict[str, str]:
        """State ("master"/"backup") -> interface of the daemons the kernel runs."""

    def ensure(self, config: SyncDaemonConfig) -> list[str]:
        """Start whichever of master and backup is not running, restart one of ours whose settings
        differ from ``config``; returns the states started or restarted."""


class NetlinkSyncDaemons:
    """``SyncDaemons`` over generic netlink. Raises :class:`IpvsError` (an ``OSError``) when the kernel
    refuses, with its errno: ENODEV for a missing interface, EINVAL for a group that is not multicast.
    ``foreign`` names the daemons left running with other settings because the agent does not own them."""

    def __init__(self, control: SyncDaemonControl, record: SyncDaemonRecord | None = None) -> None:
        self._control = control
        self._record = record
        self.foreign: dict[str, SyncDaemon] = {}

    def running(self) -> dict[str, str]:
        return {daemon.state.label: daemon.interface for daemon in self._control.daemons()}

    def problems(self) -> list[str]:
        """The foreign daemons of the last ``ensure``, in words for the DirectorReport's errors."""
        return [f"IPVS {label} sync daemon runs as {describe(daemon)}, not as configured; not started by "
                f"this agent, so left running" for label, daemon in sorted(self.foreign.items())]

    def _owned(self, daemon: SyncDaemon) -> bool:
        recorded = self._record.get(daemon.state) if self._record is not None else None
        return recorded is not None and same_settings(recorded, daemon)

    def _start(self, wanted: SyncDaemon) -> bool:
        """Start ``wanted``, recorded first. False if another process started that daemon meanwhile."""
        previous = self._record.get(wanted.state) if self._record is not None else None
        if self._record is not None:
            self._record.set(wanted.state, wanted)
        try:
            self._control.start_daemon(wanted)
        except IpvsError as exc:
            if self._record is not None:
                self._record.set(wanted.state, previous)
            if exc.errno == errno.EEXIST:
                return False
            raise
        return True

    def _restart(self, current: SyncDaemon, wanted: SyncDaemon) -> bool:
        try:
            self._control.stop_daemon(current.state)
        except IpvsError as exc:
            if exc.errno != errno.ESRCH:  # ESRCH: it stopped meanwhile; start the wanted one all the same
                raise
        try:
            return self._start(wanted)
        except IpvsError:
            # the new settings are refused (say, the interface is missing): put the old daemon back, so
            # that connection sync keeps working with the settings that worked
            try:
                self._control.start_daemon(current)
            except IpvsError as restore:
                logger.error("restoring IPVS %s failed: %s", describe(current), restore)
            raise

    def ensure(self, config: SyncDaemonConfig) -> list[str]:
        running = {daemon.state: daemon for daemon in self._control.daemons()}
        started: list[str] = []
        self.foreign = {}
        for state in (DaemonState.MASTER, DaemonState.BACKUP):
            wanted = config.daemon(state)
            current = running.get(state)
            if current is not None and same_settings(current, wanted):
                continue
            if current is None:
                if not self._start(wanted):
                    continue  # started by someone else since we looked: it runs, not ours to change
                logger.info("started IPVS %s sync daemon on %s (syncid %d)",
                            state.label, config.interface, config.sync_id)
            elif self._owned(current):
                if not self._restart(current, wanted):
                    continue
                logger.info("restarted IPVS sync daemon: %s, was %s", describe(wanted), describe(current))
            else:
                self.foreign[state.label] = current
                logger.warning("IPVS %s sync daemon runs as %s, not as configured (%s); not started by "
                               "this agent, so left running",
                               state.label, describe(current), describe(wanted))
                continue
            started.append(state.label)
        return started
