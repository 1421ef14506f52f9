"""The Argo CD health check of docs/install.md never fails as a script: Argo CD shows a Lua error as health
"Unknown". Conditions carry `reason` and `message` by convention, but an object written by another tool (or
an older controller) may lack them; the script must still answer. Run under Lua 5.1, as Argo CD does."""

from __future__ import annotations

import itertools

import pytest
from argocd_lua import assess

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
    assert assess(obj)[0] == verdict
