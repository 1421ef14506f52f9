"""DNS wire format: queries we build, replies we parse."""

from __future__ import annotations

import struct

import pytest
from lvs_agent.health.dns import (
    QUERY_TYPES,
    DnsWireError,
    build_query,
    canonical_answer,
    encode_name,
    parse_reply,
)


def make_reply(
    query: bytes,
    rcode: int = 0,
    answers: list[tuple[int, bytes]] = (),  # type: ignore[assignment]
    compress: bool = True,
    flags_extra: int = 0,
) -> bytes:
    """A reply echoing the question, with answers whose owner name points back to it."""
    (query_id,) = struct.unpack_from("!H", query)
    question = query[12:]
    header = struct.pack("!HHHHHH", query_id, 0x8000 | 0x0080 | flags_extra | rcode, 1, len(answers), 0, 0)
    body = bytearray(question)
    owner = b"\xc0\x0c" if compress else question[:-4]
    for rtype, rdata in answers:
        body += owner + struct.pack("!HHIH", rtype, 1, 60, len(rdata)) + rdata
    return header + bytes(body)


def test_query_layout() -> None:
    query = build_query(0x1234, "www.example.com", "AAAA")
    assert query[:12] == struct.pack("!HHHHHH", 0x1234, 0x0100, 1, 0, 0, 0)
    assert query[12:] == b"\x03www\x07example\x03com\x00" + struct.pack("!HH", 28, 1)


def test_query_without_recursion_and_root_name() -> None:
    query = build_query(1, ".", "NS", recursion_desired=False)
    assert struct.unpack_from("!H", query, 2)[0] == 0
    assert query[12:] == b"\x00" + struct.pack("!HH", 2, 1)


def test_parse_a_and_aaaa_answers() -> None:
    query = build_query(7, "example.org", "ANY")
    reply = make_reply(
        query,
        answers=[(1, bytes([192, 0, 2, 1])), (28, bytes.fromhex("20010db8000000000000000000000001"))],
    )
    parsed = parse_reply(reply)
    assert parsed.query_id == 7
    assert parsed.rcode_name == "NOERROR"
    assert [(a.name, a.rtype, a.value) for a in parsed.answers] == [
        ("example.org.", 1, "192.0.2.1"),
        ("example.org.", 28, "2001:db8::1"),
    ]


def test_parse_uncompressed_names_and_cname_txt() -> None:
    query = build_query(9, "a.example", "ANY")
    cname = encode_name("b.example")
    txt = b"\x05hello\x06 world"
    parsed = parse_reply(make_reply(query, answers=[(5, cname), (16, txt)], compress=False))
    assert [a.value for a in parsed.answers] == ["b.example.", "hello world"]


def test_parse_rcode_and_truncation() -> None:
    query = build_query(3, "example", "A")
    parsed = parse_reply(make_reply(query, rcode=2, flags_extra=0x0200))
    assert parsed.rcode_name == "SERVFAIL"
    assert parsed.truncated
    assert parsed.answers == ()


def test_unknown_types_are_kept_as_hex() -> None:
    query = build_query(3, "example", "ANY")
    parsed = parse_reply(make_reply(query, answers=[(99, b"\x01\x02")]))
    assert parsed.answers[0].value == "0102"


@pytest.mark.parametrize(
    ("message", "error"),
    [
        (b"\x00\x01", "shorter than a DNS header"),
        (struct.pack("!HHHHHH", 1, 0x0100, 0, 0, 0, 0), "not a reply"),
        (struct.pack("!HHHHHH", 1, 0x8000, 1, 0, 0, 0) + b"\x05ab", "past the end"),
        (struct.pack("!HHHHHH", 1, 0x8000, 1, 0, 0, 0) + b"\xc0\x0c", "pointer loop"),
        (struct.pack("!HHHHHH", 1, 0x8000, 0, 1, 0, 0) + b"\x00\x00\x01", "truncated resource record"),
    ],
)
def test_malformed_replies_raise(message: bytes, error: str) -> None:
    with pytest.raises(DnsWireError, match=error):
        parse_reply(message)


def test_rdata_longer_than_message_raises() -> None:
    query = build_query(1, "x", "A")
    reply = bytearray(make_reply(query, answers=[(1, bytes(4))]))
    with pytest.raises(DnsWireError, match="truncated resource record data"):
        parse_reply(bytes(reply[:-2]))


def test_label_too_long_is_rejected() -> None:
    with pytest.raises(DnsWireError):
        encode_name("x" * 64 + ".example")


def test_canonical_answers() -> None:
    assert canonical_answer(QUERY_TYPES["AAAA"], "2001:DB8:0::1") == "2001:db8::1"
    assert canonical_answer(QUERY_TYPES["CNAME"], "Host.Example") == "host.example."
    assert canonical_answer(QUERY_TYPES["TXT"], "Hi") == "Hi"
