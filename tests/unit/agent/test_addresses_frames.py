"""Takeover announcement frames, checked field by field (the kernel test proves a neighbour accepts them)."""

from __future__ import annotations

import ipaddress
import struct

import pytest
from lvs_agent.addresses import canonical_vip, gratuitous_arp_frame, unsolicited_na_frame

MAC = "02:11:22:33:44:55"
MAC_BYTES = bytes.fromhex("021122334455")


def ones_complement_sum(data: bytes) -> int:
    if len(data) % 2:
        data += b"\x00"
    total = sum(struct.unpack(f"!{len(data) // 2}H", data))
    while total >> 16:
        total = (total & 0xFFFF) + (total >> 16)
    return total


def test_gratuitous_arp_is_a_broadcast_request_for_the_vip_itself() -> None:
    frame = gratuitous_arp_frame("203.0.113.10", MAC)
    assert len(frame) == 42
    assert frame[0:6] == b"\xff" * 6
    assert frame[6:12] == MAC_BYTES
    assert frame[12:14] == b"\x08\x06"
    htype, ptype, hlen, plen, op = struct.unpack("!HHBBH", frame[14:22])
    assert (htype, ptype, hlen, plen, op) == (1, 0x0800, 6, 4, 1)
    assert frame[22:28] == MAC_BYTES
    vip = ipaddress.IPv4Address("203.0.113.10").packed
    assert frame[28:32] == vip  # sender
    assert frame[32:38] == b"\x00" * 6
    assert frame[38:42] == vip  # target


def test_unsolicited_na_has_override_hop_limit_255_and_a_valid_checksum() -> None:
    frame = unsolicited_na_frame("2001:db8::10", MAC)
    assert frame[0:6] == bytes.fromhex("333300000001")
    assert frame[12:14] == b"\x86\xdd"
    ipv6 = frame[14:54]
    payload_length, next_header, hop_limit = struct.unpack("!HBB", ipv6[4:8])
    assert (next_header, hop_limit) == (58, 255)
    source, destination = ipv6[8:24], ipv6[24:40]
    assert source == ipaddress.IPv6Address("2001:db8::10").packed
    assert destination == ipaddress.IPv6Address("ff02::1").packed
    icmp = frame[54:]
    assert len(icmp) == payload_length == 32
    icmp_type, code = icmp[0], icmp[1]
    assert (icmp_type, code) == (136, 0)
    flags = struct.unpack("!I", icmp[4:8])[0]
    assert flags == 0x20000000  # override only: neither router nor solicited
    assert icmp[8:24] == source  # target
    assert icmp[24:26] == b"\x02\x01" and icmp[26:32] == MAC_BYTES
    pseudo = source + destination + struct.pack("!I3xB", payload_length, 58)
    assert ones_complement_sum(pseudo + icmp) == 0xFFFF


@pytest.mark.parametrize(
    ("spelling", "canonical"), [("2001:DB8:0::10", "2001:db8::10"), ("203.0.113.1", "203.0.113.1")]
)
def test_canonical_vip(spelling: str, canonical: str) -> None:
    assert canonical_vip(spelling) == canonical
