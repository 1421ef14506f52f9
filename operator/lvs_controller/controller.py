"""The controller's core loop: watch events update the cache, the dependency index turns them into
VirtualService keys, and workers reconcile each key from the cache."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Mapping
from typing import Any

from lvs_kube import ApiError, Conflict, KubeClient
from lvs_kube import resources as res

from lvs_controller import metrics
from lvs_controller.reconciler import Reconciler
from lvs_controller.workqueue import WorkQueue
from lvs_controller.world import Kind, ObjectKey, key_of

logger = logging.getLogger("lvs_controller")

RESOURCES: dict[Kind, res.Resource] = {
    Kind.VIRTUAL_SERVICE: res.VIRTUAL_SERVICE,
    Kind.REAL_SERVER_POOL: res.REAL_SERVER_POOL,
    Kind.VIP_POOL: res.VIP_POOL,
    Kind.RESOLVED_SERVICE: res.RESOLVED_SERVICE,
    Kind.DIRECTOR_REPORT: res.DIRECTOR_REPORT,
    Kind.SERVICE: res.SERVICE,
    Kind.ENDPOINT_SLICE: res.ENDPOINT_SLICE,
    Kind.POD: res.POD,
    Kind.NODE: res.NODE,
    Kind.NAMESPACE: res.NAMESPACE,
}


class Controller:
    def __init__(self, reconciler: Reconciler, *, workers: int = 32, resync_seconds: float = 0.0) -> None:
        self.world = reconciler.world
        self.reconciler = reconciler
        self.queue: WorkQueue[ObjectKey] = WorkQueue()
        self.workers = workers
        self.resync_seconds = resync_seconds
        self.primed = asyncio.Event()
        # RealServerPool / VIPPool status: a queue of its own, debounced, so a burst of VirtualServices
        # folds into a few pool status writes.
        self.pool_queue: WorkQueue[tuple[Kind, ObjectKey]] = WorkQueue()
        self.pool_status_delay = 0.5
        # VIPPool claimedAddresses counts every ResolvedService: refreshed at most this often in a burst.
        self.vip_pool_status_delay = 2.0
        # VirtualService status: a lane of its own, a little after the reconcile that published, so that
        # ResolvedServices (what agents wait for) are not queued behind status writes, and a status write
        # folds what changed meanwhile (e.g. the directors' first reports).
        self.status_queue: WorkQueue[ObjectKey] = WorkQueue()
        self.status_delay = 0.2
        self.status_workers = workers
        # While the reconcile lane has a backlog (a burst), status writes wait for it, up to this long:
        # on a busy API server every request delays the others, and agents wait for ResolvedServices.
        self.status_max_defer = 30.0
        self._scheduled: set[Any] = set()
        self._status_scheduled: set[ObjectKey] = set()
        reconciler.on_written = self.record_write
        reconciler.on_status_due = self.status_soon

    @property
    def client(self) -> KubeClient:
        return self.reconciler.client

    def observe(self, kind: Kind, event_type: str | None, obj: Mapping[str, Any]) -> None:
        """One watch event: update the cache and queue every VirtualService it may change."""
        previous, current = self.world.apply_event(kind, event_type, obj)
        if logger.isEnabledFor(logging.DEBUG):
            logger.debug(
                "watch event",
                extra={
                    "object": f"{kind.value} {'/'.join(filter(None, key_of(obj)))}",
                    "event": event_type,
                    "stale": previous is current,
                },
            )
        if previous is current:
            return  # stale event (or the echo of our own write): the cache already holds it
        metrics.CACHED_OBJECTS.labels(kind.value).set(self.world.count(kind))
        affected = self.reconciler.index.update(self.world, kind, previous, current)
        if not self.primed.is_set():
            return  # everything is queued once priming finishes
        for key in affected:
            self.queue.add(key)
        metrics.QUEUE_DEPTH.set(len(self.queue))
        if kind in (Kind.REAL_SERVER_POOL, Kind.VIP_POOL) and current is not None:
            self.pool_queue.add((kind, key_of(current)))
        elif kind is Kind.VIRTUAL_SERVICE:
            for version in (previous, current):
                self._pool_status_soon(version)

    def record_write(
        self, kind: Kind, event_type: str, obj: Mapping[str, Any], source: ObjectKey, affects_others: bool
    ) -> None:
        """A write's response goes into the cache at once; only others it may affect are queued."""
        previous, current = self.world.apply_event(kind, event_type, obj)
        if previous is current:
            return
        affected = self.reconciler.index.update(self.world, kind, previous, current)
        if affects_others:
            for key in affected - {source}:
                self.queue.add(key)
        if kind is Kind.RESOLVED_SERVICE:
            self._pool_status_soon(self.world.get(Kind.VIRTUAL_SERVICE, source))
            for pool_key, _ in self.world.items(Kind.VIP_POOL):
                self._later(self.pool_queue.add, (Kind.VIP_POOL, pool_key), self.vip_pool_status_delay)

    def status_soon(self, key: ObjectKey) -> None:
        """Queue ``key`` on the status lane after ``status_delay`` (once however often it is asked for)."""
        if key in self._status_scheduled:
            return
        self._status_scheduled.add(key)

        def fire() -> None:
            self._status_scheduled.discard(key)
            self.status_queue.add(key)

        asyncio.get_running_loop().call_later(self.status_delay, fire)
        self._status_depth()

    def _status_depth(self, finishing: int = 0) -> None:
        """Publish the status lane's depth; ``finishing`` keys are done but not yet released."""
        busy = self.status_queue.in_flight - finishing
        metrics.STATUS_QUEUE_DEPTH.set(len(self._status_scheduled) + len(self.status_queue) + busy)

    def _later(self, callback: Any, key: Any, delay: float | None = None) -> None:
        """Run ``callback(key)`` after ``delay`` (default: the pool debounce), once per key however often
        it is asked for meanwhile."""
        if key in self._scheduled:
            return
        self._scheduled.add(key)

        def fire() -> None:
            self._scheduled.discard(key)
            callback(key)

        asyncio.get_running_loop().call_later(self.pool_status_delay if delay is None else delay, fire)

    def _pool_status_soon(self, vs: Mapping[str, Any] | None) -> None:
        """The pool a VirtualService uses may show new members or users: refresh its status shortly."""
        if vs is None or not self.primed.is_set():
            return
        pool_ref = (vs.get("spec") or {}).get("poolRef")
        if isinstance(pool_ref, Mapping) and pool_ref.get("name"):
            namespace = str((vs.get("metadata") or {}).get("namespace") or "")
            self._later(self.pool_queue.add, (Kind.REAL_SERVER_POOL, (namespace, str(pool_ref["name"]))))

    async def prime(self) -> None:
        """List every watched kind before the first reconcile, so that no decision is taken on a partial
        view (a restart must not flag a VirtualService PoolNotFound because pools were not listed yet)."""
        for kind, resource in RESOURCES.items():
            while True:
                try:
                    listed = await self.client.list(resource)
                    break
                except ApiError as error:
                    if error.status == 404:  # kind not served (e.g. CRD not installed yet)
                        listed = None
                        break
                    logger.warning("listing %s failed: %s", kind.value, error)
                    await asyncio.sleep(1.0)
            for item in listed.items if listed else []:
                previous, current = self.world.apply_event(kind, "ADDED", item)
                if previous is not current:
                    self.reconciler.index.update(self.world, kind, previous, current)
            metrics.CACHED_OBJECTS.labels(kind.value).set(self.world.count(kind))
        self.primed.set()
        for key, _ in self.world.items(Kind.VIRTUAL_SERVICE):
            self.queue.add(key)
        for key, _ in self.world.items(Kind.RESOLVED_SERVICE):
            self.queue.add(key)  # one whose VirtualService went while no controller ran is withdrawn
        for kind in (Kind.REAL_SERVER_POOL, Kind.VIP_POOL):
            for key, _ in self.world.items(kind):
                self.pool_queue.add((kind, key))
        logger.info("cache primed", extra={"virtualServices": self.world.count(Kind.VIRTUAL_SERVICE)})

    async def _process(self, key: ObjectKey) -> None:
        started = time.perf_counter()
        metrics.IN_FLIGHT.inc()
        try:
            requeue_after = await self.reconciler.reconcile(key)
            metrics.RECONCILES.labels("ok").inc()
            logger.debug("reconciled", extra={"object": f"VirtualService {key[0]}/{key[1]}"})
        except Conflict:
            # A write raced a newer version of the object; its watch event is on the way. Not an error.
            metrics.RECONCILES.labels("conflict").inc()
            logger.info("stale write, retrying", extra={"object": f"VirtualService {key[0]}/{key[1]}"})
            requeue_after = 0.2
        except Exception as error:
            metrics.RECONCILES.labels("error").inc()
            metrics.RECONCILE_ERRORS.labels(type(error).__name__).inc()
            logger.exception("reconcile failed", extra={"object": f"VirtualService {key[0]}/{key[1]}"})
            requeue_after = 2.0
        finally:
            metrics.IN_FLIGHT.dec()
            metrics.RECONCILE_SECONDS.observe(time.perf_counter() - started)
            metrics.QUEUE_DEPTH.set(len(self.queue))
        if requeue_after is not None:
            asyncio.get_running_loop().call_later(requeue_after, self.queue.add, key)

    async def _process_status(self, key: ObjectKey) -> None:
        deadline = time.monotonic() + self.status_max_defer
        while len(self.queue) > self.workers and time.monotonic() < deadline:
            await asyncio.sleep(0.1)
        try:
            await self.reconciler.reconcile_status(key)
        except Exception as error:
            metrics.RECONCILE_ERRORS.labels(type(error).__name__).inc()
            logger.exception("status write failed", extra={"object": f"VirtualService {key[0]}/{key[1]}"})
            asyncio.get_running_loop().call_later(2.0, self.status_soon, key)
        finally:
            self._status_depth(finishing=1)

    async def _process_pool(self, item: tuple[Kind, ObjectKey]) -> None:
        kind, key = item
        try:
            await self.reconciler.reconcile_pool_status(kind, key)
        except Conflict:
            self._later(self.pool_queue.add, item)
        except Exception:
            metrics.RECONCILE_ERRORS.labels("PoolStatus").inc()
            logger.exception(
                "pool status failed", extra={"object": f"{kind.value} {'/'.join(filter(None, key))}"}
            )
            self._later(self.pool_queue.add, item)

    async def run_workers(self) -> None:
        await self.primed.wait()
        async with asyncio.TaskGroup() as group:
            group.create_task(self.queue.run_workers(self.workers, self._process))
            group.create_task(self.status_queue.run_workers(self.status_workers, self._process_status))
            group.create_task(self.pool_queue.run_workers(2, self._process_pool))
            if self.resync_seconds > 0:
                group.create_task(self._resync())

    async def _resync(self) -> None:
        """Requeue everything now and then: no writes unless something drifted; catches lost events."""
        while True:
            await asyncio.sleep(self.resync_seconds)
            for key, _ in self.world.items(Kind.VIRTUAL_SERVICE):
                self.queue.add(key)
