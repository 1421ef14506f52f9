"""Real probes against real listeners on 127.0.0.1: TCP, HTTP, HTTPS, UDP, DNS, exec."""

from __future__ import annotations

import asyncio
import socket
import ssl
import struct
import subprocess
import sys
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from lvs_agent.health.dns import RCODES, encode_name
from lvs_agent.health.engine import HealthChange, HealthEngine
from lvs_agent.health.probe import ProbeResult
from lvs_agent.health.probes import EXEC_DISABLED_REASON, NetworkProber
from lvs_agent.health.spec import (
    CheckSpec,
    DnsProbe,
    ExecProbe,
    HttpProbe,
    ProbeSpec,
    TcpProbe,
    Timing,
    UdpProbe,
)

LOOPBACK = "127.0.0.1"
pytestmark = pytest.mark.timeout(30)


async def probe(spec: ProbeSpec, port: int, timeout: float = 1.0, **prober_args: object) -> ProbeResult:
    prober = NetworkProber(**prober_args)  # type: ignore[arg-type]
    try:
        return await prober.probe(LOOPBACK, port, spec, timeout)
    finally:
        prober.close()


def free_port(kind: int = socket.SOCK_STREAM) -> int:
    """A port nobody listens on (bound and released)."""
    with socket.socket(socket.AF_INET, kind) as sock:
        sock.bind((LOOPBACK, 0))
        port: int = sock.getsockname()[1]
        return port


# --- TCP -----------------------------------------------------------------------------------------------


async def test_tcp_connects_to_a_listener_and_fails_on_a_closed_port() -> None:
    accepted = asyncio.Event()

    def on_client(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        accepted.set()
        writer.close()

    server = await asyncio.start_server(on_client, LOOPBACK, 0)
    port = server.sockets[0].getsockname()[1]
    async with server:
        assert await probe(TcpProbe(), port) == ProbeResult(True, "connected")
        await asyncio.wait_for(accepted.wait(), 2)
    result = await probe(TcpProbe(), port)
    assert not result.ok
    assert result.reason.startswith("ECONNREFUSED")


async def test_tcp_times_out_when_the_syn_is_not_answered() -> None:
    # A listener with a full accept queue drops further SYNs: the connect hangs like a dead host.
    with socket.socket() as listener, socket.socket() as filler:
        listener.bind((LOOPBACK, 0))
        listener.listen(0)
        port = listener.getsockname()[1]
        filler.connect((LOOPBACK, port))
        loop = asyncio.get_running_loop()
        started = loop.time()
        result = await probe(TcpProbe(), port, timeout=0.3)
        elapsed = loop.time() - started
    assert result == ProbeResult(False, "timeout after 0.3s")
    assert 0.25 < elapsed < 1.0


async def test_tcp_check_closes_with_a_reset_leaving_no_time_wait() -> None:
    server = await asyncio.start_server(lambda r, w: None, LOOPBACK, 0)
    port = server.sockets[0].getsockname()[1]
    async with server:
        for _ in range(20):
            assert (await probe(TcpProbe(), port)).ok
    ss = subprocess.run(
        ["ss", "-tan", "state", "time-wait", f"( dport = :{port} )"],
        capture_output=True,
        text=True,
        check=False,
    )
    if ss.returncode != 0:
        pytest.skip("ss not available")
    assert f":{port}" not in ss.stdout


async def test_tcp_to_ipv6_loopback() -> None:
    try:
        server = await asyncio.start_server(lambda r, w: w.close(), "::1", 0)
    except OSError:
        pytest.skip("no IPv6 loopback")
    port = server.sockets[0].getsockname()[1]
    async with server:
        prober = NetworkProber()
        assert (await prober.probe("::1", port, TcpProbe(), 1.0)).ok
        assert (await prober.probe("::1", port, HttpProbe(), 1.0)).reason.startswith("connection")
        prober.close()


async def test_invalid_address_is_a_failure_not_an_exception() -> None:
    result = await NetworkProber().probe("not-an-address", 80, TcpProbe(), 1.0)
    assert not result.ok
    assert "cannot create socket" in result.reason


# --- HTTP ----------------------------------------------------------------------------------------------


@dataclass
class HttpServer:
    """A tiny HTTP/1.1 server answering by path; records each request head."""

    port: int = 0
    requests: list[dict[str, str]] = field(default_factory=list)
    tls_server_names: list[str | None] = field(default_factory=list)

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            head = (await reader.readuntil(b"\r\n\r\n")).decode()
        except (asyncio.IncompleteReadError, ConnectionError):
            writer.close()
            return
        request_line, *header_lines = head.strip().split("\r\n")
        method, path, _ = request_line.split(" ")
        headers = {name.lower(): value.strip() for name, value in (h.split(":", 1) for h in header_lines)}
        self.requests.append({"method": method, "path": path, **headers})
        try:
            await self.respond(path, writer)
        except ConnectionError:
            pass
        finally:
            writer.close()

    async def respond(self, path: str, writer: asyncio.StreamWriter) -> None:
        def send(status: str, body: bytes, extra: str = "") -> None:
            head = f"HTTP/1.1 {status}\r\nContent-Length: {len(body)}\r\n{extra}Connection: close\r\n\r\n"
            writer.write(head.encode() + body)

        if path == "/ok":
            send("200 OK", b"all good")
        elif path == "/fail":
            send("500 Internal Server Error", b"broken")
        elif path == "/no-content":
            send("204 No Content", b"")
        elif path == "/status":
            send("200 OK", b'{"status": "green", "padding": "' + b"x" * 5000 + b'"}')
        elif path == "/chunked":
            writer.write(
                b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n"
                b"6\r\nstatus\r\n8;ext=1\r\n: yellow\r\n0\r\n\r\n"
            )
        elif path == "/until-close":
            writer.write(b"HTTP/1.1 200 OK\r\nConnection: close\r\n\r\nready")
        elif path == "/slow":
            await asyncio.sleep(5)
        elif path == "/trickle":  # the answer in small pieces with pauses: several reads per check
            for piece in (b"HTTP/1.1 200 OK\r\n", b"Content-Length: 11\r\n\r\n", b"status: ", b"ok!"):
                writer.write(piece)
                await writer.drain()
                await asyncio.sleep(0.05)
        elif path == "/garbage":
            writer.write(b"SSH-2.0-OpenSSH_9.6\r\n\r\n")
        elif path == "/close":
            return
        await writer.drain()


@pytest.fixture
async def http_server() -> AsyncIterator[HttpServer]:
    state = HttpServer()
    server = await asyncio.start_server(state.handle, LOOPBACK, 0)
    state.port = server.sockets[0].getsockname()[1]
    async with server:
        yield state


@pytest.mark.parametrize(
    ("spec", "ok", "reason"),
    [
        (HttpProbe(path="/ok"), True, "HTTP 200"),
        (HttpProbe(path="/fail"), False, "HTTP 500, expected 200"),
        (HttpProbe(path="/fail", expect_status=(200, 500)), True, "HTTP 500"),
        (HttpProbe(path="/no-content", expect_status=(200, 204)), True, "HTTP 204"),
        (HttpProbe(path="/status", body_regex=r'"status": "green"'), True, "HTTP 200, body matches"),
        (HttpProbe(path="/status", body_regex="red"), False, "HTTP 200, body does not match 'red'"),
        (HttpProbe(path="/status", body_regex="padding", max_body_bytes=10), False, "does not match"),
        (HttpProbe(path="/chunked", body_regex="status: yel+ow"), True, "body matches"),
        (HttpProbe(path="/until-close", body_regex="^ready$"), True, "body matches"),
        (HttpProbe(path="/fail", method="HEAD"), False, "HTTP 500"),
        (HttpProbe(path="/garbage"), False, "malformed HTTP status line"),
        (HttpProbe(path="/trickle", body_regex="status: ok!$"), True, "body matches"),
        (HttpProbe(path="/close"), False, "connection closed before a complete HTTP response"),
    ],
)
async def test_http_status_and_body(http_server: HttpServer, spec: HttpProbe, ok: bool, reason: str) -> None:
    result = await probe(spec, http_server.port)
    assert result.ok is ok
    assert reason in result.reason


async def test_http_request_head(http_server: HttpServer) -> None:
    await probe(HttpProbe(method="HEAD", path="/ok?probe=1"), http_server.port)
    await probe(HttpProbe(path="/ok", host="shop.example"), http_server.port)
    first, second = http_server.requests
    assert first["method"] == "HEAD"
    assert first["path"] == "/ok?probe=1"
    assert first["host"] == f"{LOOPBACK}:{http_server.port}"
    assert first["connection"] == "close"
    assert second["host"] == "shop.example"


async def test_http_timeout_and_refused(http_server: HttpServer) -> None:
    assert await probe(HttpProbe(path="/slow"), http_server.port, timeout=0.3) == ProbeResult(
        False, "timeout after 0.3s"
    )
    refused = await probe(HttpProbe(path="/ok"), free_port())
    assert not refused.ok
    assert "ECONNREFUSED" in refused.reason


# --- HTTPS ---------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def certificate(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """A self-signed certificate for member.test, made with the openssl CLI."""
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


@pytest.fixture
async def https_server(certificate: tuple[Path, Path]) -> AsyncIterator[HttpServer]:
    cert, key = certificate
    state = HttpServer()
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(cert, key)

    def record_sni(sock: ssl.SSLObject, server_name: str | None, ctx: ssl.SSLContext) -> None:
        state.tls_server_names.append(server_name)

    context.sni_callback = record_sni  # type: ignore[assignment]
    server = await asyncio.start_server(state.handle, LOOPBACK, 0, ssl=context)
    state.port = server.sockets[0].getsockname()[1]
    async with server:
        yield state


def trusting(certificate: tuple[Path, Path]) -> ssl.SSLContext:
    context = ssl.create_default_context(ssl.Purpose.SERVER_AUTH)
    context.load_verify_locations(certificate[0])
    return context


async def test_https_without_verification_accepts_a_self_signed_member(https_server: HttpServer) -> None:
    result = await probe(HttpProbe(path="/ok", tls=True), https_server.port)
    assert result == ProbeResult(True, "HTTP 200")
    assert https_server.tls_server_names == [None]  # no SNI for a bare IP


async def test_https_sends_the_configured_sni(https_server: HttpServer) -> None:
    spec = HttpProbe(path="/fail", tls=True, sni="member.test", host="shop.example")
    result = await probe(spec, https_server.port)
    assert result == ProbeResult(False, "HTTP 500, expected 200")
    assert https_server.tls_server_names == ["member.test"]
    assert https_server.requests[0]["host"] == "shop.example"


async def test_https_verification(https_server: HttpServer, certificate: tuple[Path, Path]) -> None:
    untrusted = await probe(
        HttpProbe(path="/ok", tls=True, tls_verify=True, sni="member.test"), https_server.port
    )
    assert not untrusted.ok
    assert "CERTIFICATE_VERIFY_FAILED" in untrusted.reason

    context = trusting(certificate)
    trusted = await probe(
        HttpProbe(path="/ok", tls=True, tls_verify=True, sni="member.test"),
        https_server.port,
        verify_context=context,
    )
    assert trusted == ProbeResult(True, "HTTP 200")

    wrong_name = await probe(
        HttpProbe(path="/ok", tls=True, tls_verify=True, sni="other.test"),
        https_server.port,
        verify_context=context,
    )
    assert not wrong_name.ok
    assert "CERTIFICATE_VERIFY_FAILED" in wrong_name.reason


async def test_https_against_a_plain_http_port_fails_the_handshake() -> None:
    async def plain_answer(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.read(1)  # the ClientHello starts; answer in plain text, as nginx does
        writer.write(b"HTTP/1.1 400 Bad Request\r\nConnection: close\r\n\r\n")
        await writer.drain()
        writer.close()

    server = await asyncio.start_server(plain_answer, LOOPBACK, 0)
    async with server:
        result = await probe(HttpProbe(path="/ok", tls=True), server.sockets[0].getsockname()[1])
    assert not result.ok
    assert result.reason.startswith("TLS: "), result.reason


# --- UDP -----------------------------------------------------------------------------------------------


class _Datagrams(asyncio.DatagramProtocol):
    def __init__(self, answer: Callable[[bytes], list[bytes]]) -> None:
        self.answer = answer
        self.transport: asyncio.DatagramTransport | None = None
        self.received: list[bytes] = []

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def datagram_received(self, data: bytes, addr: tuple[str | object, ...]) -> None:
        self.received.append(data)
        assert self.transport is not None
        for reply in self.answer(data):
            self.transport.sendto(reply, addr)


async def udp_server(
    answer: Callable[[bytes], list[bytes]],
) -> tuple[asyncio.DatagramTransport, _Datagrams, int]:
    loop = asyncio.get_running_loop()
    transport, protocol = await loop.create_datagram_endpoint(
        lambda: _Datagrams(answer), local_addr=(LOOPBACK, 0)
    )
    return transport, protocol, transport.get_extra_info("sockname")[1]


async def test_udp_send_expect() -> None:
    transport, server, port = await udp_server(lambda data: [b"PONG " + data])
    try:
        assert (await probe(UdpProbe(send=b"PING", expect="^PONG PI+NG$"), port)).ok
        mismatch = await probe(UdpProbe(send=b"PING", expect="HELLO"), port)
        assert mismatch == ProbeResult(False, "reply does not match 'HELLO'")
        assert server.received == [b"PING", b"PING"]
    finally:
        transport.close()


async def test_udp_port_unreachable_and_silence() -> None:
    refused = await probe(UdpProbe(send=b"x"), free_port(socket.SOCK_DGRAM), timeout=0.5)
    assert not refused.ok
    assert "ECONNREFUSED" in refused.reason

    transport, _, port = await udp_server(lambda data: [])
    try:
        silent_ok = await probe(UdpProbe(send=b"x"), port, timeout=0.2)
        assert silent_ok.ok
        silent_expected = await probe(UdpProbe(send=b"x", expect=""), port, timeout=0.2)
        assert silent_expected == ProbeResult(False, "timeout after 0.2s")
    finally:
        transport.close()


# --- DNS -----------------------------------------------------------------------------------------------


@dataclass
class DnsResponder:
    """Answers every query with ``rcode`` and, for A/AAAA, the configured records."""

    rcode: str = "NOERROR"
    a_records: list[str] = field(default_factory=lambda: ["192.0.2.53"])
    aaaa_records: list[bytes] = field(
        default_factory=lambda: [socket.inet_pton(socket.AF_INET6, "2001:db8::53")]
    )
    stray_first: bool = False
    garbage: bool = False
    names: list[str] = field(default_factory=list)

    def answer(self, query: bytes) -> list[bytes]:
        if self.garbage:
            return [b"\x00" * 5]
        query_id, _flags = struct.unpack_from("!HH", query)
        end = query.index(b"\x00", 12) + 1
        qname, (qtype, _qclass) = query[12:end], struct.unpack_from("!HH", query, end)
        self.names.append(qname.decode("latin-1"))
        records = []
        if self.rcode == "NOERROR" and qtype in (1, 255):
            records += [(1, socket.inet_aton(address)) for address in self.a_records]
        if self.rcode == "NOERROR" and qtype in (28, 255):
            records += [(28, address) for address in self.aaaa_records]
        flags = 0x8000 | 0x0100 | 0x0080 | RCODES[self.rcode]
        header = struct.pack("!HHHHHH", query_id, flags, 1, len(records), 0, 0)
        body = query[12 : end + 4] + b"".join(
            b"\xc0\x0c" + struct.pack("!HHIH", rtype, 1, 30, len(rdata)) + rdata for rtype, rdata in records
        )
        replies = [header + body]
        if self.stray_first:
            replies.insert(0, struct.pack("!H", (query_id + 1) & 0xFFFF) + (header + body)[2:])
        return replies


@pytest.fixture
async def dns() -> AsyncIterator[tuple[DnsResponder, int]]:
    responder = DnsResponder()
    transport, _, port = await udp_server(responder.answer)
    try:
        yield responder, port
    finally:
        transport.close()


async def test_dns_noerror_servfail_and_expected_answers(dns: tuple[DnsResponder, int]) -> None:
    responder, port = dns
    assert await probe(DnsProbe("member.example"), port) == ProbeResult(True, "DNS NOERROR")
    assert responder.names == [encode_name("member.example").decode("latin-1")]
    good = await probe(DnsProbe("member.example", expect_answers=frozenset({"192.0.2.53"})), port)
    assert good == ProbeResult(True, "DNS NOERROR, answer 192.0.2.53")
    bad = await probe(DnsProbe("member.example", expect_answers=frozenset({"192.0.2.99"})), port)
    assert bad == ProbeResult(False, "DNS NOERROR, no expected answer (got 192.0.2.53)")
    cross_type = await probe(
        DnsProbe("m.example", query_type="ANY", expect_answers=frozenset({"2001:db8::53"})), port
    )
    assert cross_type.ok
    aaaa = await probe(
        DnsProbe("m.example", query_type="AAAA", expect_answers=frozenset({"2001:DB8::53"})), port
    )
    assert aaaa.ok

    responder.rcode = "SERVFAIL"
    assert await probe(DnsProbe("member.example"), port) == ProbeResult(
        False, "DNS rcode SERVFAIL, expected NOERROR"
    )
    assert (await probe(DnsProbe("member.example", expect_rcode="SERVFAIL"), port)).ok

    responder.rcode = "NXDOMAIN"
    assert not (await probe(DnsProbe("gone.example"), port)).ok


async def test_dns_ignores_replies_to_other_queries(dns: tuple[DnsResponder, int]) -> None:
    responder, port = dns
    responder.stray_first = True
    assert (await probe(DnsProbe("member.example", expect_answers=frozenset({"192.0.2.53"})), port)).ok


async def test_dns_malformed_reply_timeout_and_refused(dns: tuple[DnsResponder, int]) -> None:
    responder, port = dns
    responder.garbage = True
    malformed = await probe(DnsProbe("member.example"), port)
    assert not malformed.ok
    assert "malformed DNS reply" in malformed.reason

    transport, _, silent_port = await udp_server(lambda data: [])
    try:
        assert await probe(DnsProbe("x.example"), silent_port, timeout=0.2) == ProbeResult(
            False, "timeout after 0.2s"
        )
    finally:
        transport.close()
    refused = await probe(DnsProbe("x.example"), free_port(socket.SOCK_DGRAM))
    assert "ECONNREFUSED" in refused.reason


# --- exec ----------------------------------------------------------------------------------------------


@pytest.fixture
def script(tmp_path: Path) -> Iterator[Callable[[str], tuple[str, ...]]]:
    def make(body: str) -> tuple[str, ...]:
        path = tmp_path / "check.py"
        path.write_text(body)
        return (sys.executable, str(path), "%h", "%p")

    yield make


async def test_exec_exit_status_verbatim_arguments_and_environment(
    script: Callable[[str], tuple[str, ...]],
) -> None:
    command = script(
        "import os, sys\n"
        "ok = sys.argv[1:] == ['%h', '%p'] and os.environ['MEMBER_ADDRESS'] == '127.0.0.1'\n"
        "ok = ok and os.environ['MEMBER_PORT'] == '8080'\n"
        "sys.exit(0 if ok else 1)\n"
    )
    result = await NetworkProber(allow_exec=True).probe(LOOPBACK, 8080, ExecProbe(command), 5.0)
    assert result == ProbeResult(True, "exit 0")

    failing = script("import sys\nprint('disk full', file=sys.stderr)\nsys.exit(3)\n")
    result = await NetworkProber(allow_exec=True).probe(LOOPBACK, 8080, ExecProbe(failing), 5.0)
    assert result == ProbeResult(False, "exit 3: disk full")


async def test_exec_timeout_kills_the_process_group(
    tmp_path: Path, script: Callable[[str], tuple[str, ...]]
) -> None:
    marker = tmp_path / "survived"
    command = script(
        "import subprocess, sys, time\n"
        f"subprocess.Popen(['sh', '-c', 'sleep 1.5; touch {marker}'])\n"
        "time.sleep(30)\n"
    )
    result = await NetworkProber(allow_exec=True).probe(LOOPBACK, 1, ExecProbe(command), 0.5)
    assert result == ProbeResult(False, "timeout after 0.5s")
    await asyncio.sleep(2)
    assert not marker.exists()  # the child was killed with its parent


async def test_exec_refused_or_missing() -> None:
    assert await probe(ExecProbe(("true",)), 1) == ProbeResult(False, EXEC_DISABLED_REASON)
    missing = await probe(ExecProbe(("/nonexistent/check",)), 1, allow_exec=True)
    assert not missing.ok
    assert "cannot run" in missing.reason


# --- engine end to end ---------------------------------------------------------------------------------


async def test_engine_notices_a_listener_closing_within_interval_times_fall() -> None:
    server = await asyncio.start_server(lambda r, w: w.close(), LOOPBACK, 0)
    port = server.sockets[0].getsockname()[1]
    loop = asyncio.get_running_loop()
    changes: list[tuple[float, HealthChange]] = []
    check = CheckSpec(TcpProbe(), Timing(interval=0.2, timeout=0.2, rise=2, fall=2, jitter=0))
    prober = NetworkProber()
    engine = HealthEngine(prober, default_active=True, on_change=lambda c: changes.append((loop.time(), c)))
    async with engine:
        engine.subscribe("ns/svc", "m", LOOPBACK, port, check)
        for _ in range(50):
            await asyncio.sleep(0.05)
            if changes:
                break
        assert [c.healthy for _, c in changes] == [True]
        server.close()
        await server.wait_closed()
        closed_at = loop.time()
        for _ in range(50):
            await asyncio.sleep(0.05)
            if len(changes) > 1:
                break
    prober.close()
    detected_at, change = changes[1]
    assert change.healthy is False
    assert "ECONNREFUSED" in change.reason
    assert detected_at - closed_at <= 0.2 * 2 + 0.2 + 0.1  # interval*fall + timeout, plus scheduling slack


# --- the connect reactor under load ----------------------------------------------------------------------


async def test_many_concurrent_connects_with_mixed_timeouts() -> None:
    """Hundreds of checks in flight at once on one epoll instance: each gets its own answer, and each
    blackholed one times out after its own timeout, whatever the order they were started in."""
    server = await asyncio.start_server(lambda r, w: w.close(), LOOPBACK, 0)
    open_port = server.sockets[0].getsockname()[1]
    closed_port = free_port()
    loop = asyncio.get_running_loop()
    prober = NetworkProber()
    with socket.socket() as listener, socket.socket() as filler:
        listener.bind((LOOPBACK, 0))
        listener.listen(0)
        hole_port = listener.getsockname()[1]
        filler.connect((LOOPBACK, hole_port))
        async with server:
            started = loop.time()
            finished: dict[int, float] = {}

            async def one(index: int) -> tuple[int, ProbeResult]:
                port = (open_port, closed_port, hole_port)[index % 3]
                timeout = 0.6 if index % 2 else 0.2  # long and short deadlines interleaved
                result = await prober.probe(LOOPBACK, port, TcpProbe(), timeout)
                finished[index] = loop.time() - started
                return index, result

            results = dict(await asyncio.gather(*(one(index) for index in range(300))))
    prober.close()
    for index, result in results.items():
        kind = index % 3
        if kind == 0:
            assert result == ProbeResult(True, "connected"), index
        elif kind == 1:
            assert result.reason.startswith("ECONNREFUSED"), (index, result)
        else:
            timeout = 0.6 if index % 2 else 0.2
            assert result == ProbeResult(False, f"timeout after {timeout:g}s"), (index, result)
            assert timeout - 0.05 <= finished[index] <= timeout + 0.5, (index, finished[index])


async def test_prober_close_cancels_checks_in_flight_and_a_new_loop_gets_a_new_reactor() -> None:
    prober = NetworkProber()
    with socket.socket() as listener, socket.socket() as filler:
        listener.bind((LOOPBACK, 0))
        listener.listen(0)
        filler.connect((LOOPBACK, listener.getsockname()[1]))
        pending = prober.probe(LOOPBACK, listener.getsockname()[1], TcpProbe(), 5.0)
        await asyncio.sleep(0.05)
        prober.close()
        with pytest.raises(asyncio.CancelledError):
            await pending

    def in_another_loop() -> ProbeResult:
        async def main() -> ProbeResult:
            return await prober.probe(LOOPBACK, free_port(), TcpProbe(), 1.0)

        return asyncio.run(main())

    other = await asyncio.get_running_loop().run_in_executor(None, in_another_loop)
    assert other.reason.startswith("ECONNREFUSED")
    assert (await prober.probe(LOOPBACK, free_port(), TcpProbe(), 1.0)).reason.startswith("ECONNREFUSED")
    prober.close()
