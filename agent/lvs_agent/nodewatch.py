"""This node's labels, followed while the agent runs: a VirtualService's ``directorSelector`` is matched
against them, so relabelling a node adds or removes the services it directs without a pod restart.

The Node is re-read by name every ``interval`` (default 10 s) with the ``get`` the agent's role already
grants. A watch would need ``list``/``watch`` on nodes, and a ClusterRole cannot limit those to the node a
DaemonSet pod runs on: every agent could then read every Node. One small GET per director every few
seconds is cheaper than that grant; a relabel is an operator's action, and seconds are soon enough.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Mapping

logger = logging.getLogger("lvs_agent.nodewatch")

DEFAULT_INTERVAL = 10.0
RETRY_MAX = 60.0
READ_TIMEOUT = 30.0  # a read the API server never answers must not stop the watch for good

ReadLabels = Callable[[], Awaitable[Mapping[str, str]]]


class NodeLabelWatch:
    """Calls ``on_change(labels)`` each time the node's labels differ from the last ones seen."""

    def __init__(self, read: ReadLabels, labels: Mapping[str, str],
                 on_change: Callable[[dict[str, str]], None], *, interval: float = DEFAULT_INTERVAL) -> None:
        self._read = read
        self.labels = dict(labels)
        self._on_change = on_change
        self.interval = interval
        self.reads = 0
        self.failures = 0

    async def check(self) -> bool:
        """One read; True if the labels changed (``on_change`` was called). Errors propagate."""
        async with asyncio.timeout(READ_TIMEOUT):
            labels = dict(await self._read())
        self.reads += 1
        if labels == self.labels:
            return False
        added = sorted(f"{key}={value}" for key, value in labels.items() if self.labels.get(key) != value)
        removed = sorted(key for key in self.labels if key not in labels)
        logger.info("node labels changed (set %s, removed %s): re-matching directorSelectors", added, removed)
        self.labels = labels
        self._on_change(dict(labels))
        return True

    async def run(self) -> None:
        delay = self.interval
        while True:
            await asyncio.sleep(delay)
            try:
                await self.check()
            except Exception as error:  # any failure: keep the labels we have, try again
                self.failures += 1
                delay = min(max(delay * 2, self.interval), RETRY_MAX)
                logger.warning("re-reading the node's labels failed (next try in %.0f s): %s", delay, error)
                continue
            delay = self.interval
