"""The engine's clock: monotonic time and sleeps from the running event loop, wall time for reports.

Everything time-based in the engine goes through the loop, so tests run it in virtual time with
``looptime`` (``@pytest.mark.looptime``) and a fake :class:`Clock` only needs to fake ``wall``.
"""

from __future__ import annotations

import asyncio
import time
from typing import Protocol


class Clock(Protocol):
    def now(self) -> float:
        """Monotonic seconds, consistent with the running loop's ``time()`` (timeouts use the loop)."""
        ...

    def wall(self) -> float:
        """Seconds since the epoch, for timestamps in reports and changes."""
        ...

    async def sleep(self, seconds: float) -> None: ...


class LoopClock:
    """The production clock."""

    def now(self) -> float:
        return asyncio.get_running_loop().time()

    def wall(self) -> float:
        return time.time()

    async def sleep(self, seconds: float) -> None:
        await asyncio.sleep(seconds)
