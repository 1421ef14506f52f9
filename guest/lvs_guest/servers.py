"""Tiny servers that answer with their host's name: HTTP, TCP echo and UDP echo.

Every listening socket is created inside its host's network namespace (setns in the calling thread), then
served by one asyncio loop on one background thread of this process: no process per server, which
matters under User-Mode Linux where a Python start costs ~0.5 s and a fork ~30 ms.

Replies: HTTP GET -> body "<name>\\n"; TCP: each line "x" -> "<name> x"; UDP: datagram "x" -> "<name> x".
`hits` counts requests per host name.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import threading
from collections import Counter
from collections.abc import Coroutine
from typing import TYPE_CHECKING, Any, TypeVar, cast

if TYPE_CHECKING:
    from lvs_guest.hosts import Host

T = TypeVar("T")
MAX_REQUEST_HEAD = 16384


class _UdpEcho(asyncio.DatagramProtocol):
    def __init__(self, name: str, hits: Counter[str]) -> None:
        self.name = name
        self.hits = hits
        self.transport: asyncio.DatagramTransport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.DatagramTransport, transport)

    def datagram_received(self, data: bytes, addr: tuple[str | Any, int]) -> None:
        self.hits[self.name] += 1
        if self.transport is not None:
            self.transport.sendto(self.name.encode() + b" " + data, addr)


class NameServers:
    """A set of name-answering servers; start with add_*, stop all with close()."""

    def __init__(self) -> None:
        self.hits: Counter[str] = Counter()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._servers: list[asyncio.AbstractServer] = []
        self._transports: list[asyncio.BaseTransport] = []

    def _run(self, coroutine: Coroutine[Any, Any, T]) -> T:
        if self._loop is None:
            loop = asyncio.new_event_loop()
            self._thread = threading.Thread(target=loop.run_forever, name="name-servers", daemon=True)
            self._thread.start()
            self._loop = loop
        return asyncio.run_coroutine_threadsafe(coroutine, self._loop).result(timeout=30)

    @staticmethod
    def _listening_socket(host: Host, kind: socket.SocketKind, port: int, ipv6: bool) -> socket.socket:
        family = socket.AF_INET6 if ipv6 else socket.AF_INET
        sock = host.socket(family, kind)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        if ipv6:
            sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0)  # one socket for IPv4 and IPv6
        sock.bind(("::" if ipv6 else "0.0.0.0", port))
        if kind == socket.SOCK_STREAM:
            sock.listen(128)
        sock.setblocking(False)
        return sock

    def add_http(self, host: Host, port: int, ipv6: bool = True) -> None:
        name = host.name
        body = f"{name}\n".encode()
        response = (
            b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: %d\r\nConnection: close\r\n\r\n"
            % len(body)
        ) + body

        async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            with contextlib.suppress(Exception):
                await reader.readuntil(b"\r\n\r\n")
                self.hits[name] += 1
                writer.write(response)
                await writer.drain()
            writer.close()

        sock = self._listening_socket(host, socket.SOCK_STREAM, port, ipv6)
        self._servers.append(self._run(asyncio.start_server(handle, sock=sock, limit=MAX_REQUEST_HEAD)))

    def add_tcp(self, host: Host, port: int, ipv6: bool = True) -> None:
        name = host.name.encode()

        async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            with contextlib.suppress(Exception):
                while line := await reader.readline():
                    self.hits[host.name] += 1
                    writer.write(name + b" " + line)
                    await writer.drain()
            writer.close()

        sock = self._listening_socket(host, socket.SOCK_STREAM, port, ipv6)
        self._servers.append(self._run(asyncio.start_server(handle, sock=sock)))

    def add_udp(self, host: Host, port: int, ipv6: bool = True) -> None:
        sock = self._listening_socket(host, socket.SOCK_DGRAM, port, ipv6)

        async def start() -> asyncio.BaseTransport:
            loop = asyncio.get_running_loop()
            transport, _ = await loop.create_datagram_endpoint(
                lambda: _UdpEcho(host.name, self.hits), sock=sock
            )
            return transport

        self._transports.append(self._run(start()))

    def close(self) -> None:
        if self._loop is None:
            return

        async def stop() -> None:
            for server in self._servers:
                server.close()
            for transport in self._transports:
                transport.close()
            for server in self._servers:
                with contextlib.suppress(Exception):
                    await asyncio.wait_for(server.wait_closed(), 2)

        with contextlib.suppress(Exception):
            self._run(stop())
        self._loop.call_soon_threadsafe(self._loop.stop)
        if self._thread is not None:
            self._thread.join(timeout=5)
        self._loop.close()
        self._loop = None
        self._servers.clear()
        self._transports.clear()
