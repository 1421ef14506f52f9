"""Label and field selectors, parsed as the API server parses the query strings."""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

from .errors import bad_request

JsonDict = dict[str, Any]
Predicate = Callable[[JsonDict], bool]

_REQUIREMENT = re.compile(
    r"""\s*(?:
        (?P<not>!)\s*(?P<absent>[A-Za-z0-9./_-]+)
      | (?P<setkey>[A-Za-z0-9./_-]+)\s+(?P<setop>in|notin)\s*\((?P<values>[^)]*)\)
      | (?P<key>[A-Za-z0-9./_-]+)\s*(?:(?P<op>==|!=|=|>|<)\s*(?P<value>[A-Za-z0-9._-]*))?
    )\s*(?:,|$)""",
    re.VERBOSE,
)


def parse_label_selector(text: str) -> Predicate:
    """`a=b,c!=d,e in (x,y),f notin (z),g,!h` -> predicate on metadata.labels."""
    checks: list[Callable[[dict[str, str]], bool]] = []
    position = 0
    text = text.strip()
    while position < len(text):
        match = _REQUIREMENT.match(text, position)
        if not match or match.end() == position:
            raise bad_request(f"unable to parse requirement: invalid label selector: {text!r}")
        position = match.end()
        checks.append(_label_check(match))
    return lambda obj: all(check(obj.get("metadata", {}).get("labels") or {}) for check in checks)


def _label_check(match: re.Match[str]) -> Callable[[dict[str, str]], bool]:
    if match.group("not"):
        absent = match.group("absent")
        return lambda labels: absent not in labels
    if match.group("setkey"):
        key = match.group("setkey")
        values = {value.strip() for value in match.group("values").split(",") if value.strip()}
        if match.group("setop") == "in":
            return lambda labels: labels.get(key) in values
        return lambda labels: key not in labels or labels[key] not in values
    key = match.group("key")
    op = match.group("op")
    value = match.group("value") or ""
    if op is None:
        return lambda labels: key in labels
    if op in ("=", "=="):
        return lambda labels: labels.get(key) == value
    if op == "!=":
        return lambda labels: labels.get(key) != value
    number = _as_int(value)
    if op == ">":
        return lambda labels: _as_int(labels.get(key)) is not None and _as_int(labels.get(key)) > number  # type: ignore[operator]
    return lambda labels: _as_int(labels.get(key)) is not None and _as_int(labels.get(key)) < number  # type: ignore[operator]


def _as_int(value: str | None) -> int | None:
    try:
        return int(value) if value is not None else None
    except ValueError:
        return None


def field_value(obj: JsonDict, path: str) -> str | None:
    """A field selector's view of the object: the dotted path's value as a string."""
    current: Any = obj
    for part in path.split("."):
        if not isinstance(current, dict) or part not in current:
            return None
        current = current[part]
    if current is None:
        return None
    if isinstance(current, bool):
        return "true" if current else "false"
    return str(current)


def _field_check(path: str, negate: bool, value: str) -> Predicate:
    def check(obj: JsonDict) -> bool:
        return ((field_value(obj, path) or "") == value) != negate

    return check


# The field labels a real server accepts per kind (besides metadata.name and metadata.namespace), from
# the kinds' field label conversion functions; any other label is a 400, so code written against this
# server cannot come to rely on a selector a cluster refuses. Keys are storage keys (group, plural).
BUILTIN_FIELD_LABELS: dict[tuple[str, str], frozenset[str]] = {
    ("", "pods"): frozenset(
        {
            "spec.nodeName",
            "spec.restartPolicy",
            "spec.schedulerName",
            "spec.serviceAccountName",
            "spec.hostNetwork",
            "status.phase",
            "status.podIP",
            "status.nominatedNodeName",
        }
    ),
    ("", "events"): frozenset(
        {
            "involvedObject.kind",
            "involvedObject.namespace",
            "involvedObject.name",
            "involvedObject.uid",
            "involvedObject.apiVersion",
            "involvedObject.resourceVersion",
            "involvedObject.fieldPath",
            "reason",
            "reportingComponent",
            "source",
            "type",
        }
    ),
    ("", "namespaces"): frozenset({"status.phase"}),
    ("", "nodes"): frozenset({"spec.unschedulable"}),
    ("", "secrets"): frozenset({"type"}),
    ("", "services"): frozenset({"spec.clusterIP", "spec.type"}),
    ("apps", "replicasets"): frozenset({"status.replicas"}),
}
_ALWAYS_SELECTABLE = frozenset({"metadata.name", "metadata.namespace"})
# Labels that name a field by another path in the stored object.
_FIELD_PATHS = {"source": "source.component"}
# events.k8s.io/v1 names of the core Event fields (Events are stored as core/v1).
EVENTS_V1_FIELD_LABELS = {
    "regarding.kind": "involvedObject.kind",
    "regarding.namespace": "involvedObject.namespace",
    "regarding.name": "involvedObject.name",
    "regarding.uid": "involvedObject.uid",
    "regarding.apiVersion": "involvedObject.apiVersion",
    "regarding.resourceVersion": "involvedObject.resourceVersion",
    "regarding.fieldPath": "involvedObject.fieldPath",
    "reportingController": "reportingComponent",
}


def parse_field_selector(
    text: str,
    selectable: frozenset[str] | None = None,
    renamed: dict[str, str] | None = None,
) -> Predicate:
    """`metadata.name=x,spec.nodeName!=y` -> predicate. Missing fields compare as the empty string.

    `selectable`: the labels allowed besides metadata.name/namespace (None: any); `renamed` maps a
    served version's label onto the stored object's.
    """
    checks: list[Callable[[JsonDict], bool]] = []
    for term in (part.strip() for part in text.split(",")):
        if not term:
            continue
        match = re.fullmatch(r"([A-Za-z0-9._/-]+)\s*(==|!=|=)\s*(.*)", term)
        if not match:
            raise bad_request(f"invalid field selector: {term!r}")
        path, op, value = match.group(1), match.group(2), match.group(3)
        path = (renamed or {}).get(path, path)
        if selectable is not None and path not in selectable and path not in _ALWAYS_SELECTABLE:
            raise bad_request(f"field label not supported: {match.group(1)}")
        checks.append(_field_check(_FIELD_PATHS.get(path, path), op == "!=", value))
    return lambda obj: all(check(obj) for check in checks)
