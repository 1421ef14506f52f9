"""The small part of the DNS wire format (RFC 1035, RFC 3596) a health check needs.

Builds one question and parses a reply: header, rcode, and answer records of the queried type, decoded to
text (addresses for A/AAAA, names for CNAME/NS/PTR, strings for TXT). Pure functions, no I/O.
"""

from __future__ import annotations

import ipaddress
import struct
from typing import NamedTuple

QUERY_TYPES: dict[str, int] = {
    "A": 1,
    "NS": 2,
    "CNAME": 5,
    "SOA": 6,
    "PTR": 12,
    "MX": 15,
    "TXT": 16,
    "AAAA": 28,
    "SRV": 33,
    "ANY": 255,
}
RCODES: dict[str, int] = {
    "NOERROR": 0,
    "FORMERR": 1,
    "SERVFAIL": 2,
    "NXDOMAIN": 3,
    "NOTIMP": 4,
    "REFUSED": 5,
}
RCODE_NAMES: dict[int, str] = {code: name for name, code in RCODES.items()}
TYPE_NAMES: dict[int, str] = {code: name for name, code in QUERY_TYPES.items()}

_HEADER = struct.Struct("!HHHHHH")
_CLASS_IN = 1
_FLAG_QR = 0x8000
_FLAG_RD = 0x0100
_FLAG_TC = 0x0200
_MAX_POINTER_HOPS = 32


class DnsWireError(ValueError):
    """A reply that is not a well-formed DNS message."""


class DnsAnswer(NamedTuple):
    name: str
    rtype: int
    value: str  # decoded rdata; hex for types this module does not decode


class DnsReply(NamedTuple):
    query_id: int
    rcode: int
    truncated: bool
    answers: tuple[DnsAnswer, ...]

    @property
    def rcode_name(self) -> str:
        return RCODE_NAMES.get(self.rcode, str(self.rcode))


def encode_name(name: str) -> bytes:
    """A domain name as length-prefixed labels (no compression)."""
    labels = [label for label in name.rstrip(".").split(".") if label] if name not in ("", ".") else []
    out = bytearray()
    for label in labels:
        raw = label.encode("idna") if not label.isascii() else label.encode()
        if not 0 < len(raw) <= 63:
            raise DnsWireError(f"bad DNS label {label!r}")
        out.append(len(raw))
        out += raw
    out.append(0)
    return bytes(out)


def build_query(query_id: int, name: str, qtype: str, recursion_desired: bool = True) -> bytes:
    """One-question query message."""
    flags = _FLAG_RD if recursion_desired else 0
    header = _HEADER.pack(query_id & 0xFFFF, flags, 1, 0, 0, 0)
    return header + encode_name(name) + struct.pack("!HH", QUERY_TYPES[qtype.upper()], _CLASS_IN)


def _read_name(message: bytes, offset: int) -> tuple[str, int]:
    """Decode a possibly compressed name at ``offset``; returns (name, offset after it in place)."""
    labels: list[str] = []
    end_offset = -1
    hops = 0
    while True:
        if offset >= len(message):
            raise DnsWireError("name runs past the end of the message")
        length = message[offset]
        if length & 0xC0 == 0xC0:  # compression pointer
            if offset + 1 >= len(message):
                raise DnsWireError("truncated compression pointer")
            if end_offset < 0:
                end_offset = offset + 2
            hops += 1
            if hops > _MAX_POINTER_HOPS:
                raise DnsWireError("compression pointer loop")
            offset = ((length & 0x3F) << 8) | message[offset + 1]
            continue
        if length & 0xC0:
            raise DnsWireError(f"unsupported label type 0x{length:02x}")
        offset += 1
        if length == 0:
            break
        if offset + length > len(message):
            raise DnsWireError("label runs past the end of the message")
        labels.append(message[offset : offset + length].decode("ascii", "backslashreplace"))
        offset += length
    return ".".join(labels) + ".", (end_offset if end_offset >= 0 else offset)


def _decode_rdata(message: bytes, rtype: int, start: int, length: int) -> str:
    rdata = message[start : start + length]
    if rtype == QUERY_TYPES["A"] and length == 4:
        return str(ipaddress.IPv4Address(rdata))
    if rtype == QUERY_TYPES["AAAA"] and length == 16:
        return str(ipaddress.IPv6Address(rdata))
    if rtype in (QUERY_TYPES["CNAME"], QUERY_TYPES["NS"], QUERY_TYPES["PTR"]):
        return _read_name(message, start)[0]
    if rtype == QUERY_TYPES["TXT"]:
        parts: list[str] = []
        index = 0
        while index < length:
            size = rdata[index]
            parts.append(rdata[index + 1 : index + 1 + size].decode("utf-8", "backslashreplace"))
            index += 1 + size
        return "".join(parts)
    return rdata.hex()


def parse_reply(message: bytes) -> DnsReply:
    """Parse a reply's header and answer section (questions skipped, authority/additional ignored)."""
    if len(message) < _HEADER.size:
        raise DnsWireError(f"reply of {len(message)} bytes is shorter than a DNS header")
    query_id, flags, qdcount, ancount, _nscount, _arcount = _HEADER.unpack_from(message)
    if not flags & _FLAG_QR:
        raise DnsWireError("message is a query, not a reply")
    offset = _HEADER.size
    for _ in range(qdcount):
        _name, offset = _read_name(message, offset)
        offset += 4
    answers: list[DnsAnswer] = []
    for _ in range(ancount):
        name, offset = _read_name(message, offset)
        if offset + 10 > len(message):
            raise DnsWireError("truncated resource record header")
        rtype, _rclass, _ttl, rdlength = struct.unpack_from("!HHIH", message, offset)
        offset += 10
        if offset + rdlength > len(message):
            raise DnsWireError("truncated resource record data")
        answers.append(DnsAnswer(name, rtype, _decode_rdata(message, rtype, offset, rdlength)))
        offset += rdlength
    return DnsReply(query_id, flags & 0x000F, bool(flags & _FLAG_TC), tuple(answers))


def canonical_answer(rtype: int, value: str) -> str:
    """Normal form for comparing an expected answer with a decoded one."""
    if rtype in (QUERY_TYPES["A"], QUERY_TYPES["AAAA"]):
        try:
            return str(ipaddress.ip_address(value))
        except ValueError:
            return value
    if rtype in (QUERY_TYPES["CNAME"], QUERY_TYPES["NS"], QUERY_TYPES["PTR"]):
        return value.lower().rstrip(".") + "."
    return value
