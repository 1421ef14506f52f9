"""The IPVS generic-netlink codec: ``lvs_api.ipvs`` values <-> request and dump bytes.

Attribute tables mirror ``include/uapi/linux/ip_vs.h``; request layouts are declared below as data and
compiled once per variant (address length, scheduler name length) by :mod:`lvs_agent.netlink.layout`.

Wire details that differ from pyroute2 0.9.7's ``ipvsmsg`` (see ``contrib/pyroute2/README.md``):
- ``IPVS_SVC_ATTR_NETMASK`` is a raw ``__be32`` that the kernel reads with ``nla_get_be32``: for IPv4 it
  is the mask's 4 bytes in network order, for IPv6 the prefix length as a host-order u32 (as ipvsadm
  sends it). pyroute2 types it as an IPv4 address, which cannot carry an IPv6 prefix length.
- ``IPVS_DEST_ATTR_TUN_PORT`` is a ``__be16`` (the kernel reads ``nla_get_be16``); pyroute2 types it as a
  host-order u16.
- Flags are sent with mask ``0xFFFFFFFF`` (as ipvsadm does), so that every flag is set to the given value.

Addresses go out as 4 bytes for IPv4 and 16 for IPv6 (the kernel copies at most 16 with ``nla_memcpy``,
and pyroute2 encodes the same); dumps carry 16 bytes, of which IPv4 uses the first 4.
"""

from __future__ import annotations

import ipaddress
import socket
import struct
import sys
from collections.abc import Iterator, Mapping
from enum import IntEnum
from functools import lru_cache
from typing import Final, NamedTuple, TypeAlias, TypeVar

from lvs_api.ipvs import (
    KERNEL_ONLY_SERVICE_FLAGS,
    DestConfig,
    DestKey,
    Family,
    ForwardMethod,
    Op,
    OpKind,
    Protocol,
    ServiceConfig,
    ServiceKey,
    TunnelType,
)

from lvs_agent.netlink import uapi
from lvs_agent.netlink.layout import (
    ASCIIZ,
    BE16,
    BE32,
    BINARY,
    FLAGS,
    GENL_HEADER,
    NESTED,
    NLA_HEADER,
    NLMSG_HEADER,
    U8,
    U16,
    U32,
    U64,
    AttrTable,
    CompiledRequest,
    LayoutCache,
    LearnedReply,
    Nest,
    RequestLayout,
    attribute_offsets,
    payload_length,
)

# ---------------------------------------------------------------------------------------------------------
# Attribute tables: name -> (kind, netlink attribute id)

SERVICE_ATTRS: Final = AttrTable(
    "svc",
    {
        "af": (U16, uapi.IPVS_SVC_ATTR_AF),
        "protocol": (U16, uapi.IPVS_SVC_ATTR_PROTOCOL),
        "addr": (BINARY, uapi.IPVS_SVC_ATTR_ADDR),
        "port": (BE16, uapi.IPVS_SVC_ATTR_PORT),
        "fwmark": (U32, uapi.IPVS_SVC_ATTR_FWMARK),
        "sched_name": (ASCIIZ, uapi.IPVS_SVC_ATTR_SCHED_NAME),
        "flags": (FLAGS, uapi.IPVS_SVC_ATTR_FLAGS),
        "timeout": (U32, uapi.IPVS_SVC_ATTR_TIMEOUT),
        "netmask": (BE32, uapi.IPVS_SVC_ATTR_NETMASK),
        "stats": (NESTED, uapi.IPVS_SVC_ATTR_STATS),
        "pe_name": (ASCIIZ, uapi.IPVS_SVC_ATTR_PE_NAME),
        "stats64": (NESTED, uapi.IPVS_SVC_ATTR_STATS64),
    },
)

DEST_ATTRS: Final = AttrTable(
    "dest",
    {
        "addr": (BINARY, uapi.IPVS_DEST_ATTR_ADDR),
        "port": (BE16, uapi.IPVS_DEST_ATTR_PORT),
        "fwd_method": (U32, uapi.IPVS_DEST_ATTR_FWD_METHOD),
        "weight": (U32, uapi.IPVS_DEST_ATTR_WEIGHT),
        "u_thresh": (U32, uapi.IPVS_DEST_ATTR_U_THRESH),
        "l_thresh": (U32, uapi.IPVS_DEST_ATTR_L_THRESH),
        "active_conns": (U32, uapi.IPVS_DEST_ATTR_ACTIVE_CONNS),
        "inact_conns": (U32, uapi.IPVS_DEST_ATTR_INACT_CONNS),
        "persist_conns": (U32, uapi.IPVS_DEST_ATTR_PERSIST_CONNS),
        "stats": (NESTED, uapi.IPVS_DEST_ATTR_STATS),
        "addr_family": (U16, uapi.IPVS_DEST_ATTR_ADDR_FAMILY),
        "stats64": (NESTED, uapi.IPVS_DEST_ATTR_STATS64),
        "tun_type": (U8, uapi.IPVS_DEST_ATTR_TUN_TYPE),
        "tun_port": (BE16, uapi.IPVS_DEST_ATTR_TUN_PORT),
        "tun_flags": (U16, uapi.IPVS_DEST_ATTR_TUN_FLAGS),
    },
)

STATS_ATTRS: Final = AttrTable(
    "stats",
    {
        "conns": (U32, uapi.IPVS_STATS_ATTR_CONNS),
        "inpkts": (U32, uapi.IPVS_STATS_ATTR_INPKTS),
        "outpkts": (U32, uapi.IPVS_STATS_ATTR_OUTPKTS),
        "inbytes": (U64, uapi.IPVS_STATS_ATTR_INBYTES),
        "outbytes": (U64, uapi.IPVS_STATS_ATTR_OUTBYTES),
        "cps": (U32, uapi.IPVS_STATS_ATTR_CPS),
        "inpps": (U32, uapi.IPVS_STATS_ATTR_INPPS),
        "outpps": (U32, uapi.IPVS_STATS_ATTR_OUTPPS),
        "inbps": (U32, uapi.IPVS_STATS_ATTR_INBPS),
        "outbps": (U32, uapi.IPVS_STATS_ATTR_OUTBPS),
    },
)

STATS64_ATTRS: Final = AttrTable(
    "stats64", {name: (U64, nla_id) for name, (_, nla_id) in STATS_ATTRS.attrs.items()}
)

DAEMON_ATTRS: Final = AttrTable(
    "daemon",
    {
        "state": (U32, uapi.IPVS_DAEMON_ATTR_STATE),
        "mcast_ifn": (ASCIIZ, uapi.IPVS_DAEMON_ATTR_MCAST_IFN),
        "sync_id": (U32, uapi.IPVS_DAEMON_ATTR_SYNC_ID),
        "sync_maxlen": (U16, uapi.IPVS_DAEMON_ATTR_SYNC_MAXLEN),
        "mcast_group": (BE32, uapi.IPVS_DAEMON_ATTR_MCAST_GROUP),  # the kernel reads nla_get_in_addr
        "mcast_group6": (BINARY, uapi.IPVS_DAEMON_ATTR_MCAST_GROUP6),
        "mcast_port": (U16, uapi.IPVS_DAEMON_ATTR_MCAST_PORT),  # host order (nla_get_u16), unlike others
        "mcast_ttl": (U8, uapi.IPVS_DAEMON_ATTR_MCAST_TTL),
    },
)

# ---------------------------------------------------------------------------------------------------------
# Request layouts

SERVICE_KEY_INET: Final = ("af", "protocol", "addr", "port")
SERVICE_KEY_FWMARK: Final = ("af", "fwmark")
SERVICE_CONFIG: Final = ("sched_name", "flags", "timeout", "netmask")
DEST_KEY: Final = ("addr", "port", "addr_family")
DEST_FULL: Final = (
    "addr", "port", "fwd_method", "weight", "u_thresh", "l_thresh", "addr_family",
    "tun_type", "tun_port", "tun_flags",
)  # fmt: skip


def _service_nest(key: tuple[str, ...], full: bool) -> Nest:
    return Nest(uapi.IPVS_CMD_ATTR_SERVICE, SERVICE_ATTRS, key + (SERVICE_CONFIG if full else ()))


def _request(name: str, cmd: int, *nests: Nest) -> RequestLayout:
    return RequestLayout(name, cmd, uapi.GENL_VERSION, nests)


class _Layouts(NamedTuple):
    """The layouts of one service-key style (address/port or firewall mark)."""

    new_service: RequestLayout
    set_service: RequestLayout
    del_service: RequestLayout
    new_dest: RequestLayout
    set_dest: RequestLayout
    del_dest: RequestLayout
    get_dests: RequestLayout


def _layouts(style: str, key: tuple[str, ...]) -> _Layouts:
    full_dest = Nest(uapi.IPVS_CMD_ATTR_DEST, DEST_ATTRS, DEST_FULL)
    key_dest = Nest(uapi.IPVS_CMD_ATTR_DEST, DEST_ATTRS, DEST_KEY)
    svc_full, svc_key = _service_nest(key, True), _service_nest(key, False)
    return _Layouts(
        new_service=_request(f"new_service_{style}", uapi.IPVS_CMD_NEW_SERVICE, svc_full),
        set_service=_request(f"set_service_{style}", uapi.IPVS_CMD_SET_SERVICE, svc_full),
        del_service=_request(f"del_service_{style}", uapi.IPVS_CMD_DEL_SERVICE, svc_key),
        new_dest=_request(f"new_dest_{style}", uapi.IPVS_CMD_NEW_DEST, svc_key, full_dest),
        set_dest=_request(f"set_dest_{style}", uapi.IPVS_CMD_SET_DEST, svc_key, full_dest),
        del_dest=_request(f"del_dest_{style}", uapi.IPVS_CMD_DEL_DEST, svc_key, key_dest),
        get_dests=_request(f"get_dests_{style}", uapi.IPVS_CMD_GET_DEST, svc_key),
    )


INET_LAYOUTS: Final = _layouts("inet", SERVICE_KEY_INET)
FWMARK_LAYOUTS: Final = _layouts("fwmark", SERVICE_KEY_FWMARK)
GET_SERVICES: Final = _request("get_services", uapi.IPVS_CMD_GET_SERVICE)
GET_DAEMONS: Final = _request("get_daemons", uapi.IPVS_CMD_GET_DAEMON)
DEL_DAEMON: Final = _request(
    "del_daemon", uapi.IPVS_CMD_DEL_DAEMON, Nest(uapi.IPVS_CMD_ATTR_DAEMON, DAEMON_ATTRS, ("state",))
)
# the attributes every kernel with netlink IPVS takes; the optional ones follow, in attribute order,
# only when asked for (a kernel before 4.3 would refuse none of them, but would ignore them silently)
DAEMON_REQUIRED: Final = ("state", "mcast_ifn", "sync_id")
DAEMON_OPTIONAL: Final = ("sync_maxlen", "mcast_group", "mcast_group6", "mcast_port", "mcast_ttl")


@lru_cache(maxsize=64)
def new_daemon_layout(optional: tuple[str, ...]) -> RequestLayout:
    """The NEW_DAEMON layout carrying the required attributes and ``optional`` (in that order)."""
    fields = DAEMON_REQUIRED + optional
    return _request(
        f"new_daemon[{','.join(fields)}]",
        uapi.IPVS_CMD_NEW_DAEMON,
        Nest(uapi.IPVS_CMD_ATTR_DAEMON, DAEMON_ATTRS, fields),
    )


# ---------------------------------------------------------------------------------------------------------
# Value conversions


@lru_cache(maxsize=1 << 17)
def address_bytes(family: Family, text: str) -> bytes:
    """Canonical or not, text -> 4 (IPv4) or 16 (IPv6) bytes."""
    return socket.inet_pton(socket.AF_INET6 if family == Family.INET6 else socket.AF_INET, text)


def address_text(family: Family, raw: bytes) -> str:
    """4 or 16 bytes (IPv4 uses the first 4) -> canonical text, as ``lvs_api.ipvs`` wants it."""
    if family == Family.INET6:
        return str(ipaddress.IPv6Address(raw[:16]))
    return socket.inet_ntop(socket.AF_INET, raw[:4])


def netmask_to_wire(family: Family, prefix: int) -> int:
    """Prefix length -> the u32 the kernel reads with ``nla_get_be32``, as a host-order int for ``=I``."""
    if family == Family.INET6:
        return prefix
    mask = (0xFFFFFFFF << (32 - prefix)) & 0xFFFFFFFF if prefix else 0
    return int.from_bytes(mask.to_bytes(4, "big"), "little" if _LITTLE else "big")


def netmask_from_wire(family: Family, raw: bytes) -> int:
    """The 4 netmask bytes of a dump -> prefix length. An IPv4 mask that is not contiguous (only a foreign
    service can have one) reports its count of leading one bits."""
    if family == Family.INET6:
        value: int = _U32.unpack(raw)[0]
        return value
    mask = int.from_bytes(raw, "big")
    inverted = ~mask & 0xFFFFFFFF
    return 32 - inverted.bit_length()


_LITTLE: Final = struct.pack("=H", 1) == b"\x01\x00"
_U8: Final = struct.Struct("=B")
_U16: Final = struct.Struct("=H")
_U32: Final = struct.Struct("=I")
_U64: Final = struct.Struct("=Q")
_BE16: Final = struct.Struct(">H")
_FLAGS: Final = struct.Struct("=II")
_FAMILIES: Final[Mapping[int, Family]] = {f.value: f for f in Family}
_PROTOCOLS: Final[Mapping[int, Protocol]] = {p.value: p for p in Protocol}
_FORWARDS: Final[Mapping[int, ForwardMethod]] = {f.value: f for f in ForwardMethod}
_TUNNELS: Final[Mapping[int, TunnelType]] = {t.value: t for t in TunnelType}
_SERVICE_FLAGS_KEPT: Final = ~KERNEL_ONLY_SERVICE_FLAGS & 0xFFFFFFFF


# what a GET_DEST reply's fast path unpacks (see IpvsDecoder.dest_reply), in this order
_DEST_WANTED: Final[Mapping[int, str]] = {
    uapi.IPVS_DEST_ATTR_ADDR: "16s",
    uapi.IPVS_DEST_ATTR_PORT: "H",  # big-endian on the wire: ntohs
    uapi.IPVS_DEST_ATTR_FWD_METHOD: "I",
    uapi.IPVS_DEST_ATTR_WEIGHT: "I",
    uapi.IPVS_DEST_ATTR_U_THRESH: "I",
    uapi.IPVS_DEST_ATTR_L_THRESH: "I",
    uapi.IPVS_DEST_ATTR_ADDR_FAMILY: "H",
    uapi.IPVS_DEST_ATTR_TUN_TYPE: "B",
    uapi.IPVS_DEST_ATTR_TUN_PORT: "H",  # big-endian on the wire: ntohs
    uapi.IPVS_DEST_ATTR_TUN_FLAGS: "H",
}
_E = TypeVar("_E")
Buffer: TypeAlias = bytes | bytearray | memoryview


class NetlinkHeader(NamedTuple):
    length: int
    type: int
    flags: int
    seq: int
    pid: int


class DumpFormatError(ValueError):
    """A dump carried a value this vocabulary cannot represent (e.g. an unknown protocol number)."""


class DaemonState(IntEnum):
    """``IPVS_DAEMON_ATTR_STATE``: which of the two kernel sync daemons."""

    MASTER = uapi.IP_VS_STATE_MASTER  # sends this director's connection entries
    BACKUP = uapi.IP_VS_STATE_BACKUP  # receives the peers' entries

    @property
    def label(self) -> str:
        return self.name.lower()


class SyncDaemon(NamedTuple):
    """One kernel connection-sync daemon. ``None`` leaves a setting to the kernel's default when
    starting (payload 1500 - headers, group 224.0.0.81, port 8848, TTL 1), and is what a dump of a kernel
    before 4.3 reports (it knows only state, interface and sync id). ``group`` is IPv4 or IPv6 text."""

    state: DaemonState
    interface: str
    sync_id: int = 0
    max_length: int | None = None
    group: str | None = None
    port: int | None = None
    ttl: int | None = None


# ---------------------------------------------------------------------------------------------------------
# Encoding


class IpvsEncoder:
    """Packs IPVS requests for one socket (its generic-netlink family id and port id)."""

    def __init__(self, family_id: int, pid: int = 0) -> None:
        self.family_id = family_id
        self.pid = pid
        self._cache = LayoutCache()
        # a sync sends each service's destinations one after the other: keep the last key's encoding
        self._last_service: ServiceKey | None = None
        self._last_service_values: tuple[_Layouts, tuple[object, ...], tuple[int, ...]] = (
            INET_LAYOUTS,
            (),
            (),
        )

    def _service_values(self, key: ServiceKey) -> tuple[_Layouts, tuple[object, ...], tuple[int, ...]]:
        """Layouts, key attribute values and variable sizes of a service key (IntEnums pack as ints)."""
        if key is self._last_service:
            return self._last_service_values
        if key.fwmark:
            encoded: tuple[_Layouts, tuple[object, ...], tuple[int, ...]] = (
                FWMARK_LAYOUTS,
                (key.family, key.fwmark),
                (),
            )
        else:
            addr = address_bytes(key.family, key.address)
            encoded = (INET_LAYOUTS, (key.family, key.protocol, addr, socket.htons(key.port)), (len(addr),))
        self._last_service, self._last_service_values = key, encoded
        return encoded

    def _pack(
        self, layout: RequestLayout, sizes: tuple[int, ...], values: tuple[object, ...], flags: int, seq: int
    ) -> bytes:
        compiled: CompiledRequest = self._cache.get(layout, sizes)
        return compiled.pack(self.family_id, flags, seq, self.pid, values)

    def service(
        self, cmd: int, key: ServiceKey, config: ServiceConfig | None, *, flags: int, seq: int
    ) -> bytes:
        layouts, values, sizes = self._service_values(key)
        if cmd == uapi.IPVS_CMD_DEL_SERVICE:
            return self._pack(layouts.del_service, sizes, values, flags, seq)
        if config is None:
            raise ValueError("a service add/edit needs its ServiceConfig")
        sched = config.scheduler.encode("ascii") + b"\0"
        config_values = (
            sched,
            config.flags,
            uapi.ALL_FLAGS_MASK,
            config.timeout,
            netmask_to_wire(key.family, config.netmask),
        )
        layout = layouts.new_service if cmd == uapi.IPVS_CMD_NEW_SERVICE else layouts.set_service
        return self._pack(layout, (*sizes, len(sched)), values + config_values, flags, seq)

    def dest(
        self, cmd: int, service: ServiceKey, dest: DestKey, config: DestConfig | None, *, flags: int, seq: int
    ) -> bytes:
        layouts, values, sizes = self._service_values(service)
        addr = address_bytes(dest.family, dest.address)
        sizes = (*sizes, len(addr))
        if cmd == uapi.IPVS_CMD_DEL_DEST:
            return self._pack(
                layouts.del_dest, sizes, (*values, addr, socket.htons(dest.port), dest.family), flags, seq
            )
        if config is None:
            raise ValueError("a destination add/edit needs its DestConfig")
        values = (
            *values,
            addr,
            socket.htons(dest.port),
            config.forward,
            config.weight,
            config.upper_threshold,
            config.lower_threshold,
            dest.family,
            config.tunnel_type,
            socket.htons(config.tunnel_port),
            config.tunnel_flags,
        )
        layout = layouts.new_dest if cmd == uapi.IPVS_CMD_NEW_DEST else layouts.set_dest
        return self._pack(layout, sizes, values, flags, seq)

    def op(self, op: Op, flags: int, seq: int) -> bytes:
        """One planner operation -> one request."""
        kind = op.kind
        # identity tests: a plain Enum hashes in Python, and this runs 110,000 times in a full sync
        if kind is OpKind.ADD_DEST or kind is OpKind.EDIT_DEST:
            return self._dest_add_or_edit(op, kind is OpKind.ADD_DEST, flags, seq)
        if kind is OpKind.DEL_DEST:
            if op.dest is None:
                raise ValueError(f"{kind.value} needs a destination key")
            return self.dest(uapi.IPVS_CMD_DEL_DEST, op.service, op.dest, None, flags=flags, seq=seq)
        return self.service(_SERVICE_COMMANDS[kind], op.service, op.service_config, flags=flags, seq=seq)

    def _dest_add_or_edit(self, op: Op, add: bool, flags: int, seq: int) -> bytes:
        """The hot path of a full sync (100,000 of its 110,000 requests), kept flat on purpose."""
        dest, config = op.dest, op.dest_config
        if dest is None or config is None:
            raise ValueError("a destination add/edit needs its DestKey and DestConfig")
        layouts, values, sizes = self._service_values(op.service)
        addr = address_bytes(dest.family, dest.address)
        compiled = self._cache.get(layouts.new_dest if add else layouts.set_dest, (*sizes, len(addr)))
        return compiled.pack(
            self.family_id,
            flags,
            seq,
            self.pid,
            (
                *values,
                addr,
                socket.htons(dest.port),
                config.forward,
                config.weight,
                config.upper_threshold,
                config.lower_threshold,
                dest.family,
                config.tunnel_type,
                socket.htons(config.tunnel_port),
                config.tunnel_flags,
            ),
        )

    def get_services(self, seq: int) -> bytes:
        return self._pack(GET_SERVICES, (), (), uapi.NLM_F_REQUEST | uapi.NLM_F_DUMP, seq)

    def get_dests(self, service: ServiceKey, seq: int) -> bytes:
        layouts, values, sizes = self._service_values(service)
        return self._pack(layouts.get_dests, sizes, values, uapi.NLM_F_REQUEST | uapi.NLM_F_DUMP, seq)

    def new_daemon(self, daemon: SyncDaemon, *, flags: int, seq: int) -> bytes:
        """IPVS_CMD_NEW_DAEMON. Raises ValueError for what the kernel could not take (an interface name
        longer than 15 bytes, a group that is not an address, a value out of its attribute's range)."""
        ifname = daemon.interface.encode("ascii") + b"\0"
        if not 1 < len(ifname) <= uapi.IP_VS_IFNAME_MAXLEN:
            raise ValueError(f"interface name {daemon.interface!r}: 1 to 15 characters")
        optional: list[str] = []
        values: list[object] = [daemon.state, ifname, daemon.sync_id]
        sizes: list[int] = [len(ifname)]
        if daemon.max_length is not None:
            optional.append("sync_maxlen")
            values.append(daemon.max_length)
        if daemon.group is not None:
            group = ipaddress.ip_address(daemon.group)
            if group.version == 4:
                optional.append("mcast_group")
                values.append(int.from_bytes(group.packed, sys.byteorder))  # the 4 bytes as they are
            else:
                optional.append("mcast_group6")
                values.append(group.packed)
                sizes.append(len(group.packed))
        if daemon.port is not None:
            optional.append("mcast_port")
            values.append(daemon.port)
        if daemon.ttl is not None:
            optional.append("mcast_ttl")
            values.append(daemon.ttl)
        try:
            return self._pack(new_daemon_layout(tuple(optional)), tuple(sizes), tuple(values), flags, seq)
        except struct.error as exc:  # e.g. a port above 65535
            raise ValueError(f"sync daemon {daemon}: {exc}") from exc

    def del_daemon(self, state: DaemonState, *, flags: int, seq: int) -> bytes:
        return self._pack(DEL_DAEMON, (), (state,), flags, seq)

    def get_daemons(self, seq: int) -> bytes:
        return self._pack(GET_DAEMONS, (), (), uapi.NLM_F_REQUEST | uapi.NLM_F_DUMP, seq)


_SERVICE_COMMANDS: Final[Mapping[OpKind, int]] = {
    OpKind.ADD_SERVICE: uapi.IPVS_CMD_NEW_SERVICE,
    OpKind.EDIT_SERVICE: uapi.IPVS_CMD_SET_SERVICE,
    OpKind.DEL_SERVICE: uapi.IPVS_CMD_DEL_SERVICE,
}

# ---------------------------------------------------------------------------------------------------------
# Decoding


def iter_messages(buf: Buffer, length: int) -> Iterator[tuple[NetlinkHeader, int]]:
    """Netlink messages in ``buf[:length]``: (header, offset of the payload after the netlink header)."""
    offset = 0
    unpack = NLMSG_HEADER.unpack_from
    while offset + NLMSG_HEADER.size <= length:
        header = NetlinkHeader(*unpack(buf, offset))
        if header.length < NLMSG_HEADER.size:
            return
        yield header, offset + NLMSG_HEADER.size
        offset += (header.length + 3) & ~3


def error_of(buf: Buffer, payload: int) -> tuple[int, int]:
    """An NLMSG_ERROR payload -> (errno, sequence number of the request it answers); errno 0 is an ack."""
    (error,) = struct.unpack_from("=i", buf, payload)
    request = NetlinkHeader(*NLMSG_HEADER.unpack_from(buf, payload + 4))
    return -error, request.seq


class _Interner:
    """Shares equal values inside one dump: 110,000 destinations hold a few distinct configs and
    addresses, so the observed table costs one tuple per entry instead of three."""

    __slots__ = ("addresses", "dest_configs", "service_configs")

    def __init__(self) -> None:
        self.addresses: dict[bytes, str] = {}
        self.dest_configs: dict[DestConfig, DestConfig] = {}
        self.service_configs: dict[ServiceConfig, ServiceConfig] = {}

    def address(self, family: Family, raw: bytes) -> str:
        text = self.addresses.get(raw)
        if text is None:
            text = self.addresses[raw] = address_text(family, raw)
        return text


def _family(value: int) -> Family:
    try:
        return _FAMILIES[value]
    except KeyError:
        raise DumpFormatError(f"unknown address family {value}") from None


def _enum_value(table: Mapping[int, _E], value: int, what: str) -> _E:
    try:
        return table[value]
    except KeyError:
        raise DumpFormatError(f"unknown {what} {value}") from None


class IpvsDecoder:
    """Turns GET_SERVICE / GET_DEST dump messages into ``lvs_api.ipvs`` tuples.

    ``*_attrs`` take the offset right after a reply's netlink header and return the attribute offsets
    inside its service or destination nest (see ``layout.attribute_offsets``); the other methods read
    values from those offsets, so a dump that also wants statistics walks each message once."""

    __slots__ = ("_dest_layouts", "_interner")

    def __init__(self) -> None:
        self._interner = _Interner()
        self._dest_layouts: dict[int, LearnedReply | None] = {}

    @staticmethod
    def _nest_attrs(buf: Buffer, payload: int, end: int, nest_id: int, table: AttrTable) -> list[int]:
        top = attribute_offsets(buf, payload + GENL_HEADER.size, end, uapi.IPVS_CMD_ATTR_DEST)
        nest = top[nest_id]
        if not nest:
            raise DumpFormatError(f"reply without the {table.prefix} nest")
        return attribute_offsets(buf, nest, nest + payload_length(buf, nest), table.max_id)

    def service_attrs(self, buf: Buffer, payload: int, end: int) -> list[int]:
        return self._nest_attrs(buf, payload, end, uapi.IPVS_CMD_ATTR_SERVICE, SERVICE_ATTRS)

    def dest_attrs(self, buf: Buffer, payload: int, end: int) -> list[int]:
        return self._nest_attrs(buf, payload, end, uapi.IPVS_CMD_ATTR_DEST, DEST_ATTRS)

    def service(self, buf: Buffer, o: list[int]) -> tuple[ServiceKey, ServiceConfig]:
        family = _family(_U16.unpack_from(buf, o[uapi.IPVS_SVC_ATTR_AF])[0])
        fwmark_at = o[uapi.IPVS_SVC_ATTR_FWMARK]
        fwmark = _U32.unpack_from(buf, fwmark_at)[0] if fwmark_at else 0
        if fwmark:
            key = ServiceKey(family, Protocol.NONE, "", 0, fwmark)
        else:
            protocol = _enum_value(
                _PROTOCOLS, _U16.unpack_from(buf, o[uapi.IPVS_SVC_ATTR_PROTOCOL])[0], "protocol"
            )
            addr_at = o[uapi.IPVS_SVC_ATTR_ADDR]
            raw = bytes(buf[addr_at : addr_at + (16 if family == Family.INET6 else 4)])
            port = _BE16.unpack_from(buf, o[uapi.IPVS_SVC_ATTR_PORT])[0]
            key = ServiceKey(family, protocol, self._interner.address(family, raw), port)
        sched_at = o[uapi.IPVS_SVC_ATTR_SCHED_NAME]
        sched = (
            bytes(buf[sched_at : sched_at + payload_length(buf, sched_at)]).split(b"\0", 1)[0].decode("ascii")
        )
        flags = _FLAGS.unpack_from(buf, o[uapi.IPVS_SVC_ATTR_FLAGS])[0] & _SERVICE_FLAGS_KEPT
        timeout = _U32.unpack_from(buf, o[uapi.IPVS_SVC_ATTR_TIMEOUT])[0]
        mask_at = o[uapi.IPVS_SVC_ATTR_NETMASK]
        netmask = netmask_from_wire(family, bytes(buf[mask_at : mask_at + 4]))
        config = ServiceConfig(sched, flags, timeout, netmask)
        config = self._interner.service_configs.setdefault(config, config)
        return key, config

    def dest_reply(
        self, buf: Buffer, payload: int, end: int, service_family: Family
    ) -> tuple[DestKey, DestConfig]:
        """A GET_DEST reply -> (key, config). Replies whose layout was seen before (nearly all of a dump)
        are unpacked with one compiled struct; others are walked attribute by attribute."""
        start = payload + GENL_HEADER.size
        size = end - start
        if size not in self._dest_layouts and len(self._dest_layouts) < 8:
            try:
                self._dest_layouts[size] = LearnedReply(buf, start + NLA_HEADER.size, end, _DEST_WANTED)
            except ValueError:
                self._dest_layouts[size] = None  # e.g. an old kernel without tunnel attributes
        learned = self._dest_layouts.get(size)
        values = learned.match(buf, start + NLA_HEADER.size, end) if learned is not None else None
        if values is None or NLA_HEADER.unpack_from(buf, start) != (size, uapi.IPVS_CMD_ATTR_DEST):
            return self.dest(buf, self.dest_attrs(buf, payload, end), service_family)
        raw, port, forward, weight, upper, lower, family_value, tunnel, tunnel_port, tunnel_flags = values
        family = _family(family_value)
        address = bytes(raw[:16] if family == Family.INET6 else raw[:4])
        key = DestKey(family, self._interner.address(family, address), socket.ntohs(port))
        config = DestConfig(
            _enum_value(_FORWARDS, forward, "forwarding method"),
            weight,
            upper,
            lower,
            _enum_value(_TUNNELS, tunnel, "tunnel type"),
            socket.ntohs(tunnel_port),
            tunnel_flags,
        )
        config = self._interner.dest_configs.setdefault(config, config)
        return key, config

    def dest(self, buf: Buffer, o: list[int], service_family: Family) -> tuple[DestKey, DestConfig]:
        # kernels before 4.x do not report the destination family: it is then the service's
        family_at = o[uapi.IPVS_DEST_ATTR_ADDR_FAMILY]
        family = _family(_U16.unpack_from(buf, family_at)[0]) if family_at else service_family
        addr_at = o[uapi.IPVS_DEST_ATTR_ADDR]
        raw = bytes(buf[addr_at : addr_at + (16 if family == Family.INET6 else 4)])
        port = _BE16.unpack_from(buf, o[uapi.IPVS_DEST_ATTR_PORT])[0]
        key = DestKey(family, self._interner.address(family, raw), port)
        forward_value = _U32.unpack_from(buf, o[uapi.IPVS_DEST_ATTR_FWD_METHOD])[0]
        # kernels before 5.3 have no tunnel attributes: IPIP, no port, no flags
        tun_type_at = o[uapi.IPVS_DEST_ATTR_TUN_TYPE]
        tun_port_at = o[uapi.IPVS_DEST_ATTR_TUN_PORT]
        tun_flags_at = o[uapi.IPVS_DEST_ATTR_TUN_FLAGS]
        tunnel_type = _U8.unpack_from(buf, tun_type_at)[0] if tun_type_at else 0
        config = DestConfig(
            _enum_value(_FORWARDS, forward_value, "forwarding method"),
            _U32.unpack_from(buf, o[uapi.IPVS_DEST_ATTR_WEIGHT])[0],
            _U32.unpack_from(buf, o[uapi.IPVS_DEST_ATTR_U_THRESH])[0],
            _U32.unpack_from(buf, o[uapi.IPVS_DEST_ATTR_L_THRESH])[0],
            _enum_value(_TUNNELS, tunnel_type, "tunnel type"),
            _BE16.unpack_from(buf, tun_port_at)[0] if tun_port_at else 0,
            _U16.unpack_from(buf, tun_flags_at)[0] if tun_flags_at else 0,
        )
        config = self._interner.dest_configs.setdefault(config, config)
        return key, config


def daemon_reply(buf: Buffer, payload: int, end: int) -> SyncDaemon:
    """A GET_DAEMON reply (one per running daemon) -> :class:`SyncDaemon`."""
    top = attribute_offsets(buf, payload + GENL_HEADER.size, end, uapi.IPVS_CMD_ATTR_DAEMON)
    nest = top[uapi.IPVS_CMD_ATTR_DAEMON]
    if not nest:
        raise DumpFormatError("reply without the daemon nest")
    o = attribute_offsets(buf, nest, nest + payload_length(buf, nest), DAEMON_ATTRS.max_id)
    state_at, ifn_at, sync_id_at = (o[DAEMON_ATTRS.id_of(name)] for name in DAEMON_REQUIRED)
    if not (state_at and ifn_at and sync_id_at):
        raise DumpFormatError("daemon reply without state, interface or sync id")
    state = _enum_value(_DAEMON_STATES, _U32.unpack_from(buf, state_at)[0], "sync daemon state")
    interface = bytes(buf[ifn_at : ifn_at + payload_length(buf, ifn_at)]).split(b"\0", 1)[0].decode("ascii")

    def optional(nla_id: int, unpacker: struct.Struct) -> int | None:
        at = o[nla_id]
        return int(unpacker.unpack_from(buf, at)[0]) if at else None

    group: str | None = None
    if group_at := o[uapi.IPVS_DAEMON_ATTR_MCAST_GROUP]:
        group = socket.inet_ntop(socket.AF_INET, bytes(buf[group_at : group_at + 4]))
    elif group_at := o[uapi.IPVS_DAEMON_ATTR_MCAST_GROUP6]:
        group = str(ipaddress.IPv6Address(bytes(buf[group_at : group_at + 16])))
    return SyncDaemon(
        state,
        interface,
        _U32.unpack_from(buf, sync_id_at)[0],
        optional(uapi.IPVS_DAEMON_ATTR_SYNC_MAXLEN, _U16),
        group,
        optional(uapi.IPVS_DAEMON_ATTR_MCAST_PORT, _U16),
        optional(uapi.IPVS_DAEMON_ATTR_MCAST_TTL, _U8),
    )


_DAEMON_STATES: Final[Mapping[int, DaemonState]] = {s.value: s for s in DaemonState}

# ---------------------------------------------------------------------------------------------------------
# Statistics (for the per-node report)


class Counters(NamedTuple):
    """IPVS counters of a service or destination (from ``*_STATS64`` when the kernel sends it)."""

    conns: int = 0
    inpkts: int = 0
    outpkts: int = 0
    inbytes: int = 0
    outbytes: int = 0
    cps: int = 0
    inpps: int = 0
    outpps: int = 0
    inbps: int = 0
    outbps: int = 0


class DestStats(NamedTuple):
    counters: Counters
    active_conns: int
    inactive_conns: int
    persistent_conns: int


def counters_from(buf: Buffer, stats_at: int, stats64_at: int) -> Counters:
    """Counters from a ``STATS64`` nest (preferred) or a ``STATS`` nest; zeros when neither is present."""
    if stats64_at:
        table, start = STATS64_ATTRS, stats64_at
    elif stats_at:
        table, start = STATS_ATTRS, stats_at
    else:
        return Counters()
    o = attribute_offsets(buf, start, start + payload_length(buf, start), table.max_id)
    values: list[int] = []
    for name in Counters._fields:
        kind, nla_id = table.attrs[name]
        at = o[nla_id]
        values.append((_U64 if kind is U64 else _U32).unpack_from(buf, at)[0] if at else 0)
    return Counters(*values)


def service_counters(buf: Buffer, o: list[int]) -> Counters:
    """Counters of a service, from the offsets ``IpvsDecoder.service_attrs`` returned."""
    return counters_from(buf, o[uapi.IPVS_SVC_ATTR_STATS], o[uapi.IPVS_SVC_ATTR_STATS64])


def dest_stats(buf: Buffer, o: list[int]) -> DestStats:
    """Counters and connection gauges of a destination, from ``IpvsDecoder.dest_attrs`` offsets."""

    def u32(nla_id: int) -> int:
        at = o[nla_id]
        return int(_U32.unpack_from(buf, at)[0]) if at else 0

    return DestStats(
        counters_from(buf, o[uapi.IPVS_DEST_ATTR_STATS], o[uapi.IPVS_DEST_ATTR_STATS64]),
        u32(uapi.IPVS_DEST_ATTR_ACTIVE_CONNS),
        u32(uapi.IPVS_DEST_ATTR_INACT_CONNS),
        u32(uapi.IPVS_DEST_ATTR_PERSIST_CONNS),
    )
