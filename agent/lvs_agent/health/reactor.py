"""TCP connect checks and plain request/response exchanges (HTTP) multiplexed on one epoll instance,
which the event loop watches as a single reader.

A connect check costs a socket, a non-blocking ``connect``, one ``epoll_ctl`` (``EPOLLOUT|EPOLLONESHOT``)
and a ``close`` that also drops the registration: no asyncio selector bookkeeping, no per-check timer
handle, no transport, no task. An exchange adds a ``send`` and ``recv`` calls, re-arming the one-shot
registration between steps. Timeouts sit in one FIFO per timeout value (deadlines arrive in order, so
each FIFO is sorted) behind a single loop timer. This roughly halves the Python cost of a connect check
compared with ``loop.add_writer`` + ``call_later`` per check, and more for HTTP compared with a
transport and protocol per check.
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
