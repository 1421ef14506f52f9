"""Desired-state sources: where the agent reads the ``ResolvedService`` objects it programs.

``DesiredStateSource`` is the narrow interface the reconcile loop depends on: ``wait_for_change`` returns
the full current set (keyed "namespace/name") whenever it changed, the first call at once. Two sources:

- ``KubeDesiredStateSource``: list + watch of ``resolvedservices.lvs.io`` across namespaces through
  lvs_kube (production; proven against the embedded API server in the integration tests). Resumes a
  watch from its resourceVersion, relists on 410 Gone, and backs off while the API server is away,
  keeping the last known state (the data path keeps running unchanged while the API is down).
- ``FileDesiredStateSource``: a YAML or JSON file (one document per object, or a ``List``), polled for
  changes. The kernel-guest tests and the demo feed the agent this way, without an API server.
"""

from __future__ import annotations

import asyncio
import logging
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Protocol

import aiohttp
import yaml
from lvs_api.models import ResolvedService
from lvs_kube.client import KubeClient
from lvs_kube.errors import ApiError, Gone
from lvs_kube.resources import RESOLVED_SERVICE
from pydantic import ValidationError

logger = logging.getLogger("lvs_agent.desired")

DesiredState = Mapping[str, ResolvedService]


def object_key(resolved: ResolvedService) -> str:
    return f"{resolved.metadata.namespace or 'default'}/{resolved.metadata.name}"


class DesiredStateSource(Protocol):
    async def wait_for_change(self) -> DesiredState:
        """The full desired state, as soon as it differs from what the previous call returned."""
        ...


def parse_documents(text: str) -> tuple[dict[str, ResolvedService], list[str]]:
    """ResolvedService objects from YAML/JSON text; invalid documents are reported, not fatal."""
    found: dict[str, ResolvedService] = {}
    errors: list[str] = []
    for document in yaml.safe_load_all(text):
        if not document:
            continue
        is_list = str(document.get("kind", "")).endswith("List")
        items: list[Any] = document.get("items", []) if is_list else [document]
        for item in items:
            try:
                resolved = ResolvedService.model_validate(item)
            except ValidationError as error:
                name = (item.get("metadata") or {}).get("name", "?") if isinstance(item, dict) else "?"
                first = error.errors()[0]["msg"]
                errors.append(f"{name}: {error.error_count()} validation error(s), first: {first}")
                continue
            found[object_key(resolved)] = resolved
    return found, errors


class FileDesiredStateSource:
    """Polls a file's (mtime, size) every ``poll_interval``; a missing file means no services."""

    def __init__(self, path: str | Path, poll_interval: float = 0.2) -> None:
        self.path = Path(path)
        self.poll_interval = poll_interval
        self._stamp: tuple[int, int] | None = None
        self._first = True
        self.errors: list[str] = []

    def _current_stamp(self) -> tuple[int, int]:
        try:
            stat = os.stat(self.path)
        except FileNotFoundError:
            return (0, -1)
        return (stat.st_mtime_ns, stat.st_size)

    def read(self) -> dict[str, ResolvedService]:
        try:
            text = self.path.read_text()
        except FileNotFoundError:
            return {}
        found, self.errors = parse_documents(text)
        for error in self.errors:
            logger.error("desired state file %s: %s", self.path, error)
        return found

    async def wait_for_change(self) -> DesiredState:
        while True:
            stamp = self._current_stamp()
            if self._first or stamp != self._stamp:
                self._first = False
                self._stamp = stamp
                return self.read()
            await asyncio.sleep(self.poll_interval)


class KubeDesiredStateSource:
    """List + watch ResolvedService objects (all namespaces) through lvs_kube."""

    def __init__(self, client: KubeClient, *, retry_max: float = 30.0) -> None:
        self._client = client
        self._retry_max = retry_max
        self._state: dict[str, ResolvedService] = {}
        self._changed = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self.synced = asyncio.Event()

    def _put(self, raw: dict[str, Any]) -> None:
        try:
            resolved = ResolvedService.model_validate(raw)
        except ValidationError as error:
            name = (raw.get("metadata") or {}).get("name")
            logger.error("ignoring invalid ResolvedService %s: %s", name, error)
            return
        self._state[object_key(resolved)] = resolved

    async def _run(self) -> None:
        delay = 0.5
        resource_version: str | None = None
        while True:
            try:
                if resource_version is None:
                    listed = await self._client.list(RESOLVED_SERVICE)
                    self._state = {}
                    for item in listed.items:
                        self._put(item)
                    resource_version = listed.resource_version
                    self._changed.set()
                    self.synced.set()
                async for event in self._client.watch(RESOLVED_SERVICE, resource_version=resource_version):
                    metadata = event.object.get("metadata") or {}
                    resource_version = str(metadata.get("resourceVersion") or resource_version)
                    if event.type == "BOOKMARK":
                        continue
                    if event.type == "DELETED":
                        namespace = metadata.get("namespace") or "default"
                        self._state.pop(f"{namespace}/{metadata.get('name')}", None)
                    else:
                        self._put(event.object)
                    self._changed.set()
                delay = 0.5
            except Gone:
                resource_version = None  # our version expired: relist
            except (ApiError, aiohttp.ClientError, OSError, TimeoutError, ValueError) as error:
                logger.warning("ResolvedService watch failed (keeping the last known state): %s", error)
                await asyncio.sleep(delay)
                delay = min(delay * 2, self._retry_max)

    async def wait_for_change(self) -> DesiredState:
        if self._task is None:
            self._task = asyncio.get_running_loop().create_task(self._run(), name="resolvedservice-watch")
        await self._changed.wait()
        self._changed.clear()
        return dict(self._state)
