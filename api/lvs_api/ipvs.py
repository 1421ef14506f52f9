"""The IPVS table in kernel terms: the one vocabulary shared by the compiler, the planner and the agent.

Everything here is a plain value (NamedTuple or IntEnum) so that an observed table of 110,000 entries
stays compact (tuples, no per-entry dicts) and so that the planner can compare desired and observed
entries with ``==``. Values mirror the kernel's ``include/uapi/linux/ip_vs.h``; nothing here does I/O.

Conventions:
- Addresses are canonical text (``ipaddress`` normal form), so IPv6 spellings compare equal.
- ``netmask`` is always a prefix length (0..32 for IPv4, 0..128 for IPv6). The netlink codec turns it
  into the kernel's encoding (an IPv4 mask, or the IPv6 prefix length); the API never sees that quirk.
- A firewall-mark service has ``protocol == 0``, ``address == ""`` and ``port == 0``; a
  (protocol, address, port) service has ``fwmark == 0``.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from typing import NamedTuple


class Family(enum.IntEnum):
    """Address family (``AF_INET`` / ``AF_INET6``)."""

    INET = 2
    INET6 = 10


class Protocol(enum.IntEnum):
    """IP protocol number of a service; ``NONE`` for firewall-mark services."""

    NONE = 0
    TCP = 6
    UDP = 17
    SCTP = 132


class ForwardMethod(enum.IntEnum):
    """``IP_VS_CONN_F_FWD_MASK`` values: how the director hands packets to a real server."""

    MASQ = 0  # NAT
    LOCAL = 1
    TUNNEL = 2
    ROUTE = 3  # direct routing
    BYPASS = 4


class TunnelType(enum.IntEnum):
    """``IP_VS_CONN_F_TUNNEL_TYPE_*``: encapsulation of a Tunnel destination."""

    IPIP = 0
    GUE = 1
    GRE = 2


class ServiceFlag(enum.IntFlag):
    """``IP_VS_SVC_F_*`` flags that user space sets."""

    NONE = 0
    PERSISTENT = 0x0001
    HASHED = 0x0002  # kernel-internal; always masked off before comparing
    ONEPACKET = 0x0004
    SCHED1 = 0x0008  # sh-fallback / mh-fallback
    SCHED2 = 0x0010  # sh-port / mh-port
    SCHED3 = 0x0020


class TunnelFlag(enum.IntFlag):
    """``IP_VS_TUNNEL_ENCAP_FLAG_*``: checksum options of GUE/GRE tunnels."""

    NOCSUM = 0
    CSUM = 0x0001
    REMCSUM = 0x0002


# Flags the kernel may report that user space never asks for; ignored when comparing.
KERNEL_ONLY_SERVICE_FLAGS = int(ServiceFlag.HASHED)


class ServiceKey(NamedTuple):
    """Identity of a virtual service: (family, protocol, address, port), or (family, fwmark)."""

    family: Family
    protocol: Protocol
    address: str
    port: int
    fwmark: int = 0

    def __str__(self) -> str:
        if self.fwmark:
            return f"FWM {self.fwmark} {'IPv6' if self.family == Family.INET6 else 'IPv4'}"
        host = f"[{self.address}]" if self.family == Family.INET6 else self.address
        return f"{self.protocol.name} {host}:{self.port}"


class ServiceConfig(NamedTuple):
    """Everything about a service that can be edited in place (``IPVS_CMD_SET_SERVICE``)."""

    scheduler: str = "wlc"
    flags: int = 0
    timeout: int = 0  # persistence timeout in seconds; 0 when not persistent
    netmask: int = 32  # persistence netmask as a prefix length


class DestKey(NamedTuple):
    """Identity of a real server inside one service."""

    family: Family
    address: str
    port: int

    def __str__(self) -> str:
        host = f"[{self.address}]" if self.family == Family.INET6 else self.address
        return f"{host}:{self.port}"


class DestConfig(NamedTuple):
    """Everything about a destination that can be edited in place (``IPVS_CMD_SET_DEST``)."""

    forward: ForwardMethod = ForwardMethod.MASQ
    weight: int = 1
    upper_threshold: int = 0
    lower_threshold: int = 0
    tunnel_type: TunnelType = TunnelType.IPIP
    tunnel_port: int = 0
    tunnel_flags: int = 0


class VirtualServer(NamedTuple):
    """One service with its destinations."""

    config: ServiceConfig
    dests: Mapping[DestKey, DestConfig]


# The whole table, desired or observed.
Table = Mapping[ServiceKey, VirtualServer]


class OpKind(enum.Enum):
    """Netlink commands the planner may emit. There is deliberately no flush."""

    ADD_SERVICE = "add-service"
    EDIT_SERVICE = "edit-service"
    DEL_SERVICE = "del-service"
    ADD_DEST = "add-dest"
    EDIT_DEST = "edit-dest"
    DEL_DEST = "del-dest"


class Op(NamedTuple):
    """One kernel operation. ``service_config`` is set for service add/edit; ``dest``/``dest_config``
    for destination operations (``dest_config`` is ``None`` only for a delete)."""

    kind: OpKind
    service: ServiceKey
    service_config: ServiceConfig | None = None
    dest: DestKey | None = None
    dest_config: DestConfig | None = None
