"""Validation for the controller: every problem of an object as ``FieldError(path, message, fix)``.

Field-level problems come from the models (types, ranges, patterns, unknown fields); cross-field problems
come from the same ``lvs_api.rules`` the CRD schema carries as CEL, so an object the API server let
through (an older CRD, an emulator without CEL) is still reported the same way.

Paths use the wire (camelCase) names and the Kubernetes style: ``spec.ports[1].port``.
"""

from __future__ import annotations

import difflib
import types
import typing
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel, ValidationError
from pydantic.fields import FieldInfo

from lvs_api.models import KINDS, SKIP_RULES, ApiModel, DirectorReport
from lvs_api.models.base import DNS1123_SUBDOMAIN, REASON_PATTERN
from lvs_api.rules import rules_for

__all__ = ["FieldError", "format_errors", "validate", "validate_model"]


@dataclass(frozen=True)
class FieldError:
    """One problem: which field, what is wrong, how to fix it.

    ``reason`` is the Kubernetes cause type (FieldValueInvalid, FieldValueRequired, FieldValueForbidden,
    FieldValueDuplicate, FieldValueNotSupported, FieldValueTypeInvalid).
    """

    path: str
    message: str
    fix: str
    reason: str = "FieldValueInvalid"

    def __str__(self) -> str:
        return f"{self.path}: {self.message} (fix: {self.fix})"


def format_errors(errors: Sequence[FieldError], limit: int = 5) -> str:
    """One line for a condition message: the first ``limit`` errors, then how many more."""
    shown = "; ".join(str(error) for error in errors[:limit])
    more = len(errors) - limit
    return f"{shown}; and {more} more" if more > 0 else shown


def validate(kind: str, obj: Mapping[str, Any]) -> list[FieldError]:
    """Every problem of a whole object of ``kind`` (``VirtualService``, ``RealServerPool``...).

    ``status`` is ignored except for ``DirectorReport``, whose payload it is. An empty list means valid.
    """
    model = KINDS.get(kind)
    if model is None:
        return [
            FieldError(
                "kind",
                f"unknown kind {kind!r}",
                f"use one of {', '.join(sorted(KINDS))}",
                "FieldValueNotSupported",
            )
        ]
    body = dict(obj)
    if model is not DirectorReport:
        body.pop("status", None)
    return validate_model(model, body)


def validate_model(model: type[ApiModel], data: Any, path: str = "") -> list[FieldError]:
    """Every problem of ``data`` as an instance of ``model``; paths are prefixed with ``path``."""
    try:
        instance = model.model_validate(data, context={SKIP_RULES: True})
    except ValidationError as err:
        return _field_errors(model, err, path)
    return _rule_errors(instance, path)


# --- cross-field rules ----------------------------------------------------------------------------


def _rule_errors(value: Any, path: str) -> list[FieldError]:
    errors: list[FieldError] = []
    if isinstance(value, ApiModel):
        for rule in rules_for(type(value)):
            if not rule.check(value):
                errors.append(FieldError(_join(path, rule.field_path), rule.message, rule.fix, rule.reason))
        for name, field in type(value).model_fields.items():
            errors.extend(_rule_errors(getattr(value, name), _join(path, field.alias or name)))
    elif isinstance(value, list | tuple):
        for index, item in enumerate(value):
            errors.extend(_rule_errors(item, f"{path}[{index}]"))
    elif isinstance(value, dict):
        for key, item in value.items():
            errors.extend(_rule_errors(item, f"{path}[{key}]"))
    return errors


def _join(path: str, suffix: str) -> str:
    suffix = suffix.lstrip(".")
    if not suffix:
        return path
    return f"{path}.{suffix}" if path else suffix


# --- field errors ---------------------------------------------------------------------------------


@dataclass
class _Located:
    path: str
    field: FieldInfo | None
    owner: type[BaseModel] | None  # model holding the last field (for unknown-field suggestions)


def _unwrap(annotation: Any) -> list[Any]:
    """The model/list/dict types an annotation can hold (Optional, Annotated and unions opened)."""
    origin = typing.get_origin(annotation)
    if origin is typing.Annotated:
        return _unwrap(typing.get_args(annotation)[0])
    if origin in (typing.Union, types.UnionType):
        return [inner for arg in typing.get_args(annotation) for inner in _unwrap(arg)]
    return [annotation]


def _locate(model: type[BaseModel], loc: tuple[int | str, ...], prefix: str) -> _Located:
    path = prefix
    current: list[Any] = [model]
    field: FieldInfo | None = None
    owner: type[BaseModel] | None = model
    for part in loc:
        models = [t for t in current if isinstance(t, type) and issubclass(t, BaseModel)]
        containers = [t for t in current if typing.get_origin(t) in (list, dict)]
        if isinstance(part, int):
            path = f"{path}[{part}]"
            current = [inner for t in containers for inner in _unwrap(typing.get_args(t)[-1])]
            continue
        matched = None
        for candidate in models:
            for name, info in candidate.model_fields.items():
                if part in (info.alias, name):
                    matched = (candidate, name, info)
                    break
            if matched:
                break
        if matched:
            owner, name, field = matched
            path = _join(path, field.alias or name)
            current = _unwrap(field.annotation)
        elif any(typing.get_origin(t) is dict for t in containers):
            path = f"{path}[{part}]"
            current = [
                inner
                for t in containers
                if typing.get_origin(t) is dict
                for inner in _unwrap(typing.get_args(t)[1])
            ]
        elif models:
            # An unknown field of a model: name it and keep the model as owner.
            owner = models[0]
            path = _join(path, part)
            field = None
            current = []
        # else: a union member tag such as "int" or "function-after[...]": not part of the path.
    return _Located(path, field, owner)


def _limits(field: FieldInfo | None) -> dict[str, Any]:
    found: dict[str, Any] = {}
    if field is None:
        return found
    for meta in field.metadata:
        for attr in ("ge", "gt", "le", "lt", "min_length", "max_length", "pattern"):
            value = getattr(meta, attr, None)
            if value is not None:
                found[attr] = value
    return found


_LABEL_WORDS = "lowercase letters, digits and '-', starting and ending with a letter or digit"
_PATTERN_WORDS = {
    r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$": _LABEL_WORDS,
    DNS1123_SUBDOMAIN: f"a DNS subdomain: {_LABEL_WORDS}, parts separated by '.'",
    REASON_PATTERN: "one CamelCase word, e.g. InvalidSpec",
    r"^/": "a path starting with /",
}


def _range_text(limits: Mapping[str, Any]) -> str:
    low = limits.get("ge", limits.get("gt"))
    high = limits.get("le", limits.get("lt"))
    low_word = "above" if "gt" in limits else "from"
    if low is not None and high is not None:
        return (
            f"use a value {low_word} {low} up to {high}"
            if "gt" in limits
            else f"use a value from {low} to {high}"
        )
    if low is not None:
        return f"use a value {'above' if 'gt' in limits else 'of at least'} {low}"
    return f"use a value of at most {high}"


def _describe(field: FieldInfo | None) -> str:
    return f": {field.description.rstrip('.')}" if field is not None and field.description else ""


def _one_field_error(err: Mapping[str, Any], where: _Located, model: type[BaseModel]) -> FieldError:
    kind = err["type"]
    ctx: Mapping[str, Any] = err.get("ctx") or {}
    limits = _limits(where.field)
    value = err.get("input")
    path = where.path or "(object)"
    if kind == "missing":
        return FieldError(path, "is required", f"set {path}{_describe(where.field)}", "FieldValueRequired")
    if kind == "extra_forbidden":
        known = sorted((info.alias or name) for name, info in (where.owner or model).model_fields.items())
        leaf = path.rsplit(".", 1)[-1]
        close = difflib.get_close_matches(leaf, known, n=1)
        hint = f"did you mean {close[0]!r}? " if close else ""
        return FieldError(
            path,
            "is not a known field",
            f"{hint}remove it; known fields here: {', '.join(known)}",
            "FieldValueNotSupported",
        )
    if kind in ("enum", "literal_error"):
        return FieldError(
            path,
            f"{value!r} is not supported",
            f"use one of {ctx.get('expected', '')}",
            "FieldValueNotSupported",
        )
    if kind in ("greater_than_equal", "greater_than", "less_than_equal", "less_than"):
        merged = {**limits, **{k: v for k, v in ctx.items() if k in ("ge", "gt", "le", "lt")}}
        return FieldError(path, f"{value!r} is out of range", _range_text(merged))
    if kind in ("int_parsing", "int_type", "int_from_float"):
        return FieldError(path, f"{value!r} is not a whole number", "use an integer", "FieldValueTypeInvalid")
    if kind in ("float_parsing", "float_type"):
        return FieldError(path, f"{value!r} is not a number", "use a number", "FieldValueTypeInvalid")
    if kind in ("bool_parsing", "bool_type"):
        return FieldError(path, f"{value!r} is not a boolean", "use true or false", "FieldValueTypeInvalid")
    if kind == "string_type":
        return FieldError(path, f"{value!r} is not a string", "quote the value", "FieldValueTypeInvalid")
    if kind == "string_too_long":
        return FieldError(
            path,
            "is too long",
            f"shorten it to at most {ctx.get('max_length')} characters",
            "FieldValueTooLong",
        )
    if kind == "string_too_short":
        return FieldError(path, "is too short", f"use at least {ctx.get('min_length')} characters")
    if kind == "string_pattern_mismatch":
        pattern = str(ctx.get("pattern", ""))
        return FieldError(
            path,
            f"{value!r} has the wrong format",
            f"use {_PATTERN_WORDS.get(pattern, 'a value matching ' + pattern)}",
        )
    if kind == "too_long":
        return FieldError(
            path, "has too many items", f"keep at most {ctx.get('max_length')} items", "FieldValueTooMany"
        )
    if kind == "too_short":
        return FieldError(
            path, "has too few items", f"give at least {ctx.get('min_length')} item(s)", "FieldValueRequired"
        )
    if kind in ("list_type", "tuple_type", "set_type"):
        return FieldError(path, "must be a list", "write it as a YAML list", "FieldValueTypeInvalid")
    if kind in ("dict_type", "model_type", "model_attributes_type"):
        return FieldError(path, "must be an object", "write it as a YAML mapping", "FieldValueTypeInvalid")
    if kind.startswith("lvs_"):
        return FieldError(path, str(err["msg"]), str(ctx.get("fix", f"see kubectl explain for {path}")))
    return FieldError(path, str(err["msg"]), f"see `kubectl explain` for {path}{_describe(where.field)}")


def _field_errors(model: type[ApiModel], err: ValidationError, prefix: str) -> list[FieldError]:
    by_path: dict[str, list[FieldError]] = {}
    fields: dict[str, FieldInfo | None] = {}
    for item in err.errors():
        where = _locate(model, tuple(item["loc"]), prefix)
        by_path.setdefault(where.path, []).append(_one_field_error(item, where, model))
        fields[where.path] = where.field
    errors: list[FieldError] = []
    for path, found in by_path.items():
        distinct = list(dict.fromkeys(found))
        if len(distinct) > 1 and all(e.reason == "FieldValueTypeInvalid" for e in distinct):
            # Every alternative of a union field (e.g. int-or-string) failed: one error for the field.
            fix = f"set {path}{_describe(fields[path])}"
            errors.append(FieldError(path, "has the wrong type", fix, "FieldValueTypeInvalid"))
        else:
            errors.extend(distinct)
    return errors
