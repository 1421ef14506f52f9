"""Server-side printing: meta.k8s.io/v1 Table from CRD printer columns, sensible columns for built-ins."""

from __future__ import annotations

import datetime
import json
from collections.abc import Callable
from typing import Any

from . import jsonpath
from .resources import PrinterColumn, ResourceType

JsonDict = dict[str, Any]
CellFunction = Callable[[JsonDict], Any]

_NAME_COLUMN = {
    "name": "Name",
    "type": "string",
    "format": "name",
    "description": "Name must be unique within a namespace.",
    "priority": 0,
}
_AGE_COLUMN = {
    "name": "Age",
    "type": "string",
    "format": "",
    "description": "CreationTimestamp of the object.",
    "priority": 0,
}


def human_duration(seconds: float) -> str:
    """Like k8s.io/apimachinery duration.HumanDuration."""
    seconds = int(max(seconds, 0))
    if seconds < 120:
        return f"{seconds}s"
    minutes = seconds // 60
    if minutes < 10:
        rest = seconds % 60
        return f"{minutes}m{rest}s" if rest else f"{minutes}m"
    if minutes < 180:
        return f"{minutes}m"
    hours = minutes // 60
    if hours < 8:
        rest = minutes % 60
        return f"{hours}h{rest}m" if rest else f"{hours}h"
    if hours < 48:
        return f"{hours}h"
    days = hours // 24
    if days < 8:
        rest = hours % 24
        return f"{days}d{rest}h" if rest else f"{days}d"
    if days < 365 * 2:
        return f"{days}d"
    return f"{days // 365}y"


def age(timestamp: Any) -> str:
    if not isinstance(timestamp, str) or not timestamp:
        return "<unknown>"
    try:
        moment = datetime.datetime.fromisoformat(timestamp.replace("Z", "+00:00"))
    except ValueError:
        return "<invalid>"
    return human_duration((datetime.datetime.now(datetime.UTC) - moment).total_seconds())


def _custom_cell(column: PrinterColumn, obj: JsonDict) -> Any:
    values = jsonpath.evaluate(column.json_path, obj)
    if not values:
        return None
    if column.type == "date":
        return age(values[0])
    if len(values) > 1:
        return ",".join(_as_text(value) for value in values)
    value = values[0]
    if column.type == "integer" and isinstance(value, int):
        return value
    if column.type == "number" and isinstance(value, (int, float)):
        return value
    if column.type == "boolean" and isinstance(value, bool):
        return value
    return _as_text(value)


def _custom_cell_function(column: PrinterColumn) -> CellFunction:
    return lambda obj: _custom_cell(column, obj)


def _as_text(value: Any) -> str:
    if isinstance(value, str):
        return value
    if isinstance(value, bool):
        return "true" if value else "false"
    return json.dumps(value, separators=(",", ":"))


# ---- Events: the real server's own column set (no Name first, no Age) ------------------------------
# Cells read both the core/v1 and the events.k8s.io/v1 field names: either version may be listed.


def _event_field(obj: JsonDict, core: str, events_v1: str) -> Any:
    value = obj.get(core)
    return value if value not in (None, "", {}) else obj.get(events_v1)


def _involved(obj: JsonDict) -> str:
    involved = _event_field(obj, "involvedObject", "regarding") or {}
    kind = str(involved.get("kind", "")).lower()
    return f"{kind}/{involved['name']}" if involved.get("name") else kind


def _event_first_seen(obj: JsonDict) -> str:
    first = _event_field(obj, "firstTimestamp", "deprecatedFirstTimestamp")
    return age(first) if first else age(obj.get("eventTime"))


def _event_last_seen(obj: JsonDict) -> str:
    series = obj.get("series") or {}
    if series.get("lastObservedTime"):
        return age(series["lastObservedTime"])
    last = _event_field(obj, "lastTimestamp", "deprecatedLastTimestamp")
    return age(last) if last else _event_first_seen(obj)


def _event_source(obj: JsonDict) -> str:
    source = _event_field(obj, "source", "deprecatedSource") or {}
    component = source.get("component") or _event_field(obj, "reportingComponent", "reportingController")
    instance = source.get("host") or obj.get("reportingInstance")
    return f"{component or ''}, {instance}" if instance else str(component or "")


def _event_count(obj: JsonDict) -> int:
    series = obj.get("series") or {}
    if series:
        return int(series.get("count") or 0)
    return int(_event_field(obj, "count", "deprecatedCount") or 1)


_EVENT_COLUMNS: list[tuple[str, int, CellFunction]] = [
    ("Last Seen", 0, _event_last_seen),
    ("Type", 0, lambda o: o.get("type", "")),
    ("Reason", 0, lambda o: o.get("reason", "")),
    ("Object", 0, _involved),
    ("Subobject", 1, lambda o: (_event_field(o, "involvedObject", "regarding") or {}).get("fieldPath", "")),
    ("Source", 1, _event_source),
    ("Message", 0, lambda o: str(_event_field(o, "message", "note") or "").strip()),
    ("First Seen", 1, _event_first_seen),
    ("Count", 1, _event_count),
    ("Name", 1, lambda o: o.get("metadata", {}).get("name", "")),
]


def _ports(obj: JsonDict) -> str:
    ports = (obj.get("spec") or {}).get("ports") or []
    text = ",".join(f"{p.get('port')}/{p.get('protocol', 'TCP')}" for p in ports if isinstance(p, dict))
    return text or "<none>"


def _ready_containers(obj: JsonDict) -> str:
    statuses = (obj.get("status") or {}).get("containerStatuses") or []
    total = len((obj.get("spec") or {}).get("containers") or [])
    ready = sum(1 for status in statuses if status.get("ready"))
    return f"{ready}/{total}"


def _node_status(obj: JsonDict) -> str:
    for condition in (obj.get("status") or {}).get("conditions") or []:
        if condition.get("type") == "Ready":
            return "Ready" if condition.get("status") == "True" else "NotReady"
    return "Unknown"


def _path(*parts: str) -> CellFunction:
    def cell(obj: JsonDict) -> Any:
        value: Any = obj
        for part in parts:
            value = value.get(part) if isinstance(value, dict) else None
        return (
            "<none>"
            if value is None or value == ""
            else (value if isinstance(value, (int, str)) else _as_text(value))
        )

    return cell


_BUILTIN_COLUMNS: dict[tuple[str, str], list[tuple[str, str, CellFunction]]] = {
    ("", "namespaces"): [("Status", "string", _path("status", "phase"))],
    ("", "pods"): [
        ("Ready", "string", _ready_containers),
        ("Status", "string", _path("status", "phase")),
        (
            "Restarts",
            "integer",
            lambda o: sum(
                s.get("restartCount", 0) for s in (o.get("status") or {}).get("containerStatuses") or []
            ),
        ),
    ],
    ("", "services"): [
        ("Type", "string", _path("spec", "type")),
        ("Cluster-IP", "string", _path("spec", "clusterIP")),
        (
            "External-IP",
            "string",
            lambda o: (
                ",".join(
                    i.get("ip", "")
                    for i in ((o.get("status") or {}).get("loadBalancer") or {}).get("ingress") or []
                )
                or "<none>"
            ),
        ),
        ("Port(s)", "string", _ports),
    ],
    ("", "nodes"): [("Status", "string", _node_status)],
    ("", "configmaps"): [
        ("Data", "integer", lambda o: len(o.get("data") or {}) + len(o.get("binaryData") or {}))
    ],
    ("", "secrets"): [
        ("Type", "string", _path("type")),
        ("Data", "integer", lambda o: len(o.get("data") or {})),
    ],
    ("discovery.k8s.io", "endpointslices"): [
        ("AddressType", "string", _path("addressType")),
        (
            "Ports",
            "string",
            lambda o: ",".join(str(p.get("port")) for p in o.get("ports") or []) or "<unset>",
        ),
        (
            "Endpoints",
            "string",
            lambda o: (
                ",".join(a for e in o.get("endpoints") or [] for a in e.get("addresses") or []) or "<unset>"
            ),
        ),
    ],
    ("coordination.k8s.io", "leases"): [("Holder", "string", _path("spec", "holderIdentity"))],
}


# Extra columns for `-o wide` (priority 1).
_WIDE_COLUMNS: dict[tuple[str, str], list[tuple[str, str, CellFunction]]] = {
    ("", "pods"): [("IP", "string", _path("status", "podIP")), ("Node", "string", _path("spec", "nodeName"))],
    ("", "services"): [
        (
            "Selector",
            "string",
            lambda o: (
                ",".join(f"{k}={v}" for k, v in ((o.get("spec") or {}).get("selector") or {}).items())
                or "<none>"
            ),
        )
    ],
    ("", "nodes"): [
        (
            "Internal-IP",
            "string",
            lambda o: next(
                (
                    a.get("address")
                    for a in (o.get("status") or {}).get("addresses") or []
                    if a.get("type") == "InternalIP"
                ),
                "<none>",
            ),
        ),
    ],
}


def build_table(
    rt: ResourceType,
    objects: list[JsonDict],
    resource_version: str,
    include_object: str,
    continue_token: str = "",
) -> JsonDict:
    columns: list[JsonDict] = [dict(_NAME_COLUMN)]
    cell_functions: list[CellFunction] = [lambda o: o.get("metadata", {}).get("name", "")]
    if rt.storage_key == ("", "events"):
        columns = [
            {"name": name, "type": "string", "format": "", "description": "", "priority": priority}
            for name, priority, _ in _EVENT_COLUMNS
        ]
        cell_functions = [function for _, _, function in _EVENT_COLUMNS]
    elif rt.storage_key == ("apiextensions.k8s.io", "customresourcedefinitions"):
        # The real server prints CRDs with its default table: name and creation time, no age.
        columns.append({**_AGE_COLUMN, "name": "Created At", "type": "date", "description": ""})
        cell_functions.append(lambda o: o.get("metadata", {}).get("creationTimestamp", ""))
    elif rt.is_custom:
        printer_columns = list(rt.printer_columns) or [
            PrinterColumn("Age", "date", ".metadata.creationTimestamp")
        ]
        for column in printer_columns:
            columns.append(
                {
                    "name": column.name,
                    "type": "string" if column.type == "date" else column.type,
                    "format": column.format,
                    "description": column.description,
                    "priority": column.priority,
                }
            )
            cell_functions.append(_custom_cell_function(column))
    else:
        for name, kind, function in _BUILTIN_COLUMNS.get(rt.storage_key, []):
            columns.append({"name": name, "type": kind, "format": "", "description": "", "priority": 0})
            cell_functions.append(function)
        columns.append(dict(_AGE_COLUMN))
        cell_functions.append(lambda o: age(o.get("metadata", {}).get("creationTimestamp")))
        for name, kind, function in _WIDE_COLUMNS.get(rt.storage_key, []):
            columns.append({"name": name, "type": kind, "format": "", "description": "", "priority": 1})
            cell_functions.append(function)
    rows = []
    for obj in objects:
        row: JsonDict = {"cells": [function(obj) for function in cell_functions]}
        if include_object == "Object":
            row["object"] = obj
        elif include_object != "None":
            row["object"] = {
                "kind": "PartialObjectMetadata",
                "apiVersion": "meta.k8s.io/v1",
                "metadata": {k: v for k, v in obj.get("metadata", {}).items() if k != "managedFields"},
            }
        rows.append(row)
    metadata: JsonDict = {"resourceVersion": resource_version}
    if continue_token:
        metadata["continue"] = continue_token
    return {
        "kind": "Table",
        "apiVersion": "meta.k8s.io/v1",
        "metadata": metadata,
        "columnDefinitions": columns,
        "rows": rows,
    }
