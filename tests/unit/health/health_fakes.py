"""Fakes behind the engine's two seams: a scripted prober and a wall clock pinned to loop time."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field

from lvs_agent.health.probe import ProbeResult
from lvs_agent.health.spec import ProbeSpec

WALL_EPOCH = 1_700_000_000.0


class FakeClock:
    """Loop time (virtual under looptime) plus a wall clock at a fixed epoch offset."""

    def now(self) -> float:
        return asyncio.get_running_loop().time()

    def wall(self) -> float:
        return WALL_EPOCH + self.now()

    async def sleep(self, seconds: float) -> None:
        await asyncio.sleep(seconds)


@dataclass
class ScriptedProber:
    """Each (address, port) is up or down as the test says; every call is recorded with its loop time."""

    up: dict[tuple[str, int], bool] = field(default_factory=dict)
    latency: float = 0.0
    calls: list[tuple[float, str, int, ProbeSpec]] = field(default_factory=list)
    raise_for: set[tuple[str, int]] = field(default_factory=set)

    async def probe(self, address: str, port: int, spec: ProbeSpec, timeout: float) -> ProbeResult:
        self.calls.append((asyncio.get_running_loop().time(), address, port, spec))
        if self.latency:
            await asyncio.sleep(min(self.latency, timeout))
            if self.latency >= timeout:
                return ProbeResult(False, f"timeout after {timeout:g}s")
        if (address, port) in self.raise_for:
            raise RuntimeError("prober bug")
        if self.up.get((address, port), True):
            return ProbeResult(True, "scripted up")
        return ProbeResult(False, "scripted down")

    def count(self, address: str, port: int) -> int:
        return sum(1 for _, a, p, _ in self.calls if (a, p) == (address, port))
