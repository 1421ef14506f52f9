"""docs/troubleshooting.md explains every condition / event reason the controller and the agent emit, and
nothing they no longer emit.

The reasons are read from the source (not imported), at the places the code hands a reason on: the
controller's validation problems, condition builders and Event recorder, the agent's per-service outcomes
and health events. A new reason in any of those places fails this test until it is documented.
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
DOC = REPO / "docs" / "troubleshooting.md"

SOURCES = {
    "controller": [
        "operator/lvs_controller/validation.py",
        "operator/lvs_controller/status.py",
        "operator/lvs_controller/pool_status.py",
        "operator/lvs_controller/reconciler.py",
    ],
    "agent": [
        "agent/lvs_agent/reconcile.py",
        "agent/lvs_agent/health/engine.py",
        "agent/lvs_agent/health/convert.py",
    ],
}
# Callables that take a reason, and the position of that argument.
REASON_ARGUMENT = {"Problem": 0, "add": 2, "_condition": 2, "emit": 2, "ServiceOutcome": 1, "HealthEvent": 2}
# Names that hold a reason when assigned (`reason = "A" if x else "B"`, `ready = (False, "Reason", message)`).
REASON_NAMES = {"reason": None, "ready": 1}
CAMEL_CASE = re.compile(r"^[A-Z][A-Za-z0-9]*[a-z][A-Za-z0-9]*$")  # VIPNotInPool, NoConflict; not "TCP"


def _strings(node: ast.AST | None) -> list[str]:
    """String constants a reason expression can evaluate to (constants, `a if c else b`, `a or b`)."""
    if isinstance(node, ast.Constant) and isinstance(node.value, str):
        return [node.value]
    if isinstance(node, ast.IfExp):
        return _strings(node.body) + _strings(node.orelse)
    if isinstance(node, ast.BoolOp):
        return [text for value in node.values for text in _strings(value)]
    return []


def _callee(call: ast.Call) -> str | None:
    if isinstance(call.func, ast.Attribute):
        return call.func.attr
    return call.func.id if isinstance(call.func, ast.Name) else None


def reasons_in(source: str) -> set[str]:
    found: list[str] = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Call):
            callee = _callee(node)
            position = REASON_ARGUMENT.get(callee or "")
            if position is not None and len(node.args) > position:
                found += _strings(node.args[position])
            found += [
                text
                for keyword in node.keywords
                if keyword.arg == "reason"
                for text in _strings(keyword.value)
            ]
            # degraded.append(("Reason", message))
            if callee == "append" and node.args and isinstance(node.args[0], ast.Tuple) and node.args[0].elts:
                found += _strings(node.args[0].elts[0])
        elif isinstance(node, ast.Assign | ast.AnnAssign):
            targets = node.targets if isinstance(node, ast.Assign) else [node.target]
            for target in targets:
                name = target.attr if isinstance(target, ast.Attribute) else getattr(target, "id", None)
                if name not in REASON_NAMES:
                    continue
                index = REASON_NAMES[name]
                value = node.value
                if index is not None and isinstance(value, ast.Tuple) and len(value.elts) > index:
                    value = value.elts[index]
                found += _strings(value)
    return {text for text in found if CAMEL_CASE.match(text)}


def emitted_reasons() -> dict[str, set[str]]:
    return {
        part: set().union(*(reasons_in((REPO / path).read_text()) for path in paths))
        for part, paths in SOURCES.items()
    }


def documented_reasons() -> set[str]:
    """Backticked CamelCase words in the reason column of the document's tables."""
    found: set[str] = set()
    for line in DOC.read_text().splitlines():
        if not line.startswith("| `") and "| `" not in line:
            continue
        cells = [cell.strip() for cell in line.strip().strip("|").split("|")]
        for cell in cells:
            match = re.fullmatch(r"`([A-Za-z]+)`", cell)
            if match and CAMEL_CASE.match(match.group(1)):
                found.add(match.group(1))
    return found


def test_the_extraction_finds_reasons_of_every_kind() -> None:
    """Guards the extractor itself: if the code's shape changes so that it finds nothing, say so."""
    reasons = emitted_reasons()
    assert {"VIPNotInPool", "PortConflict", "SpecRejected", "MembersUnhealthy", "NoMembers"} <= reasons[
        "controller"
    ]
    assert {"FinalizerTimeout", "ConflictResolved"} <= reasons["controller"]
    assert {"Programmed", "NotSelected", "Conflict", "NetlinkError", "CompileError"} <= reasons["agent"]
    assert {"MemberUnhealthy", "HealthCheckRefused", "NotYetChecked"} <= reasons["agent"]


def test_the_extraction_follows_each_pattern() -> None:
    source = """
problems.append(Problem("FirstReason", "spec.x", "bad", "fix"))
add("Ready", False, "SecondReason", "m")
reason = "ThirdReason" if mark else "FourthReason"
ready = (False, "FifthReason", "message")
degraded.append(("SixthReason", "message"))
ServiceOutcome(False, "SeventhReason", "m")
outcome.reason = "EighthReason"
emit(vs, "Warning", "NinthReason", "m")
helper(reason="TenthReason")
log("not a reason", "NotAReasonEither")
"""
    assert reasons_in(source) == {
        "FirstReason", "SecondReason", "ThirdReason", "FourthReason", "FifthReason",
        "SixthReason", "SeventhReason", "EighthReason", "NinthReason", "TenthReason",
    }  # fmt: skip


def test_every_emitted_reason_is_documented() -> None:
    documented = documented_reasons()
    for part, reasons in emitted_reasons().items():
        missing = sorted(reasons - documented)
        assert not missing, f"{part} emits reasons docs/troubleshooting.md does not explain: {missing}"


def test_every_documented_reason_is_emitted() -> None:
    emitted = set().union(*emitted_reasons().values())
    # Condition types and the agent's VIP-group roles appear in the tables too; they are not reasons.
    not_reasons = {"Accepted", "Conflict", "Programmed", "Ready", "Degraded", "Resolved"} - emitted
    stale = sorted(documented_reasons() - emitted - not_reasons)
    assert not stale, f"docs/troubleshooting.md explains reasons nothing emits any more: {stale}"
