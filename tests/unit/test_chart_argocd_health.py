"""The Argo CD health check that docs/install.md tells users to paste into argocd-cm, run as Argo CD runs it:
a Lua 5.1 chunk (Argo CD embeds gopher-lua, a Lua 5.1) with the object as the global ``obj``, returning
``{status, message}``. The snippet is read from the document itself, so the doc cannot drift from this test.
"""

from __future__ import annotations

import textwrap
from pathlib import Path
from typing import Any

import pytest
from lupa import lua51

DOC = Path(__file__).resolve().parents[2] / "docs" / "install.md"
KEY = "resource.customizations.health.lvs.io_VirtualService: |"


def health_script() -> str:
    text = DOC.read_text()
    start = text.index(KEY) + len(KEY)
    end = text.index("```", start)
    return textwrap.dedent(text[start:end]).strip("\n")


def to_lua(runtime: Any, value: Any) -> Any:
    """JSON-shaped Python data as Lua tables (lists 1-indexed), like Argo CD's object conversion."""
    if isinstance(value, dict):
        return runtime.table_from({key: to_lua(runtime, item) for key, item in value.items()})
    if isinstance(value, list):
        return runtime.table_from([to_lua(runtime, item) for item in value])
    return value


def assess(obj: dict[str, Any]) -> tuple[str, str]:
    runtime = lua51.LuaRuntime(unpack_returned_tuples=True)
    runtime.globals().obj = to_lua(runtime, obj)
    result = runtime.execute(health_script())
    return str(result["status"]), str(result["message"])


def virtual_service(
    generation: int = 2, observed: int | None = 2, **conditions: tuple[str, str]
) -> dict[str, Any]:
    obj: dict[str, Any] = {
        "apiVersion": "lvs.io/v1alpha1",
        "kind": "VirtualService",
        "metadata": {"name": "web", "namespace": "shop", "generation": generation},
    }
    if observed is not None:
        obj["status"] = {
            "observedGeneration": observed,
            "conditions": [
                {
                    "type": kind,
                    "status": status,
                    "reason": reason,
                    "message": f"{kind} says {reason}",
                    "observedGeneration": observed,
                }
                for kind, (status, reason) in conditions.items()
            ],
        }
    return obj


READY = {
    "Accepted": ("True", "Accepted"),
    "Conflict": ("False", "NoConflict"),
    "Programmed": ("True", "Programmed"),
    "Ready": ("True", "Ready"),
    "Degraded": ("False", "AsExpected"),
}


def test_ready_and_current_is_healthy() -> None:
    assert assess(virtual_service(**READY)) == ("Healthy", "Ready says Ready")


def test_no_status_yet_is_progressing() -> None:
    status, message = assess(virtual_service(observed=None))
    assert status == "Progressing"
    assert "controller" in message


def test_old_generation_is_progressing_even_if_it_was_ready() -> None:
    status, message = assess(virtual_service(generation=3, observed=2, **READY))
    assert (status, message) == ("Progressing", "generation 3 not observed yet")


@pytest.mark.parametrize(
    ("condition", "value"),
    [("Accepted", ("False", "VIPNotInPool")), ("Conflict", ("True", "PortConflict"))],
)
def test_rejection_and_conflict_are_degraded_with_the_reason(condition: str, value: tuple[str, str]) -> None:
    conditions = {**READY, condition: value, "Ready": ("False", "SpecRejected")}
    assert assess(virtual_service(**conditions)) == ("Degraded", f"{value[1]}: {condition} says {value[1]}")


def test_not_ready_yet_is_progressing_with_the_reason() -> None:
    conditions = {**READY, "Programmed": ("False", "Pending"), "Ready": ("False", "NotProgrammed")}
    assert assess(virtual_service(**conditions)) == ("Progressing", "NotProgrammed: Ready says NotProgrammed")


def test_degraded_members_but_serving_stays_healthy() -> None:
    conditions = {**READY, "Degraded": ("True", "MembersDown")}
    assert assess(virtual_service(**conditions))[0] == "Healthy"
