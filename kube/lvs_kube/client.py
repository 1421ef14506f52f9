"""An asyncio client for the Kubernetes REST API, built on aiohttp.

Why aiohttp and not the `kubernetes` package's generated client: kopf (the controller) and the agent are
asyncio programs. The generated client is synchronous; running it in a thread executor would cap
concurrency at the pool size (1,000 VirtualServices applied at once means 1,000 writes), hold a thread per
watch, and double-buffer every object through its model classes only to turn them back into dicts.
aiohttp is already a kopf dependency, shares one connection pool and one loop with kopf, streams watches
natively, and lets us send server-side apply (``application/apply-patch+yaml``), which the generated client
only does awkwardly. The `kubernetes` package is still used for what it does best: reading kubeconfig and
in-cluster credentials (see config.py).

Objects are plain JSON dicts; typed views live with the callers (pydantic models in lvs_api).
"""

from __future__ import annotations

import asyncio
import collections
import json
from collections.abc import AsyncIterator, Callable, Mapping
from dataclasses import dataclass
from typing import Any, Literal

import aiohttp

from lvs_kube.config import ClusterConfig
from lvs_kube.errors import ApiError, Gone, NotFound, error_for
from lvs_kube.resources import Resource

JsonObject = dict[str, Any]
PatchKind = Literal["merge", "json", "strategic"]

_PATCH_CONTENT_TYPES: dict[str, str] = {
    "merge": "application/merge-patch+json",
    "json": "application/json-patch+json",
    "strategic": "application/strategic-merge-patch+json",
}
APPLY_CONTENT_TYPE = "application/apply-patch+yaml"
WRITE_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})


@dataclass(frozen=True)
class ListResult:
    """Items of a (fully paged) list and the collection resourceVersion to start a watch from."""

    items: list[JsonObject]
    resource_version: str


@dataclass(frozen=True)
class WatchEvent:
    """One watch event: ADDED, MODIFIED, DELETED or BOOKMARK, and the object."""

    type: str
    object: JsonObject


def object_key(obj: Mapping[str, Any]) -> tuple[str, str]:
    """(namespace, name) of an object; namespace is "" for cluster-scoped objects."""
    metadata = obj.get("metadata") or {}
    return str(metadata.get("namespace") or ""), str(metadata.get("name") or "")


class KubeClient:
    """Typed-enough reads and writes. One instance per process; close it (or use ``async with``)."""

    def __init__(
        self,
        config: ClusterConfig,
        *,
        max_connections: int = 64,
        request_timeout: float = 30.0,
        user_agent: str = "lvs-operator",
        on_write: Callable[[str], None] | None = None,
    ) -> None:
        self.config = config
        self._max_connections = max_connections
        self._timeout = request_timeout
        self._user_agent = user_agent
        self._session: aiohttp.ClientSession | None = None
        # Writes sent by this client, by "VERB kind" (metrics, and tests proving idempotence).
        self.writes: collections.Counter[str] = collections.Counter()
        # Called with "verb Kind" on every write sent (a Prometheus counter, an audit log...).
        self.on_write = on_write

    async def __aenter__(self) -> KubeClient:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None

    def _get_session(self) -> aiohttp.ClientSession:
        if self._session is None or self._session.closed:
            connector = aiohttp.TCPConnector(limit=self._max_connections, ssl=self.config.ssl_context())
            self._session = aiohttp.ClientSession(
                base_url=None,
                connector=connector,
                headers={"User-Agent": self._user_agent, "Accept": "application/json"},
            )
        return self._session

    def _headers(self, content_type: str | None) -> dict[str, str]:
        headers: dict[str, str] = {}
        token = self.config.current_token()
        if token:
            headers["Authorization"] = f"Bearer {token}"
        if content_type:
            headers["Content-Type"] = content_type
        return headers

    async def request(
        self,
        method: str,
        path: str,
        *,
        params: Mapping[str, str] | None = None,
        body: Any = None,
        content_type: str | None = None,
        counted_as: str = "",
    ) -> JsonObject:
        """One request; raises ApiError (NotFound, Conflict, Gone...) on a non-2xx answer."""
        session = self._get_session()
        data: bytes | None = None
        if body is not None:
            data = json.dumps(body, separators=(",", ":")).encode()
            content_type = content_type or "application/json"
        if method in WRITE_METHODS:
            label = counted_as or f"{method} {path}"
            self.writes[label] += 1
            if self.on_write is not None:
                self.on_write(label)
        async with session.request(
            method,
            self.config.server + path,
            params=dict(params or {}),
            data=data,
            headers=self._headers(content_type),
            timeout=aiohttp.ClientTimeout(total=self._timeout),
        ) as response:
            text = await response.text()
            parsed: Any = None
            if text:
                try:
                    parsed = json.loads(text)
                except ValueError:
                    parsed = None
            if response.status >= 400:
                raise error_for(response.status, parsed if isinstance(parsed, dict) else None, text)
            return parsed if isinstance(parsed, dict) else {}

    # ---- reads -------------------------------------------------------------------------------------

    async def get(self, resource: Resource, name: str, namespace: str | None = None) -> JsonObject:
        return await self.request("GET", resource.path(namespace, name))

    async def get_or_none(
        self, resource: Resource, name: str, namespace: str | None = None
    ) -> JsonObject | None:
        try:
            return await self.get(resource, name, namespace)
        except NotFound:
            return None

    async def list(
        self,
        resource: Resource,
        namespace: str | None = None,
        *,
        label_selector: str | None = None,
        field_selector: str | None = None,
        page_size: int = 500,
    ) -> ListResult:
        """All items across pages (``limit``/``continue``), with the list's resourceVersion."""
        items: list[JsonObject] = []
        continue_token = ""
        resource_version = ""
        while True:
            params: dict[str, str] = {"limit": str(page_size)}
            if label_selector:
                params["labelSelector"] = label_selector
            if field_selector:
                params["fieldSelector"] = field_selector
            if continue_token:
                params["continue"] = continue_token
            page = await self.request("GET", resource.path(namespace), params=params)
            for item in page.get("items") or []:
                # Lists omit kind/apiVersion on items; put them back so objects look the same everywhere.
                item.setdefault("kind", resource.kind)
                item.setdefault("apiVersion", resource.api_version)
                items.append(item)
            metadata = page.get("metadata") or {}
            resource_version = str(metadata.get("resourceVersion") or resource_version)
            continue_token = str(metadata.get("continue") or "")
            if not continue_token:
                return ListResult(items, resource_version)

    async def watch(
        self,
        resource: Resource,
        namespace: str | None = None,
        *,
        resource_version: str | None = None,
        label_selector: str | None = None,
        timeout_seconds: int = 300,
    ) -> AsyncIterator[WatchEvent]:
        """One watch request's events until the server closes it; raises Gone when the version expired."""
        params: dict[str, str] = {
            "watch": "true",
            "allowWatchBookmarks": "true",
            "timeoutSeconds": str(timeout_seconds),
        }
        if resource_version:
            params["resourceVersion"] = resource_version
        if label_selector:
            params["labelSelector"] = label_selector
        session = self._get_session()
        async with session.get(
            self.config.server + resource.path(namespace),
            params=params,
            headers=self._headers(None),
            timeout=aiohttp.ClientTimeout(total=None, sock_read=timeout_seconds + 30),
        ) as response:
            if response.status >= 400:
                text = await response.text()
                try:
                    body = json.loads(text)
                except ValueError:
                    body = None
                raise error_for(response.status, body if isinstance(body, dict) else None, text)
            async for raw_line in response.content:
                line = raw_line.strip()
                if not line:
                    continue
                event = json.loads(line)
                event_type = str(event.get("type") or "")
                obj = event.get("object") or {}
                if event_type == "ERROR":
                    code = int(obj.get("code") or 500)
                    raise error_for(code, obj, str(obj.get("message") or ""))
                yield WatchEvent(event_type, obj)

    # ---- writes ------------------------------------------------------------------------------------

    async def create(self, resource: Resource, body: JsonObject, namespace: str | None = None) -> JsonObject:
        namespace = namespace or (body.get("metadata") or {}).get("namespace")
        return await self.request(
            "POST", resource.path(namespace), body=body, counted_as=f"create {resource.kind}"
        )

    async def replace(
        self, resource: Resource, body: JsonObject, *, subresource: str | None = None
    ) -> JsonObject:
        """PUT the whole object; the body's resourceVersion makes it a compare-and-swap (409 if stale)."""
        namespace, name = object_key(body)
        return await self.request(
            "PUT",
            resource.path(namespace or None, name, subresource),
            body=body,
            counted_as=f"replace {resource.kind}{'/' + subresource if subresource else ''}",
        )

    async def patch(
        self,
        resource: Resource,
        name: str,
        patch: Any,
        namespace: str | None = None,
        *,
        kind: PatchKind = "merge",
        subresource: str | None = None,
    ) -> JsonObject:
        return await self.request(
            "PATCH",
            resource.path(namespace, name, subresource),
            body=patch,
            content_type=_PATCH_CONTENT_TYPES[kind],
            counted_as=f"patch {resource.kind}{'/' + subresource if subresource else ''}",
        )

    async def patch_status(
        self, resource: Resource, name: str, status: JsonObject, namespace: str | None = None
    ) -> JsonObject:
        """Merge-patch ``.status`` through the status subresource."""
        return await self.patch(resource, name, {"status": status}, namespace, subresource="status")

    async def apply(
        self,
        resource: Resource,
        body: JsonObject,
        *,
        field_manager: str,
        force: bool = True,
        subresource: str | None = None,
    ) -> JsonObject:
        """Server-side apply: the body is this manager's whole intent for the fields it names.

        JSON is valid YAML, so the body is sent as JSON under the apply content type.
        """
        namespace, name = object_key(body)
        params = {"fieldManager": field_manager}
        if force:
            params["force"] = "true"
        return await self.request(
            "PATCH",
            resource.path(namespace or None, name, subresource),
            params=params,
            body=body,
            content_type=APPLY_CONTENT_TYPE,
            counted_as=f"apply {resource.kind}{'/' + subresource if subresource else ''}",
        )

    async def delete(
        self,
        resource: Resource,
        name: str,
        namespace: str | None = None,
        *,
        propagation_policy: str | None = None,
        missing_ok: bool = True,
    ) -> JsonObject | None:
        body: JsonObject | None = None
        if propagation_policy:
            body = {"kind": "DeleteOptions", "apiVersion": "v1", "propagationPolicy": propagation_policy}
        try:
            return await self.request(
                "DELETE", resource.path(namespace, name), body=body, counted_as=f"delete {resource.kind}"
            )
        except NotFound:
            if missing_ok:
                return None
            raise


async def list_then_watch(
    client: KubeClient,
    resource: Resource,
    namespace: str | None = None,
    *,
    label_selector: str | None = None,
    retry_delay: float = 1.0,
) -> AsyncIterator[WatchEvent]:
    """Yield every existing object as ADDED, then changes forever; relist on 410 Gone or a dropped stream.

    After a relist, objects that disappeared meanwhile are reported as DELETED so callers' caches converge.
    """
    known: dict[tuple[str, str], JsonObject] = {}
    while True:
        try:
            listed = await client.list(resource, namespace, label_selector=label_selector)
        except (TimeoutError, ApiError, aiohttp.ClientError):
            await asyncio.sleep(retry_delay)
            continue
        current = {object_key(item): item for item in listed.items}
        for key, gone in list(known.items()):
            if key not in current:
                yield WatchEvent("DELETED", gone)
        known = {}
        for key, item in current.items():
            known[key] = item
            yield WatchEvent("ADDED", item)
        resource_version = listed.resource_version
        try:
            while True:
                async for event in client.watch(
                    resource, namespace, resource_version=resource_version, label_selector=label_selector
                ):
                    version = (event.object.get("metadata") or {}).get("resourceVersion")
                    if version:
                        resource_version = str(version)
                    if event.type == "BOOKMARK":
                        continue
                    event.object.setdefault("kind", resource.kind)
                    event.object.setdefault("apiVersion", resource.api_version)
                    if event.type == "DELETED":
                        known.pop(object_key(event.object), None)
                    else:
                        known[object_key(event.object)] = event.object
                    yield event
        except Gone:
            continue
        except (TimeoutError, ApiError, aiohttp.ClientError, ValueError):
            await asyncio.sleep(retry_delay)
            continue
