"""Cross-field rules, declared once and used twice.

Each :class:`Rule` carries a CEL expression (emitted into the CRD as an ``x-kubernetes-validations`` entry
on the schema of the model it is registered for, where ``self`` is that object) and a python predicate
over the validated model (run by the model's validator, so the controller reports the same failure the
API server would). Tests evaluate both on the same objects and require the same answer.

CEL stays inside the standard subset (``has``, ``size``, ``in``, ternaries, ``all``/``exists``/``filter``,
``contains``/``startsWith``/``matches``): the embedded API server evaluates it with cel-python, and the
Kubernetes-only libraries (``ip()``, ``cidr()``...) are not there.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

__all__ = ["Rule", "all_rules", "register_rules", "rules_for"]


@dataclass(frozen=True)
class Rule:
    """One cross-field rule.

    ``field_path`` is relative to the object the rule is registered on, in the Kubernetes ``fieldPath``
    form (``.tunnel``, ``.persistence.netmask``); ``""`` means the object itself. ``check`` returns True
    when the object is valid.
    """

    name: str
    field_path: str
    cel: str
    message: str
    fix: str
    check: Callable[[Any], bool]
    reason: str = "FieldValueInvalid"

    @property
    def crd_message(self) -> str:
        """The message the API server shows: what is wrong and how to fix it."""
        return f"{self.message}; fix: {self.fix}"

    def to_crd(self) -> dict[str, str]:
        """The ``x-kubernetes-validations`` entry."""
        entry = {"rule": self.cel, "message": self.crd_message, "reason": self.reason}
        if self.field_path:
            entry["fieldPath"] = self.field_path
        return entry


_RULES: dict[type, tuple[Rule, ...]] = {}


def register_rules(model: type, *rules: Rule) -> None:
    """Attach rules to a model class (once per class; names must be unique)."""
    if model in _RULES:
        raise ValueError(f"rules for {model.__name__} are already registered")
    names = [rule.name for rule in rules]
    if len(set(names)) != len(names):
        raise ValueError(f"duplicate rule names for {model.__name__}: {names}")
    _RULES[model] = tuple(rules)


def rules_for(model: type) -> tuple[Rule, ...]:
    """Rules registered for exactly this class."""
    return _RULES.get(model, ())


def all_rules() -> dict[type, tuple[Rule, ...]]:
    """Every registered rule, by model class (importing ``lvs_api.models`` registers them)."""
    return dict(_RULES)
