"""Typed health-check definitions, independent of the API models.

The engine works on these frozen, hashable values: two services that check the same member the same way
produce equal specs, which is what lets the engine probe that member once per interval for both
(see :mod:`lvs_agent.health.engine`). :mod:`lvs_agent.health.convert` builds them from ``lvs_api`` models.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import TypeAlias

from lvs_agent.health.dns import QUERY_TYPES, RCODES


class CheckSpecError(ValueError):
    """A check definition that cannot be probed (bad timing, unknown DNS type...)."""


def _check_regex(pattern: str) -> None:
    try:
        re.compile(pattern.encode())
    except re.error as error:
        raise CheckSpecError(f"invalid regular expression {pattern!r}: {error}") from error


@dataclass(frozen=True, slots=True)
class TcpProbe:
    """Healthy when a TCP connection to the member completes."""

    kind = "TCP"


@dataclass(frozen=True, slots=True)
class HttpProbe:
    """Healthy when the member answers an HTTP(S) request with an expected status (and body).

    ``host`` is the ``Host`` header (the member address when unset); ``sni`` the TLS server name (``host``
    when unset, none when neither is set). ``body_regex`` is searched in the first ``max_body_bytes`` of
    the body. With ``tls_verify`` the server certificate must chain to the system CAs and match the SNI
    name (or ``host``).
    """

    method: str = "GET"
    path: str = "/"
    host: str | None = None
    expect_status: tuple[int, ...] = (200,)
    body_regex: str | None = None
    tls: bool = False
    tls_verify: bool = False
    sni: str | None = None
    max_body_bytes: int = 65536

    @property
    def kind(self) -> str:
        return "HTTPS" if self.tls else "HTTP"

    def __post_init__(self) -> None:
        if not self.path.startswith("/"):
            raise CheckSpecError(f"HTTP path must start with '/': {self.path!r}")
        if not self.method.isalpha() or not self.method.isupper():
            raise CheckSpecError(f"HTTP method must be an upper-case token: {self.method!r}")
        if any(not 100 <= code <= 599 for code in self.expect_status) or not self.expect_status:
            raise CheckSpecError(f"expected HTTP statuses must be 100..599: {self.expect_status!r}")
        for text in (self.path, self.host or "", self.sni or ""):
            if any(ch in text for ch in "\r\n "):
                raise CheckSpecError(f"whitespace or line break in HTTP check field: {text!r}")
        if self.body_regex is not None:
            _check_regex(self.body_regex)


@dataclass(frozen=True, slots=True)
class UdpProbe:
    """Send ``send`` in one datagram.

    With ``expect`` set (a regular expression), healthy when a reply matching it arrives within the
    timeout (``""`` accepts any reply). Without it, healthy unless the member answers with an ICMP error
    (port unreachable) before the timeout: such a check takes the whole timeout to succeed.
    """

    send: bytes = b""
    expect: str | None = None

    kind = "UDP"

    def __post_init__(self) -> None:
        if self.expect is not None:
            _check_regex(self.expect)


@dataclass(frozen=True, slots=True)
class DnsProbe:
    """Send a DNS query over UDP; healthy when the reply's rcode is ``expect_rcode`` and, when
    ``expect_answers`` is not empty, at least one record of the answer section equals one of them
    (addresses for A/AAAA, names for CNAME/NS/PTR, text for TXT; other types as rdata hex)."""

    query_name: str
    query_type: str = "A"
    expect_rcode: str = "NOERROR"
    expect_answers: frozenset[str] = field(default_factory=frozenset)
    recursion_desired: bool = True

    kind = "DNS"

    def __post_init__(self) -> None:
        if self.query_type.upper() not in QUERY_TYPES:
            raise CheckSpecError(f"unsupported DNS query type {self.query_type!r}")
        if self.expect_rcode.upper() not in RCODES:
            raise CheckSpecError(f"unknown DNS rcode {self.expect_rcode!r}")
        labels = self.query_name.rstrip(".").split(".") if self.query_name not in ("", ".") else []
        if any(not label or len(label.encode()) > 63 for label in labels):
            raise CheckSpecError(f"invalid DNS name {self.query_name!r}")


@dataclass(frozen=True, slots=True)
class ExecProbe:
    """Run ``command`` (argv, no shell); healthy when it exits 0 within the timeout.

    The environment carries ``MEMBER_ADDRESS`` and ``MEMBER_PORT``. Runs with the agent's privileges,
    which is why the engine refuses it unless ``allow_exec`` is on.
    """

    command: tuple[str, ...]

    kind = "Exec"

    def __post_init__(self) -> None:
        if not self.command or not self.command[0]:
            raise CheckSpecError("exec check needs a command")


ProbeSpec: TypeAlias = TcpProbe | HttpProbe | UdpProbe | DnsProbe | ExecProbe


@dataclass(frozen=True, slots=True)
class Timing:
    """When to probe and how many results flip the state.

    ``jitter`` is a fraction of the interval (0..1): each period is drawn, deterministically per check,
    from ``interval * (1 ± jitter/2)``; independent of it, the first probe of each check is offset by a
    stable hash of the check into ``[0, interval)`` so that thousands of checks registered together do
    not fire together.
    """

    interval: float = 5.0
    timeout: float = 2.0
    rise: int = 2
    fall: int = 3
    jitter: float = 0.1

    def __post_init__(self) -> None:
        if not self.interval > 0:
            raise CheckSpecError(f"interval must be > 0, got {self.interval}")
        if not self.timeout > 0:
            raise CheckSpecError(f"timeout must be > 0, got {self.timeout}")
        if self.rise < 1 or self.fall < 1:
            raise CheckSpecError(f"rise and fall must be >= 1, got {self.rise}/{self.fall}")
        if not 0 <= self.jitter < 1:
            raise CheckSpecError(f"jitter must be in [0, 1), got {self.jitter}")


@dataclass(frozen=True, slots=True)
class CheckSpec:
    """One health check as a service asks for it: what to send, when, and an optional port override."""

    probe: ProbeSpec = field(default_factory=TcpProbe)
    timing: Timing = field(default_factory=Timing)
    port: int | None = None

    def __post_init__(self) -> None:
        if self.port is not None and not 0 < self.port < 65536:
            raise CheckSpecError(f"check port must be 1..65535, got {self.port}")

    def target_port(self, member_port: int) -> int:
        """The port probed for a member serving ``member_port``."""
        return self.port if self.port is not None else member_port
