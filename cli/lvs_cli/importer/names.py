"""Kubernetes object names (DNS-1123) made from legacy names, addresses and marks."""

from __future__ import annotations

import hashlib
import re

_MAX_NAME = 63  # a DNS-1123 label: also valid as a subdomain, and as a label value or vipGroup
_INVALID = re.compile(r"[^a-z0-9-]+")


def dns1123(text: str, *, fallback: str = "imported", max_length: int = _MAX_NAME) -> str:
    """Lower-case, replace runs of other characters by '-', trim to a valid label.

    Long names keep a short hash of the original so that two long names do not collide after trimming.
    """
    name = _INVALID.sub("-", text.lower()).strip("-")
    name = re.sub(r"-{2,}", "-", name)
    if not name:
        name = fallback
    if len(name) > max_length:
        digest = hashlib.sha256(text.encode()).hexdigest()[:6]
        name = f"{name[: max_length - 7].rstrip('-')}-{digest}"
    return name


class NameRegistry:
    """Hands out unique names per kind: a second 'web' becomes 'web-2'."""

    def __init__(self) -> None:
        self._taken: set[str] = set()

    def claim(self, wanted: str, *, suffix: str = "") -> str:
        base = dns1123(wanted, max_length=_MAX_NAME - len(suffix) - 3) + suffix
        name, counter = base, 2
        while name in self._taken:
            name = f"{base}-{counter}"
            counter += 1
        self._taken.add(name)
        return name
