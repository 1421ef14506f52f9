"""JSON encoding with a cache keyed by object identity.

Stored objects are never mutated (copy on write), so one object's JSON can be reused by every list,
get and watch event that serves it: a watch fan-out encodes each change once, not once per watcher.
"""

from __future__ import annotations

import json
from typing import Any, TypeVar, cast

T = TypeVar("T")

_CACHE_LIMIT = 20_000
# id(obj) -> (obj, bytes). Holding obj keeps its id from being reused while the entry lives.
_cache: dict[int, tuple[Any, bytes]] = {}


def json_copy(value: T) -> T:
    """A deep copy of JSON data (dicts, lists, immutable scalars), several times faster than
    copy.deepcopy, which pays for memo bookkeeping and arbitrary types."""
    return cast(T, _copy(value))


def _copy(value: Any) -> Any:
    if isinstance(value, dict):
        return {key: _copy(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_copy(item) for item in value]
    return value


def dumps(value: Any) -> bytes:
    return json.dumps(value, separators=(",", ":")).encode()


def encode_object(obj: Any) -> bytes:
    entry = _cache.get(id(obj))
    if entry is not None and entry[0] is obj:
        return entry[1]
    encoded = dumps(obj)
    if len(_cache) >= _CACHE_LIMIT:
        _cache.clear()
    _cache[id(obj)] = (obj, encoded)
    return encoded


def encode_list(head: dict[str, Any], items: list[Any]) -> bytes:
    """`head` with an "items" array made of the (cached) encodings of `items`."""
    prefix = dumps({**head, "items": []})[:-3]  # strip the closing `[]}`
    return prefix + b"[" + b",".join(encode_object(item) for item in items) + b"]}"


def encode_event(event_type: str, obj: Any) -> bytes:
    return b'{"type":"' + event_type.encode() + b'","object":' + encode_object(obj) + b"}\n"
