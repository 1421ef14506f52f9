"""A client in its own network namespace that sends requests through a VIP and reports who answered."""

from __future__ import annotations

import ipaddress
import socket
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from lvs_guest.hosts import Host

Address = ipaddress.IPv4Address | ipaddress.IPv6Address | str


def _family(address: str) -> socket.AddressFamily:
    return socket.AF_INET6 if ipaddress.ip_address(address).version == 6 else socket.AF_INET


@dataclass
class Client:
    """Requests from `host` (a client namespace). Each request uses a new connection or datagram socket;
    `source` binds a specific local address (e.g. one of several on the client, for sh/persistence tests)."""

    host: Host
    timeout: float = 5.0

    def _socket(self, target: str, kind: socket.SocketKind, source: Address | None) -> socket.socket:
        sock = self.host.socket(_family(target), kind)
        sock.settimeout(self.timeout)
        if source is not None:
            sock.bind((str(source), 0))
        return sock

    def http_get_one(self, vip: Address, port: int = 80, source: Address | None = None) -> str:
        """One HTTP GET through the VIP; returns the answering server's name."""
        target = str(vip)
        with self._socket(target, socket.SOCK_STREAM, source) as sock:
            sock.connect((target, port))
            host = f"[{target}]" if ":" in target else target
            sock.sendall(f"GET / HTTP/1.1\r\nHost: {host}:{port}\r\nConnection: close\r\n\r\n".encode())
            chunks = []
            while chunk := sock.recv(65536):
                chunks.append(chunk)
        response = b"".join(chunks)
        head, _, body = response.partition(b"\r\n\r\n")
        status = head.split(b"\r\n", 1)[0]
        if b" 200 " not in status + b" ":
            raise ConnectionError(f"unexpected HTTP status from {target}:{port}: {status!r}")
        return body.decode().strip()

    def http_get(
        self, vip: Address, port: int = 80, count: int = 1, source: Address | None = None
    ) -> list[str]:
        """`count` HTTP GETs, one connection each, in order; the answering server's name for each."""
        return [self.http_get_one(vip, port, source) for _ in range(count)]

    def tcp_echo(self, vip: Address, port: int, count: int = 1, source: Address | None = None) -> list[str]:
        """`count` TCP connections, one line each; the answering server's name for each."""
        names: list[str] = []
        target = str(vip)
        for index in range(count):
            with self._socket(target, socket.SOCK_STREAM, source) as sock:
                sock.connect((target, port))
                sock.sendall(f"ping {index}\n".encode())
                reply = sock.makefile("rb").readline().decode()
            name, _, echoed = reply.strip().partition(" ")
            if echoed != f"ping {index}":
                raise ConnectionError(f"bad TCP echo from {target}:{port}: {reply!r}")
            names.append(name)
        return names

    def udp_echo(self, vip: Address, port: int, count: int = 1, source: Address | None = None) -> list[str]:
        """`count` datagrams, each from a fresh socket (so a fresh source port); who answered each."""
        names: list[str] = []
        target = str(vip)
        for index in range(count):
            with self._socket(target, socket.SOCK_DGRAM, source) as sock:
                sock.sendto(f"ping {index}".encode(), (target, port))
                reply, _ = sock.recvfrom(65536)
            name, _, echoed = reply.decode().partition(" ")
            if echoed != f"ping {index}":
                raise ConnectionError(f"bad UDP echo from {target}:{port}: {reply!r}")
            names.append(name)
        return names
