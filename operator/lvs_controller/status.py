"""Status folding (pure): validation outcome + ResolvedService + DirectorReports -> VirtualService status.

kstatus-compatible: ``status.observedGeneration`` and every condition's ``observedGeneration`` follow
``metadata.generation``, and ``Ready`` says whether the current generation is in effect, so
``kubectl wait --for=condition=Ready`` and Flux health checks work without custom code.
A condition's ``lastTransitionTime`` only moves when its status changes, so an unchanged situation folds
to a byte-identical status and causes no write.
"""

from __future__ import annotations

import contextlib
import datetime
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from lvs_api.models import ServiceReport
from pydantic import ValidationError

from lvs_controller.validation import ConflictFinding, Problem

JsonObject = dict[str, Any]


def now_rfc3339() -> str:
    return datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


@dataclass(frozen=True)
class Evaluation:
    """What the reconcile found, before looking at the directors."""

    generation: int
    problems: list[Problem]  # empty: the current spec is accepted
    conflict: ConflictFinding | None
    programmed_generation: int | None  # acceptedGeneration of the ResolvedService, None if none exists
    resolved_members: int  # members that take new connections (not draining)
    has_fallback: bool

    @property
    def accepted(self) -> bool:
        return not self.problems


@dataclass(frozen=True)
class DirectorView:
    node: str
    report: ServiceReport


@dataclass
class DirectorFold:
    """The directors' reports about one VirtualService, summarised."""

    views: list[DirectorView] = field(default_factory=list)
    # node -> times it became active for the VS's VIP group (its vipGroups[].failovers). Agents take that
    # count from the group's Lease, where each acquire by a new holder adds one under compare-and-swap,
    # so it survives agent restarts; the sum over directors is the number of activations of the group.
    node_activations: dict[str, int] = field(default_factory=dict)
    # node -> (its group's Active `since`, its report's heartbeatTime): how recent its word is
    freshness: dict[str, tuple[datetime.datetime, datetime.datetime]] = field(default_factory=dict)
    # node -> its Active group's `since` as written (kept verbatim for lastFailoverTime)
    since_text: dict[str, str] = field(default_factory=dict)

    @property
    def activations(self) -> int:
        return sum(self.node_activations.values())

    @property
    def active(self) -> list[str]:
        """Directors reporting the VIP as active, the most recent word first.

        A director that died while active cannot withdraw its report, so for a while two reports say
        active. The one that took over acquired the group's Lease later, which its `since` (the Lease's
        acquire time) says; without `since` (an older agent), the report written last comes first.
        """
        nodes = sorted(view.node for view in self.views if view.report.active)
        ordered = sorted(nodes, key=lambda node: self.freshness.get(node, (_EPOCH, _EPOCH)), reverse=True)
        if len(ordered) < 2:
            return ordered
        # A claim superseded by a later activation (a newer `since`) whose director has kept writing its
        # report for STALE_CLAIM since this one's last write is a dead director's last word (a crashed node,
        # a removed agent), not a split brain: both sides of a real one keep writing. Judged between the
        # reports, not against the clock, so folding stays pure.
        words = {node: self.freshness.get(node, (_EPOCH, _EPOCH)) for node in ordered}

        def superseded(node: str) -> bool:
            since, heartbeat = words[node]
            return any(
                other_since > since and other_heartbeat - heartbeat > STALE_CLAIM
                for other_since, other_heartbeat in words.values()
            )

        return [node for node in ordered if not superseded(node)]

    @property
    def active_since(self) -> str | None:
        """`since` of the active director's group: when it took the VIP."""
        active = self.active
        return self.since_text.get(active[0]) if active else None


_EPOCH = datetime.datetime.min.replace(tzinfo=datetime.UTC)
# three of the agents' DirectorReport heartbeats (60 s): a report this much behind another is a dead one's
STALE_CLAIM = datetime.timedelta(seconds=180)


def _timestamp(value: Any) -> datetime.datetime:
    try:
        parsed = datetime.datetime.fromisoformat(str(value))
    except ValueError:
        return _EPOCH
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=datetime.UTC)


def report_node(report: Mapping[str, Any]) -> str:
    spec = report.get("spec") or {}
    return str(spec.get("nodeName") or (report.get("metadata") or {}).get("name") or "")


def _group_of(status: Mapping[str, Any], vip: str, vip_group: str) -> Mapping[str, Any] | None:
    """The report's entry for the VS's VIP group: by name, else the group that holds its VIP."""
    groups = [group for group in status.get("vipGroups") or [] if isinstance(group, dict)]
    named = [group for group in groups if group.get("name") == vip_group]
    holding = [group for group in groups if vip in (group.get("vips") or [])]
    found = named or holding
    return found[0] if found else None


def fold_reports(
    service_key: str, vip: str, vip_group: str, reports: Iterable[Mapping[str, Any]]
) -> DirectorFold:
    """Collect each director's entry for ``service_key`` ("namespace/name") and its VIP group's failovers."""
    fold = DirectorFold()
    for report in reports:
        status = report.get("status") or {}
        node = report_node(report)
        entry = (status.get("services") or {}).get(service_key)
        if isinstance(entry, dict):
            with contextlib.suppress(ValidationError):
                fold.views.append(DirectorView(node, ServiceReport.model_validate(entry)))
        group = _group_of(status, vip, vip_group)
        if group is None:
            continue
        with contextlib.suppress(TypeError, ValueError):
            fold.node_activations[node] = max(0, int(group.get("failovers") or 0))
        if group.get("role") == "Active":
            fold.freshness[node] = (_timestamp(group.get("since")), _timestamp(status.get("heartbeatTime")))
            if group.get("since"):
                fold.since_text[node] = str(group["since"])
    fold.views.sort(key=lambda view: view.node)
    return fold


def _failovers(fold: DirectorFold, previous_status: Mapping[str, Any]) -> tuple[int, str | None]:
    """``failoverCount`` and ``lastFailoverTime``.

    The count is the group's activations minus the first one, summed from the directors' Lease-backed
    counts (see DirectorFold.node_activations) rather than counted by the controller: a controller
    restart folds the same reports to the same number, an agent restart keeps its count, and a dead
    director's last report still holds its share. It never goes below the count already in the status,
    so a DirectorReport that disappears (a node removed) does not undo failovers that happened. The
    time is the active director's `since` once there has been a failover (the latest activation is the
    latest failover); it only moves forward.
    """
    previous_count = previous_status.get("failoverCount")
    previous_time = previous_status.get("lastFailoverTime")
    count = max(0, fold.activations - 1)
    with contextlib.suppress(TypeError, ValueError):
        count = max(count, int(previous_count or 0))
    time = str(previous_time) if previous_time else None
    since = fold.active_since
    if count > 0 and since and (time is None or _timestamp(since) > _timestamp(time)):
        time = since
    return count, time


def _condition(  # noqa: PLR0917
    kind: str,
    status: bool,
    reason: str,
    message: str,
    generation: int,
    previous: Mapping[str, JsonObject],
    now: str,
) -> JsonObject:
    text = "True" if status else "False"
    before = previous.get(kind)
    transition = now
    if before is not None and before.get("status") == text and before.get("lastTransitionTime"):
        transition = str(before["lastTransitionTime"])
    return {
        "type": kind,
        "status": text,
        "reason": reason,
        "message": message,
        "observedGeneration": generation,
        "lastTransitionTime": transition,
    }


def desired_status(
    evaluation: Evaluation,
    fold: DirectorFold,
    previous_status: Mapping[str, Any] | None,
    now: str | None = None,
) -> JsonObject:
    """The full status the controller wants on the VirtualService."""
    now = now or now_rfc3339()
    previous_status = previous_status or {}
    previous = {str(c.get("type")): c for c in previous_status.get("conditions") or [] if isinstance(c, dict)}
    generation = evaluation.generation
    conditions: list[JsonObject] = []

    def add(kind: str, status: bool, reason: str, message: str) -> None:
        conditions.append(_condition(kind, status, reason, message, generation, previous, now))

    # Accepted / Conflict
    if evaluation.accepted:
        add("Accepted", True, "Accepted", "spec is valid and its VIP, ports and pool are available")
    else:
        first = evaluation.problems[0]
        extra = f" (and {len(evaluation.problems) - 1} more)" if len(evaluation.problems) > 1 else ""
        add("Accepted", False, first.reason, first.text() + extra)
    if evaluation.conflict is not None:
        add("Conflict", True, evaluation.conflict.problem().reason, evaluation.conflict.problem().text())
    else:
        add(
            "Conflict", False, "NoConflict",
            "no other VirtualService claims these ports, firewall mark or addresses, nor another VIP group "
            "for this VIP",
        )

    # Programmed: every director that serves it programmed the accepted generation.
    relevant = [view for view in fold.views if view.report.reason != "NotSelected"]
    target_generation = evaluation.programmed_generation
    good = [
        view
        for view in relevant
        if view.report.programmed
        and target_generation is not None
        and view.report.accepted_generation in (None, target_generation)
    ]
    failing = [view for view in relevant if view not in good]
    programmed = False
    if target_generation is None:
        add("Programmed", False, "NotAccepted", "nothing is programmed until a spec is accepted")
    elif not relevant:
        add("Programmed", False, "Pending", "no director has reported this service yet")
    elif not good:
        view = failing[0]
        reason = (
            view.report.reason if view.report.reason and view.report.reason != "Programmed" else "Pending"
        )
        detail = view.report.message or f"generation {target_generation} not programmed yet"
        add("Programmed", False, reason, f"director {view.node}: {detail}")
    else:
        programmed = True
        add("Programmed", True, "Programmed", f"programmed on {', '.join(view.node for view in good)}")

    # Members and the active director.
    active = fold.active
    source = next((view for view in good if view.report.active), None) or (good[0] if good else None)
    healthy = source.report.healthy_members if source else 0
    total = source.report.total_members if source else evaluation.resolved_members

    current_generation_in_effect = evaluation.accepted and target_generation == generation
    if not evaluation.accepted:
        ready = (False, "SpecRejected", "the current spec is not accepted (see the Accepted condition)")
    elif not current_generation_in_effect:
        ready = (False, "Pending", "the accepted spec has not been published yet")
    elif not programmed:
        ready = (False, "NotProgrammed", "no director has programmed this service yet")
    elif not active:
        ready = (False, "NoActiveDirector", "no director holds the VIP")
    elif healthy == 0 and not evaluation.has_fallback:
        ready = (False, "NoHealthyMembers", f"0 of {total} members pass their health check")
    else:
        ready = (True, "Ready", f"active on {active[0]}, {healthy}/{total} members healthy")
    add("Ready", *ready)
    # kstatus (Flux, Argo CD's gitops-engine, `kubectl wait` scripts built on cli-utils) reads only these two
    # abnormal-true conditions besides observedGeneration: Stalled = it will not get ready without a spec
    # change, Reconciling = it is on its way. They restate Accepted and Ready; they never disagree with them.
    stalled = not evaluation.accepted
    if stalled:
        add("Stalled", True, ready[1], conditions[0]["message"])
    else:
        add("Stalled", False, "AsExpected", "the spec is accepted")
    if stalled:
        add("Reconciling", False, "SpecRejected", "nothing will change until the spec is fixed")
    elif ready[0]:
        add("Reconciling", False, "Ready", "nothing in progress")
    else:
        add("Reconciling", True, ready[1], ready[2])

    degraded: list[tuple[str, str]] = []
    if not evaluation.accepted and target_generation is not None:
        degraded.append(
            ("LastGoodSpecActive", f"generation {target_generation} stays programmed until the spec is fixed")
        )
    if failing and good:
        degraded.append(
            (
                "ProgrammingFailed",
                f"director {failing[0].node}: {failing[0].report.message or failing[0].report.reason}",
            )
        )
    if len(active) > 1:
        degraded.append(
            ("MultipleActiveDirectors", f"directors {', '.join(active)} all report the VIP as active")
        )
    if programmed and healthy == 0 and evaluation.has_fallback and total > 0:
        degraded.append(("FallbackActive", "no member is healthy; the fallback servers take the traffic"))
    elif programmed and healthy < total:
        degraded.append(("MembersUnhealthy", f"{total - healthy} of {total} members fail their health check"))
    if degraded:
        add("Degraded", True, degraded[0][0], "; ".join(message for _, message in degraded))
    else:
        add("Degraded", False, "AsExpected", "no known problem")

    failovers, last_failover = _failovers(fold, previous_status)
    status: JsonObject = {
        "observedGeneration": generation,
        "conditions": conditions,
        "activeDirector": active[0] if active else None,
        "healthyMembers": healthy,
        "totalMembers": total,
        "readyMembers": f"{healthy}/{total}",
        "failoverCount": failovers,
        "lastFailoverTime": last_failover,
    }
    return status


STATUS_FIELDS = (
    "observedGeneration",
    "conditions",
    "activeDirector",
    "healthyMembers",
    "totalMembers",
    "readyMembers",
    "failoverCount",
    "lastFailoverTime",
)


def status_differs(desired: Mapping[str, Any], current: Mapping[str, Any] | None) -> bool:
    current = current or {}
    return any(desired.get(name) != current.get(name) for name in STATUS_FIELDS)
