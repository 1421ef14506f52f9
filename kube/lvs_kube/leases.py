"""coordination.k8s.io Leases: a pure decision rule and an asyncio leader elector built on it.

The rule is client-go's: a holder keeps the lease by renewing it before ``leaseDurationSeconds`` runs out;
anyone may take it once the holder's last renewal is older than that (by the candidate's own clock, measured
from when it *observed* the renewal, so clock skew between nodes does not matter). Writes are
compare-and-swap on resourceVersion, so two candidates can never both win one round: the loser gets 409.

The controller uses it for "exactly one active replica"; the agent can use the same elector per VIP group
(fencing: the lease's holder and ``leaseTransitions`` are the audit trail).
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime
import enum
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import aiohttp

from lvs_kube.client import JsonObject, KubeClient
from lvs_kube.errors import ApiError, Conflict, NotFound
from lvs_kube.resources import LEASE

logger = logging.getLogger("lvs_kube.leases")


def format_micro_time(moment: datetime.datetime) -> str:
    """``MicroTime`` as the API writes it: RFC 3339 with microseconds, UTC."""
    return moment.astimezone(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def parse_micro_time(text: str | None) -> datetime.datetime | None:
    if not text:
        return None
    try:
        return datetime.datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        return None


@dataclass(frozen=True)
class LeaseRecord:
    """The fields of ``Lease.spec`` that election uses."""

    holder: str = ""
    duration_seconds: int = 15
    acquire_time: str | None = None
    renew_time: str | None = None
    transitions: int = 0

    @classmethod
    def from_lease(cls, lease: JsonObject) -> LeaseRecord:
        spec = lease.get("spec") or {}
        return cls(
            holder=str(spec.get("holderIdentity") or ""),
            duration_seconds=int(spec.get("leaseDurationSeconds") or 15),
            acquire_time=spec.get("acquireTime"),
            renew_time=spec.get("renewTime"),
            transitions=int(spec.get("leaseTransitions") or 0),
        )

    def to_spec(self) -> JsonObject:
        spec: JsonObject = {
            "holderIdentity": self.holder,
            "leaseDurationSeconds": self.duration_seconds,
            "leaseTransitions": self.transitions,
        }
        if self.acquire_time:
            spec["acquireTime"] = self.acquire_time
        if self.renew_time:
            spec["renewTime"] = self.renew_time
        return spec


class Decision(enum.Enum):
    RENEW = "renew"  # we hold it: write a fresh renewTime
    TAKE = "take"  # free or expired: write ourselves as holder
    WAIT = "wait"  # someone else holds a live lease


def decide(record: LeaseRecord, identity: str, observed_change_at: float, now: float) -> Decision:
    """What a candidate should do with the lease it just read.

    ``observed_change_at`` is the candidate's monotonic time when it first saw the current
    (holder, renewTime) pair; expiry is judged against that, never against the writer's wall clock.
    """
    if record.holder == identity:
        return Decision.RENEW
    if not record.holder:
        return Decision.TAKE
    if now - observed_change_at >= record.duration_seconds:
        return Decision.TAKE
    return Decision.WAIT


def next_record(record: LeaseRecord, identity: str, decision: Decision, duration_seconds: int) -> LeaseRecord:
    """The lease contents to write for a RENEW or TAKE decision."""
    stamp = format_micro_time(datetime.datetime.now(datetime.UTC))
    if decision is Decision.RENEW:
        return LeaseRecord(
            identity, duration_seconds, record.acquire_time or stamp, stamp, record.transitions
        )
    # client-go's rule: every change of holder counts, including taking a released (empty) lease.
    transitions = record.transitions + (1 if record.holder != identity else 0)
    return LeaseRecord(identity, duration_seconds, stamp, stamp, transitions)


Callback = Callable[[], Awaitable[None]]


class LeaderElector:
    """Campaigns for one Lease and keeps it; calls back on gaining and losing leadership.

    Losing means: a renewal did not succeed within ``renew_deadline`` (API unreachable, or someone else
    took the lease). After losing, the elector goes back to campaigning; a process that cannot safely
    resume (e.g. a kopf operator) should exit from ``on_stopped_leading`` and let its Deployment restart it.
    """

    def __init__(
        self,
        client: KubeClient,
        *,
        name: str,
        namespace: str,
        identity: str,
        lease_duration: int = 15,
        renew_deadline: float = 10.0,
        retry_period: float = 2.0,
        on_started_leading: Callback | None = None,
        on_stopped_leading: Callback | None = None,
    ) -> None:
        if not 0 < retry_period < renew_deadline < lease_duration:
            raise ValueError("need 0 < retry_period < renew_deadline < lease_duration")
        self._client = client
        self.name = name
        self.namespace = namespace
        self.identity = identity
        self.lease_duration = lease_duration
        self.renew_deadline = renew_deadline
        self.retry_period = retry_period
        self._on_started = on_started_leading
        self._on_stopped = on_stopped_leading
        self._leader_event = asyncio.Event()
        self._observed: tuple[str, str | None] | None = None
        self._observed_at = 0.0
        self._last_renewed = 0.0
        self.observed_holder = ""

    @property
    def is_leader(self) -> bool:
        return self._leader_event.is_set()

    async def wait_for_leadership(self) -> None:
        await self._leader_event.wait()

    async def try_acquire_or_renew(self) -> bool:
        """One round: read the lease, decide, write with compare-and-swap. True if we hold it after."""
        now = time.monotonic()
        lease: JsonObject | None
        try:
            lease = await self._client.get(LEASE, self.name, self.namespace)
        except NotFound:
            lease = None
        if lease is None:
            record = LeaseRecord(duration_seconds=self.lease_duration)
            fresh = next_record(record, self.identity, Decision.TAKE, self.lease_duration)
            body: JsonObject = {
                "apiVersion": "coordination.k8s.io/v1",
                "kind": "Lease",
                "metadata": {"name": self.name, "namespace": self.namespace},
                "spec": fresh.to_spec(),
            }
            try:
                await self._client.create(LEASE, body, self.namespace)
            except Conflict:
                return False
            self._remember(fresh, now)
            return True
        record = LeaseRecord.from_lease(lease)
        seen = (record.holder, record.renew_time)
        if seen != self._observed:
            self._observed = seen
            self._observed_at = now
        self.observed_holder = record.holder
        decision = decide(record, self.identity, self._observed_at, now)
        if decision is Decision.WAIT:
            return False
        updated = next_record(record, self.identity, decision, self.lease_duration)
        lease["spec"] = updated.to_spec()
        try:
            await self._client.replace(LEASE, lease)
        except Conflict:
            return False
        self._remember(updated, now)
        return True

    def _remember(self, record: LeaseRecord, now: float) -> None:
        self._observed = (record.holder, record.renew_time)
        self._observed_at = now
        self._last_renewed = now
        self.observed_holder = record.holder

    async def _round(self) -> bool:
        try:
            return await self.try_acquire_or_renew()
        except (TimeoutError, ApiError, aiohttp.ClientError, OSError) as error:
            logger.warning("lease %s/%s round failed: %s", self.namespace, self.name, error)
            return False

    async def run(self) -> None:
        """Campaign, lead, and campaign again after losing, until cancelled (then release the lease)."""
        try:
            while True:
                while not await self._round():
                    await asyncio.sleep(self.retry_period)
                self._leader_event.set()
                logger.info("became leader of lease %s/%s as %s", self.namespace, self.name, self.identity)
                if self._on_started is not None:
                    await self._on_started()
                while True:
                    await asyncio.sleep(self.retry_period)
                    if await self._round():
                        continue
                    if time.monotonic() - self._last_renewed >= self.renew_deadline:
                        break
                    if self.observed_holder and self.observed_holder != self.identity:
                        break
                self._leader_event.clear()
                logger.warning(
                    "lost lease %s/%s (holder now %r)", self.namespace, self.name, self.observed_holder
                )
                if self._on_stopped is not None:
                    await self._on_stopped()
        finally:
            if self._leader_event.is_set():
                self._leader_event.clear()
                with contextlib.suppress(Exception):
                    await asyncio.shield(self.release())

    async def release(self) -> None:
        """Give the lease up now (holder emptied) so a standby takes over without waiting for expiry."""
        try:
            lease = await self._client.get(LEASE, self.name, self.namespace)
        except NotFound:
            return
        record = LeaseRecord.from_lease(lease)
        if record.holder != self.identity:
            return
        spec: dict[str, Any] = dict(lease.get("spec") or {})
        spec["holderIdentity"] = ""
        spec["leaseDurationSeconds"] = 1
        lease["spec"] = spec
        try:
            await self._client.replace(LEASE, lease)
        except Conflict:
            return  # changed meanwhile: it is no longer ours to give up
        logger.info("released lease %s/%s", self.namespace, self.name)
