"""CEL rules (x-kubernetes-validations) evaluated with cel-python, plus the Kubernetes CEL helpers
the project's CRDs use (isIP, ip(...).family(), isCIDR, lowerAscii, ...)."""

from __future__ import annotations

import ipaddress
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


@dataclass
class RuleOutcome:
    passed: bool
    message: str


class CelEvaluator:
    def __init__(self) -> None:
        self._environment = celpy.Environment()
        self._programs: dict[str, Any] = {}

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
        expression = rule.get("rule", "")
        activation: dict[str, Any] = {"self": json_to_cel(value)}
        if has_old:
            activation["oldSelf"] = json_to_cel(old_value)
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
        return RuleOutcome(False, self._message(rule, value, old_value, has_old))

    def _message(self, rule: JsonDict, value: Any, old_value: Any, has_old: bool) -> str:
        message_expression = rule.get("messageExpression")
        if message_expression:
            activation: dict[str, Any] = {"self": json_to_cel(value)}
            if has_old:
                activation["oldSelf"] = json_to_cel(old_value)
            try:
                text = self._program(message_expression).evaluate(activation)
                if isinstance(text, celtypes.StringType) and str(text).strip():
                    return str(text)
            except Exception:  # falls back to the static message, as the real server does
                pass
        return str(rule.get("message") or f"failed rule: {rule.get('rule', '')}")


def uses_old_self(rule: JsonDict) -> bool:
    return "oldSelf" in str(rule.get("rule", ""))
