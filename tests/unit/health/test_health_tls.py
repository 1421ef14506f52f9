"""HTTPS checks on the reactor: TLS session resumption per member (seen from both ends), the bound of the
session cache, recovery when a member no longer accepts its session, and TLS framing of the response.
Real TLS listeners on 127.0.0.1 with a self-signed certificate made by the openssl CLI."""

from __future__ import annotations

import asyncio
import contextlib
import ssl
import subprocess
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import pytest
from lvs_agent.health.probe import ProbeResult
from lvs_agent.health.probes import NetworkProber
from lvs_agent.health.spec import HttpProbe

LOOPBACK = "127.0.0.1"
pytestmark = pytest.mark.timeout(60)


@pytest.fixture(scope="module")
def certificate(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    directory = tmp_path_factory.mktemp("tls")
    cert, key = directory / "cert.pem", directory / "key.pem"
    command = [
        "openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
        "-keyout", str(key), "-out", str(cert), "-days", "1", "-subj", "/CN=member.test",
        "-addext", "subjectAltName=DNS:member.test",
    ]  # fmt: skip
    try:
        subprocess.run(command, check=True, capture_output=True)
    except (OSError, subprocess.CalledProcessError) as error:
        pytest.skip(f"openssl cannot make a test certificate: {error}")
    return cert, key


class Member:
    """A TLS listener answering 200 with ``body``; records whether each connection resumed a session."""

    def __init__(self, context: ssl.SSLContext, body: bytes = b"ok") -> None:
        self.context = context
        self.body = body
        self.resumed: list[bool] = []
        self.server: asyncio.Server | None = None
        self.port = 0

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        tls = writer.get_extra_info("ssl_object")
        self.resumed.append(bool(tls.session_reused))
        with contextlib.suppress(Exception):
            await reader.readuntil(b"\r\n\r\n")
            head = f"HTTP/1.1 200 OK\r\nContent-Length: {len(self.body)}\r\nConnection: close\r\n\r\n"
            writer.write(head.encode())
            for start in range(0, len(self.body), 1000):  # several TLS records
                writer.write(self.body[start:start + 1000])
                await writer.drain()
        writer.close()

    async def start(self, port: int = 0) -> None:
        self.server = await asyncio.start_server(self.handle, LOOPBACK, port, ssl=self.context,
                                                 reuse_address=True)
        self.port = self.server.sockets[0].getsockname()[1]

    async def stop(self) -> None:
        assert self.server is not None
        self.server.close()
        await self.server.wait_closed()


def server_context(certificate: tuple[Path, Path]) -> ssl.SSLContext:
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(*certificate)
    return context


@pytest.fixture
async def members(certificate: tuple[Path, Path]) -> AsyncIterator[Callable[..., object]]:
    started: list[Member] = []

    async def start(body: bytes = b"ok", port: int = 0) -> Member:
        member = Member(server_context(certificate), body)  # its own context: its own ticket keys
        await member.start(port)
        started.append(member)
        return member

    yield start
    for member in started:
        with contextlib.suppress(Exception):
            await member.stop()


async def test_second_check_of_a_member_resumes_its_session(members: Callable[..., object]) -> None:
    member: Member = await members()  # type: ignore[misc]
    prober = NetworkProber()
    spec = HttpProbe(path="/", tls=True)
    try:
        for _ in range(3):
            assert await prober.probe(LOOPBACK, member.port, spec, 2.0) == ProbeResult(True, "HTTP 200")
    finally:
        prober.close()
    assert member.resumed == [False, True, True]
    sessions = prober.tls_sessions
    assert sessions is not None and (sessions.full, sessions.resumed, len(sessions)) == (1, 2, 1)


async def test_without_a_cache_every_check_is_a_full_handshake(members: Callable[..., object]) -> None:
    member: Member = await members()  # type: ignore[misc]
    prober = NetworkProber(tls_sessions=0)
    try:
        for _ in range(2):
            assert (await prober.probe(LOOPBACK, member.port, HttpProbe(tls=True), 2.0)).ok
    finally:
        prober.close()
    assert member.resumed == [False, False]
    assert prober.tls_sessions is None


async def test_the_cache_is_bounded_and_keeps_the_members_it_has(members: Callable[..., object]) -> None:
    first: Member = await members()  # type: ignore[misc]
    second: Member = await members()  # type: ignore[misc]
    prober = NetworkProber(tls_sessions=1)
    try:
        for _ in range(3):
            for member in (first, second):
                assert (await prober.probe(LOOPBACK, member.port, HttpProbe(tls=True), 2.0)).ok
    finally:
        prober.close()
    assert first.resumed == [False, True, True]
    assert second.resumed == [False, False, False]  # no room: full handshakes, the first keeps its place
    assert prober.tls_sessions is not None and len(prober.tls_sessions) == 1


async def test_a_member_that_refuses_the_session_gets_a_full_handshake_and_a_new_one(
    members: Callable[..., object]
) -> None:
    old: Member = await members()  # type: ignore[misc]
    prober = NetworkProber()
    spec = HttpProbe(tls=True)
    try:
        assert (await prober.probe(LOOPBACK, old.port, spec, 2.0)).ok
        port = old.port
        await old.stop()
        restarted: Member = await members(port=port)  # type: ignore[misc]  # new ticket keys
        for _ in range(2):
            assert await prober.probe(LOOPBACK, port, spec, 2.0) == ProbeResult(True, "HTTP 200")
    finally:
        prober.close()
    assert restarted.resumed == [False, True]


async def test_body_over_several_tls_records_is_judged(members: Callable[..., object]) -> None:
    member: Member = await members(body=b"x" * 5000 + b"READY")  # type: ignore[misc]
    prober = NetworkProber()
    try:
        found = await prober.probe(LOOPBACK, member.port, HttpProbe(tls=True, body_regex="READY"), 2.0)
        missing = await prober.probe(LOOPBACK, member.port, HttpProbe(tls=True, body_regex="NOPE"), 2.0)
    finally:
        prober.close()
    assert found == ProbeResult(True, "HTTP 200, body matches")
    assert not missing.ok and "does not match" in missing.reason


async def test_tls_handshake_that_never_completes_times_out() -> None:
    async def silent(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.read(1)  # takes the ClientHello's first byte, never answers

    server = await asyncio.start_server(silent, LOOPBACK, 0)
    prober = NetworkProber()
    async with server:
        result = await prober.probe(LOOPBACK, server.sockets[0].getsockname()[1], HttpProbe(tls=True), 0.3)
    prober.close()
    assert result == ProbeResult(False, "timeout after 0.3s")
