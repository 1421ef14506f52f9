"""TCP connect checks multiplexed on one epoll instance, which the event loop watches as a single reader.

Per check this costs a socket, a non-blocking ``connect``, one ``epoll_ctl`` (``EPOLLOUT|EPOLLONESHOT``)
and a ``close`` that also drops the registration: no asyncio selector bookkeeping, no per-check timer
handle. Timeouts sit in one FIFO per timeout value (deadlines arrive in order, so each FIFO is sorted)
behind a single loop timer. This roughly halves the Python cost of a connect check compared with
``loop.add_writer`` + ``call_later`` per check.
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

from lvs_agent.health.probe import ProbeResult

CONNECTED = ProbeResult(True, "connected")
_LINGER_RESET = struct.pack("ii", 1, 0)
_ONESHOT_WRITE = select.EPOLLOUT | select.EPOLLONESHOT
_NONBLOCKING_STREAM = socket.SOCK_STREAM | socket.SOCK_NONBLOCK | socket.SOCK_CLOEXEC

SockAddr = tuple[str, int] | tuple[str, int, int, int]
_Pending = tuple[socket.socket, "asyncio.Future[ProbeResult]"]
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
        loop = self.loop
        future: asyncio.Future[ProbeResult] = loop.create_future()
        try:
            sock = socket.socket(family, _NONBLOCKING_STREAM)
        except OSError as error:
            future.set_result(ProbeResult(False, f"cannot create socket: {error}"))
            return future
        code = sock.connect_ex(sockaddr)
        if code == 0:
            close_with_reset(sock)
            future.set_result(CONNECTED)
            return future
        if code != errno.EINPROGRESS:
            sock.close()
            future.set_result(ProbeResult(False, os_error_reason(code)))
            return future
        fd = sock.fileno()
        self._epoll.register(fd, _ONESHOT_WRITE)
        self._pending[fd] = (sock, future)
        deadline = loop.time() + timeout
        queue = self._deadlines.get(timeout)
        if queue is None:
            queue = self._deadlines[timeout] = collections.deque()
        queue.append((deadline, fd, sock, future))
        if deadline < self._timer_at:
            self._arm(deadline)
        return future

    def _on_ready(self) -> None:
        pending = self._pending
        for fd, _events in self._epoll.poll(0):
            entry = pending.pop(fd, None)
            if entry is None:
                continue
            sock, future = entry
            error = sock.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
            if error:
                sock.close()
                result = ProbeResult(False, os_error_reason(error))
            else:
                close_with_reset(sock)
                result = CONNECTED
            if not future.done():  # cancelled callers just drop the result
                future.set_result(result)

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
                    future.set_result(self._timeout_result(timeout))
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
        for sock, future in self._pending.values():
            sock.close()
            if not future.done():
                future.cancel()
        self._pending.clear()
        self._deadlines.clear()
        self._epoll.close()
