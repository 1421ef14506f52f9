"""The Argo CD health check in deploy/controller/README.md, run as Argo CD runs it (Lua 5.1, the object as
the global ``obj``), read from the README itself so the doc cannot drift from this test."""

from __future__ import annotations

import textwrap
from pathlib import Path
from typing import Any

from lupa import lua51

README = Path(__file__).resolve().parents[3] / "deploy" / "controller" / "README.md"
KEY = "resource.customizations.health.lvs.io_VirtualService: |"


def script() -> str:
    text = README.read_text()
    start = text.index(KEY) + len(KEY)
    return textwrap.dedent(text[start : text.index("```", start)]).strip("\n")


def to_lua(runtime: Any, value: Any) -> Any:
    if isinstance(value, dict):
        return runtime.table_from({key: to_lua(runtime, item) for key, item in value.items()})
    if isinstance(value, list):
        return runtime.table_from([to_lua(runtime, item) for item in value])
    return value


def assess(obj: dict[str, Any]) -> tuple[str, str]:
    runtime = lua51.LuaRuntime(unpack_returned_tuples=True)
    runtime.globals().obj = to_lua(runtime, obj)
    result = runtime.execute(script())
    return str(result["status"]), str(result["message"])


def vs(generation: int = 2, observed: int | None = 2, **conditions: tuple[str, str]) -> dict[str, Any]:
    obj: dict[str, Any] = {"metadata": {"name": "web", "generation": generation}}
    if observed is not None:
        obj["status"] = {
            "observedGeneration": observed,
            "conditions": [
                {"type": kind, "status": status, "reason": reason, "message": f"{kind}: {reason}"}
                for kind, (status, reason) in conditions.items()
            ],
        }
    return obj


def test_no_status_or_old_generation_is_progressing() -> None:
    assert assess(vs(observed=None))[0] == "Progressing"
    status, message = assess(vs(generation=3, observed=2, Ready=("True", "Ready")))
    assert status == "Progressing"
    assert "3" in message


def test_rejected_spec_is_degraded_with_the_reason() -> None:
    status, message = assess(vs(Accepted=("False", "VIPNotInPool"), Ready=("False", "SpecRejected")))
    assert status == "Degraded"
    assert message.startswith("VIPNotInPool")


def test_ready_is_healthy_and_mentions_degradation() -> None:
    assert assess(vs(Accepted=("True", "Accepted"), Ready=("True", "Ready")))[0] == "Healthy"
    status, message = assess(
        vs(Accepted=("True", "Accepted"), Ready=("True", "Ready"), Degraded=("True", "MembersUnhealthy"))
    )
    assert status == "Healthy"
    assert "MembersUnhealthy" in message


def test_accepted_but_not_ready_is_progressing_with_why() -> None:
    status, message = assess(vs(Accepted=("True", "Accepted"), Ready=("False", "NotProgrammed")))
    assert status == "Progressing"
    assert message.startswith("NotProgrammed")
