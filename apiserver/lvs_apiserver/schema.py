"""Structural-schema handling of custom resources: pruning, defaulting, validation and CEL rules.

Messages follow the real server's wording (kube-openapi validation errors) so that `kubectl apply` shows
the same lines a user would see against a real cluster.
"""

from __future__ import annotations

import ipaddress
import json
import re
from dataclasses import dataclass, field
from typing import Any

from .cel import CelEvaluator, RuleSubject, uses_old_self
from .encoding import json_copy
from .errors import FieldCause

JsonDict = dict[str, Any]

_MISSING = object()
_ROOT_KEPT = ("apiVersion", "kind", "metadata")


@dataclass
class SchemaResult:
    causes: list[FieldCause] = field(default_factory=list)
    unknown_fields: list[str] = field(default_factory=list)


def _type_name(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int):
        return "integer"
    if isinstance(value, float):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list):
        return "array"
    return "object"


def _show(value: Any) -> str:
    """How the real server prints an offending value."""
    if isinstance(value, str):
        return json.dumps(value)
    if isinstance(value, (dict, list)):
        return json.dumps(_type_name(value))
    return json.dumps(value)


def _join(path: str, name: str) -> str:
    return f"{path}.{name}" if path else name


# ---- pruning and defaulting -------------------------------------------------------------------------


def prune(value: Any, schema: JsonDict, path: str, unknown: list[str], root: bool = False) -> Any:
    """Drop fields the schema does not declare (unless x-kubernetes-preserve-unknown-fields)."""
    if isinstance(value, dict):
        properties: JsonDict = schema.get("properties") or {}
        additional = schema.get("additionalProperties")
        preserve = bool(schema.get("x-kubernetes-preserve-unknown-fields"))
        embedded = bool(schema.get("x-kubernetes-embedded-resource"))
        result: JsonDict = {}
        for name, child in value.items():
            child_path = _join(path, name)
            if (root or embedded) and (name == "metadata" or (name in _ROOT_KEPT and name not in properties)):
                result[name] = child  # object metadata is the server's, whatever the schema says
            elif name in properties:
                if child is None and not properties[name].get("nullable"):
                    continue  # nulls of non-nullable fields are pruned before defaulting, like upstream
                result[name] = prune(child, properties[name], child_path, unknown)
            elif isinstance(additional, dict):
                result[name] = prune(child, additional, child_path, unknown)
            elif preserve or additional is True:
                result[name] = child
            else:
                unknown.append(child_path)
        return result
    if isinstance(value, list) and isinstance(schema.get("items"), dict):
        return [prune(item, schema["items"], f"{path}[{index}]", unknown) for index, item in enumerate(value)]
    return value


def apply_defaults(value: Any, schema: JsonDict) -> Any:
    if isinstance(value, dict):
        properties: JsonDict = schema.get("properties") or {}
        result = dict(value)
        for name, child_schema in properties.items():
            if name not in result and "default" in child_schema:
                result[name] = json_copy(child_schema["default"])
            if name in result:
                result[name] = apply_defaults(result[name], child_schema)
        additional = schema.get("additionalProperties")
        if isinstance(additional, dict):
            for name, child in result.items():
                if name not in properties:
                    result[name] = apply_defaults(child, additional)
        return result
    if isinstance(value, list) and isinstance(schema.get("items"), dict):
        return [apply_defaults(item, schema["items"]) for item in value]
    return value


# ---- validation ---------------------------------------------------------------------------------------

_FORMAT_CHECKS: dict[str, Any] = {}


def _check_format(fmt: str, value: Any) -> bool:
    if fmt == "int32":
        return not isinstance(value, int) or -(2**31) <= value < 2**31
    if fmt == "int64":
        return not isinstance(value, int) or -(2**63) <= value < 2**63
    if not isinstance(value, str):
        return True
    try:
        if fmt == "ipv4":
            ipaddress.IPv4Address(value)
        elif fmt == "ipv6":
            ipaddress.IPv6Address(value)
        elif fmt == "ip":
            ipaddress.ip_address(value)
        elif fmt == "cidr":
            ipaddress.ip_network(value, strict=False)
        elif fmt == "hostname":
            return (
                re.fullmatch(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*", value)
                is not None
            )
        elif fmt == "date-time":
            return re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?(Z|[+-]\d\d:\d\d)", value) is not None
        elif fmt == "uuid":
            return re.fullmatch(r"[0-9a-fA-F]{8}-([0-9a-fA-F]{4}-){3}[0-9a-fA-F]{12}", value) is not None
    except ValueError:
        return False
    return True


class Validator:
    def __init__(self, cel: CelEvaluator | None = None) -> None:
        self._cel = cel or CelEvaluator()

    def validate(self, value: Any, schema: JsonDict, old: Any = _MISSING) -> list[FieldCause]:
        causes: list[FieldCause] = []
        self._validate(value, schema, "", causes, old=old, root=True)
        return causes

    def _validate(
        self,
        value: Any,
        schema: JsonDict,
        path: str,
        causes: list[FieldCause],
        *,
        old: Any,
        root: bool = False,
    ) -> None:
        if old is not _MISSING and same_json(value, old):
            # Validation ratcheting (CRDValidationRatcheting, GA in 1.33): an update keeps values it
            # does not change even if they no longer validate; only transition rules still run there.
            self._transition_rules(value, schema, path, causes, old)
            return
        before = len(causes)
        if value is None:
            if not schema.get("nullable"):
                self._type_error(value, schema.get("type", "object"), path, causes)
            return
        declared = schema.get("type")
        int_or_string = schema.get("x-kubernetes-int-or-string")
        actual = _type_name(value)
        if int_or_string:
            if actual not in ("integer", "string"):
                causes.append(
                    FieldCause(
                        "FieldValueInvalid",
                        path,
                        f"Invalid value: {_show(value)}: {path} in body must be of type integer,string: "
                        f"{_show(actual)}",
                    )
                )
                return
        elif declared and not (actual == declared or (declared == "number" and actual == "integer")):
            self._type_error(value, declared, path, causes)
            return

        if "enum" in schema and value not in schema["enum"]:
            supported = ", ".join(json.dumps(item) for item in schema["enum"])
            causes.append(
                FieldCause(
                    "FieldValueNotSupported",
                    path,
                    f"Unsupported value: {_show(value)}: supported values: {supported}",
                )
            )
        fmt = schema.get("format")
        if fmt and not _check_format(fmt, value):
            causes.append(
                FieldCause(
                    "FieldValueInvalid",
                    path,
                    f"Invalid value: {_show(value)}: {path} in body must be of type {fmt}: {_show(value)}",
                )
            )
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            self._numeric(value, schema, path, causes)
        if isinstance(value, str):
            self._string(value, schema, path, causes)
        if isinstance(value, list):
            self._array(value, schema, path, causes, old)
        if isinstance(value, dict):
            self._object(value, schema, path, causes, old=old, root=root)
        if len(causes) == before:
            self._rules(value, schema, path, causes, old)

    def _type_error(self, value: Any, declared: str, path: str, causes: list[FieldCause]) -> None:
        causes.append(
            FieldCause(
                "FieldValueTypeInvalid",
                path,
                f"Invalid value: {_show(_type_name(value))}: {path} in body must be of type {declared}: "
                f"{_show(_type_name(value))}",
            )
        )

    def _numeric(self, value: float, schema: JsonDict, path: str, causes: list[FieldCause]) -> None:
        maximum = schema.get("maximum")
        if maximum is not None:
            exclusive = schema.get("exclusiveMaximum") is True
            if value > maximum or (exclusive and value == maximum):
                relation = "less than" if exclusive else "less than or equal to"
                causes.append(
                    FieldCause(
                        "FieldValueInvalid",
                        path,
                        f"Invalid value: {_show(value)}: {path} in body should be {relation} {maximum}",
                    )
                )
        minimum = schema.get("minimum")
        if minimum is not None:
            exclusive = schema.get("exclusiveMinimum") is True
            if value < minimum or (exclusive and value == minimum):
                relation = "greater than" if exclusive else "greater than or equal to"
                causes.append(
                    FieldCause(
                        "FieldValueInvalid",
                        path,
                        f"Invalid value: {_show(value)}: {path} in body should be {relation} {minimum}",
                    )
                )
        multiple = schema.get("multipleOf")
        if multiple and value % multiple != 0:
            causes.append(
                FieldCause(
                    "FieldValueInvalid",
                    path,
                    f"Invalid value: {_show(value)}: {path} in body should be a multiple of {multiple}",
                )
            )

    def _string(self, value: str, schema: JsonDict, path: str, causes: list[FieldCause]) -> None:
        max_length = schema.get("maxLength")
        if max_length is not None and len(value) > max_length:
            causes.append(
                FieldCause("FieldValueTooLong", path, f"Too long: may not be more than {max_length} bytes")
            )
        min_length = schema.get("minLength")
        if min_length is not None and len(value) < min_length:
            causes.append(
                FieldCause(
                    "FieldValueInvalid",
                    path,
                    f"Invalid value: {_show(value)}: {path} in body should be at least {min_length} "
                    "chars long",
                )
            )
        pattern = schema.get("pattern")
        if pattern is not None and re.search(pattern, value) is None:
            causes.append(
                FieldCause(
                    "FieldValueInvalid",
                    path,
                    f"Invalid value: {_show(value)}: {path} in body should match '{pattern}'",
                )
            )

    def _array(
        self, value: list[Any], schema: JsonDict, path: str, causes: list[FieldCause], old: Any
    ) -> None:
        max_items = schema.get("maxItems")
        if max_items is not None and len(value) > max_items:
            causes.append(
                FieldCause(
                    "FieldValueTooMany", path, f"Too many: {len(value)}: must have at most {max_items} items"
                )
            )
        min_items = schema.get("minItems")
        if min_items is not None and len(value) < min_items:
            causes.append(
                FieldCause(
                    "FieldValueInvalid",
                    path,
                    f"Invalid value: {len(value)}: {path} in body should have at least {min_items} items",
                )
            )
        list_type = schema.get("x-kubernetes-list-type")
        keys = tuple(schema.get("x-kubernetes-list-map-keys") or ())
        seen: set[str] = set()
        old_by_key: dict[str, Any] = {}
        if list_type == "map" and isinstance(old, list):
            old_by_key = {_map_key(item, keys): item for item in old if isinstance(item, dict)}
        for index, item in enumerate(value):
            item_path = f"{path}[{index}]"
            if list_type in ("set", "map"):
                identity = (
                    _map_key(item, keys)
                    if list_type == "map" and isinstance(item, dict)
                    else json.dumps(item, sort_keys=True)
                )
                if identity in seen:
                    causes.append(
                        FieldCause("FieldValueDuplicate", item_path, f"Duplicate value: {identity}")
                    )
                seen.add(identity)
            old_item: Any = _MISSING
            if list_type == "map" and isinstance(item, dict):
                old_item = old_by_key.get(_map_key(item, keys), _MISSING)
            items_schema = schema.get("items")
            if isinstance(items_schema, dict):
                self._validate(item, items_schema, item_path, causes, old=old_item)

    def _object(
        self, value: JsonDict, schema: JsonDict, path: str, causes: list[FieldCause], *, old: Any, root: bool
    ) -> None:
        properties: JsonDict = schema.get("properties") or {}
        for name in schema.get("required") or []:
            if name not in value:
                causes.append(FieldCause("FieldValueRequired", _join(path, name), "Required value"))
        max_properties = schema.get("maxProperties")
        if max_properties is not None and len(value) > max_properties:
            causes.append(
                FieldCause(
                    "FieldValueTooMany",
                    path,
                    f"Too many: {len(value)}: must have at most {max_properties} items",
                )
            )
        min_properties = schema.get("minProperties")
        if min_properties is not None and len(value) < min_properties:
            causes.append(
                FieldCause(
                    "FieldValueInvalid",
                    path,
                    f"Invalid value: {len(value)}: {path} in body should have at least {min_properties} "
                    "properties",
                )
            )
        additional = schema.get("additionalProperties")
        old_map = old if isinstance(old, dict) else {}
        for name, child in value.items():
            if root and (name == "metadata" or (name in _ROOT_KEPT and name not in properties)):
                continue
            child_schema = properties.get(name)
            if child_schema is None and isinstance(additional, dict):
                child_schema = additional
            if child_schema is not None:
                self._validate(
                    child, child_schema, _join(path, name), causes, old=old_map.get(name, _MISSING)
                )

    def _transition_rules(
        self, value: Any, schema: JsonDict, path: str, causes: list[FieldCause], old: Any
    ) -> None:
        """The rules reading oldSelf in an unchanged subtree (the rest is ratcheted)."""
        self._rules(value, schema, path, causes, old, transitions_only=True)
        if isinstance(value, dict) and isinstance(old, dict):
            properties: JsonDict = schema.get("properties") or {}
            additional = schema.get("additionalProperties")
            for name, child in value.items():
                child_schema = properties.get(name)
                if child_schema is None and isinstance(additional, dict):
                    child_schema = additional
                if child_schema is not None and name in old:
                    self._transition_rules(child, child_schema, _join(path, name), causes, old[name])
        elif isinstance(value, list) and isinstance(old, list) and isinstance(schema.get("items"), dict):
            if schema.get("x-kubernetes-list-type") != "map":
                return  # only map lists correlate items with their old selves
            keys = tuple(schema.get("x-kubernetes-list-map-keys") or ())
            old_by_key = {_map_key(item, keys): item for item in old if isinstance(item, dict)}
            for index, item in enumerate(value):
                if isinstance(item, dict) and _map_key(item, keys) in old_by_key:
                    self._transition_rules(
                        item, schema["items"], f"{path}[{index}]", causes, old_by_key[_map_key(item, keys)]
                    )

    def _rules(
        self,
        value: Any,
        schema: JsonDict,
        path: str,
        causes: list[FieldCause],
        old: Any,
        *,
        transitions_only: bool = False,
    ) -> None:
        rules = schema.get("x-kubernetes-validations")
        if not rules:
            return
        has_old = old is not _MISSING
        subject = RuleSubject(value, old if has_old else None, has_old)
        for rule in rules:
            transition = uses_old_self(rule)
            if transitions_only and not transition:
                continue
            if transition and not has_old and not rule.get("optionalOldSelf"):
                continue  # transition rules only run on updates that have an old value here
            outcome = self._cel.check(rule, subject)
            if outcome.passed:
                continue
            field_path = path + str(rule.get("fieldPath") or "") if rule.get("fieldPath") else path
            field_path = field_path.lstrip(".")
            reason = str(rule.get("reason") or "FieldValueInvalid")
            if reason == "FieldValueForbidden":
                message = f"Forbidden: {outcome.message}"
            elif reason == "FieldValueRequired":
                message = f"Required value: {outcome.message}"
            elif reason == "FieldValueDuplicate":
                message = f"Duplicate value: {outcome.message}"
            else:
                message = f"Invalid value: {_show(_type_name(value))}: {outcome.message}"
            causes.append(FieldCause(reason, field_path, message))


def same_json(left: Any, right: Any) -> bool:
    """Deep equality of JSON values that, unlike ==, tells true from 1 and 1 from 1.0."""
    if type(left) is not type(right):
        return False
    if isinstance(left, dict):
        return left.keys() == right.keys() and all(same_json(v, right[k]) for k, v in left.items())
    if isinstance(left, list):
        return len(left) == len(right) and all(same_json(a, b) for a, b in zip(left, right, strict=True))
    return bool(left == right)


def _map_key(item: JsonDict, keys: tuple[str, ...]) -> str:
    return json.dumps([item.get(key) for key in keys])


def process_custom_resource(
    obj: JsonDict, schema: JsonDict | None, old: JsonDict | None, validator: Validator
) -> tuple[JsonDict, SchemaResult]:
    """Prune, default and validate a custom resource against its version's openAPIV3Schema."""
    result = SchemaResult()
    if not schema:
        return obj, result
    pruned = prune(obj, schema, "", result.unknown_fields, root=True)
    defaulted = apply_defaults(pruned, schema)
    result.causes = validator.validate(defaulted, schema, old if old is not None else _MISSING)
    return defaulted, result
