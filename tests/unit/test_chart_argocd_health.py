"""The Argo CD health check that docs/install.md tells users to paste into argocd-cm, run as Argo CD runs it
(see argocd_lua): what it says for each state of a VirtualService."""

from __future__ import annotations

from typing import Any

import pytest
from argocd_lua import assess


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
