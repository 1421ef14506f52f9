"""The Argo CD health check of docs/install.md never fails as a script: Argo CD shows a Lua error as health
"Unknown". Conditions carry `reason` and `message` by convention, but an object written by another tool (or
an older controller) may lack them; the script must still answer. Run under Lua 5.1, as Argo CD does."""

from __future__ import annotations

import itertools
import textwrap
from pathlib import Path
from typing import Any

import pytest
from lupa import lua51

DOC = Path(__file__).resolve().parents[2] / "docs" / "install.md"
KEY = "resource.customizations.health.lvs.io_VirtualService: |"


def health(obj: dict[str, Any]) -> tuple[str, str]:
    text = DOC.read_text()
    start = text.index(KEY) + len(KEY)
    script = textwrap.dedent(text[start : text.index("```", start)]).strip("\n")
    runtime = lua51.LuaRuntime(unpack_returned_tuples=True)

    def to_lua(value: Any) -> Any:
        if isinstance(value, dict):
            return runtime.table_from({key: to_lua(item) for key, item in value.items()})
        if isinstance(value, list):
            return runtime.table_from([to_lua(item) for item in value])
        return value

    runtime.globals().obj = to_lua(obj)
    result = runtime.execute(script)
    return str(result["status"]), str(result["message"])


CASES = [
    ("Accepted", "False", "Degraded"),
    ("Conflict", "True", "Degraded"),
    ("Ready", "True", "Healthy"),
    ("Ready", "False", "Progressing"),
]


@pytest.mark.parametrize(
    ("case", "dropped"),
    list(itertools.product(CASES, [("reason",), ("message",), ("reason", "message")])),
)
def test_a_condition_without_reason_or_message_still_gets_a_verdict(
    case: tuple[str, str, str], dropped: tuple[str, ...]
) -> None:
    kind, status, verdict = case
    condition = {"type": kind, "status": status, "reason": "SomeReason", "message": "some message"}
    for field in dropped:
        del condition[field]
    obj = {
        "metadata": {"name": "web", "namespace": "shop", "generation": 4},
        "status": {"observedGeneration": 4, "conditions": [condition]},
    }
    assert health(obj)[0] == verdict
