"""CEL rules (x-kubernetes-validations) evaluated with cel-python, plus the Kubernetes CEL helpers
the project's CRDs use (isIP, ip(...).family(), isCIDR, lowerAscii, ...)."""

from __future__ import annotations

import ipaddress
import json
import re
from dataclasses import dataclass
from typing import Any

import celpy
from celpy import celtypes
from celpy.adapter import json_to_cel
from celpy.celparser import CELParseError
from celpy.evaluation import CELEvalError

JsonDict = dict[str, Any]


def _is_ip(value: Any) -> celtypes.BoolType:
    try:
        ipaddress.ip_address(str(value))
    except ValueError:
        return celtypes.BoolType(False)
    return celtypes.BoolType(True)


def _is_cidr(value: Any) -> celtypes.BoolType:
    try:
        ipaddress.ip_network(str(value), strict=False)
    except ValueError:
        return celtypes.BoolType(False)
    return celtypes.BoolType("/" in str(value))


def _ip(value: Any) -> celtypes.StringType:
    ipaddress.ip_address(str(value))  # raises -> evaluation error, like the real library
    return celtypes.StringType(str(value))


def _family(value: Any) -> celtypes.IntType:
    return celtypes.IntType(ipaddress.ip_address(str(value).split("/")[0]).version)


def _lower_ascii(value: Any) -> celtypes.StringType:
    return celtypes.StringType(str(value).lower())


def _upper_ascii(value: Any) -> celtypes.StringType:
    return celtypes.StringType(str(value).upper())


def _split(value: Any, separator: Any) -> celtypes.ListType:
    return celtypes.ListType([celtypes.StringType(part) for part in str(value).split(str(separator))])


def _trim(value: Any) -> celtypes.StringType:
    return celtypes.StringType(str(value).strip())


KUBERNETES_FUNCTIONS: dict[str, Any] = {
    "isIP": _is_ip,
    "isCIDR": _is_cidr,
    "ip": _ip,
    "cidr": celtypes.StringType,
    "family": _family,
    "lowerAscii": _lower_ascii,
    "upperAscii": _upper_ascii,
    "split": _split,
    "trim": _trim,
}


@dataclass(frozen=True)
class RuleOutcome:
    passed: bool
    message: str


def canonical_json(value: Any) -> str:
    return json.dumps(value, sort_keys=True, separators=(",", ":"))


class RuleSubject:
    """The value (and old value) the rules at one schema node check.

    Its CEL form and its cache keys are made once and shared by every rule of the node.
    """

    def __init__(self, value: Any, old_value: Any, has_old: bool) -> None:
        self.value = value
        self.old_value = old_value
        self.has_old = has_old
        self._activation: dict[str, Any] | None = None
        self._key: str | None = None
        self._key_with_old: str | None = None
        self._field_keys: dict[tuple[str, ...], str] = {}

    def activation(self) -> dict[str, Any]:
        if self._activation is None:
            self._activation = {"self": json_to_cel(self.value)}
            if self.has_old:
                self._activation["oldSelf"] = json_to_cel(self.old_value)
        return self._activation

    def key(self, with_old: bool, fields: tuple[str, ...] | None = None) -> str:
        """What a rule's outcome depends on: the value (only `fields` of it when the rule reads no
        more than those), and the old value for transition rules."""
        if fields is not None and not with_old and isinstance(self.value, dict):
            key = self._field_keys.get(fields)
            if key is None:
                key = canonical_json([[name, name in self.value, self.value.get(name)] for name in fields])
                self._field_keys[fields] = key
            return key
        if self._key is None:
            self._key = canonical_json(self.value)
        if not with_old:
            return self._key
        if self._key_with_old is None:
            old = canonical_json(self.old_value) if self.has_old else "-"
            self._key_with_old = f"{self._key}\x00{old}"
        return self._key_with_old


_STRING_LITERAL = re.compile(r"""'(?:[^'\\\n]|\\.)*'|"(?:[^"\\\n]|\\.)*\"""")
_SELF = re.compile(r"(?<![\w.])self\b")
_SELF_FIELD = re.compile(r"(?<![\w.])self\.([A-Za-z_][A-Za-z0-9_]*)\b(?!\s*\()")
_UNHANDLED_LITERALS = ("'''", '"""', "r'", 'r"', "R'", 'R"', "b'", 'b"')


_GUARD = re.compile(r"\s*!\s*has\(\s*self\.([A-Za-z_][A-Za-z0-9_]*)\s*\)\s*\|\|")


def guard_field(expression: str) -> str | None:
    """F when the rule is `!has(self.F) || ...` at its top level: true, without evaluating the rest,
    whenever self has no F (the usual way to make a rule apply only to a set optional field)."""
    if any(marker in expression for marker in _UNHANDLED_LITERALS):
        return None
    code = _STRING_LITERAL.sub('""', expression)
    match = _GUARD.match(code)
    if match is None:
        return None
    depth = 0
    for char in code:  # a ternary at the top level would bind looser than the ||
        if char in "([{":
            depth += 1
        elif char in ")]}":
            depth -= 1
        elif char == "?" and depth == 0:
            return None
    return match.group(1)


def self_fields(*expressions: str) -> tuple[str, ...] | None:
    """The fields of `self` the expressions read, when they only ever use `self.<field>`; None when
    one uses `self` otherwise (alone, `self.?f`, a method or macro on self): it may read all of it."""
    fields: set[str] = set()
    for expression in expressions:
        if any(marker in expression for marker in _UNHANDLED_LITERALS):
            return None  # literal forms the stripping below does not model
        code = _STRING_LITERAL.sub('""', expression)
        accesses = _SELF_FIELD.findall(code)
        if len(accesses) != len(_SELF.findall(code)):
            return None
        fields.update(accesses)
    return tuple(sorted(fields))


# Outcomes kept per (rule, value): CEL is side-effect free (so are the helper functions above), so a
# rule's outcome on a value never changes, and cel-python's tree-walking interpreter costs ~0.5 ms a
# rule. Bounded in entries and in key bytes (a rule reading all of a large `self` has large keys):
# cleared when either is full.
_OUTCOME_CACHE_LIMIT = 50_000
_PASSED = RuleOutcome(True, "")
_OUTCOME_CACHE_BYTES = 32 * 1024 * 1024


class CelEvaluator:
    def __init__(self) -> None:
        self._environment = celpy.Environment()
        self._programs: dict[str, Any] = {}
        self._outcomes: dict[tuple[str, str, str, str], RuleOutcome] = {}
        self._fields: dict[tuple[str, str], tuple[str, ...] | None] = {}
        self._cached_bytes = 0
        self._guards: dict[str, str | None] = {}

    def _program(self, expression: str) -> Any:
        program = self._programs.get(expression)
        if program is None:
            ast = self._environment.compile(expression)
            program = self._environment.program(ast, functions=KUBERNETES_FUNCTIONS)
            self._programs[expression] = program
        return program

    def compile_error(self, expression: str) -> str | None:
        try:
            self._program(expression)
        except CELParseError as error:
            return str(error).splitlines()[0]
        return None

    def evaluate(self, rule: JsonDict, value: Any, old_value: Any, has_old: bool) -> RuleOutcome:
        return self.check(rule, RuleSubject(value, old_value, has_old))

    def check(self, rule: JsonDict, subject: RuleSubject) -> RuleOutcome:
        """The rule's outcome on the subject, from the cache when this rule saw this value before."""
        expression = str(rule.get("rule", ""))
        if expression not in self._guards:
            self._guards[expression] = guard_field(expression)
        guard = self._guards[expression]
        if guard is not None and isinstance(subject.value, dict) and guard not in subject.value:
            return _PASSED
        message_expression = str(rule.get("messageExpression") or "")
        reads_old = "oldSelf" in expression or "oldSelf" in message_expression
        fields = self._fields_read(expression, message_expression)
        cache_key = (
            expression,
            message_expression,
            str(rule.get("message") or ""),
            subject.key(reads_old, fields),
        )
        outcome = self._outcomes.get(cache_key)
        if outcome is None:
            outcome = self._run(rule, expression, subject)
            size = len(cache_key[3]) + len(outcome.message)
            if (
                len(self._outcomes) >= _OUTCOME_CACHE_LIMIT
                or self._cached_bytes + size > _OUTCOME_CACHE_BYTES
            ):
                self._outcomes.clear()
                self._cached_bytes = 0
            self._outcomes[cache_key] = outcome
            self._cached_bytes += size
        return outcome

    def _fields_read(self, expression: str, message_expression: str) -> tuple[str, ...] | None:
        pair = (expression, message_expression)
        if pair not in self._fields:
            self._fields[pair] = self_fields(expression, message_expression)
        return self._fields[pair]

    def _run(self, rule: JsonDict, expression: str, subject: RuleSubject) -> RuleOutcome:
        activation = subject.activation()
        try:
            result = self._program(expression).evaluate(activation)
        except CELParseError as error:
            return RuleOutcome(False, f"compilation failed: {str(error).splitlines()[0]}")
        except Exception as error:  # cel-python raises plain Python errors from helper functions
            return RuleOutcome(False, f"{expression}: evaluation error: {error}")
        if isinstance(result, CELEvalError):
            return RuleOutcome(
                False, f"{expression}: evaluation error: {result.args[0] if result.args else result}"
            )
        if bool(result) is True and isinstance(result, celtypes.BoolType):
            return RuleOutcome(True, "")
        return RuleOutcome(False, self._message(rule, subject))

    def _message(self, rule: JsonDict, subject: RuleSubject) -> str:
        message_expression = rule.get("messageExpression")
        if message_expression:
            try:
                text = self._program(message_expression).evaluate(subject.activation())
                if isinstance(text, str) and text.strip():  # string() gives a plain str
                    return str(text)
            except Exception:  # falls back to the static message, as the real server does
                pass
        return str(rule.get("message") or f"failed rule: {rule.get('rule', '')}")


def uses_old_self(rule: JsonDict) -> bool:
    return "oldSelf" in str(rule.get("rule", ""))
