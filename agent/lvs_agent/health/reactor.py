"""TCP connect checks and plain request/response exchanges (HTTP) multiplexed on one epoll instance,
which the event loop watches as a single reader.

A connect check costs a socket, a non-blocking ``connect``, one ``epoll_ctl`` (``EPOLLOUT|EPOLLONESHOT``)
and a ``close`` that also drops the registration: no asyncio selector bookkeeping, no per-check timer
handle, no transport, no task. An exchange adds a ``send`` and ``recv`` calls, re-arming the one-shot
registration between steps. Timeouts sit in one FIFO per timeout value (deadlines arrive in order, so
each FIFO is sorted) behind a single loop timer. This roughly halves the Python cost of a connect check
compared with ``loop.add_writer`` + ``call_later`` per check, and more for HTTP compared with a
transport and protocol per check.

HTTPS runs here too: TLS over memory BIOs (``SSLContext.wrap_bio``) on the same non-blocking socket, with
the prober's shared contexts, and TLS session resumption from a bounded :class:`TlsSessionCache` (the next
check of a member resumes its last session: no certificate exchange, no signature, a shorter handshake).
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import errno
import math
import os
import select
import socket
import ssl
import struct
from typing import Protocol

from lvs_agent.health.probe import ProbeResult

CONNECTED = ProbeResult(True, "connected")
_LINGER_RESET = struct.pack("ii", 1, 0)
_ONESHOT_WRITE = select.EPOLLOUT | select.EPOLLONESHOT
_NONBLOCKING_STREAM = socket.SOCK_STREAM | socket.SOCK_NONBLOCK | socket.SOCK_CLOEXEC
_NONBLOCKING_DATAGRAM = socket.SOCK_DGRAM | socket.SOCK_NONBLOCK | socket.SOCK_CLOEXEC

SockAddr = tuple[str, int] | tuple[str, int, int, int]
_ONESHOT_READ = select.EPOLLIN | select.EPOLLONESHOT


class Judge(Protocol):
    """Decides an exchange from the bytes received (see ``httpcheck.HttpResponseJudge``,
    ``probes.UdpReplyJudge``, ``probes.DnsReplyJudge``). ``feed`` returns ``None`` to keep waiting (more
    of a stream, or a datagram that answers something else)."""

    def feed(self, data: bytes) -> ProbeResult | None: ...

    def eof(self) -> ProbeResult:
        """Stream closed by the peer; for a datagram exchange, an empty datagram."""
        ...

    def lost(self, error: OSError) -> ProbeResult:
        """The socket failed (reset, ICMP port unreachable...) before a verdict."""
        ...

    def on_timeout(self, timeout: float) -> ProbeResult: ...


class _Exchange:
    __slots__ = ("datagram", "judge", "request", "sending")

    def __init__(self, request: bytes, judge: Judge, datagram: bool = False) -> None:
        self.request = request
        self.judge = judge
        self.sending = datagram  # False while a stream connects
        self.datagram = datagram


SessionKey = tuple[int, str, int, str]  # (context id, address, port, server name)


class TlsSessionCache:
    """The last TLS session of each member, for resumption. Bounded: once ``max_entries`` members have a
    session, only those are refreshed; others do full handshakes (evicting in a cycle would make every
    check of a large fleet miss). A session costs about 12 KB of RSS (it holds the peer's certificate,
parsed)."""

    def __init__(self, max_entries: int = 1024) -> None:
        self.max_entries = max_entries
        self._sessions: dict[SessionKey, ssl.SSLSession] = {}
        self.resumed = 0  # handshakes that resumed a session
        self.full = 0  # handshakes that did not

    def __len__(self) -> int:
        return len(self._sessions)

    def get(self, key: SessionKey) -> ssl.SSLSession | None:
        return self._sessions.get(key)

    def put(self, key: SessionKey, session: ssl.SSLSession) -> None:
        if key in self._sessions or len(self._sessions) < self.max_entries:
            self._sessions[key] = session

    def forget(self, key: SessionKey) -> None:
        self._sessions.pop(key, None)


class _TlsExchange(_Exchange):
    """An exchange over TLS: the socket carries records; ``tls`` turns them into the plain HTTP bytes."""

    __slots__ = ("cache", "context", "handshaken", "incoming", "outgoing", "pending", "server_name",
                 "session_key", "tls")

    def __init__(self, request: bytes, judge: Judge, *, context: ssl.SSLContext, server_name: str | None,
                 cache: TlsSessionCache | None, session_key: SessionKey) -> None:
        super().__init__(request, judge)
        self.context = context
        self.server_name = server_name
        self.cache = cache
        self.session_key = session_key
        self.incoming = ssl.MemoryBIO()
        self.outgoing = ssl.MemoryBIO()
        self.tls: ssl.SSLObject | None = None
        self.handshaken = False
        self.pending = b""  # TLS output the socket did not take yet


_Pending = tuple[socket.socket, "asyncio.Future[ProbeResult]", _Exchange | None]
_Deadline = tuple[float, int, socket.socket, "asyncio.Future[ProbeResult]"]


def os_error_reason(code: int) -> str:
    return f"{errno.errorcode.get(code, str(code))}: {os.strerror(code)}"


def close_with_reset(sock: socket.socket) -> None:
    """Close with an RST (``SO_LINGER {1, 0}``): no ``TIME_WAIT`` left on the director."""
    with contextlib.suppress(OSError):
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, _LINGER_RESET)
    sock.close()


class ConnectReactor:
    """Connect checks for one event loop. Results are futures; a probe never raises."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.loop = loop
        self._epoll = select.epoll()
        self._pending: dict[int, _Pending] = {}
        self._deadlines: dict[float, collections.deque[_Deadline]] = {}
        self._timer: asyncio.TimerHandle | None = None
        self._timer_at = math.inf
        self._timeout_results: dict[float, ProbeResult] = {}
        loop.add_reader(self._epoll.fileno(), self._on_ready)

    @property
    def in_flight(self) -> int:
        return len(self._pending)

    def connect(
        self, family: socket.AddressFamily, sockaddr: SockAddr, timeout: float
    ) -> asyncio.Future[ProbeResult]:
        """TCP connect check: ``connected`` or the reason it failed."""
        return self._start(family, sockaddr, timeout, None)

    def exchange(
        self, family: socket.AddressFamily, sockaddr: SockAddr, timeout: float, request: bytes, judge: Judge
    ) -> asyncio.Future[ProbeResult]:
        """Connect, send ``request``, feed what comes back to ``judge`` until it decides (or the server
        closes, or the timeout), then close with a reset."""
        return self._start(family, sockaddr, timeout, _Exchange(request, judge))

    def tls_exchange(
        self,
        family: socket.AddressFamily,
        sockaddr: SockAddr,
        timeout: float,
        request: bytes,
        judge: Judge,
        *,
        context: ssl.SSLContext,
        server_name: str | None,
        sessions: TlsSessionCache | None = None,
    ) -> asyncio.Future[ProbeResult]:
        """:meth:`exchange` over TLS (``server_name``: SNI and the name verified, if ``context`` checks
        it). A session from ``sessions`` is offered for resumption, and the new one kept."""
        key = (id(context), sockaddr[0], sockaddr[1], server_name or "")
        exchange = _TlsExchange(request, judge, context=context, server_name=server_name, cache=sessions,
                                session_key=key)
        return self._start(family, sockaddr, timeout, exchange)

    def datagram(
        self, family: socket.AddressFamily, sockaddr: SockAddr, timeout: float, payload: bytes, judge: Judge
    ) -> asyncio.Future[ProbeResult]:
        """Send ``payload`` in one datagram from a connected UDP socket (so ICMP errors come back as
        errors) and feed the datagrams that come back to ``judge`` until it decides, or the timeout
        (``judge.on_timeout``)."""
        future: asyncio.Future[ProbeResult] = self.loop.create_future()
        try:
            sock = socket.socket(family, _NONBLOCKING_DATAGRAM)
        except OSError as error:
            future.set_result(ProbeResult(False, f"cannot create socket: {error}"))
            return future
        try:
            sock.connect(sockaddr)
            sock.send(payload)
        except OSError as error:
            sock.close()
            future.set_result(judge.lost(error))
            return future
        self._watch(sock, future, timeout, _Exchange(b"", judge, datagram=True), _ONESHOT_READ)
        return future

    def _start(
        self, family: socket.AddressFamily, sockaddr: SockAddr, timeout: float, exchange: _Exchange | None
    ) -> asyncio.Future[ProbeResult]:
        loop = self.loop
        future: asyncio.Future[ProbeResult] = loop.create_future()
        try:
            sock = socket.socket(family, _NONBLOCKING_STREAM)
        except OSError as error:
            future.set_result(ProbeResult(False, f"cannot create socket: {error}"))
            return future
        code = sock.connect_ex(sockaddr)
        if code == 0 and exchange is None:
            close_with_reset(sock)
            future.set_result(CONNECTED)
            return future
        if code not in (0, errno.EINPROGRESS):
            sock.close()
            future.set_result(ProbeResult(False, os_error_reason(code)))
            return future
        # Writable means connected (also right when the connect already completed).
        self._watch(sock, future, timeout, exchange, _ONESHOT_WRITE)
        return future

    def _watch(
        self,
        sock: socket.socket,
        future: asyncio.Future[ProbeResult],
        timeout: float,
        exchange: _Exchange | None,
        events: int,
    ) -> None:
        fd = sock.fileno()
        self._epoll.register(fd, events)
        self._pending[fd] = (sock, future, exchange)
        deadline = self.loop.time() + timeout
        queue = self._deadlines.get(timeout)
        if queue is None:
            queue = self._deadlines[timeout] = collections.deque()
        queue.append((deadline, fd, sock, future))
        if deadline < self._timer_at:
            self._arm(deadline)

    def _on_ready(self) -> None:
        pending = self._pending
        for fd, _events in self._epoll.poll(0):
            entry = pending.get(fd)
            if entry is None:
                continue
            sock, future, exchange = entry
            if exchange is None:
                del pending[fd]
                error = sock.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
                if error:
                    sock.close()
                    result = ProbeResult(False, os_error_reason(error))
                else:
                    close_with_reset(sock)
                    result = CONNECTED
            else:
                verdict = self._step(fd, sock, exchange)
                if verdict is None:
                    continue
                del pending[fd]
                if exchange.datagram:
                    sock.close()
                else:
                    close_with_reset(sock)
                result = verdict
            if not future.done():  # cancelled callers just drop the result
                future.set_result(result)

    def _step(self, fd: int, sock: socket.socket, exchange: _Exchange) -> ProbeResult | None:
        """Advance an exchange by one readiness event; a verdict ends it."""
        if isinstance(exchange, _TlsExchange):
            return self._tls_step(fd, sock, exchange)
        if not exchange.sending:
            error = sock.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
            if error:
                return ProbeResult(False, os_error_reason(error))
            exchange.sending = True
        if exchange.request:
            try:
                sent = sock.send(exchange.request)
            except BlockingIOError:
                sent = 0
            except OSError as error:
                return exchange.judge.lost(error)
            exchange.request = exchange.request[sent:]
            self._epoll.modify(fd, _ONESHOT_WRITE if exchange.request else _ONESHOT_READ)
            return None
        try:
            data = sock.recv(65536)
        except BlockingIOError:
            self._epoll.modify(fd, _ONESHOT_READ)
            return None
        except OSError as error:
            return exchange.judge.lost(error)
        if not data:
            return exchange.judge.eof()
        verdict = exchange.judge.feed(data)
        if verdict is None:
            self._epoll.modify(fd, _ONESHOT_READ)
        return verdict

    def _tls_step(self, fd: int, sock: socket.socket, exchange: _TlsExchange) -> ProbeResult | None:
        if not exchange.sending:  # connected (or failed to)
            error = sock.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
            if error:
                return ProbeResult(False, os_error_reason(error))
            exchange.sending = True
            cache = exchange.cache
            session = cache.get(exchange.session_key) if cache is not None else None
            try:
                exchange.tls = exchange.context.wrap_bio(
                    exchange.incoming, exchange.outgoing, server_hostname=exchange.server_name,
                    session=session)
            except (ssl.SSLError, ValueError) as error:
                return ProbeResult(False, f"TLS: {error}")
        else:
            if exchange.pending and not self._tls_flush(sock, exchange):
                self._tls_wait(fd, exchange, writing=True)
                return None
            try:
                data = sock.recv(65536)
            except BlockingIOError:
                data = None
            except OSError as error:
                return exchange.judge.lost(error)
            if data == b"":
                exchange.incoming.write_eof()
            elif data:
                exchange.incoming.write(data)
        verdict = self._tls_advance(exchange)
        try:
            flushed = self._tls_flush(sock, exchange)
        except OSError as error:
            return verdict or exchange.judge.lost(error)
        if verdict is not None:
            return verdict
        self._tls_wait(fd, exchange, writing=not flushed)
        return None

    def _tls_advance(self, exchange: _TlsExchange) -> ProbeResult | None:
        """Run the TLS state machine over what has arrived: handshake, request, response."""
        tls = exchange.tls
        assert tls is not None
        judge = exchange.judge
        try:
            if not exchange.handshaken:
                tls.do_handshake()
                exchange.handshaken = True
                cache = exchange.cache
                if cache is not None:
                    if tls.session_reused:
                        cache.resumed += 1
                    else:
                        cache.full += 1
                tls.write(exchange.request)
            while True:
                data = tls.read(65536)
                if not data:
                    return self._tls_done(exchange, judge.eof())
                verdict = judge.feed(data)
                if verdict is not None:
                    return self._tls_done(exchange, verdict)
        except ssl.SSLWantReadError:
            return None
        except (ssl.SSLZeroReturnError, ssl.SSLEOFError) as error:
            if exchange.handshaken:  # closed (with or without close_notify) after the request
                return self._tls_done(exchange, judge.eof())
            reason = error.reason or error
            return ProbeResult(False, f"TLS: connection closed during the handshake ({reason})")
        except ssl.SSLError as error:
            if exchange.cache is not None:
                exchange.cache.forget(exchange.session_key)
            return ProbeResult(False, f"TLS: {error.reason or error}")

    @staticmethod
    def _tls_done(exchange: _TlsExchange, verdict: ProbeResult) -> ProbeResult:
        """Keep the session for the next check (TLS 1.3 tickets arrive after the handshake: by now they
        have been read). Only after a full handshake: reading ``session`` costs about as much as the
        handshake it saves (CPython copies a TLS 1.3 session through DER), and a resumable session stays
        resumable until the server refuses it, which shows as a full handshake."""
        cache, tls = exchange.cache, exchange.tls
        if cache is not None and tls is not None and not tls.session_reused:
            session = tls.session
            if session is not None:
                cache.put(exchange.session_key, session)
        return verdict

    @staticmethod
    def _tls_flush(sock: socket.socket, exchange: _TlsExchange) -> bool:
        """Send the TLS output; False while some is left (the socket buffer is full)."""
        data = exchange.pending + exchange.outgoing.read()
        if data:
            try:
                sent = sock.send(data)
            except BlockingIOError:
                sent = 0
            data = data[sent:]
        exchange.pending = data
        return not data

    def _tls_wait(self, fd: int, exchange: _TlsExchange, *, writing: bool) -> None:
        self._epoll.modify(fd, _ONESHOT_WRITE if (writing or exchange.pending) else _ONESHOT_READ)

    def _arm(self, at: float) -> None:
        if self._timer is not None:
            self._timer.cancel()
        self._timer_at = at
        self._timer = self.loop.call_at(at, self._on_timer)

    def _on_timer(self) -> None:
        self._timer = None
        self._timer_at = math.inf
        now = self.loop.time()
        next_at = math.inf
        pending = self._pending
        for timeout, queue in self._deadlines.items():
            while queue and queue[0][0] <= now:
                _deadline, fd, sock, future = queue.popleft()
                entry = pending.get(fd)
                if entry is None or entry[0] is not sock:
                    continue  # answered already (the fd may since belong to another check)
                del pending[fd]
                sock.close()  # also removes it from the epoll set
                if not future.done():
                    exchange = entry[2]
                    future.set_result(
                        self._timeout_result(timeout)
                        if exchange is None
                        else exchange.judge.on_timeout(timeout)
                    )
            if queue:
                next_at = min(next_at, queue[0][0])
        for timeout in [timeout for timeout, queue in self._deadlines.items() if not queue]:
            del self._deadlines[timeout]
        if next_at < math.inf:
            self._arm(next_at)

    def _timeout_result(self, timeout: float) -> ProbeResult:
        result = self._timeout_results.get(timeout)
        if result is None:
            result = self._timeout_results[timeout] = ProbeResult(False, f"timeout after {timeout:g}s")
        return result

    def close(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
        if not self.loop.is_closed():
            self.loop.remove_reader(self._epoll.fileno())
        for sock, future, _exchange in self._pending.values():
            sock.close()
            if not future.done():
                future.cancel()
        self._pending.clear()
        self._deadlines.clear()
        self._epoll.close()
