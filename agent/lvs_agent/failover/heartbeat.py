"""Director-to-director heartbeats: a small authenticated UDP datagram every interval.

One datagram carries the sender's claim for every VIP group it knows: (group, active?, term). Layout
(network byte order), then an HMAC-SHA256 over everything before it with the shared secret::

    "LVH1" | wall-clock send time, ns (u64) | boot id (8 bytes) | sequence (u64)
    | node name (u8 length + UTF-8) | group count (u16) | per group: name (u16 length + UTF-8),
      state (u8: 0 standby, 1 active, 2 leaving), term (u64) | HMAC (32 bytes)

"Leaving" is sent by an active director that is stopping gracefully and has already taken the group's
VIPs off its interface: its peers take over at once instead of waiting for its silence. An agent from
before this state reads any non-zero byte as active, i.e. one more active heartbeat and then silence, so
it takes over after the usual detection time: mixed versions during a rolling update stay correct.

A receiver drops a datagram whose HMAC does not verify, whose send time is further than ``max_skew``
from its own clock (replays of old captures), or whose sequence is not above the last one seen for the
same (node, boot id) (replays within the window). Groups that do not fit in one datagram go in the next
one, each datagram complete on its own.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import os
import struct
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

MAGIC = b"LVH1"
_HEADER = struct.Struct("!4sQ8sQ")
_GROUP_TAIL = struct.Struct("!BQ")
_DIGEST_SIZE = 32
MAX_DATAGRAM = 1400  # stays under a 1500-byte MTU with IPv6 + UDP headers
DEFAULT_PORT = 7946


@dataclass(frozen=True)
class GroupClaim:
    group: str
    active: bool
    term: int
    leaving: bool = False  # was active in ``term``, VIPs already released: take over now


_STANDBY, _ACTIVE, _LEAVING = 0, 1, 2


@dataclass(frozen=True)
class Heartbeat:
    node: str
    boot_id: bytes
    sequence: int
    sent_ns: int
    claims: tuple[GroupClaim, ...]


class HeartbeatError(ValueError):
    """A datagram that is not a valid, authentic, fresh heartbeat."""


def _sign(secret: bytes, body: bytes) -> bytes:
    return hmac.new(secret, body, hashlib.sha256).digest()


def encode(secret: bytes, node: str, boot_id: bytes, *, first_sequence: int, sent_ns: int,
           claims: Sequence[GroupClaim]) -> list[bytes]:
    """Datagrams for ``claims``: as few as fit in ``MAX_DATAGRAM`` bytes each, sequences increasing."""
    if len(boot_id) != 8:
        raise ValueError("boot id must be 8 bytes")
    node_bytes = node.encode()
    if len(node_bytes) > 255:
        raise ValueError("node name longer than 255 bytes")
    encoded_claims = []
    for claim in claims:
        name = claim.group.encode()
        state = _LEAVING if claim.leaving else _ACTIVE if claim.active else _STANDBY
        tail = _GROUP_TAIL.pack(state, claim.term)
        encoded_claims.append(struct.pack("!H", len(name)) + name + tail)
    fixed = _HEADER.size + 1 + len(node_bytes) + 2 + _DIGEST_SIZE
    datagrams: list[bytes] = []
    sequence = first_sequence
    index = 0
    while True:
        batch: list[bytes] = []
        size = fixed
        while index < len(encoded_claims) and (
            not batch or size + len(encoded_claims[index]) <= MAX_DATAGRAM
        ):
            batch.append(encoded_claims[index])
            size += len(encoded_claims[index])
            index += 1
        body = (
            _HEADER.pack(MAGIC, sent_ns, boot_id, sequence)
            + bytes([len(node_bytes)]) + node_bytes
            + struct.pack("!H", len(batch)) + b"".join(batch)
        )
        datagrams.append(body + _sign(secret, body))
        sequence += 1
        if index >= len(encoded_claims):
            return datagrams


def decode(secret: bytes, datagram: bytes) -> Heartbeat:
    """Parse and authenticate one datagram (freshness is the ``HeartbeatReceiver``'s job)."""
    if len(datagram) < _HEADER.size + 3 + _DIGEST_SIZE:
        raise HeartbeatError("too short")
    body, digest = datagram[:-_DIGEST_SIZE], datagram[-_DIGEST_SIZE:]
    if not hmac.compare_digest(digest, _sign(secret, body)):
        raise HeartbeatError("bad HMAC (wrong secret or tampered)")
    magic, sent_ns, boot_id, sequence = _HEADER.unpack_from(body)
    if magic != MAGIC:
        raise HeartbeatError("bad magic")
    offset = _HEADER.size
    try:
        node_length = body[offset]
        node = body[offset + 1: offset + 1 + node_length].decode()
        offset += 1 + node_length
        (count,) = struct.unpack_from("!H", body, offset)
        offset += 2
        claims = []
        for _ in range(count):
            (name_length,) = struct.unpack_from("!H", body, offset)
            name = body[offset + 2: offset + 2 + name_length].decode()
            offset += 2 + name_length
            state, term = _GROUP_TAIL.unpack_from(body, offset)
            offset += _GROUP_TAIL.size
            leaving = state == _LEAVING
            claims.append(GroupClaim(name, bool(state) and not leaving, term, leaving))
    except (struct.error, IndexError, UnicodeDecodeError) as error:
        raise HeartbeatError(f"malformed: {error}") from error
    if offset != len(body):
        raise HeartbeatError("trailing bytes")
    return Heartbeat(node, boot_id, sequence, sent_ns, tuple(claims))


class HeartbeatReceiver:
    """Authenticates datagrams and rejects stale or replayed ones."""

    def __init__(self, secret: bytes, max_skew: float = 5.0) -> None:
        self._secret = secret
        self._max_skew_ns = int(max_skew * 1e9)
        self._last: dict[str, tuple[bytes, int]] = {}

    def accept(self, datagram: bytes, now_ns: int) -> Heartbeat:
        beat = decode(self._secret, datagram)
        if abs(now_ns - beat.sent_ns) > self._max_skew_ns:
            raise HeartbeatError(f"from {beat.node}: send time off by more than the allowed skew")
        previous = self._last.get(beat.node)
        if previous is not None and previous[0] == beat.boot_id and beat.sequence <= previous[1]:
            raise HeartbeatError(f"from {beat.node}: replayed or reordered sequence {beat.sequence}")
        self._last[beat.node] = (beat.boot_id, beat.sequence)
        return beat


def new_boot_id() -> bytes:
    return os.urandom(8)


class UdpHeartbeatTransport(asyncio.DatagramProtocol):
    """Sends datagrams to every peer address and hands authentic ones to ``on_heartbeat``."""

    def __init__(self, receiver: HeartbeatReceiver, on_heartbeat: Callable[[Heartbeat], None],
                 wall_clock_ns: Callable[[], int], on_rejected: Callable[[str], None] | None = None) -> None:
        self._receiver = receiver
        self._on_heartbeat = on_heartbeat
        self._wall_clock_ns = wall_clock_ns
        self._on_rejected = on_rejected
        self._transport: Any = None  # the loop's datagram transport (not a DatagramTransport subclass)
        self.rejected = 0

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self._transport = transport

    def datagram_received(self, data: bytes, addr: tuple[str | int, ...]) -> None:
        try:
            beat = self._receiver.accept(data, self._wall_clock_ns())
        except HeartbeatError as error:
            self.rejected += 1
            if self._on_rejected is not None:
                self._on_rejected(f"{addr[0]}: {error}")
            return
        self._on_heartbeat(beat)

    def send(self, datagrams: Sequence[bytes], peers: Sequence[tuple[str, int]]) -> None:
        if self._transport is None:
            return
        for peer in peers:
            for datagram in datagrams:
                self._transport.sendto(datagram, peer)

    def close(self) -> None:
        if self._transport is not None:
            self._transport.close()
