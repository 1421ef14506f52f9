"""Object storage: one global resourceVersion counter, a bounded event history, watch fan-out.

Everything runs on the server's single event loop, so mutations are plain synchronous code: each write is
atomic with respect to other requests. Stored objects are never mutated in place (copy on write), so the
same dict can be handed to every watcher and serialised concurrently.
"""

from __future__ import annotations

import asyncio
import bisect
import collections
import json
import sqlite3
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

JsonDict = dict[str, Any]
StorageKey = tuple[str, str]  # (group, plural)
ObjectKey = tuple[str, str]  # (namespace or "", name)


@dataclass(frozen=True)
class WatchEvent:
    resource_version: int
    storage_key: StorageKey
    type: str  # ADDED, MODIFIED, DELETED
    object: JsonDict
    previous: JsonDict | None = None  # the state before, so selector watches can see objects leave


EventList = list[WatchEvent]


# A watcher this far behind is cut off (like the real server drops slow watchers); it resumes from its
# last resourceVersion, which the history still holds, so nothing is lost.
MAX_PENDING_EVENTS = 10_000


@dataclass(eq=False)
class Subscription:
    storage_key: StorageKey
    queue: asyncio.Queue[WatchEvent] = field(default_factory=asyncio.Queue)
    overflowed: bool = False


class Store:
    def __init__(self, history_limit: int = 20000, sqlite_path: str | None = None) -> None:
        self._objects: dict[StorageKey, dict[ObjectKey, JsonDict]] = collections.defaultdict(dict)
        # Keys kept sorted per resource, so lists and paginated lists need no sort.
        self._sorted_keys: dict[StorageKey, list[ObjectKey]] = collections.defaultdict(list)
        self._history: collections.deque[WatchEvent] = collections.deque(maxlen=history_limit)
        self._resource_version = 0
        # Watches may resume from any rv at or above this one; older ones get 410 Gone.
        self._history_floor = 0
        self._subscriptions: dict[StorageKey, set[Subscription]] = collections.defaultdict(set)
        self._listeners: list[Callable[[WatchEvent], None]] = []
        self._db: sqlite3.Connection | None = None
        if sqlite_path:
            self._open_database(sqlite_path)

    # ---- persistence -----------------------------------------------------------------------------

    def _open_database(self, path: str) -> None:
        db = sqlite3.connect(path, isolation_level=None)
        db.execute("PRAGMA journal_mode=WAL")
        db.execute("PRAGMA synchronous=NORMAL")
        db.execute(
            "CREATE TABLE IF NOT EXISTS objects (grp TEXT, plural TEXT, ns TEXT, name TEXT, body TEXT,"
            " PRIMARY KEY (grp, plural, ns, name))"
        )
        db.execute("CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT)")
        for grp, plural, ns, name, body in db.execute("SELECT grp, plural, ns, name, body FROM objects"):
            self._objects[(grp, plural)][(ns, name)] = json.loads(body)
        for storage_key, bucket in self._objects.items():
            self._sorted_keys[storage_key] = sorted(bucket)
        row = db.execute("SELECT value FROM meta WHERE key = 'resourceVersion'").fetchone()
        self._resource_version = int(row[0]) if row else 0
        self._history_floor = self._resource_version
        self._db = db

    def _persist(self, storage_key: StorageKey, object_key: ObjectKey, obj: JsonDict | None) -> None:
        if self._db is None:
            return
        if obj is None:
            self._db.execute(
                "DELETE FROM objects WHERE grp=? AND plural=? AND ns=? AND name=?",
                (*storage_key, *object_key),
            )
        else:
            self._db.execute(
                "INSERT OR REPLACE INTO objects VALUES (?, ?, ?, ?, ?)",
                (*storage_key, *object_key, json.dumps(obj)),
            )
        self._db.execute(
            "INSERT OR REPLACE INTO meta VALUES ('resourceVersion', ?)", (str(self._resource_version),)
        )

    def close(self) -> None:
        if self._db is not None:
            self._db.close()
            self._db = None

    # ---- reads -----------------------------------------------------------------------------------

    @property
    def resource_version(self) -> int:
        return self._resource_version

    @property
    def history_floor(self) -> int:
        return self._history_floor

    def next_resource_version(self) -> int:
        self._resource_version += 1
        return self._resource_version

    def get(self, storage_key: StorageKey, namespace: str, name: str) -> JsonDict | None:
        return self._objects[storage_key].get((namespace, name))

    def list(
        self, storage_key: StorageKey, namespace: str | None = None, after: ObjectKey | None = None
    ) -> list[JsonDict]:
        """Objects in (namespace, name) order; only those sorting after `after` when given."""
        bucket = self._objects[storage_key]
        keys = self._sorted_keys[storage_key]
        start, stop = 0, len(keys)
        if namespace is not None:
            start = bisect.bisect_left(keys, (namespace, ""))
            stop = bisect.bisect_left(keys, (namespace + "\x00", ""))
        if after is not None:
            start = max(start, bisect.bisect_right(keys, after))
        return [bucket[key] for key in keys[start:stop]]

    def iter_all(self) -> Iterator[tuple[StorageKey, JsonDict]]:
        for storage_key, bucket in list(self._objects.items()):
            for obj in list(bucket.values()):
                yield storage_key, obj

    def count(self, storage_key: StorageKey) -> int:
        return len(self._objects[storage_key])

    # ---- writes ----------------------------------------------------------------------------------

    def put(self, storage_key: StorageKey, obj: JsonDict, event_type: str) -> WatchEvent:
        """Store `obj` (whose metadata.resourceVersion the caller set from next_resource_version)."""
        meta = obj["metadata"]
        object_key = (meta.get("namespace", ""), meta["name"])
        previous = self._objects[storage_key].get(object_key)
        if previous is None:
            bisect.insort(self._sorted_keys[storage_key], object_key)
        self._objects[storage_key][object_key] = obj
        self._persist(storage_key, object_key, obj)
        return self._emit(WatchEvent(int(meta["resourceVersion"]), storage_key, event_type, obj, previous))

    def remove(self, storage_key: StorageKey, obj: JsonDict) -> WatchEvent:
        """Remove the object; `obj` is its final state carrying the deletion's resourceVersion."""
        meta = obj["metadata"]
        object_key = (meta.get("namespace", ""), meta["name"])
        previous = self._objects[storage_key].pop(object_key, None)
        if previous is not None:
            keys = self._sorted_keys[storage_key]
            index = bisect.bisect_left(keys, object_key)
            if index < len(keys) and keys[index] == object_key:
                keys.pop(index)
        self._persist(storage_key, object_key, None)
        return self._emit(WatchEvent(int(meta["resourceVersion"]), storage_key, "DELETED", obj, previous))

    def _emit(self, event: WatchEvent) -> WatchEvent:
        if len(self._history) == self._history.maxlen:
            self._history_floor = self._history[0].resource_version
        self._history.append(event)
        for subscription in self._subscriptions.get(event.storage_key, ()):
            if subscription.queue.qsize() >= MAX_PENDING_EVENTS:
                if not subscription.overflowed:
                    subscription.overflowed = True
                    subscription.queue.put_nowait(
                        WatchEvent(event.resource_version, event.storage_key, "CLOSE", {})
                    )
                continue
            subscription.queue.put_nowait(event)
        for listener in self._listeners:
            listener(event)
        return event

    # ---- watch support ---------------------------------------------------------------------------

    def events_since(self, storage_key: StorageKey, resource_version: int) -> EventList | None:
        """Events after `resource_version`, or None when that version is older than the history."""
        if resource_version < self._history_floor:
            return None
        return [
            event
            for event in self._history
            if event.resource_version > resource_version and event.storage_key == storage_key
        ]

    def compact(self) -> None:
        """Forget the event history (like etcd compaction): older resourceVersions become 410 Gone."""
        self._history.clear()
        self._history_floor = self._resource_version

    def subscribe(self, storage_key: StorageKey) -> Subscription:
        subscription = Subscription(storage_key)
        self._subscriptions[storage_key].add(subscription)
        return subscription

    def close_subscriptions(self, storage_key: StorageKey) -> None:
        """End every watch on a resource (its CRD went away): they receive a CLOSE marker."""
        marker = WatchEvent(self._resource_version, storage_key, "CLOSE", {})
        for subscription in self._subscriptions.get(storage_key, ()):
            subscription.queue.put_nowait(marker)

    def close_all_subscriptions(self) -> None:
        """End every open watch (server shutdown)."""
        for storage_key in list(self._subscriptions):
            self.close_subscriptions(storage_key)

    def unsubscribe(self, subscription: Subscription) -> None:
        self._subscriptions[subscription.storage_key].discard(subscription)

    def add_listener(self, listener: Callable[[WatchEvent], None]) -> None:
        self._listeners.append(listener)
