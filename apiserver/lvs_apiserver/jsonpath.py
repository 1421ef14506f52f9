"""The JSONPath subset printer columns use: `.a.b`, `.a[0]`, `.a[*].b`, `.a[?(@.k=="v")].b`."""

from __future__ import annotations

import re
from typing import Any

_TOKEN = re.compile(
    r"""\.(?P<field>[A-Za-z0-9_$-]+)
      | \[(?P<index>-?\d+)\]
      | \[\*\]
      | \[\?\(@\.(?P<fkey>[A-Za-z0-9_.-]+)\s*(?P<fop>==|!=)\s*(?P<fval>"[^"]*"|'[^']*'|[^)\]]+)\)\]
      | \['(?P<quoted>[^']+)'\]""",
    re.VERBOSE,
)


def evaluate(expression: str, obj: Any) -> list[Any]:
    """All values the path selects (empty when the path does not resolve)."""
    text = expression.strip()
    if text.startswith("{") and text.endswith("}"):
        text = text[1:-1]
    if text.startswith("$"):
        text = text[1:]
    values: list[Any] = [obj]
    position = 0
    while position < len(text):
        match = _TOKEN.match(text, position)
        if not match:
            return []
        position = match.end()
        values = _step(values, match)
    return values


def _step(values: list[Any], match: re.Match[str]) -> list[Any]:
    result: list[Any] = []
    name = match.group("field") or match.group("quoted")
    for value in values:
        if name is not None:
            if isinstance(value, dict) and name in value:
                result.append(value[name])
        elif match.group("index") is not None:
            index = int(match.group("index"))
            if isinstance(value, list) and -len(value) <= index < len(value):
                result.append(value[index])
        elif match.group("fkey") is not None:
            if isinstance(value, list):
                expected = match.group("fval").strip().strip("\"'")
                for item in value:
                    actual = _lookup(item, match.group("fkey"))
                    equal = actual is not None and str(actual) == expected
                    if equal == (match.group("fop") == "=="):
                        result.append(item)
        elif isinstance(value, list):
            result.extend(value)
        elif isinstance(value, dict):
            result.extend(value.values())
    return result


def _lookup(obj: Any, dotted: str) -> Any:
    for part in dotted.split("."):
        if not isinstance(obj, dict):
            return None
        obj = obj.get(part)
    return obj
