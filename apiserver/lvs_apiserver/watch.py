"""Watch streams: initial state or history replay from a resourceVersion, live events from the
store's fan-out, selector-aware ADDED/MODIFIED/DELETED, bookmarks, timeouts, 410 Gone."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from aiohttp import web

from .encoding import encode_event
from .errors import bad_request, gone
from .resources import ResourceType
from .selectors import Predicate
from .storage import Store, WatchEvent
from .tables import build_table

JsonDict = dict[str, Any]
Presenter = Callable[[ResourceType, JsonDict], JsonDict]
Encoder = Callable[[str, JsonDict], bytes]


@dataclass
class WatchRequest:
    rt: ResourceType
    namespace: str | None
    predicate: Predicate | None
    resource_version: str
    bookmarks: bool
    send_initial_events: bool
    timeout: float
    table: bool
    include_object: str

    def matches(self, obj: JsonDict | None) -> bool:
        if obj is None:
            return False
        if self.namespace is not None and obj["metadata"].get("namespace") != self.namespace:
            return False
        return self.predicate is None or self.predicate(obj)


def bookmark_object(rt: ResourceType, resource_version: int, initial_end: bool = False) -> JsonDict:
    metadata: JsonDict = {"resourceVersion": str(resource_version)}
    if initial_end:
        metadata["annotations"] = {"k8s.io/initial-events-end": "true"}
    return {"kind": rt.kind, "apiVersion": rt.api_version, "metadata": metadata}


def event_chunk(event: WatchEvent, watch: WatchRequest, encode: Encoder) -> bytes | None:
    """The event as this watcher sees it: objects entering or leaving its selector are ADDED/DELETED."""
    now_matches = watch.matches(event.object)
    if event.type == "DELETED":
        return encode("DELETED", event.object) if now_matches or watch.matches(event.previous) else None
    was_matching = watch.matches(event.previous) if event.previous is not None else False
    if now_matches:
        kind = "ADDED" if event.type == "ADDED" or not was_matching else "MODIFIED"
        return encode(kind, event.object)
    if was_matching:
        return encode("DELETED", event.object)
    return None


async def serve_watch(
    request: web.Request, watch: WatchRequest, store: Store, present: Presenter, bookmark_interval: float
) -> web.StreamResponse:
    rt = watch.rt
    deadline = time.monotonic() + watch.timeout if watch.timeout > 0 else None

    def encode(event_type: str, obj: JsonDict) -> bytes:
        shown = present(rt, obj) if event_type != "BOOKMARK" else obj
        if watch.table and event_type not in ("BOOKMARK", "ERROR"):
            shown = build_table(rt, [shown], obj["metadata"].get("resourceVersion", ""), watch.include_object)
        return encode_event(event_type, shown)

    response = web.StreamResponse(headers={"Content-Type": "application/json", "Cache-Control": "no-cache"})
    response.enable_chunked_encoding()
    subscription = store.subscribe(rt.storage_key)
    try:
        await response.prepare(request)
        # Subscribed before prepare() yielded: events queued meanwhile are at most last_sent, so skipped.
        last_sent = store.resource_version
        chunks: list[bytes] = []
        if watch.resource_version in ("", "0") or watch.send_initial_events:
            for obj in store.list(rt.storage_key, watch.namespace):
                if watch.matches(obj):
                    chunks.append(encode("ADDED", obj))
            if watch.send_initial_events and watch.bookmarks:
                chunks.append(encode("BOOKMARK", bookmark_object(rt, last_sent, initial_end=True)))
        else:
            try:
                since = int(watch.resource_version)
            except ValueError as error:
                raise bad_request(f"invalid resourceVersion {watch.resource_version!r}") from error
            history = store.events_since(rt.storage_key, since)
            if history is None:
                status = gone(f"too old resource version: {since} ({store.history_floor})").to_status()
                await response.write(json.dumps({"type": "ERROR", "object": status}).encode() + b"\n")
                await response.write_eof()
                return response
            for event in history:
                chunk = event_chunk(event, watch, encode)
                if chunk:
                    chunks.append(chunk)
            last_sent = max([since, *(event.resource_version for event in history)])
        if chunks:
            await response.write(b"".join(chunks))
        next_bookmark = time.monotonic() + bookmark_interval
        while True:
            now = time.monotonic()
            wait_for = next_bookmark - now if watch.bookmarks else None
            if deadline is not None:
                wait_for = min(wait_for, deadline - now) if wait_for is not None else deadline - now
                if wait_for <= 0:
                    break
            try:
                async with asyncio.timeout(wait_for):  # not wait_for: 3.11's can lose a cancel or an event
                    event = await subscription.queue.get()
            except TimeoutError:
                if watch.bookmarks and time.monotonic() >= next_bookmark:
                    await response.write(encode("BOOKMARK", bookmark_object(rt, store.resource_version)))
                    next_bookmark = time.monotonic() + bookmark_interval
                continue
            batch = [event]
            while not subscription.queue.empty():
                batch.append(subscription.queue.get_nowait())
            out = []
            closing = any(queued.type == "CLOSE" for queued in batch)
            for queued in batch:
                if queued.type == "CLOSE" or queued.resource_version <= last_sent:
                    continue  # end marker, or already sent from the history replay
                last_sent = queued.resource_version
                chunk = event_chunk(queued, watch, encode)
                if chunk:
                    out.append(chunk)
            if out:
                await response.write(b"".join(out))
            if closing:
                break
        await response.write_eof()
    except (ConnectionResetError, asyncio.CancelledError):
        pass
    finally:
        store.unsubscribe(subscription)
    return response
