"""Field ownership (managedFields) and server-side apply.

Ownership is tracked per field manager at the granularity of leaf fields, keyed list items (keys from the
CRD's x-kubernetes-list-map-keys or the built-in merge keys) and set-list values, encoded as FieldsV1
like the real server. A "path" is a tuple of elements: ("f", name) for a map field, ("k", key-json) for a
keyed list item and ("v", value-json) for an item of a set list.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from .encoding import json_copy
from .errors import ApiError, FieldCause
from .patching import STRATEGIC_MERGE_KEYS, STRATEGIC_SET_LISTS

JsonDict = dict[str, Any]
Element = tuple[str, str]
Path = tuple[Element, ...]

# Metadata fields the server owns; never part of a manager's field set.
_SERVER_METADATA = frozenset(
    {
        "name",
        "namespace",
        "uid",
        "resourceVersion",
        "generation",
        "creationTimestamp",
        "deletionTimestamp",
        "deletionGracePeriodSeconds",
        "managedFields",
        "selfLink",
        "generateName",
    }
)
_ITEM_MARK = object()  # leaf value standing for "this keyed list item exists"


class SchemaNode:
    """Tells, for a position in an object, how lists there merge. Built-ins use the merge-key table."""

    def __init__(self, schema: JsonDict | None, field_name: str = "") -> None:
        self.schema = schema
        self.field_name = field_name

    def child(self, name: str) -> SchemaNode:
        if self.schema is None:
            return SchemaNode(None, name)
        properties = self.schema.get("properties") or {}
        if name in properties:
            return SchemaNode(properties[name], name)
        additional = self.schema.get("additionalProperties")
        if isinstance(additional, dict):
            return SchemaNode(additional, name)
        if name == "metadata" or self.schema.get("x-kubernetes-embedded-resource"):
            return SchemaNode(None, name)
        return SchemaNode({"x-kubernetes-preserve-unknown-fields": True}, name)

    def items(self) -> SchemaNode:
        if self.schema is None:
            return SchemaNode(None, self.field_name)
        return SchemaNode(self.schema.get("items") or {}, self.field_name)

    def list_kind(self, items: list[Any]) -> tuple[str, tuple[str, ...]]:
        """("map", keys) | ("set", ()) | ("atomic", ())."""
        if self.schema is not None and not self.schema.get("x-kubernetes-preserve-unknown-fields"):
            list_type = self.schema.get("x-kubernetes-list-type", "atomic")
            if list_type == "map":
                return ("map", tuple(self.schema.get("x-kubernetes-list-map-keys") or ()))
            if list_type == "set":
                return ("set", ())
            return ("atomic", ())
        if self.field_name in STRATEGIC_SET_LISTS:
            return ("set", ())
        if self.field_name == "ports":
            if items and all(isinstance(i, dict) and "containerPort" in i for i in items):
                return ("map", ("containerPort", "protocol"))
            if items and all(isinstance(i, dict) and "port" in i for i in items):
                return ("map", ("port", "protocol"))
            return ("atomic", ())
        keys = STRATEGIC_MERGE_KEYS.get(self.field_name)
        if keys and all(isinstance(i, dict) for i in items):
            return ("map", keys)
        return ("atomic", ())


def root_node(schema: JsonDict | None) -> SchemaNode:
    return SchemaNode(schema, "")


def _item_key_json(item: JsonDict, keys: tuple[str, ...]) -> str:
    key_values = {key: item.get(key, "TCP" if key == "protocol" else None) for key in keys}
    return json.dumps(key_values, sort_keys=True, separators=(",", ":"))


def leaf_values(obj: Any, node: SchemaNode, prefix: Path = ()) -> dict[Path, Any]:
    """Every owned-able position of `obj` with its value (keyed items map to a marker)."""
    out: dict[Path, Any] = {}
    _collect(obj, node, prefix, out, top=not prefix)
    return out


def _collect(value: Any, node: SchemaNode, prefix: Path, out: dict[Path, Any], top: bool = False) -> None:
    if isinstance(value, dict) and value:
        for name, child in value.items():
            if top and name in ("apiVersion", "kind"):
                continue
            if len(prefix) == 1 and prefix[0] == ("f", "metadata") and name in _SERVER_METADATA:
                continue
            _collect(child, node.child(name), (*prefix, ("f", name)), out)
        return
    if isinstance(value, list) and value:
        kind, keys = node.list_kind(value)
        if kind == "map":
            item_node = node.items()
            for item in value:
                if not isinstance(item, dict):
                    continue
                item_path = (*prefix, ("k", _item_key_json(item, keys)))
                out[item_path] = _ITEM_MARK
                _collect(item, item_node, item_path, out)
            return
        if kind == "set":
            for item in value:
                out[(*prefix, ("v", json.dumps(item, sort_keys=True, separators=(",", ":"))))] = _ITEM_MARK
            return
    if prefix:
        out[prefix] = value


# ---- FieldsV1 encoding ----------------------------------------------------------------------------


def encode_fields(paths: Iterable[Path]) -> JsonDict:
    tree: JsonDict = {}
    for path in paths:
        node = tree
        for kind, name in path:
            node = node.setdefault(f"{kind}:{name}", {})
        node["."] = {}
    return _finish(tree)


def _finish(node: JsonDict) -> JsonDict:
    # A node that is owned and has no children is written as {} (the "." marker only alongside children).
    children = {k: _finish(v) for k, v in node.items() if k != "."}
    if not children:
        return {}
    if "." in node:
        return {".": {}, **children}
    return children


def decode_fields(tree: JsonDict, prefix: Path = ()) -> set[Path]:
    paths: set[Path] = set()
    if not tree and prefix:
        paths.add(prefix)
    for key, sub in tree.items():
        if key == ".":
            paths.add(prefix)
            continue
        kind, _, name = key.partition(":")
        paths |= decode_fields(sub if isinstance(sub, dict) else {}, (*prefix, (kind, name)))
    return paths


def path_to_string(path: Path) -> str:
    text = ""
    for kind, name in path:
        if kind == "f":
            text += f".{name}"
        elif kind == "k":
            key_values = json.loads(name)
            text += "[" + ",".join(f"{k}={json.dumps(v)}" for k, v in key_values.items()) + "]"
        else:
            text += f"[={name}]"
    return text


# ---- managers ---------------------------------------------------------------------------------------


@dataclass
class ManagerEntry:
    manager: str
    operation: str  # Apply | Update
    api_version: str
    time: str
    subresource: str = ""
    paths: set[Path] = field(default_factory=set)

    @property
    def identity(self) -> tuple[str, str, str]:
        return (self.manager, self.operation, self.subresource)

    def to_json(self) -> JsonDict:
        entry: JsonDict = {
            "manager": self.manager,
            "operation": self.operation,
            "apiVersion": self.api_version,
            "time": self.time,
            "fieldsType": "FieldsV1",
            "fieldsV1": encode_fields(self.paths),
        }
        if self.subresource:
            entry["subresource"] = self.subresource
        return entry


def read_managers(obj: JsonDict | None) -> list[ManagerEntry]:
    if not obj:
        return []
    entries = []
    for raw in obj.get("metadata", {}).get("managedFields") or []:
        entries.append(
            ManagerEntry(
                manager=raw.get("manager", ""),
                operation=raw.get("operation", "Update"),
                api_version=raw.get("apiVersion", ""),
                time=raw.get("time", ""),
                subresource=raw.get("subresource", ""),
                paths=decode_fields(raw.get("fieldsV1") or {}),
            )
        )
    return entries


def write_managers(obj: JsonDict, entries: list[ManagerEntry]) -> None:
    kept = [entry.to_json() for entry in entries if entry.paths]
    if kept:
        obj["metadata"]["managedFields"] = kept
    else:
        obj["metadata"].pop("managedFields", None)


def _covers(paths: set[Path], target: Path) -> bool:
    """Whether any of `paths` is `target` or lies below it."""
    size = len(target)
    return any(path[:size] == target for path in paths)


def _prune_missing(entries: list[ManagerEntry], present: dict[Path, Any]) -> None:
    for entry in entries:
        entry.paths = {path for path in entry.paths if path in present}


def record_update(
    old: JsonDict | None,
    new: JsonDict,
    node: SchemaNode,
    *,
    manager: str,
    api_version: str,
    now: str,
    subresource: str = "",
) -> None:
    """Give `manager` (operation Update) the fields it changed; others lose them. Mutates `new`."""
    entries = read_managers(old)
    old_values = leaf_values(_without_managed(old), node) if old else {}
    new_values = leaf_values(_without_managed(new), node)
    changed = {
        path for path, value in new_values.items() if path not in old_values or old_values[path] != value
    }
    for entry in entries:
        entry.paths -= changed
    _prune_missing(entries, new_values)
    if changed:
        mine = next(
            (e for e in entries if e.identity == (manager, "Update", subresource)),
            None,
        )
        if mine is None:
            mine = ManagerEntry(manager, "Update", api_version, now, subresource)
            entries.append(mine)
        mine.paths |= changed
        mine.time = now
        mine.api_version = api_version
    write_managers(new, entries)


def forget_missing(obj: JsonDict, node: SchemaNode) -> None:
    """Drop owned fields that `obj` no longer has (e.g. an emptied map the server removed)."""
    entries = read_managers(obj)
    _prune_missing(entries, leaf_values(_without_managed(obj), node))
    write_managers(obj, entries)


def _without_managed(obj: JsonDict | None) -> JsonDict:
    if not obj:
        return {}
    meta = {k: v for k, v in obj.get("metadata", {}).items() if k != "managedFields"}
    return {**obj, "metadata": meta}


def merge_applied(live: Any, applied: Any, node: SchemaNode) -> Any:
    if isinstance(live, dict) and isinstance(applied, dict):
        result = dict(live)
        for name, value in applied.items():
            result[name] = merge_applied(live.get(name), value, node.child(name))
        return result
    if isinstance(live, list) and isinstance(applied, list):
        kind, keys = node.list_kind(applied or live)
        if kind == "map":
            result_list = list(live)
            for item in applied:
                if not isinstance(item, dict):
                    continue
                item_key = _item_key_json(item, keys)
                index = next(
                    (
                        i
                        for i, existing in enumerate(result_list)
                        if isinstance(existing, dict) and _item_key_json(existing, keys) == item_key
                    ),
                    None,
                )
                if index is None:
                    result_list.append(json_copy(item))
                else:
                    result_list[index] = merge_applied(result_list[index], item, node.items())
            return result_list
        if kind == "set":
            return list(live) + [item for item in applied if item not in live]
    return json_copy(applied)


def remove_path(obj: JsonDict, path: Path, node: SchemaNode) -> None:
    """Delete the field / list item at `path` if it exists."""
    parent: Any = obj
    parent_node = node
    for depth, (kind, name) in enumerate(path):
        last = depth == len(path) - 1
        if kind == "f":
            if not isinstance(parent, dict) or name not in parent:
                return
            if last:
                del parent[name]
                return
            parent_node = parent_node.child(name)
            parent = parent[name]
        else:
            if not isinstance(parent, list):
                return
            list_kind, keys = parent_node.list_kind(parent)
            index = None
            for i, item in enumerate(parent):
                if (kind == "k" and isinstance(item, dict) and _item_key_json(item, keys) == name) or (
                    kind == "v" and json.dumps(item, sort_keys=True, separators=(",", ":")) == name
                ):
                    index = i
                if index is not None:
                    break
            if index is None:
                return
            if last:
                parent.pop(index)
                return
            parent_node = parent_node.items()
            parent = parent[index]
            del list_kind


def _value_at(obj: Any, path: Path) -> Any:
    for kind, name in path:
        if kind != "f" or not isinstance(obj, dict) or name not in obj:
            return None
        obj = obj[name]
    return obj


def _remove_emptied_parents(merged: JsonDict, dropped: set[Path], kept: set[Path]) -> None:
    """Remove the maps that only held fields this apply dropped, as the real server does.

    Ownership is recorded on leaves, so dropping `services.a.programmed` would otherwise leave
    `services.a` behind, empty or holding only defaulted fields that nobody owns: a map entry the
    applier meant to remove and that the schema may reject. A parent under which some manager (or
    this apply) still owns a field stays.
    """
    for path in sorted(dropped, key=len, reverse=True):
        for depth in range(len(path) - 1, 1, -1):  # never a top-level section (spec, status, metadata)
            parent = path[:depth]
            if any(kind != "f" for kind, _ in parent) or _covers(kept, parent):
                break
            if not isinstance(_value_at(merged, parent), dict):
                break
            container = _value_at(merged, parent[:-1])
            if isinstance(container, dict):
                del container[parent[-1][1]]


def apply(
    live: JsonDict | None,
    applied: JsonDict,
    node: SchemaNode,
    *,
    manager: str,
    api_version: str,
    now: str,
    force: bool,
    subresource: str = "",
    normalize: Callable[[JsonDict], JsonDict] | None = None,
    forgiven: set[Path] | None = None,
) -> JsonDict:
    """Server-side apply of `applied` onto `live` (None when creating). Raises 409 on conflicts.

    A conflict is a field the apply would change (compared after `normalize`, i.e. defaulting, as the
    real server compares the new object with the live one) while another manager owns it. When every
    conflict is in `forgiven`, the apply goes ahead as if forced (kubectl's move from client-side to
    server-side apply); otherwise the error names only the other conflicts.
    """
    entries = read_managers(live)
    applied_values = leaf_values(applied, node)
    live_values = leaf_values(_without_managed(live), node) if live else {}
    identity = (manager, "Apply", subresource)
    merged = merge_applied(_without_managed(live), applied, node) if live else json_copy(applied)
    outcome = normalize(json_copy(merged)) if normalize else merged
    outcome_values = leaf_values(outcome, node)
    conflicts: list[tuple[ManagerEntry, Path]] = []
    for entry in entries:
        if entry.identity == identity:
            continue
        for path in entry.paths & applied_values.keys():
            if applied_values[path] is _ITEM_MARK:
                continue
            if live_values.get(path) != outcome_values.get(path):
                conflicts.append((entry, path))
    if conflicts and not force:
        unforgiven = [(entry, path) for entry, path in conflicts if path not in (forgiven or set())]
        if unforgiven:
            raise _conflict_error(unforgiven)
    for entry, path in conflicts:
        entry.paths.discard(path)

    mine = next((e for e in entries if e.identity == identity), None)
    previously_applied = set(mine.paths) if mine else set()
    others = set().union(*(e.paths for e in entries if e.identity != identity))
    dropped = previously_applied - applied_values.keys()
    for path in sorted(dropped, key=len):  # parents first: removing a list item removes its fields
        if not _covers(others, path):
            remove_path(merged, path, node)
    _remove_emptied_parents(merged, dropped, applied_values.keys() | others)
    if mine is None:
        mine = ManagerEntry(manager, "Apply", api_version, now, subresource)
        entries.append(mine)
    mine.paths = set(applied_values.keys())
    mine.time = now
    mine.api_version = api_version
    _prune_missing(entries, leaf_values(merged, node))
    merged.setdefault("metadata", {})
    write_managers(merged, entries)
    return merged


def _manager_label(entry: ManagerEntry) -> str:
    """How the real server names a manager in conflicts (its printManager): appliers by name only,
    updaters with the apiVersion they wrote with (the time is not part of a manager's identity)."""
    label = json.dumps(entry.manager)
    if entry.subresource:
        label += f" with subresource {json.dumps(entry.subresource)}"
    if entry.operation == "Update":
        label += f" using {entry.api_version}"
    return label


def last_applied_fields(live: JsonDict, last_applied: JsonDict, node: SchemaNode) -> set[Path]:
    """The fields of a client-side apply's last-applied configuration that nobody changed since: the
    real server lets `kubectl apply --server-side` take them over without conflicts."""
    applied_values = leaf_values(
        {k: v for k, v in last_applied.items() if k not in ("apiVersion", "kind")}, node
    )
    live_values = leaf_values(_without_managed(live), node)
    return {
        path
        for path, value in applied_values.items()
        if path not in live_values or live_values[path] == value
    }


def _conflict_error(conflicts: list[tuple[ManagerEntry, Path]]) -> ApiError:
    causes = [
        FieldCause("FieldManagerConflict", path_to_string(path), f"conflict with {_manager_label(entry)}")
        for entry, path in conflicts
    ]
    count = len(conflicts)
    if count == 1:
        message = f"Apply failed with 1 conflict: {causes[0].message}: {causes[0].field}"
    else:
        # Grouped by manager, managers sorted, like structured-merge-diff's Conflicts.Error.
        by_manager: dict[str, list[str]] = {}
        for entry, path in conflicts:
            by_manager.setdefault(_manager_label(entry), []).append(path_to_string(path))
        lines: list[str] = []
        for label in sorted(by_manager):
            lines.append(f"conflicts with {label}:")
            lines.extend(f"- {field_path}" for field_path in by_manager[label])
        message = f"Apply failed with {count} conflicts: " + "\n".join(lines)
    return ApiError(409, "Conflict", message, {}, causes)
