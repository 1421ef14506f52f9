"""One host of a test topology: a named network namespace, entered per thread (see lvs_guest.netns).

The bottom of the guest-side layers: the topology builds hosts; clients, servers and the ipvsadm runner
act through them. It imports none of those, so they can all depend on it.
"""

from __future__ import annotations

import contextlib
import ipaddress
import socket
import subprocess
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from enum import Enum
from pathlib import Path

from pyroute2 import IPRoute

from lvs_guest import netns


class Role(Enum):
    CLIENT = "client"
    DIRECTOR = "director"
    REAL_SERVER = "real_server"


@dataclass
class Host:
    """One network namespace with an eth0 on the bridge."""

    name: str  # short role name: client1, dir1, rs1
    netns: str  # the namespace name under /run/netns
    role: Role
    ipv4: ipaddress.IPv4Address
    ipv6: ipaddress.IPv6Address
    processes: list[subprocess.Popen[bytes]] = field(default_factory=list)  # from popen(), for teardown

    @contextlib.contextmanager
    def entered(self) -> Iterator[None]:
        """This thread inside the host's namespace: sockets and child processes made here are the host's."""
        with netns.entered(self.netns):
            yield

    @contextlib.contextmanager
    def iproute(self) -> Iterator[IPRoute]:
        """A netlink (rtnl) socket bound to this host's namespace."""
        with self.entered():
            ipr = IPRoute()
        try:
            yield ipr
        finally:
            ipr.close()

    def socket(self, family: socket.AddressFamily, kind: socket.SocketKind) -> socket.socket:
        with self.entered():
            return socket.socket(family, kind)

    def sysctl(self, name: str, value: str | int) -> None:
        """Set a per-namespace sysctl (dotted name, e.g. net.ipv4.ip_forward) without a fork."""
        with self.entered():
            Path("/proc/sys", *name.split(".")).write_text(f"{value}\n")

    def read_sysctl(self, name: str) -> str:
        with self.entered():
            return Path("/proc/sys", *name.split(".")).read_text().strip()

    def run(
        self, argv: Sequence[str], *, check: bool = True, input: str | None = None, timeout: float = 60
    ) -> subprocess.CompletedProcess[str]:
        """Run a program in this namespace (one fork; the child inherits this thread's namespace)."""
        with self.entered():
            return subprocess.run(
                list(argv), input=input, capture_output=True, text=True, check=check, timeout=timeout
            )

    def popen(self, argv: Sequence[str], **options: object) -> subprocess.Popen[bytes]:
        """Start a long-running program (an agent, a load generator) in this namespace. The topology's
        close() stops it if it is still running (SIGTERM, then SIGKILL)."""
        with self.entered():
            process: subprocess.Popen[bytes] = subprocess.Popen(list(argv), **options)  # type: ignore[call-overload]
        self.processes.append(process)
        return process

    def stop_processes(self, grace_seconds: float = 3.0) -> None:
        for process in self.processes:
            if process.poll() is None:
                process.terminate()
        for process in self.processes:
            try:
                process.wait(timeout=grace_seconds)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(timeout=grace_seconds)
        self.processes.clear()
