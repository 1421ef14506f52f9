"""Process wiring: config, leader election around the whole operator, kopf, workers, metrics, signals.

Exactly one active replica: every replica campaigns for the Lease ``lvs-controller`` (coordination.k8s.io)
through lvs_kube's LeaderElector. Only the holder starts kopf and the reconcile workers; the other replica
waits, doing nothing but retrying the lease every ``retry_period``. A leader that cannot renew within
``renew_deadline`` stops kopf and exits non-zero (client-go's rule: a process that may have lost the lease
must not keep writing; the Deployment restarts it as a fresh candidate). A leader stopping on SIGTERM
releases the lease so the standby takes over at its next retry instead of after ``lease_duration``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import socket
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from lvs_kube import EventRecorder, KubeClient, LeaderElector, load_config

from lvs_controller import metrics
from lvs_controller.controller import Controller
from lvs_controller.kopf_app import run_kopf
from lvs_controller.reconciler import Reconciler, ReconcilerOptions
from lvs_controller.world import World

logger = logging.getLogger("lvs_controller.app")

FIELD_MANAGER = "lvs-controller"


@dataclass(frozen=True)
class Options:
    kubeconfig: str | None = None
    context: str | None = None
    identity: str = ""
    leader_election: bool = True
    lease_name: str = "lvs-controller"
    lease_namespace: str | None = None
    lease_duration: int = 15
    renew_deadline: float = 10.0
    retry_period: float = 2.0
    # Each reconcile waits mostly on one API round trip, so throughput is workers / round-trip time: in a
    # burst of 1,000 applies 8 workers were the limit (p50 12 s), 32 were not (p50 5 s).
    workers: int = 32
    metrics_port: int = 8080
    finalizer_timeout: float = 300.0
    resync_seconds: float = 0.0


def default_identity() -> str:
    return f"{os.environ.get('POD_NAME') or socket.gethostname()}-{os.getpid()}"


async def run(options: Options) -> int:
    """Run until SIGTERM/SIGINT (0) or until leadership is lost (1)."""
    cluster = load_config(options.kubeconfig, options.context)
    identity = options.identity or default_identity()
    metrics.serve_metrics(options.metrics_port)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    async with KubeClient(
        cluster,
        user_agent=f"lvs-controller/{identity}",
        on_write=lambda label: metrics.WRITES.labels(label).inc(),
    ) as client:
        lost = asyncio.Event()

        async def on_stopped_leading() -> None:
            lost.set()

        elector = LeaderElector(
            client,
            name=options.lease_name,
            namespace=options.lease_namespace or os.environ.get("POD_NAMESPACE") or cluster.default_namespace,
            identity=identity,
            lease_duration=options.lease_duration,
            renew_deadline=options.renew_deadline,
            retry_period=options.retry_period,
            on_stopped_leading=on_stopped_leading,
        )
        elector_task: asyncio.Task[None] | None = None
        if options.leader_election:
            elector_task = asyncio.create_task(elector.run())
            logger.info("waiting for leadership", extra={"identity": identity, "lease": options.lease_name})
            leading = asyncio.create_task(elector.wait_for_leadership())
            stopping = asyncio.create_task(stop.wait())
            await asyncio.wait({leading, stopping}, return_when=asyncio.FIRST_COMPLETED)
            leading.cancel()
            stopping.cancel()
            if stop.is_set():
                elector_task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await elector_task
                return 0
        metrics.LEADER.set(1)
        logger.info("active", extra={"identity": identity})

        async def resign() -> None:
            """Give the lease up (the elector releases it when cancelled); called once writes stopped."""
            metrics.LEADER.set(0)
            if elector_task is not None and not elector_task.done():
                elector_task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await elector_task

        try:
            return await _lead(client, cluster_recorder(client, identity), options, stop, lost, resign)
        finally:
            await resign()


def cluster_recorder(client: KubeClient, identity: str) -> EventRecorder:
    return EventRecorder(client, FIELD_MANAGER, identity)


async def _lead(  # noqa: PLR0917
    client: KubeClient,
    recorder: EventRecorder,
    options: Options,
    stop: asyncio.Event,
    lost: asyncio.Event,
    resign: Callable[[], Awaitable[None]],
) -> int:
    """Run kopf and the workers until stopped. On the way out: stop the writers (workers), hand the lease
    over at once, and only then wait for kopf's slower shutdown (its watchers never write)."""
    world = World()
    reconciler = Reconciler(
        client,
        world,
        recorder,
        ReconcilerOptions(field_manager=FIELD_MANAGER, finalizer_timeout=options.finalizer_timeout),
    )
    controller = Controller(reconciler, workers=options.workers, resync_seconds=options.resync_seconds)
    kopf_stop = asyncio.Event()
    kopf_ready = asyncio.Event()
    kopf_task = asyncio.create_task(run_kopf(controller, client.config, kopf_stop, kopf_ready))

    async def reclaim_signals() -> None:
        # kopf installs its own SIGTERM/SIGINT handlers when it starts; take them back so that a stop
        # first halts our writers and hands the lease over, then stops kopf through its stop flag.
        await kopf_ready.wait()
        loop = asyncio.get_running_loop()
        for signum in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(signum, stop.set)

    signals_task = asyncio.create_task(reclaim_signals())
    prime_task = asyncio.create_task(controller.prime())
    workers_task = asyncio.create_task(controller.run_workers())
    stop_task = asyncio.create_task(stop.wait())
    lost_task = asyncio.create_task(lost.wait())
    watched = {kopf_task, workers_task, stop_task, lost_task}
    done, _ = await asyncio.wait(watched, return_when=asyncio.FIRST_COMPLETED)
    for task in done:
        if task in (kopf_task, workers_task) and not task.cancelled() and task.exception() is not None:
            logger.error("controller task failed", exc_info=task.exception())
    for task in (prime_task, workers_task, stop_task, lost_task, signals_task):
        task.cancel()
    for task in (prime_task, workers_task):
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await task
    await resign()
    kopf_stop.set()
    # asyncio.timeout, not wait_for: on 3.11 wait_for can drop a cancellation that lands as the awaited
    # task completes. Timing out cancels kopf_task; then wait for it to finish, as wait_for did.
    with contextlib.suppress(asyncio.CancelledError, Exception):
        async with asyncio.timeout(10):
            await kopf_task
    if not kopf_task.done():
        kopf_task.cancel()
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await kopf_task
    if lost.is_set():
        logger.error("leadership lost; exiting so that a fresh process campaigns again")
        return 1
    return 0
