"""Conversion between served versions that share one storage.

events.k8s.io/v1 Events are stored as core/v1 Events, as in a real cluster, so `kubectl get events`
also lists what a controller recorded through the events.k8s.io API (and the other way round).
Custom resources need no field conversion here (CRD conversion strategy None: only apiVersion changes).
"""

from __future__ import annotations

from typing import Any

JsonDict = dict[str, Any]

EVENTS_GROUP = "events.k8s.io"
# events.k8s.io/v1 field -> core/v1 field
_EVENT_FIELDS = {
    "regarding": "involvedObject",
    "note": "message",
    "deprecatedSource": "source",
    "deprecatedFirstTimestamp": "firstTimestamp",
    "deprecatedLastTimestamp": "lastTimestamp",
    "deprecatedCount": "count",
    "reportingController": "reportingComponent",
}
_CORE_FIELDS = {core: new for new, core in _EVENT_FIELDS.items()}


def to_storage(group: str, obj: JsonDict) -> JsonDict:
    """A body as sent for `group`'s version -> the stored form."""
    if group != EVENTS_GROUP:
        return obj
    return {_EVENT_FIELDS.get(key, key): value for key, value in obj.items()}


def from_storage(group: str, version: str, obj: JsonDict) -> JsonDict:
    """The stored form -> the object as served for group/version."""
    api_version = f"{group}/{version}" if group else version
    if group == EVENTS_GROUP:
        converted = {_CORE_FIELDS.get(key, key): value for key, value in obj.items()}
        converted["apiVersion"] = api_version
        return converted
    if obj.get("apiVersion") == api_version:
        return obj
    return {**obj, "apiVersion": api_version}
