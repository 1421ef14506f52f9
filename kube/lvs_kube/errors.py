"""API errors as exceptions that callers can branch on (404, 409, 410...) without parsing bodies."""

from __future__ import annotations

from typing import Any


class ApiError(Exception):
    """A non-2xx answer from the API server, with the ``Status`` object's reason and message."""

    def __init__(self, status: int, reason: str, message: str, body: dict[str, Any] | None = None) -> None:
        super().__init__(f"{status} {reason}: {message}")
        self.status = status
        self.reason = reason
        self.message = message
        self.body = body or {}


class NotFound(ApiError):
    """404: the object (or its kind) does not exist."""


class Conflict(ApiError):
    """409: stale resourceVersion, an existing name on create, or an apply field conflict."""


class Gone(ApiError):
    """410: a watch or list resourceVersion is too old; relist."""


def error_for(status: int, body: dict[str, Any] | None, text: str) -> ApiError:
    """Build the most specific exception for an HTTP status and its (possibly empty) Status body."""
    reason = str((body or {}).get("reason") or "")
    message = str((body or {}).get("message") or text[:500])
    kind: type[ApiError] = ApiError
    if status == 404:
        kind = NotFound
    elif status == 409:
        kind = Conflict
    elif status == 410:
        kind = Gone
    return kind(status, reason, message, body)
