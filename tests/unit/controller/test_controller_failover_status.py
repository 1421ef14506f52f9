"""activeDirector, failoverCount and lastFailoverTime folded from DirectorReports through a director's
life: first activation, failover, failback, a dead director's stale report, a controller restart, an
agent restart and a report that disappears. Each step folds with the previous step's status, as the
controller does (it reads the status back from the VirtualService)."""

from __future__ import annotations

from typing import Any

from lvs_controller.status import Evaluation, desired_status, fold_reports, status_differs

VIP = "203.0.113.10"
T0, T1, T2 = "2026-01-01T00:00:05.100000Z", "2026-01-01T00:09:00.200000Z", "2026-01-01T01:00:00.300000Z"
LATE_HEARTBEAT = "2026-01-01T02:00:00Z"


def evaluation() -> Evaluation:
    return Evaluation(generation=1, problems=[], conflict=None, programmed_generation=1, resolved_members=2,
                      has_fallback=False)


def report(node: str, role: str, failovers: int, since: str | None,
           heartbeat: str = "2026-01-01T00:00:00Z") -> dict[str, Any]:
    """A director's report as an agent writes it: the service entry and its VIP group."""
    entry = {"programmed": True, "reason": "Programmed", "acceptedGeneration": 1, "active": role == "Active",
             "healthyMembers": 2, "totalMembers": 2}
    group: dict[str, Any] = {"name": VIP, "vips": [VIP], "role": role, "failovers": failovers,
                             "leaseName": "lvs-vip-x"}
    if since is not None:
        group["since"] = since
    return {"metadata": {"name": node}, "spec": {"nodeName": node},
            "status": {"heartbeatTime": heartbeat, "services": {"shop/web": entry}, "vipGroups": [group]}}


def fold(reports: list[dict[str, Any]], previous: dict[str, Any] | None) -> dict[str, Any]:
    return desired_status(evaluation(), fold_reports("shop/web", VIP, VIP, reports), previous,
                          now="2026-01-01T03:00:00Z")


def failover_fields(status: dict[str, Any]) -> tuple[Any, Any, Any]:
    return status["activeDirector"], status["failoverCount"], status["lastFailoverTime"]


def test_first_activation_is_not_a_failover() -> None:
    status = fold([report("a", "Active", 1, T0), report("b", "Standby", 0, T0)], None)
    assert failover_fields(status) == ("a", 0, None)


def test_failover_then_failback_with_the_dead_directors_report_still_active() -> None:
    first = fold([report("a", "Active", 1, T0), report("b", "Standby", 0, T0)], None)
    # a dies: its last report still says Active, written *after* b's (a's heartbeat is the latest); b took
    # the Lease later, which its since says
    dead_a = report("a", "Active", 1, T0, heartbeat=LATE_HEARTBEAT)
    failover = fold([dead_a, report("b", "Active", 1, T1)], first)
    assert failover_fields(failover) == ("b", 1, T1)
    # a comes back as standby, then b dies and a takes the VIP back
    back = fold([report("a", "Standby", 1, T1), report("b", "Active", 1, T1)], failover)
    assert failover_fields(back) == ("b", 1, T1)
    failback = fold([report("a", "Active", 2, T2), report("b", "Active", 1, T1, heartbeat=LATE_HEARTBEAT)],
                    back)
    assert failover_fields(failback) == ("a", 2, T2)


def test_a_controller_restart_folds_the_same_status_and_bumps_nothing() -> None:
    reports = [report("a", "Active", 1, T0), report("b", "Active", 1, T1)]
    before = fold(reports, None)  # a controller with no status yet (a fresh VirtualService or lost status)
    assert failover_fields(before) == ("b", 1, T1)
    after_restart = fold(reports, before)  # the restarted controller reads the status back
    assert not status_differs(after_restart, before)
    assert failover_fields(fold(reports, after_restart)) == ("b", 1, T1)


def test_an_agent_restart_that_keeps_the_role_changes_nothing() -> None:
    # the restarted agent reports the same since and count (both come from the Lease), a later heartbeat
    before = fold([report("a", "Active", 1, T0), report("b", "Standby", 0, T0)], None)
    restarted = fold([report("a", "Active", 1, T0, heartbeat=LATE_HEARTBEAT), report("b", "Standby", 0, T0)],
                     before)
    assert not status_differs(restarted, before)
    assert failover_fields(restarted) == ("a", 0, None)


def test_the_count_never_goes_back_when_a_report_disappears() -> None:
    failback = fold([report("a", "Active", 2, T2), report("b", "Standby", 1, T2)], None)
    assert failover_fields(failback) == ("a", 2, T2)
    # b's node is removed with its DirectorReport: its activation happened all the same
    assert failover_fields(fold([report("a", "Active", 2, T2)], failback)) == ("a", 2, T2)


def test_no_active_director_keeps_count_and_time() -> None:
    failover = fold([report("a", "Active", 1, T0), report("b", "Active", 1, T1)], None)
    nobody = fold([report("a", "Standby", 1, T1), report("b", "Standby", 1, T1)], failover)
    assert failover_fields(nobody) == (None, 1, T1)
    assert failover_fields(fold([report("a", "Standby", 1, T1), report("b", "Active", 1, T1)], nobody)) == (
        "b", 1, T1)


def test_the_failover_time_only_moves_forward() -> None:
    previous = {"failoverCount": 3, "lastFailoverTime": T2}
    # a report set that names an older activation (a stale pair, clocks apart): the recorded time stays
    assert failover_fields(fold([report("a", "Active", 1, T0), report("b", "Active", 1, T1)], previous)) == (
        "b", 3, T2)


def test_reports_without_since_still_name_the_survivor_and_count() -> None:
    # agents from before `since` was filled: the freshest report wins, the count still folds
    dead = report("a", "Active", 1, None, heartbeat="2026-01-01T00:00:05Z")
    survivor = report("b", "Active", 1, None, heartbeat="2026-01-01T00:00:06Z")
    assert failover_fields(fold([dead, survivor], None)) == ("b", 1, None)
