"""Structured logs: one JSON object per line, naming the object a message is about.

Callers pass the object as ``extra={"object": "VirtualService shop/web"}``; kopf's own per-object loggers
pass ``k8s_ref`` which is folded in the same way, so every line about an object can be grepped by name.
"""

from __future__ import annotations

import datetime
import json
import logging
import sys
from typing import Any

_STANDARD_ATTRIBUTES = frozenset(vars(logging.makeLogRecord({})).keys()) | {"message", "asctime"}


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "time": datetime.datetime.fromtimestamp(record.created, datetime.UTC).isoformat(
                timespec="milliseconds"
            ),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        reference = getattr(record, "k8s_ref", None)
        if isinstance(reference, dict) and "object" not in record.__dict__:
            namespace = reference.get("namespace")
            name = reference.get("name", "")
            entry["object"] = (
                f"{reference.get('kind', '')} {namespace + '/' if namespace else ''}{name}".strip()
            )
        for key, value in record.__dict__.items():
            if key in _STANDARD_ATTRIBUTES or key.startswith("_") or key in {"k8s_ref", "k8s_skip"}:
                continue
            if isinstance(value, str | int | float | bool):  # kopf also attaches settings objects: skip those
                entry[key] = value
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        return json.dumps(entry, separators=(",", ":"))


def setup_logging(level: str = "INFO", json_format: bool = True) -> None:
    handler = logging.StreamHandler(sys.stderr)
    if json_format:
        handler.setFormatter(JsonFormatter())
    else:
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s %(message)s"))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    # aiohttp's access chatter and kopf's per-event debug lines are noise at INFO.
    logging.getLogger("aiohttp").setLevel(logging.WARNING)
    # kopf logs "Handler succeeded" per watch event; our own lines already name each object we act on.
    logging.getLogger("kopf.objects").setLevel(logging.WARNING)
