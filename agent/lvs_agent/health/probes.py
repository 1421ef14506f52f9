"""Real probes: TCP connect, HTTP/1.1 and HTTPS, UDP send/expect, DNS over UDP, exec.

Built for many thousands of probes per second on one core:
- TCP connect, plain HTTP, UDP and DNS checks run on one epoll instance (:mod:`.reactor`): per check a
  socket, a few syscalls and a future; no task, no transport, no timer handle;
- HTTP is a minimal HTTP/1.1 client (one request, ``Connection: close``) whose judge
  (:mod:`.httpcheck`) stops reading as soon as the answer is decided; HTTPS runs the same exchange on
  the reactor through TLS memory BIOs, with two ``SSLContext`` objects for the whole prober (verifying
  or not) and TLS session resumption per member (:class:`~.reactor.TlsSessionCache`): after the first
  check, a member's handshakes skip the certificate and its signature;
- every TCP probe socket is closed with ``SO_LINGER {1, 0}`` (a reset): a director making 10,000
  connections a second would otherwise pile up ``TIME_WAIT`` sockets and run out of ephemeral ports;
- exec runs a command without a shell, in its own process group (killed whole on timeout), at most
  ``max_exec`` at once.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import ipaddress
import os
import random
import signal
import socket
import ssl
from collections.abc import Awaitable

from lvs_agent.health.dns import (
    RCODE_NAMES,
    RCODES,
    DnsWireError,
    build_query,
    canonical_answer,
    parse_reply,
)
from lvs_agent.health.httpcheck import HttpResponseJudge, build_http_request, compiled_regex
from lvs_agent.health.probe import ProbeResult
from lvs_agent.health.reactor import ConnectReactor, SockAddr, TlsSessionCache, os_error_reason
from lvs_agent.health.spec import DnsProbe, ExecProbe, HttpProbe, ProbeSpec, TcpProbe, UdpProbe

EXEC_DISABLED_REASON = "exec checks are disabled on this agent (allow_exec is off)"
_UDP_SILENT_OK = ProbeResult(True, "no ICMP error before the timeout")
_STDERR_TAIL = 200


def _timeout_result(timeout: float) -> ProbeResult:
    return ProbeResult(False, f"timeout after {timeout:g}s")


@functools.lru_cache(maxsize=65536)
def _sockaddr(address: str, port: int) -> tuple[socket.AddressFamily, SockAddr]:
    """Family and socket address for a numeric member address (no resolver: members are addresses)."""
    parsed = ipaddress.ip_address(address)
    if parsed.version == 6:
        return socket.AF_INET6, (str(parsed), port, 0, 0)
    return socket.AF_INET, (str(parsed), port)


# --- HTTP ---------------------------------------------------------------------------------------------


def unverified_ssl_context() -> ssl.SSLContext:
    """TLS without certificate checks (``tls_verify: false``): members are often addressed by IP."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    return context


# --- UDP and DNS ---------------------------------------------------------------------------------------


def _os_error(error: OSError) -> str:
    return os_error_reason(error.errno) if error.errno else str(error)


class UdpReplyJudge:
    """UDP send/expect: the first reply decides (against ``expect``); silence until the timeout is
    healthy only when no reply is expected; an ICMP error (port unreachable) is a failure."""

    __slots__ = ("_spec",)

    def __init__(self, spec: UdpProbe) -> None:
        self._spec = spec

    def feed(self, data: bytes) -> ProbeResult:
        expect = self._spec.expect
        if expect is None or compiled_regex(expect).search(data):
            return ProbeResult(True, f"reply of {len(data)} bytes")
        return ProbeResult(False, f"reply does not match {expect[:40]!r}")

    def eof(self) -> ProbeResult:
        return self.feed(b"")  # an empty datagram is a reply

    def lost(self, error: OSError) -> ProbeResult:
        return ProbeResult(False, _os_error(error))

    def on_timeout(self, timeout: float) -> ProbeResult:
        return _UDP_SILENT_OK if self._spec.expect is None else _timeout_result(timeout)


class DnsReplyJudge:
    """DNS over UDP: skips datagrams that answer another query id, then judges rcode and answers."""

    __slots__ = ("_query_id", "_spec")

    def __init__(self, spec: DnsProbe, query_id: int) -> None:
        self._spec = spec
        self._query_id = query_id

    def feed(self, data: bytes) -> ProbeResult | None:
        try:
            reply = parse_reply(data)
        except DnsWireError as error:
            return ProbeResult(False, f"malformed DNS reply: {error}")
        if reply.query_id != self._query_id:
            return None  # a stray datagram: keep waiting for ours
        return judge_dns_reply(
            self._spec, reply.rcode, [(answer.rtype, answer.value) for answer in reply.answers]
        )

    def eof(self) -> ProbeResult:
        return ProbeResult(False, "malformed DNS reply: empty datagram")

    def lost(self, error: OSError) -> ProbeResult:
        return ProbeResult(False, _os_error(error))

    def on_timeout(self, timeout: float) -> ProbeResult:
        return _timeout_result(timeout)


def judge_dns_reply(spec: DnsProbe, reply_rcode: int, answers: list[tuple[int, str]]) -> ProbeResult:
    """Health from a parsed reply: rcode, then (if asked) one expected value in the answer section."""
    wanted_rcode = RCODES[spec.expect_rcode.upper()]
    got = RCODE_NAMES.get(reply_rcode, str(reply_rcode))
    if reply_rcode != wanted_rcode:
        return ProbeResult(False, f"DNS rcode {got}, expected {spec.expect_rcode.upper()}")
    if not spec.expect_answers:
        return ProbeResult(True, f"DNS {got}")
    for rtype, value in answers:
        expected = {canonical_answer(rtype, text) for text in spec.expect_answers}
        if canonical_answer(rtype, value) in expected:
            return ProbeResult(True, f"DNS {got}, answer {value}")
    shown = ", ".join(value for _, value in answers[:4]) or "none"
    return ProbeResult(False, f"DNS {got}, no expected answer (got {shown})")


# --- exec ---------------------------------------------------------------------------------------------


async def probe_exec(address: str, port: int, spec: ExecProbe, timeout: float) -> ProbeResult:
    argv = list(spec.command)
    env = dict(os.environ, MEMBER_ADDRESS=address, MEMBER_PORT=str(port))
    try:
        process = await asyncio.create_subprocess_exec(
            *argv,
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.DEVNULL,
            stderr=asyncio.subprocess.PIPE,
            env=env,
            start_new_session=True,  # its own process group, so a timeout kills its children too
        )
    except OSError as error:
        return ProbeResult(False, f"cannot run {argv[0]!r}: {error.strerror or error}")
    try:
        async with asyncio.timeout(timeout):
            _, stderr = await process.communicate()
    except (TimeoutError, asyncio.CancelledError) as interrupted:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)
        await process.wait()
        if isinstance(interrupted, asyncio.CancelledError):
            raise
        return _timeout_result(timeout)
    if process.returncode == 0:
        return ProbeResult(True, "exit 0")
    tail = stderr.decode("utf-8", "replace").strip()[-_STDERR_TAIL:]
    return ProbeResult(False, f"exit {process.returncode}" + (f": {tail}" if tail else ""))


# --- dispatch -----------------------------------------------------------------------------------------


class NetworkProber:
    """The production :class:`~lvs_agent.health.probe.Prober`.

    Exec checks run only when ``allow_exec`` is on; otherwise they fail with :data:`EXEC_DISABLED_REASON`
    (the engine refuses to schedule them in the first place; this is the second lock).
    ``verify_context`` is used for HTTPS checks with ``tls_verify``: by default the system CAs; pass a
    context loaded with the cluster's CA bundle where members carry internal certificates. At most
    ``max_exec`` exec checks run at once. HTTPS checks resume the TLS sessions of up to
    ``tls_sessions`` members (0: a full handshake every time); a session costs about 12 KB (OpenSSL 3
    keeps the member's parsed certificate with it).
    """

    def __init__(
        self,
        allow_exec: bool = False,
        verify_context: ssl.SSLContext | None = None,
        max_exec: int = 16,
        tls_sessions: int = 1024,
    ) -> None:
        self.allow_exec = allow_exec
        self._verify_context = verify_context or ssl.create_default_context(ssl.Purpose.SERVER_AUTH)
        self._unverified_context = unverified_ssl_context()
        self.tls_sessions = TlsSessionCache(tls_sessions) if tls_sessions > 0 else None
        self._max_exec = max_exec
        self._exec_slots: asyncio.Semaphore | None = None
        self._reactor: ConnectReactor | None = None

    def _connect_reactor(self) -> ConnectReactor:
        loop = asyncio.get_running_loop()
        reactor = self._reactor
        if reactor is None or reactor.loop is not loop:
            if reactor is not None:
                reactor.close()
            reactor = self._reactor = ConnectReactor(loop)
        return reactor

    def close(self) -> None:
        """Release the epoll instance (and abandon checks in flight)."""
        if self._reactor is not None:
            self._reactor.close()
            self._reactor = None

    def probe(self, address: str, port: int, spec: ProbeSpec, timeout: float) -> Awaitable[ProbeResult]:
        if isinstance(spec, TcpProbe):
            try:
                family, sockaddr = _sockaddr(address, port)
            except ValueError as error:
                return _ready(ProbeResult(False, f"cannot create socket: {error}"))
            return self._connect_reactor().connect(family, sockaddr, timeout)
        if isinstance(spec, HttpProbe):
            try:
                family, sockaddr = _sockaddr(address, port)
            except ValueError as error:
                return _ready(ProbeResult(False, f"cannot create socket: {error}"))
            request = build_http_request(spec, address, port)
            if spec.tls:
                context = self._verify_context if spec.tls_verify else self._unverified_context
                server_name = spec.sni or spec.host or (address if spec.tls_verify else None)
                return self._connect_reactor().tls_exchange(
                    family, sockaddr, timeout, request, HttpResponseJudge(spec), context=context,
                    server_name=server_name, sessions=self.tls_sessions)
            return self._connect_reactor().exchange(
                family, sockaddr, timeout, request, HttpResponseJudge(spec)
            )
        if isinstance(spec, DnsProbe):
            query_id = random.getrandbits(16)
            query = build_query(query_id, spec.query_name, spec.query_type, spec.recursion_desired)
            return self._datagram(address, port, timeout, query, DnsReplyJudge(spec, query_id))
        if isinstance(spec, UdpProbe):
            return self._datagram(address, port, timeout, spec.send, UdpReplyJudge(spec))
        if not self.allow_exec:
            return _ready(ProbeResult(False, EXEC_DISABLED_REASON))
        return self._limited_exec(address, port, spec, timeout)

    def _datagram(
        self, address: str, port: int, timeout: float, payload: bytes, judge: UdpReplyJudge | DnsReplyJudge
    ) -> Awaitable[ProbeResult]:
        try:
            family, sockaddr = _sockaddr(address, port)
        except ValueError as error:
            return _ready(ProbeResult(False, f"cannot create socket: {error}"))
        return self._connect_reactor().datagram(family, sockaddr, timeout, payload, judge)

    async def _limited_exec(self, address: str, port: int, spec: ExecProbe, timeout: float) -> ProbeResult:
        if self._exec_slots is None:
            self._exec_slots = asyncio.Semaphore(self._max_exec)
        async with self._exec_slots:
            return await probe_exec(address, port, spec, timeout)


def _ready(result: ProbeResult) -> Awaitable[ProbeResult]:
    future: asyncio.Future[ProbeResult] = asyncio.get_running_loop().create_future()
    future.set_result(result)
    return future
