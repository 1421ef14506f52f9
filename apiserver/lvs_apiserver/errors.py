"""Kubernetes `Status` errors, shaped like the real API server's so clients print them faithfully."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

JsonDict = dict[str, Any]


@dataclass
class FieldCause:
    """One entry of `details.causes`: which field failed and why."""

    reason: str  # FieldValueInvalid, FieldValueRequired, FieldValueNotSupported, ...
    field: str
    message: str

    def to_json(self) -> JsonDict:
        return {"reason": self.reason, "message": self.message, "field": self.field}

    def display(self) -> str:
        return f"{self.field}: {self.message}" if self.field else self.message


@dataclass
class ApiError(Exception):
    code: int
    reason: str
    message: str
    details: JsonDict | None = None
    causes: list[FieldCause] = field(default_factory=list)

    def __post_init__(self) -> None:
        super().__init__(self.message)

    def to_status(self) -> JsonDict:
        status: JsonDict = {
            "kind": "Status",
            "apiVersion": "v1",
            "metadata": {},
            "status": "Failure",
            "message": self.message,
            "reason": self.reason,
            "code": self.code,
        }
        details = dict(self.details or {})
        if self.causes:
            details["causes"] = [cause.to_json() for cause in self.causes]
        if details:
            status["details"] = details
        return status


def qualified_resource(group: str, plural: str) -> str:
    return f"{plural}.{group}" if group else plural


def not_found(group: str, plural: str, name: str) -> ApiError:
    return ApiError(
        404,
        "NotFound",
        f'{qualified_resource(group, plural)} "{name}" not found',
        {"name": name, "group": group, "kind": plural},
    )


def already_exists(group: str, plural: str, name: str) -> ApiError:
    return ApiError(
        409,
        "AlreadyExists",
        f'{qualified_resource(group, plural)} "{name}" already exists',
        {"name": name, "group": group, "kind": plural},
    )


def conflict(group: str, plural: str, name: str, why: str) -> ApiError:
    return ApiError(
        409,
        "Conflict",
        f'Operation cannot be fulfilled on {qualified_resource(group, plural)} "{name}": {why}',
        {"name": name, "group": group, "kind": plural},
    )


def stale_write(group: str, plural: str, name: str) -> ApiError:
    return conflict(
        group,
        plural,
        name,
        "the object has been modified; please apply your changes to the latest version and try again",
    )


def bad_request(message: str) -> ApiError:
    return ApiError(400, "BadRequest", message)


def gone(message: str) -> ApiError:
    return ApiError(410, "Expired", message)


def forbidden(message: str, details: JsonDict | None = None) -> ApiError:
    return ApiError(403, "Forbidden", message, details)


def invalid(kind: str, group: str, name: str, causes: list[FieldCause]) -> ApiError:
    """HTTP 422 with the message format kubectl prints: `Kind.group "name" is invalid: ...`."""
    qualified_kind = f"{kind}.{group}" if group else kind
    shown = [cause.display() for cause in causes]
    summary = shown[0] if len(shown) == 1 else "[" + ", ".join(shown) + "]"
    return ApiError(
        422,
        "Invalid",
        f'{qualified_kind} "{name}" is invalid: {summary}',
        {"name": name, "group": group, "kind": kind},
        causes,
    )
