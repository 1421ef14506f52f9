"""JSON merge patch (RFC 7386), JSON patch (RFC 6902) and an approximation of strategic merge patch."""

from __future__ import annotations

import json
from typing import Any

import jsonpatch

from .encoding import json_copy
from .errors import ApiError, bad_request

JsonDict = dict[str, Any]

# Strategic merge keys of the built-in kinds we store: list field name -> key of its items.
# A field not listed here is replaced as a whole, like an atomic list.
STRATEGIC_MERGE_KEYS: dict[str, tuple[str, ...]] = {
    "containers": ("name",),
    "initContainers": ("name",),
    "ephemeralContainers": ("name",),
    "volumes": ("name",),
    "env": ("name",),
    "volumeMounts": ("mountPath",),
    "volumeDevices": ("devicePath",),
    "imagePullSecrets": ("name",),
    "conditions": ("type",),
    "ownerReferences": ("uid",),
    "hostAliases": ("ip",),
    "topologySpreadConstraints": ("topologyKey", "whenUnsatisfiable"),
    "addresses": ("type",),  # Node status addresses
    "taints": ("key", "effect"),
    # `ports` is keyed by containerPort in pods and by port(+protocol) in services: decided per item.
    "ports": ("port",),
}
# Lists of scalars merged as sets (union on patch).
STRATEGIC_SET_LISTS = frozenset({"finalizers"})


def merge_patch(target: Any, patch: Any) -> Any:
    if not isinstance(patch, dict):
        return json_copy(patch)
    result = dict(target) if isinstance(target, dict) else {}
    for key, value in patch.items():
        if value is None:
            result.pop(key, None)
        else:
            result[key] = merge_patch(result.get(key), value)
    return result


def json_patch(target: JsonDict, operations: Any) -> JsonDict:
    try:
        patched = jsonpatch.JsonPatch(operations).apply(target)
    except (jsonpatch.JsonPatchException, jsonpatch.JsonPointerException) as error:
        raise ApiError(
            422, "Invalid", f"the server rejected our request due to an error in our request: {error}"
        ) from error
    except (TypeError, KeyError, IndexError) as error:
        raise bad_request(f"invalid JSON patch: {error}") from error
    if not isinstance(patched, dict):
        raise bad_request("JSON patch must produce an object")
    return patched


def _item_key(field_name: str, item: Any) -> tuple[Any, ...] | None:
    if not isinstance(item, dict):
        return None
    if field_name == "ports" and "containerPort" in item:
        return ("containerPort", item.get("containerPort"), item.get("protocol", "TCP"))
    if field_name == "ports":
        return ("port", item.get("port"), item.get("protocol", "TCP"))
    keys = STRATEGIC_MERGE_KEYS.get(field_name)
    if keys is None:
        return None
    return tuple(item.get(key) for key in keys)


def strategic_merge_patch(target: Any, patch: Any) -> Any:
    if not isinstance(patch, dict):
        return json_copy(patch)
    if patch.get("$patch") == "replace":
        return {k: json_copy(v) for k, v in patch.items() if k != "$patch"}
    if patch.get("$patch") == "delete":
        return None
    result = dict(target) if isinstance(target, dict) else {}
    retain = patch.get("$retainKeys")
    for key, value in patch.items():
        if key in ("$patch", "$retainKeys") or key.startswith("$setElementOrder/"):
            continue
        if key.startswith("$deleteFromPrimitiveList/"):
            list_name = key.split("/", 1)[1]
            result[list_name] = [item for item in result.get(list_name) or [] if item not in value]
            continue
        if value is None:
            result.pop(key, None)
        elif isinstance(value, list):
            result[key] = _merge_list(key, result.get(key), value)
        else:
            merged = strategic_merge_patch(result.get(key), value)
            if merged is None:
                result.pop(key, None)
            else:
                result[key] = merged
    if isinstance(retain, list):
        result = {k: v for k, v in result.items() if k in retain}
    return result


def _merge_list(field_name: str, current: Any, patch: list[Any]) -> list[Any]:
    current_list = list(current) if isinstance(current, list) else []
    if field_name in STRATEGIC_SET_LISTS:
        merged = list(current_list)
        for item in patch:
            if item not in merged:
                merged.append(item)
        return merged
    if not patch or _item_key(field_name, patch[0]) is None:
        if any(isinstance(item, dict) and item.get("$patch") == "replace" for item in patch):
            return [item for item in patch if not (isinstance(item, dict) and "$patch" in item)]
        return json_copy(patch)
    merged = list(current_list)
    for item in patch:
        key = _item_key(field_name, item)
        index = next((i for i, existing in enumerate(merged) if _item_key(field_name, existing) == key), None)
        if isinstance(item, dict) and item.get("$patch") == "delete":
            if index is not None:
                merged.pop(index)
            continue
        if index is None:
            merged.append(strategic_merge_patch({}, item))
        else:
            merged[index] = strategic_merge_patch(merged[index], item)
    return merged


def parse_json(body: bytes) -> Any:
    try:
        return json.loads(body)
    except ValueError as error:
        raise bad_request(f"invalid JSON body: {error}") from error
