"""What a legacy config means, independent of its syntax: the interpreters fill it, the mapper reads it.

Every value keeps the line it came from so the mapper's warnings can point at it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import Enum


class Forwarding(Enum):
    NAT = "NAT"
    DIRECT_ROUTING = "DirectRouting"
    TUNNEL = "Tunnel"


class CheckKind(Enum):
    TCP = "TCP"
    HTTP = "HTTP"
    HTTPS = "HTTPS"
    UDP = "UDP"
    DNS = "DNS"
    EXEC = "Exec"


@dataclass
class HealthCheck:
    """One health check, already reduced to the product's vocabulary (seconds, rise/fall counts)."""

    kind: CheckKind
    line: int
    interval_seconds: float | None = None
    timeout_seconds: float | None = None
    rise: int | None = None
    fall: int | None = None
    port: int | None = None
    path: str | None = None
    method: str = "GET"
    host: str | None = None
    expect_status: list[int] = field(default_factory=list)
    send: str | None = None
    expect: str | None = None
    expect_is_regex: bool = False  # else a literal prefix of the answer (nanny without use_regex)
    command: list[str] = field(default_factory=list)
    dns_query_name: str | None = None
    dns_query_type: str | None = None

    def signature(self) -> tuple[object, ...]:
        """Checks with the same signature probe the same thing (the port may differ per member)."""
        return (
            self.kind,
            self.interval_seconds,
            self.timeout_seconds,
            self.rise,
            self.fall,
            self.path,
            self.method,
            self.host,
            tuple(self.expect_status),
            self.send,
            self.expect,
            self.expect_is_regex,
            tuple(self.command),
            self.dns_query_name,
            self.dns_query_type,
        )


@dataclass
class RealServer:
    address: str
    line: int
    name: str | None = None
    port: int | None = None
    weight: int = 1
    active: bool = True
    check: HealthCheck | None = None
    quiesce_on_failure: bool = False
    forwarding: Forwarding | None = None  # keepalived allows lb_kind per real server
    upper_threshold: int = 0
    lower_threshold: int = 0


@dataclass
class ServiceAddress:
    """One way a virtual server is reached: an address with ports, or a firewall mark."""

    line: int
    address: str | None = None
    ports: list[int] = field(default_factory=list)
    fwmark: int | None = None


@dataclass
class VirtualServer:
    name: str
    line: int
    addresses: list[ServiceAddress] = field(default_factory=list)
    protocol: str = "TCP"
    scheduler: str = "wlc"
    scheduler_flags: list[str] = field(default_factory=list)
    forwarding: Forwarding = Forwarding.NAT
    tunnel_type: str | None = None  # IPIP / GUE / GRE
    tunnel_port: int | None = None
    tunnel_checksum: str | None = None  # None / Checksum / RemoteChecksum
    one_packet: bool = False
    persistence_timeout: int | None = None
    persistence_netmask: str | None = None
    check: HealthCheck | None = None
    quiesce_on_failure: bool = False
    servers: list[RealServer] = field(default_factory=list)
    sorry_servers: list[RealServer] = field(default_factory=list)
    interface: str | None = None
    active: bool = True
    title: str | None = None  # how the config names it (`192.0.2.10 80`, `fwmark 7`, `group WEB`)


@dataclass
class Director:
    """A director (LVS router) named by the legacy config: pulse primary/backup or a VRRP instance."""

    role: str  # "primary" / "backup" / VRRP state ("MASTER" / "BACKUP")
    line: int
    address: str | None = None
    name: str | None = None
    priority: int | None = None
    interface: str | None = None
    virtual_addresses: list[str] = field(default_factory=list)


@dataclass
class Failover:
    """Director failover timing, in seconds (pulse keepalive/deadtime, VRRP advert_int)."""

    line: int
    heartbeat_interval_seconds: float | None = None
    dead_after_seconds: float | None = None
    source: str = ""


@dataclass
class LegacyConfig:
    path: str  # the first file (names the VIPPool and, for lvs.cf, the VIP group)
    kind: str  # "lvs.cf" or "keepalived.conf"
    paths: list[str] = field(default_factory=list)  # every file imported together
    virtual_servers: list[VirtualServer] = field(default_factory=list)
    directors: list[Director] = field(default_factory=list)
    failover: Failover | None = None
    nat_router: tuple[str, int] | None = None  # (address[/mask], line): the real servers' gateway
    sync_daemon_line: int | None = None  # where connection sync was switched on
    # flags of the agent DaemonSet (lvs-agent) that reproduce director-level settings: (flag, value, line)
    agent_flags: list[tuple[str, str, int]] = field(default_factory=list)

    def agent_flag(self, flag: str, value: str, line: int) -> None:
        if all((known_flag, known_value) != (flag, value) for known_flag, known_value, _ in self.agent_flags):
            self.agent_flags.append((flag, value, line))
