"""Generic-netlink message layouts declared as data and compiled once to ``struct`` formats.

The style is pyroute2's (an attribute table maps a name to its type and netlink attribute id), but a
request is compiled into a single :class:`struct.Struct` covering the netlink header, the generic header,
every attribute header, payload and padding. Encoding a message is then one ``Struct.pack`` call, which is
what makes 110,000 requests cheap from Python. Decoding walks attribute headers once and records where each
payload starts; the caller unpacks the payloads it needs with precompiled structs.

Byte order: netlink headers and most payloads are in host order (``=``). Payloads the kernel reads as
big-endian (ports) are passed in already converted by the caller (``socket.htons``), so a whole message
still compiles to one host-order format.
"""

from __future__ import annotations

import struct
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from operator import itemgetter
from typing import Any, Final, NamedTuple

from lvs_agent.netlink.uapi import NLA_TYPE_MASK

NLMSG_HEADER: Final = struct.Struct("=IHHII")  # len, type, flags, seq, pid
GENL_HEADER: Final = struct.Struct("=BBH")  # cmd, version, reserved
NLA_HEADER: Final = struct.Struct("=HH")  # len, type
NLMSGERR_HEADER: Final = struct.Struct("=i")  # errno (negative), followed by the request's header
HEADERS_SIZE: Final = NLMSG_HEADER.size + GENL_HEADER.size


def align4(n: int) -> int:
    return (n + 3) & ~3


class Kind(NamedTuple):
    """How one attribute's payload is laid out. ``size`` is ``None`` when it varies per message
    (strings, addresses): the size is then chosen when a layout variant is compiled."""

    name: str
    code: str  # struct code of the payload; for variable kinds the byte count is prepended
    size: int | None

    def payload_format(self, size: int) -> tuple[str, int]:
        """Struct format of the payload padded to 4 bytes, and the attribute length (header + payload)."""
        if self.size is None:
            # "Ns" pads short byte strings with NULs, which is exactly the netlink alignment padding
            return f"{align4(size)}s", NLA_HEADER.size + size
        pad = align4(self.size) - self.size
        return self.code + ("x" * pad if pad else ""), NLA_HEADER.size + self.size


U8: Final = Kind("u8", "B", 1)
U16: Final = Kind("u16", "H", 2)
U32: Final = Kind("u32", "I", 4)
U64: Final = Kind("u64", "Q", 8)
BE16: Final = Kind("be16", "H", 2)  # caller passes socket.htons(value)
BE32: Final = Kind("be32", "I", 4)  # caller passes the value as the kernel reads it (raw 4 bytes)
FLAGS: Final = Kind("flags", "II", 8)  # struct ip_vs_flags {__u32 flags; __u32 mask;}
BINARY: Final = Kind("binary", "s", None)  # addresses: 4 bytes for IPv4, 16 for IPv6
ASCIIZ: Final = Kind("asciiz", "s", None)  # NUL-terminated string; its size includes the NUL
NESTED: Final = Kind("nested", "", None)


@dataclass(frozen=True)
class AttrTable:
    """Attributes of one nest: name -> (kind, netlink attribute id)."""

    prefix: str
    attrs: Mapping[str, tuple[Kind, int]]
    max_id: int = field(init=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "max_id", max(nla_id for _, nla_id in self.attrs.values()))

    def id_of(self, name: str) -> int:
        return self.attrs[name][1]


@dataclass(frozen=True)
class Nest:
    """One nested top-level attribute of a request and the fields it carries, in wire order."""

    nla_id: int
    table: AttrTable
    fields: tuple[str, ...]


@dataclass(frozen=True)
class RequestLayout:
    """A generic-netlink request: command and its nests. Compiled per variant of variable sizes."""

    name: str
    cmd: int
    version: int
    nests: tuple[Nest, ...]

    def field_names(self) -> tuple[str, ...]:
        """Names of the values ``CompiledRequest.pack`` takes, in order (``nest.field``)."""
        return tuple(f"{n.table.prefix}.{f}" for n in self.nests for f in n.fields)


class CompiledRequest:
    """One layout variant as a single struct. ``pack(family_id, flags, seq, pid, values)`` -> bytes.

    ``pack`` is generated once per variant with every constant (lengths, attribute ids, command) written
    into one ``Struct.pack`` call, so that packing a message costs that call and nothing else: this is
    what keeps 110,000 requests a fraction of ipvsadm's time even on slow (emulated) CPUs."""

    __slots__ = ("_slots", "_struct", "_template", "layout", "pack", "size")

    def __init__(self, layout: RequestLayout, sizes: Mapping[str, int]) -> None:
        self.layout = layout
        codes: list[str] = ["IHHII", "BBH"]
        # template of arguments: constants filled in, value slots left as 0
        template: list[object] = [0, 0, 0, 0, 0, layout.cmd, layout.version, 0]
        slots: list[int] = []
        body = 0
        for nest in layout.nests:
            nest_header_pos = len(template)
            codes.append("HH")
            template += [0, nest.nla_id]  # no NLA_F_NESTED: as pyroute2 and ipvsadm send it
            nest_len = NLA_HEADER.size
            for name in nest.fields:
                kind, nla_id = nest.table.attrs[name]
                size = kind.size if kind.size is not None else sizes[f"{nest.table.prefix}.{name}"]
                fmt, attr_len = kind.payload_format(size)
                codes.append("HH" + fmt)
                template += [attr_len, nla_id]
                values_in_payload = len(kind.code) if kind.size is not None else 1
                for _ in range(values_in_payload):
                    slots.append(len(template))
                    template.append(0)
                nest_len += align4(attr_len)
            template[nest_header_pos] = nest_len
            body += nest_len
        self.size = HEADERS_SIZE + body
        template[0] = self.size
        self._struct = struct.Struct("=" + "".join(codes))
        assert self._struct.size == self.size, (layout.name, self._struct.size, self.size)
        self._template = template
        self._slots = tuple(slots)
        self.pack: Callable[[int, int, int, int, Sequence[object]], bytes] = self._generate_pack()

    def _generate_pack(self) -> Callable[[int, int, int, int, Sequence[object]], bytes]:
        arguments = [repr(value) for value in self._template]
        arguments[1:5] = ["family_id", "flags", "seq", "pid"]
        for index, position in enumerate(self._slots):
            arguments[position] = f"values[{index}]"
        # only ints (from our own layout tables) and names above go into the source
        assert all(isinstance(value, int) for value in self._template)
        source = (
            "def pack(family_id, flags, seq, pid, values):\n"
            f"    if len(values) != {len(self._slots)}:\n"
            f"        raise ValueError('{self.layout.name} takes {len(self._slots)} values')\n"
            f"    return struct_pack({', '.join(arguments)})\n"
        )
        namespace: dict[str, Any] = {"struct_pack": self._struct.pack}
        exec(compile(source, f"<layout {self.layout.name}>", "exec"), namespace)
        generated: Callable[[int, int, int, int, Sequence[object]], bytes] = namespace["pack"]
        return generated

    @property
    def value_count(self) -> int:
        return len(self._slots)


class LayoutCache:
    """Compiled variants of request layouts, keyed by layout and the sizes of its variable fields."""

    def __init__(self) -> None:
        self._compiled: dict[tuple[str, tuple[int, ...]], CompiledRequest] = {}

    def get(self, layout: RequestLayout, sizes: tuple[int, ...]) -> CompiledRequest:
        """``sizes``: sizes of the layout's variable fields, in field order."""
        key = (layout.name, sizes)
        compiled = self._compiled.get(key)
        if compiled is None:
            names = [
                f"{n.table.prefix}.{f}"
                for n in layout.nests
                for f in n.fields
                if n.table.attrs[f][0].size is None
            ]
            compiled = CompiledRequest(layout, dict(zip(names, sizes, strict=True)))
            self._compiled[key] = compiled
        return compiled


def attribute_offsets(buf: bytes | bytearray | memoryview, start: int, end: int, max_id: int) -> list[int]:
    """Walk the attributes in ``buf[start:end]``; return a list indexed by attribute id holding the
    payload offset of that attribute (0 when absent). Payload length is at ``offset - 4`` (the header)."""
    offsets = [0] * (max_id + 1)
    unpack = NLA_HEADER.unpack_from
    while start + 4 <= end:
        length, nla_type = unpack(buf, start)
        if length < 4:
            break  # malformed; stop rather than loop forever
        nla_type &= NLA_TYPE_MASK
        if nla_type <= max_id:
            offsets[nla_type] = start + 4
        start += (length + 3) & ~3
    return offsets


def payload_length(buf: bytes | bytearray | memoryview, payload_offset: int) -> int:
    length: int = NLA_HEADER.unpack_from(buf, payload_offset - 4)[0]
    return length - NLA_HEADER.size


class LearnedReply:
    """The layout of one kind of dump reply, learnt from a real message and compiled to one ``Struct``.

    The kernel builds every reply of a kind (say, a GET_DEST answer) with the same attributes in the same
    order and sizes. From one sample this compiles a format that unpacks, in a single call, every attribute
    header plus the payloads asked for (by attribute id, each with its struct code). A message matches when
    its length and all its attribute headers equal the sample's; anything else is decoded the slow way.
    Nested attributes are not descended into (their payload is skipped), so only top-level fields of the
    walked region can be asked for.
    """

    __slots__ = ("_expected", "_headers", "_struct", "_values", "size")

    def __init__(
        self, buf: bytes | bytearray | memoryview, start: int, end: int, wanted: Mapping[int, str]
    ) -> None:
        codes: list[str] = []
        header_at: list[int] = []
        expected: list[int] = []
        values_at: dict[int, int] = {}
        position = 0  # index of the next unpacked value
        offset = start
        while offset + 4 <= end:
            length, nla_type = NLA_HEADER.unpack_from(buf, offset)
            if length < 4:
                raise ValueError("malformed attribute")
            padded = (length + 3) & ~3
            codes.append("HH")
            header_at += [position, position + 1]
            expected += [length, nla_type]
            position += 2
            code = wanted.get(nla_type & NLA_TYPE_MASK)
            payload = length - 4
            if code is not None and struct.calcsize("=" + code) == payload:
                values_at[nla_type & NLA_TYPE_MASK] = position
                position += 1
                codes.append(code + ("x" * (padded - length) if padded > length else ""))
            elif padded > 4:
                codes.append(f"{padded - 4}x")
            offset += padded
        if offset != end or set(values_at) != set(wanted):
            raise ValueError("sample does not carry every wanted attribute")
        self._struct = struct.Struct("=" + "".join(codes))
        self.size = end - start
        if len(header_at) < 2 or len(wanted) < 2:
            raise ValueError("too few attributes to compile")  # itemgetter of one item is not a tuple
        self._headers = itemgetter(*header_at)
        self._expected = tuple(expected)
        self._values = itemgetter(*(values_at[nla_id] for nla_id in wanted))

    def match(self, buf: bytes | bytearray | memoryview, start: int, end: int) -> tuple[Any, ...] | None:
        """The wanted values, in the order of ``wanted``, or None when this message has another layout."""
        if end - start != self.size:
            return None
        values = self._struct.unpack_from(buf, start)
        if self._headers(values) != self._expected:
            return None
        matched: tuple[Any, ...] = self._values(values)
        return matched
