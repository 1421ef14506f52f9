"""The probe interface: the one seam between the engine's policy and the network.

The engine asks a :class:`Prober` for one result per (member address, port, probe spec); tests swap in a
scripted prober, production uses :class:`lvs_agent.health.probes.NetworkProber`. A probe never raises
for an unhealthy member: it returns ``ProbeResult(ok=False, reason=...)``.
"""

from __future__ import annotations

from collections.abc import Awaitable
from typing import NamedTuple, Protocol

from lvs_agent.health.spec import ProbeSpec


class ProbeResult(NamedTuple):
    ok: bool
    reason: str  # short, human readable: "connected", "HTTP 500 not in [200]", "timeout after 1s"


class Prober(Protocol):
    def probe(self, address: str, port: int, spec: ProbeSpec, timeout: float) -> Awaitable[ProbeResult]:
        """Probe once; the awaitable resolves within about ``timeout`` seconds."""
        ...
