"""The arbiter of a VIP group: one Lease per group, written with compare-and-swap.

``LeaseStore`` is the narrow interface the failover runner uses. Two implementations:

- ``KubeLeaseStore``: a ``coordination.k8s.io/v1`` Lease per group through lvs_kube (production).
- ``FileLeaseStore``: a JSON file per group under one directory, serialised with ``flock`` (kernel-guest
  tests, the demo, and single-host labs where every director shares a filesystem). Same semantics.

Semantics shared by both: ``acquire`` succeeds only if the Lease still names the holder the caller decided
to replace, and a change of holder increments ``transitions``: the new holder's *term*,
the fencing token its heartbeats carry. ``renew`` succeeds only for the current holder.
``release`` (a graceful stop handing the group over) clears the holder, again only for the current holder,
and keeps the term: whoever acquires the released Lease next gets the term after it. A released Lease is
free to acquire whoever the caller expected to replace, so the peer a stopping director hands over to
takes it in one write whether or not the release landed first.

A change of holder also stamps the acquire time and adds one to the new holder's count of activations
(``lvs.io/activations`` on the Lease: a JSON object node -> count). The holder re-taking its own Lease
(an agent restart) keeps both: nobody else held the group in between, so it is the same activation.
These are what the agent reports as ``vipGroups[].since`` and ``failovers``: written with the same
compare-and-swap as the holder, they survive agent restarts and never count one activation twice.
"""

from __future__ import annotations

import datetime
import fcntl
import hashlib
import json
import os
import re
import time
from pathlib import Path
from typing import Any, Protocol

import aiohttp
from lvs_kube.client import KubeClient
from lvs_kube.errors import ApiError, Conflict, NotFound
from lvs_kube.resources import LEASE

from lvs_agent.failover.machine import LeaseView


class LeaseUnavailableError(RuntimeError):
    """The store did not answer (API server away, timeout)."""


class LeaseConflictError(RuntimeError):
    """The Lease is not what the caller expected; ``current`` is what it is now."""

    def __init__(self, current: LeaseView) -> None:
        self.current = current
        super().__init__(f"Lease held by {current.holder!r} (transitions {current.transitions})")


class LeaseStore(Protocol):
    async def read(self, group: str) -> LeaseView: ...

    async def acquire(self, group: str, node: str, expected: LeaseView | None) -> LeaseView: ...

    async def renew(self, group: str, node: str) -> LeaseView: ...

    async def release(self, group: str, node: str) -> LeaseView: ...


def lease_name(group: str) -> str:
    """A DNS-1123 name for the group's Lease: readable prefix plus a hash so that distinct groups differ."""
    readable = re.sub(r"[^a-z0-9-]+", "-", group.lower()).strip("-")[:40] or "group"
    digest = hashlib.sha256(group.encode()).hexdigest()[:8]
    return f"lvs-vip-{readable}-{digest}"


ACTIVATIONS_ANNOTATION = "lvs.io/activations"


def _taken(current: LeaseView, exists: bool, node: str,
           now: datetime.datetime) -> tuple[int, datetime.datetime, dict[str, int]]:
    """Term, acquire time and activation counts after ``node`` acquires a Lease that is ``current``."""
    activations = dict(current.activations or {})
    if exists and current.holder == node:  # the holder re-takes it: same term, same activation
        activations.setdefault(node, 1)  # a Lease from before the counts existed: at least this one
        return current.transitions, current.acquired or now, activations
    activations[node] = activations.get(node, 0) + 1
    return current.transitions + (1 if exists else 0), now, activations


def _parse_activations(text: object) -> dict[str, int]:
    """The activation counts from their JSON text; anything malformed reads as no counts."""
    try:
        return _activations(json.loads(str(text)) if text else {})
    except ValueError:
        return {}


def _activations(raw: object) -> dict[str, int]:
    if not isinstance(raw, dict):
        return {}
    return {str(node): int(count) for node, count in raw.items()
            if isinstance(count, int) and not isinstance(count, bool) and count >= 0}


def _matches(current: LeaseView, expected: LeaseView | None) -> bool:
    """The caller decided to replace ``expected.holder`` (dead, or free): still the holder, or released?"""
    if expected is None or current.holder == "":
        return True
    return current.holder == expected.holder


class FileLeaseStore:
    """Leases as JSON files (``{holder, transitions, renewed, duration}``) guarded by ``flock``."""

    def __init__(self, directory: str | Path, duration_seconds: float = 10.0) -> None:
        self.directory = Path(directory)
        self.directory.mkdir(parents=True, exist_ok=True)
        self.duration_seconds = duration_seconds

    def _path(self, group: str) -> Path:
        return self.directory / f"{lease_name(group)}.json"

    def _locked(self, group: str, update: Any) -> LeaseView:
        path = self._path(group)
        descriptor = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(descriptor, fcntl.LOCK_EX)
            raw = os.read(descriptor, 65536)
            record: dict[str, Any] | None = json.loads(raw) if raw.strip() else None
            result, new_record = update(record)
            if new_record is not None:
                data = json.dumps(new_record).encode()
                os.lseek(descriptor, 0, os.SEEK_SET)
                os.ftruncate(descriptor, 0)
                os.write(descriptor, data)
            view: LeaseView = result
            return view
        finally:
            os.close(descriptor)

    def _view(self, record: dict[str, Any] | None) -> LeaseView:
        if record is None:
            return LeaseView("", 0, expired=True, activations={})
        expired = time.time() > float(record["renewed"]) + float(record["duration"])
        stamp = record.get("acquired")
        acquired = None if stamp is None else datetime.datetime.fromtimestamp(float(stamp), datetime.UTC)
        return LeaseView(
            str(record["holder"]), int(record["transitions"]), expired, acquired=acquired,
            activations=_activations(record.get("activations")),
        )

    async def read(self, group: str) -> LeaseView:
        return self._locked(group, lambda record: (self._view(record), None))

    async def acquire(self, group: str, node: str, expected: LeaseView | None) -> LeaseView:
        def update(record: dict[str, Any] | None) -> tuple[LeaseView, dict[str, Any] | None]:
            current = self._view(record)
            if not _matches(current, expected):
                raise LeaseConflictError(current)
            now = time.time()
            transitions, acquired, activations = _taken(
                current, record is not None, node, datetime.datetime.fromtimestamp(now, datetime.UTC))
            new = {"holder": node, "transitions": transitions, "renewed": now,
                   "duration": self.duration_seconds, "acquired": acquired.timestamp(),
                   "activations": activations}
            return self._view(new), new

        return self._locked(group, update)

    async def renew(self, group: str, node: str) -> LeaseView:
        def update(record: dict[str, Any] | None) -> tuple[LeaseView, dict[str, Any] | None]:
            current = self._view(record)
            if record is None or current.holder != node:
                raise LeaseConflictError(current)
            new = dict(record, renewed=time.time())
            return self._view(new), new

        return self._locked(group, update)

    async def release(self, group: str, node: str) -> LeaseView:
        def update(record: dict[str, Any] | None) -> tuple[LeaseView, dict[str, Any] | None]:
            current = self._view(record)
            if record is None or current.holder != node:
                raise LeaseConflictError(current)
            new = dict(record, holder="", renewed=time.time())
            return self._view(new), new

        return self._locked(group, update)


def _micro_time(moment: datetime.datetime) -> str:
    """A Kubernetes MicroTime (RFC 3339, microseconds, UTC)."""
    return moment.astimezone(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _parse_micro_time(text: object) -> datetime.datetime | None:
    if not text:
        return None
    try:
        moment = datetime.datetime.fromisoformat(str(text).replace("Z", "+00:00"))
    except ValueError:
        return None
    return moment if moment.tzinfo else moment.replace(tzinfo=datetime.UTC)


class KubeLeaseStore:
    """Leases in the API server through lvs_kube's client (compare-and-swap on resourceVersion)."""

    def __init__(self, client: KubeClient, namespace: str, duration_seconds: int = 10) -> None:
        self._client = client
        self.namespace = namespace
        self.duration_seconds = duration_seconds

    @staticmethod
    def _now() -> str:
        return _micro_time(datetime.datetime.now(datetime.UTC))

    def _view(self, lease: dict[str, Any] | None) -> LeaseView:
        if lease is None:
            return LeaseView("", 0, expired=True, activations={})
        spec = lease.get("spec") or {}
        renewed = _parse_micro_time(spec.get("renewTime"))
        expired = True
        if renewed is not None:
            duration = float(spec.get("leaseDurationSeconds") or self.duration_seconds)
            expired = datetime.datetime.now(datetime.UTC).timestamp() > renewed.timestamp() + duration
        holder = str(spec.get("holderIdentity") or "")
        annotations = (lease.get("metadata") or {}).get("annotations") or {}
        return LeaseView(holder, int(spec.get("leaseTransitions") or 0), expired,
                         acquired=_parse_micro_time(spec.get("acquireTime")),
                         activations=_parse_activations(annotations.get(ACTIVATIONS_ANNOTATION)))

    async def _get(self, group: str) -> dict[str, Any] | None:
        try:
            return await self._client.get(LEASE, lease_name(group), self.namespace)
        except NotFound:
            return None
        except (ApiError, aiohttp.ClientError, OSError, TimeoutError) as error:
            raise LeaseUnavailableError(str(error)) from error

    async def read(self, group: str) -> LeaseView:
        return self._view(await self._get(group))

    async def _write(self, group: str, lease: dict[str, Any] | None, spec: dict[str, Any],
                     activations: dict[str, int] | None = None) -> LeaseView:
        counts = {}
        if activations is not None:
            counts[ACTIVATIONS_ANNOTATION] = json.dumps(activations, sort_keys=True)
        try:
            if lease is None:
                body = {
                    "apiVersion": "coordination.k8s.io/v1",
                    "kind": "Lease",
                    "metadata": {"name": lease_name(group), "namespace": self.namespace,
                                 "labels": {"lvs.io/vip-group": lease_name(group)},
                                 "annotations": {"lvs.io/vip-group": group, **counts}},
                    "spec": spec,
                }
                written = await self._client.create(LEASE, body, self.namespace)
            else:
                metadata = dict(lease.get("metadata") or {})
                metadata["annotations"] = {**(metadata.get("annotations") or {}), **counts}
                lease = dict(lease, metadata=metadata, spec=spec)
                written = await self._client.replace(LEASE, lease)
        except Conflict as error:
            raise LeaseConflictError(self._view(await self._get(group))) from error
        except (ApiError, aiohttp.ClientError, OSError, TimeoutError) as error:
            raise LeaseUnavailableError(str(error)) from error
        return self._view(written)

    async def acquire(self, group: str, node: str, expected: LeaseView | None) -> LeaseView:
        lease = await self._get(group)
        current = self._view(lease)
        if not _matches(current, expected):
            raise LeaseConflictError(current)
        now = datetime.datetime.now(datetime.UTC)
        transitions, acquired, activations = _taken(current, lease is not None, node, now)
        spec = {"holderIdentity": node, "leaseDurationSeconds": self.duration_seconds,
                "acquireTime": _micro_time(acquired), "renewTime": _micro_time(now),
                "leaseTransitions": transitions}
        return await self._write(group, lease, spec, activations)

    async def renew(self, group: str, node: str) -> LeaseView:
        lease = await self._get(group)
        current = self._view(lease)
        if lease is None or current.holder != node:
            raise LeaseConflictError(current)
        spec = dict(lease.get("spec") or {}, renewTime=self._now())
        return await self._write(group, lease, spec)

    async def release(self, group: str, node: str) -> LeaseView:
        """Clear the holder (``kubectl get lease`` then shows none), as client-go's leader election does on
        a graceful stop; term, acquire time and activation counts stay for the next holder to build on."""
        lease = await self._get(group)
        current = self._view(lease)
        if lease is None or current.holder != node:
            raise LeaseConflictError(current)
        spec = {key: value for key, value in (lease.get("spec") or {}).items() if key != "holderIdentity"}
        spec["renewTime"] = self._now()
        return await self._write(group, lease, spec)
