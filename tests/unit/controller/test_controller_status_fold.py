"""Folding validation and director reports into VirtualService status (kstatus-compatible)."""

from __future__ import annotations

from typing import Any

from lvs_controller.status import Evaluation, desired_status, fold_reports, status_differs
from lvs_controller.validation import Problem


def evaluation(**overrides: Any) -> Evaluation:
    values: dict[str, Any] = {
        "generation": 3,
        "problems": [],
        "conflict": None,
        "programmed_generation": 3,
        "resolved_members": 2,
        "has_fallback": False,
    }
    values.update(overrides)
    return Evaluation(**values)


def report(
    node: str, entry: dict[str, Any] | None, groups: list[dict[str, Any]] | None = None
) -> dict[str, Any]:
    return {
        "metadata": {"name": node},
        "spec": {"nodeName": node},
        "status": {"services": {"shop/web": entry} if entry else {}, "vipGroups": groups or []},
    }


def conditions(status: dict[str, Any]) -> dict[str, tuple[str, str]]:
    return {c["type"]: (c["status"], c["reason"]) for c in status["conditions"]}


def test_ready_when_programmed_active_and_healthy() -> None:
    reports = [
        report(
            "n1",
            {
                "programmed": True,
                "acceptedGeneration": 3,
                "active": True,
                "healthyMembers": 2,
                "totalMembers": 2,
            },
            [
                {
                    "name": "203.0.113.10",
                    "vips": ["203.0.113.10"],
                    "role": "Active",
                    "failovers": 2,
                    "since": "2026-01-01T00:00:05Z",
                }
            ],
        ),
        report(
            "n2",
            {
                "programmed": True,
                "acceptedGeneration": 3,
                "active": False,
                "healthyMembers": 2,
                "totalMembers": 2,
            },
            [{"name": "203.0.113.10", "vips": ["203.0.113.10"], "role": "Standby", "failovers": 1}],
        ),
    ]
    fold = fold_reports("shop/web", "203.0.113.10", "203.0.113.10", reports)
    status = desired_status(evaluation(), fold, None, now="2026-01-01T00:00:00Z")
    assert conditions(status) == {
        "Accepted": ("True", "Accepted"),
        "Conflict": ("False", "NoConflict"),
        "Programmed": ("True", "Programmed"),
        "Ready": ("True", "Ready"),
        "Stalled": ("False", "AsExpected"),
        "Reconciling": ("False", "Ready"),
        "Degraded": ("False", "AsExpected"),
    }
    assert all(c["observedGeneration"] == 3 for c in status["conditions"])
    assert status["observedGeneration"] == 3
    assert status["activeDirector"] == "n1"
    assert (status["healthyMembers"], status["totalMembers"], status["readyMembers"]) == (2, 2, "2/2")
    assert status["failoverCount"] == 2  # three activations in total: the first is not a failover
    assert status["lastFailoverTime"] == "2026-01-01T00:00:05Z"


def test_rejected_spec_is_not_ready_and_degraded_while_last_good_runs() -> None:
    problem = Problem("VIPNotInPool", "spec.vip", "192.0.2.1 is not inside any VIPPool", "pick another")
    status = desired_status(
        evaluation(problems=[problem], programmed_generation=2), fold_reports("shop/web", "v", "v", []), None
    )
    found = conditions(status)
    assert found["Accepted"] == ("False", "VIPNotInPool")
    assert found["Ready"] == ("False", "SpecRejected")
    assert found["Degraded"] == ("True", "LastGoodSpecActive")
    accepted = next(c for c in status["conditions"] if c["type"] == "Accepted")
    assert "spec.vip" in accepted["message"] and "fix:" in accepted["message"]


def test_unhealthy_members_and_fallback() -> None:
    entry = {
        "programmed": True,
        "acceptedGeneration": 3,
        "active": True,
        "healthyMembers": 0,
        "totalMembers": 2,
    }
    fold = fold_reports("shop/web", "v", "v", [report("n1", entry)])
    assert conditions(desired_status(evaluation(), fold, None))["Ready"] == ("False", "NoHealthyMembers")
    with_fallback = desired_status(evaluation(has_fallback=True), fold, None)
    assert conditions(with_fallback)["Ready"] == ("True", "Ready")
    assert conditions(with_fallback)["Degraded"] == ("True", "FallbackActive")


def test_old_generation_programmed_is_not_programmed() -> None:
    entry = {
        "programmed": True,
        "acceptedGeneration": 2,
        "active": True,
        "healthyMembers": 1,
        "totalMembers": 1,
    }
    fold = fold_reports("shop/web", "v", "v", [report("n1", entry)])
    assert conditions(desired_status(evaluation(), fold, None))["Programmed"][0] == "False"


def test_unchanged_inputs_fold_to_the_same_status_and_keep_transition_times() -> None:
    fold = fold_reports("shop/web", "v", "v", [])
    first = desired_status(evaluation(), fold, None, now="2026-01-01T00:00:00Z")
    second = desired_status(evaluation(), fold, first, now="2026-01-02T00:00:00Z")
    assert not status_differs(second, first)
    changed = desired_status(
        evaluation(problems=[Problem("PoolNotFound", "spec.poolRef.name", "x", "y")]),
        fold,
        first,
        now="2026-01-03T00:00:00Z",
    )
    assert status_differs(changed, first)
    times = {c["type"]: c["lastTransitionTime"] for c in changed["conditions"]}
    assert times["Accepted"] == "2026-01-03T00:00:00Z"
    assert times["Conflict"] == "2026-01-01T00:00:00Z"


def test_pool_and_vip_pool_status() -> None:
    from controller_fixtures import pool, vip_pool, world_with
    from lvs_controller.pool_status import pool_status, pool_status_differs, vip_pool_status
    from lvs_controller.world import Kind

    world, _ = world_with()
    status = pool_status(
        ("shop", "web"), pool(), [("shop", "b"), ("shop", "a"), ("other", "x")], world, now="t0"
    )
    assert status["usedBy"] == ["a", "b"]
    assert status["resolvedMembers"] == 2
    assert {c["type"]: c["status"] for c in status["conditions"]} == {"Accepted": "True", "Resolved": "True"}
    again = pool_status(
        ("shop", "web"), {**pool(), "status": status}, [("shop", "a"), ("shop", "b")], world, "t1"
    )
    assert not pool_status_differs(again, status)
    empty = pool_status(("shop", "web"), pool(members=[{"address": "2001:db8::1"}]), [], world, now="t2")
    assert empty["resolvedMembers"] == 1  # no user: the static members' family
    broken = pool_status(("shop", "web"), pool(members=[], selector=None), [], world, now="t3")
    assert broken["conditions"][0]["reason"] == "InvalidSpec"

    resolved = {
        "kind": "ResolvedService",
        "metadata": {"name": "a", "namespace": "shop", "resourceVersion": "1"},
        "spec": {"service": {"vip": "203.0.113.10"}},
    }
    outside = {
        "kind": "ResolvedService",
        "metadata": {"name": "b", "namespace": "shop", "resourceVersion": "1"},
        "spec": {"service": {"vip": "192.0.2.1"}},
    }
    world.apply_event(Kind.RESOLVED_SERVICE, "ADDED", resolved)
    world.apply_event(Kind.RESOLVED_SERVICE, "ADDED", outside)
    assert vip_pool_status(vip_pool(), world, now="t4")["claimedAddresses"] == 1


def test_a_dead_directors_stale_report_does_not_hide_the_takeover() -> None:
    # "a" died while active (its report still says so); "b" took the VIP later: b is the active director.
    def active_on(node: str, since: str, failovers: int) -> dict[str, Any]:
        entry = {"programmed": True, "acceptedGeneration": 3, "active": True, "healthyMembers": 2,
                 "totalMembers": 2}
        group = {"name": "g", "vips": ["203.0.113.10"], "role": "Active", "failovers": failovers,
                 "since": since}
        return report(node, entry, [group])

    reports = [active_on("a", "2026-01-01T00:00:05Z", 1), active_on("b", "2026-01-01T00:09:00Z", 1)]
    fold = fold_reports("shop/web", "203.0.113.10", "g", reports)
    status = desired_status(evaluation(), fold, None, now="2026-01-01T00:10:00Z")
    assert status["activeDirector"] == "b"
    assert conditions(status)["Degraded"] == ("True", "MultipleActiveDirectors")
    assert status["lastFailoverTime"] == "2026-01-01T00:09:00Z"


def test_without_since_the_freshest_report_names_the_active_director() -> None:
    # Agents may leave `since` out: the survivor's report is written after the dead director's last one.
    def active_on(node: str, heartbeat: str) -> dict[str, Any]:
        entry = {"programmed": True, "acceptedGeneration": 3, "active": True, "healthyMembers": 2,
                 "totalMembers": 2}
        body = report(node, entry, [{"name": "g", "vips": ["203.0.113.10"], "role": "Active"}])
        body["status"]["heartbeatTime"] = heartbeat
        return body

    reports = [active_on("a", "2026-01-01T00:00:05.5Z"), active_on("b", "2026-01-01T00:00:05Z")]
    assert fold_reports("shop/web", "203.0.113.10", "g", reports).active == ["a", "b"]
    reports = [active_on("a", "2026-01-01T00:00:05Z"), active_on("b", "2026-01-01T00:00:06.25Z")]
    status = desired_status(evaluation(), fold_reports("shop/web", "203.0.113.10", "g", reports), None)
    assert status["activeDirector"] == "b"


def kstatus(status: dict[str, Any], generation: int = 3) -> str:
    """What cli-utils' kstatus computes for a custom resource (Flux, Argo CD's gitops-engine): it reads
    observedGeneration and the abnormal-true Reconciling/Stalled conditions only, never Ready."""
    if status.get("observedGeneration") != generation:
        return "InProgress"
    found = {c["type"]: c["status"] for c in status["conditions"]}
    if found.get("Reconciling") == "True":
        return "InProgress"
    if found.get("Stalled") == "True":
        return "Failed"
    return "Current"


def test_kstatus_follows_ready_rejection_and_progress() -> None:
    ready_report = report(
        "n1",
        {"programmed": True, "acceptedGeneration": 3, "active": True, "healthyMembers": 2, "totalMembers": 2},
        [{"name": "203.0.113.10", "vips": ["203.0.113.10"], "role": "Active", "failovers": 1}],
    )
    ready = desired_status(evaluation(), fold_reports("shop/web", "203.0.113.10", "203.0.113.10",
                                                      [ready_report]), None)
    assert conditions(ready)["Ready"][0] == "True"
    assert kstatus(ready) == "Current"

    pending = desired_status(evaluation(), fold_reports("shop/web", "203.0.113.10", "203.0.113.10", []), None)
    assert conditions(pending)["Ready"] == ("False", "NotProgrammed")
    assert conditions(pending)["Reconciling"] == ("True", "NotProgrammed")
    assert kstatus(pending) == "InProgress"

    problem = Problem("VIPNotInPool", "spec.vip", "192.0.2.1 is not inside any VIPPool", "pick another")
    rejected = desired_status(evaluation(problems=[problem]), fold_reports(
        "shop/web", "203.0.113.10", "203.0.113.10", [ready_report]), None)
    assert conditions(rejected)["Stalled"] == ("True", "SpecRejected")
    assert "spec.vip" in next(c["message"] for c in rejected["conditions"] if c["type"] == "Stalled")
    assert conditions(rejected)["Reconciling"][0] == "False"
    assert kstatus(rejected) == "Failed"


def active_report(node: str, since: str, heartbeat: str) -> dict[str, Any]:
    body = report(
        node,
        {"programmed": True, "acceptedGeneration": 3, "active": True, "healthyMembers": 2, "totalMembers": 2},
        [{"name": "203.0.113.10", "vips": ["203.0.113.10"], "role": "Active", "failovers": 1,
          "since": since}],
    )
    body["status"]["heartbeatTime"] = heartbeat
    return body


def test_a_dead_directors_stale_active_claim_is_not_a_split_brain() -> None:
    dead = active_report("n1", "2026-01-01T00:00:00Z", "2026-01-01T00:01:00Z")
    alive = active_report("n2", "2026-01-01T00:02:00Z", "2026-01-01T00:06:00Z")  # 5 min of heartbeats later
    fold = fold_reports("shop/web", "203.0.113.10", "203.0.113.10", [dead, alive])
    assert fold.active == ["n2"]
    status = desired_status(evaluation(), fold, None)
    assert status["activeDirector"] == "n2"
    assert conditions(status)["Degraded"] == ("False", "AsExpected")


def test_two_directors_both_writing_active_claims_are_a_split_brain() -> None:
    one = active_report("n1", "2026-01-01T00:00:00Z", "2026-01-01T00:05:30Z")
    two = active_report("n2", "2026-01-01T00:02:00Z", "2026-01-01T00:06:00Z")
    fold = fold_reports("shop/web", "203.0.113.10", "203.0.113.10", [one, two])
    assert fold.active == ["n2", "n1"]
    status = desired_status(evaluation(), fold, None)
    assert conditions(status)["Degraded"] == ("True", "MultipleActiveDirectors")
