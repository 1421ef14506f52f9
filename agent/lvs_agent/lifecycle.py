"""The agent's graceful stop (SIGTERM from a rolling update or ``kubectl delete pod``, or SIGINT).

Order matters:

1. The reconcile loop, health checks and report writer stop first: the IPVS table stays exactly as it is
   (the peers hold the same table, and with connection sync the same connections), and no pass can
   change it while the VIPs move.
2. The failover runner hands its groups over (``FailoverRunner.hand_over``): Lease released, VIPs off
   ``lvs0``, "leaving" heartbeats, bounded by ``timeout``. Its heartbeats go on meanwhile, so the peers
   wait for the handover rather than for silence.
3. The runner stops.

A SIGKILL skips all of this: the VIPs and the Lease stay, the peers notice the silence, and a restarted
agent re-takes what the Lease still names. The DaemonSet's ``terminationGracePeriodSeconds`` must exceed
``timeout`` plus the time the other tasks take to stop (a fraction of a second).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Iterable
from typing import Any

from lvs_agent.failover.runner import HANDOVER_TIMEOUT, FailoverRunner

logger = logging.getLogger("lvs_agent")


async def _cancel(tasks: Iterable[asyncio.Task[Any]]) -> None:
    pending = [task for task in tasks if not task.done()]
    for task in pending:
        task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await asyncio.gather(*pending, return_exceptions=True)


async def stop_gracefully(
    runner: FailoverRunner, failover: asyncio.Task[Any], others: Iterable[asyncio.Task[Any]],
    timeout: float = HANDOVER_TIMEOUT,
) -> list[str]:
    """Stop ``others``, hand the groups over while ``failover`` (``runner.run()``) still heartbeats, then
    stop it. Returns the groups handed over."""
    logger.info("stopping: handing the VIP groups over (IPVS table kept)")
    await _cancel(others)
    handed: list[str] = []
    if not failover.done():
        try:
            handed = await runner.hand_over(timeout)
        except Exception:  # a failed handover must not keep the process from exiting
            logger.exception("handing the VIP groups over failed; they stay as a crash would leave them")
    await _cancel([failover])
    logger.info("stopped: %s", f"handed over {', '.join(handed)}" if handed else "no group handed over")
    return handed
