"""Heartbeat datagrams: round trip, authentication, freshness, replay, and splitting many groups."""

from __future__ import annotations

import pytest
from lvs_agent.failover.heartbeat import (
    MAX_DATAGRAM,
    GroupClaim,
    HeartbeatError,
    HeartbeatReceiver,
    decode,
    encode,
)

SECRET = b"shared secret"
BOOT = b"\x01" * 8
NOW = 1_800_000_000 * 10**9


def one(claims: list[GroupClaim], sequence: int = 1, sent_ns: int = NOW, secret: bytes = SECRET) -> bytes:
    [datagram] = encode(secret, "director-a", BOOT, first_sequence=sequence, sent_ns=sent_ns, claims=claims)
    return datagram


def test_round_trip() -> None:
    claims = [GroupClaim("203.0.113.10", True, 7), GroupClaim("2001:db8::10", False, 0)]
    beat = decode(SECRET, one(claims))
    assert beat.node == "director-a"
    assert beat.boot_id == BOOT
    assert beat.sequence == 1
    assert beat.sent_ns == NOW
    assert list(beat.claims) == claims


def test_wrong_secret_and_tampering_are_rejected() -> None:
    datagram = one([GroupClaim("g", True, 1)])
    with pytest.raises(HeartbeatError, match="HMAC"):
        decode(b"other secret", datagram)
    tampered = bytearray(datagram)
    tampered[-40] ^= 1  # the term's last byte: "active in term 1" -> "term 0"
    with pytest.raises(HeartbeatError, match="HMAC"):
        decode(SECRET, bytes(tampered))
    with pytest.raises(HeartbeatError):
        decode(SECRET, datagram[:10])


def test_replays_and_stale_datagrams_are_rejected() -> None:
    receiver = HeartbeatReceiver(SECRET, max_skew=5.0)
    first = one([GroupClaim("g", True, 1)], sequence=10)
    assert receiver.accept(first, NOW).sequence == 10
    with pytest.raises(HeartbeatError, match="replayed"):
        receiver.accept(first, NOW)
    with pytest.raises(HeartbeatError, match="replayed"):
        receiver.accept(one([GroupClaim("g", True, 1)], sequence=9), NOW)
    assert receiver.accept(one([GroupClaim("g", True, 1)], sequence=11), NOW).sequence == 11
    with pytest.raises(HeartbeatError, match="skew"):
        receiver.accept(one([GroupClaim("g", True, 1)], sequence=12, sent_ns=NOW - 6 * 10**9), NOW)
    # a restarted sender (new boot id) starts its sequence again
    [restarted] = encode(SECRET, "director-a", b"\x02" * 8, first_sequence=0, sent_ns=NOW,
                         claims=[GroupClaim("g", False, 1)])
    assert receiver.accept(restarted, NOW).sequence == 0


def test_many_groups_are_split_into_complete_datagrams_under_the_mtu() -> None:
    claims = [GroupClaim(f"group-{index:04d}", index % 2 == 0, index) for index in range(500)]
    datagrams = encode(SECRET, "director-a", BOOT, first_sequence=100, sent_ns=NOW, claims=claims)
    assert len(datagrams) > 1
    assert all(len(datagram) <= MAX_DATAGRAM for datagram in datagrams)
    decoded = [decode(SECRET, datagram) for datagram in datagrams]
    assert [beat.sequence for beat in decoded] == list(range(100, 100 + len(datagrams)))
    assert [claim for beat in decoded for claim in beat.claims] == claims
