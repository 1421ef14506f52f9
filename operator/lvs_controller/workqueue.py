"""A deduplicating work queue of object keys, like client-go's: a key waiting is queued once, a key being
processed is never processed twice at the same time, and a key marked dirty while processing is processed
again afterwards (so no change is lost and no reconcile runs on a stale snapshot in parallel)."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Hashable
from typing import Generic, TypeVar

Key = TypeVar("Key", bound=Hashable)


class WorkQueue(Generic[Key]):
    def __init__(self) -> None:
        self._order: asyncio.Queue[Key] = asyncio.Queue()
        self._waiting: set[Key] = set()
        self._processing: set[Key] = set()
        self._dirty: set[Key] = set()
        self._idle = asyncio.Event()
        self._idle.set()

    def add(self, key: Key) -> None:
        """Queue ``key`` unless it already waits; a key being processed is re-queued when done."""
        if key in self._processing:
            self._dirty.add(key)
            return
        if key in self._waiting:
            return
        self._waiting.add(key)
        self._idle.clear()
        self._order.put_nowait(key)

    def __len__(self) -> int:
        """Keys waiting (not counting the ones being processed): the queue depth metric."""
        return len(self._waiting)

    @property
    def in_flight(self) -> int:
        return len(self._processing)

    async def get(self) -> Key:
        key = await self._order.get()
        self._waiting.discard(key)
        self._processing.add(key)
        return key

    def done(self, key: Key) -> None:
        self._processing.discard(key)
        if key in self._dirty:
            self._dirty.discard(key)
            self.add(key)
        if not self._waiting and not self._processing:
            self._idle.set()

    async def wait_idle(self) -> None:
        """Until nothing waits and nothing is being processed (tests and benchmarks use it)."""
        await self._idle.wait()

    async def run_workers(self, count: int, process: Callable[[Key], Awaitable[None]]) -> None:
        """Run ``count`` workers calling ``process`` for each key until cancelled."""

        async def worker() -> None:
            while True:
                key = await self.get()
                try:
                    await process(key)
                finally:
                    self.done(key)

        async with asyncio.TaskGroup() as group:
            for _ in range(count):
                group.create_task(worker())
