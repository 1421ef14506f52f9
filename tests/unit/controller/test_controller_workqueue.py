"""The deduplicating work queue: one entry per waiting key, no parallel processing of one key, no lost
change while a key is being processed."""

from __future__ import annotations

import asyncio

from lvs_controller.workqueue import WorkQueue


async def test_waiting_key_is_queued_once() -> None:
    queue: WorkQueue[str] = WorkQueue()
    for key in ("a", "b", "a", "a"):
        queue.add(key)
    assert len(queue) == 2
    assert await queue.get() == "a"
    assert await queue.get() == "b"


async def test_change_during_processing_is_processed_again_afterwards() -> None:
    queue: WorkQueue[str] = WorkQueue()
    queue.add("a")
    key = await queue.get()
    queue.add("a")  # a new event while "a" is being reconciled
    assert len(queue) == 0  # not handed to a second worker now
    queue.done(key)
    assert len(queue) == 1
    assert await queue.get() == "a"
    queue.done("a")
    await asyncio.wait_for(queue.wait_idle(), 1)


async def test_workers_never_process_one_key_concurrently() -> None:
    queue: WorkQueue[int] = WorkQueue()
    running: set[int] = set()
    overlaps: list[int] = []
    processed: list[int] = []

    async def process(key: int) -> None:
        if key in running:
            overlaps.append(key)
        running.add(key)
        await asyncio.sleep(0.01)
        running.discard(key)
        processed.append(key)

    workers = asyncio.create_task(queue.run_workers(4, process))
    for _ in range(5):
        for key in range(3):
            queue.add(key)
        await asyncio.sleep(0.003)
    await asyncio.sleep(0.01)
    await asyncio.wait_for(queue.wait_idle(), 2)
    workers.cancel()
    assert overlaps == []
    assert set(processed) == {0, 1, 2}
    assert len(processed) < 15  # repeated adds of a waiting key collapsed
