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


def _involved(obj: JsonDict) -> str:
    involved = obj.get("involvedObject") or {}
    return f"{str(involved.get('kind', '')).lower()}/{involved.get('name', '')}"


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
    ("", "events"): [
        ("Type", "string", _path("type")),
        ("Reason", "string", _path("reason")),
        (
            "Object",
            "string",
            _involved,
        ),
        ("Message", "string", _path("message")),
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
    ("apiextensions.k8s.io", "customresourcedefinitions"): [
        ("Created At", "string", _path("metadata", "creationTimestamp"))
    ],
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
    if rt.is_custom:
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
