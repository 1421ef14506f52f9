"""The node's ``DirectorReport``: built from the last reconcile pass, failover state, health and IPVS
counters, and written through lvs_kube by one writer (this agent), batched and rate-limited.

Member counts (:class:`MemberTally`): ``totalMembers`` is every resolved member of the service and
``healthyMembers`` the members whose health check has passed (a healthy verdict, as last reported by the
rate-limited :class:`~lvs_agent.health.report.HealthReporter`). A member whose first verdict is pending,
or whose check cannot run (an Exec check refused), is not counted healthy, although the kernel sends it
traffic meanwhile (unknown is healthy for programming): ``readyMembers`` says what the checks have
confirmed. Services without a check (``healthCheck.type: None``) count every member that the reconcile
did not take out.

The writer keeps only the latest report; it writes at most once per ``min_interval`` (default 2 s), only
when the content changed (the timestamp aside), and at least every ``heartbeat_interval`` (60 s) so the
controller can tell a live agent from a dead one. Failed writes are retried with backoff; the data path
never waits for them.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime
import logging
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from typing import Any, NamedTuple, Protocol

import aiohttp
from lvs_api.compiler import check_target
from lvs_api.ipvs import ServiceKey
from lvs_api.models import (
    CheckType,
    DirectorReportStatus,
    IPVSStats,
    MemberHealth,
    ResolvedService,
    ServiceReport,
    VIPGroupReport,
    VIPGroupRole,
)
from lvs_kube.client import KubeClient
from lvs_kube.errors import ApiError, Conflict
from lvs_kube.resources import DIRECTOR_REPORT

from lvs_agent.failover.lease import lease_name
from lvs_agent.failover.machine import Role
from lvs_agent.failover.runner import GroupStatus
from lvs_agent.health.convert import member_label
from lvs_agent.health.report import MemberReport
from lvs_agent.health.state import Health
from lvs_agent.netlink.kernel import StatsTable
from lvs_agent.reconcile import PassResult

logger = logging.getLogger("lvs_agent.report")

AGENT_VERSION = "0.1.0"
FIELD_MANAGER = "lvs-agent"  # the one writer of a DirectorReport's status
MAX_ERRORS = 16
MAX_MEMBERS_LISTED = 64
NOT_YET_CHECKED = "NotYetChecked"


class MemberCount(NamedTuple):
    healthy: int  # members whose check passed (a healthy verdict)
    total: int  # every resolved member of the service
    unchecked: list[MemberHealth]  # check targets without a verdict (the first 64), for the member list


class MemberTally:
    """Counts each service's members for its ``ServiceReport`` (see the module docstring).

    ``sync(services)`` before each reconcile pass (the ResolvedServices this node serves; a service whose
    object did not change is not looked at again), and the reported verdicts through :meth:`forwarding`
    (wrapped around the publisher of the :class:`~lvs_agent.health.report.HealthReporter`), so that the
    counts change at the reporter's pace: a flapping member does not rewrite the report every second.
    """

    def __init__(self) -> None:
        self._seen: dict[str, ResolvedService] = {}
        # per service, the check target of each resolved member (None: the service has no check)
        self._targets: dict[str, tuple[str, ...] | None] = {}
        self._verdicts: dict[str, dict[str, tuple[Health, str]]] = {}  # service -> member -> (verdict, why)

    def sync(self, services: Mapping[str, ResolvedService]) -> None:
        for key in [key for key in self._seen if key not in services]:
            del self._seen[key]
            self._targets.pop(key, None)
        for key, resolved in services.items():
            if self._seen.get(key) is resolved:
                continue
            self._seen[key] = resolved
            spec = resolved.spec.service
            if spec.health_check.type is CheckType.NONE:
                self._targets[key] = None
                continue
            members = resolved.spec.members
            self._targets[key] = tuple(member_label(*check_target(spec, member)) for member in members)

    def record(self, batch: Iterable[MemberReport]) -> None:
        for report in batch:
            verdicts = self._verdicts.setdefault(report.service, {})
            if report.removed:
                verdicts.pop(report.member, None)
                if not verdicts:
                    del self._verdicts[report.service]
            else:
                verdicts[report.member] = (report.healthy, report.reason)

    def forwarding(
        self, publish: Callable[[list[MemberReport]], Awaitable[None]]
    ) -> Callable[[list[MemberReport]], Awaitable[None]]:
        """A publisher that records the batch here, then hands it to ``publish``."""

        async def record_and_publish(batch: list[MemberReport]) -> None:
            self.record(batch)
            await publish(batch)

        return record_and_publish

    def count(self, key: str) -> MemberCount | None:
        """The counts of ``key``; ``None`` when it has no check or was not synced (the reconcile's count
        stands)."""
        targets = self._targets.get(key)
        if targets is None:
            return None
        verdicts = self._verdicts.get(key, {})
        healthy = sum(1 for target in targets if verdicts.get(target, (None, ""))[0] is True)
        unchecked: list[MemberHealth] = []
        for target in dict.fromkeys(targets):
            verdict, reason = verdicts.get(target, (None, ""))
            if verdict is None and len(unchecked) < MAX_MEMBERS_LISTED:  # pending, or a check that cannot run
                address, _, port = target.rpartition(":")
                unchecked.append(MemberHealth(address=address.strip("[]"), port=int(port), healthy=True,
                                              reason=(reason or NOT_YET_CHECKED)[:256]))
        return MemberCount(healthy, len(targets), unchecked)


def _stats_for(keys: frozenset[ServiceKey], stats: StatsTable | None) -> IPVSStats | None:
    if stats is None:
        return None
    found = [stats[key].counters for key in keys if key in stats]
    return IPVSStats(
        connections=sum(counters.conns for counters in found),
        in_packets=sum(counters.inpkts for counters in found),
        out_packets=sum(counters.outpkts for counters in found),
        in_bytes=sum(counters.inbytes for counters in found),
        out_bytes=sum(counters.outbytes for counters in found),
    )


def build_status(
    result: PassResult,
    *,
    groups: Mapping[str, GroupStatus] | None = None,
    member_health: Mapping[str, list[MemberHealth]] | None = None,
    stats: StatsTable | None = None,
    failovers: Mapping[str, int] | None = None,
    now: datetime.datetime | None = None,
    agent_errors: Sequence[str] = (),
    member_counts: MemberTally | None = None,
) -> DirectorReportStatus:
    """The report. ``agent_errors``: problems found outside the reconcile pass (a foreign sync daemon).

    ``member_counts`` gives the honest member counts (see the module docstring); without it (or for a
    service without a check) the reconcile's counts stand, where a member without a verdict counts healthy.
    """
    groups = groups or {}
    services: dict[str, ServiceReport] = {}
    for key, outcome in sorted(result.outcomes.items()):
        health = list((member_health or {}).get(key, []))
        listed = [member for member in health if not member.healthy]
        healthy, total = outcome.healthy_members, outcome.total_members
        counted = member_counts.count(key) if member_counts is not None and outcome.programmed else None
        if counted is not None:
            healthy, total = counted.healthy, counted.total
            listed += counted.unchecked
        group = groups.get(outcome.group)
        services[key] = ServiceReport(
            programmed=outcome.programmed,
            reason=outcome.reason,
            message=outcome.message[:4096],
            accepted_generation=outcome.accepted_generation,
            active=group is not None and group.role is Role.ACTIVE,
            healthy_members=healthy,
            total_members=total,
            members=listed[:MAX_MEMBERS_LISTED],
            stats=_stats_for(outcome.keys, stats) if outcome.programmed else None,
            errors=[outcome.message[:256]] if outcome.reason == "NetlinkError" else [],
        )
    vip_groups = []
    for name, vips in sorted(result.groups.items()):
        status = groups.get(name)
        role = VIPGroupRole.UNKNOWN
        if status is not None:
            role = VIPGroupRole.ACTIVE if status.role is Role.ACTIVE else VIPGroupRole.STANDBY
        # `failovers` is the count the Lease keeps (durable across agent restarts); the caller's
        # in-memory count only stands in while the Lease has not been read
        activations = status.activations if status is not None else None
        if activations is None:
            activations = (failovers or {}).get(name, 0)
        vip_groups.append(VIPGroupReport(
            name=name, vips=sorted(vips), role=role, lease_name=lease_name(name),
            lease_holder=status.holder if status else None, failovers=activations,
            since=status.since if status is not None and role is not VIPGroupRole.UNKNOWN else None,
        ))
    errors = [result.error] if result.error else []
    errors += agent_errors
    for group_status in groups.values():
        errors += [f"VIP {vip} is on foreign interface(s) {', '.join(holders)}: not taken"
                   for vip, holders in group_status.conflicts.items()]
    return DirectorReportStatus(
        heartbeat_time=now or datetime.datetime.now(datetime.UTC),
        agent_version=AGENT_VERSION,
        services=services,
        vip_groups=vip_groups,
        ipvs_services=result.owned,
        ipvs_destinations=result.owned_dests,
        foreign_services=result.foreign,
        errors=errors[:32],
    )


def status_body(status: DirectorReportStatus) -> dict[str, Any]:
    body: dict[str, Any] = status.model_dump(mode="json", by_alias=True, exclude_none=True)
    return body


class ReportSink(Protocol):
    async def write(self, node: str, status: dict[str, Any]) -> None: ...


class KubeReportSink:
    """Creates the node's DirectorReport once, then server-side applies its status subresource.

    Apply, not a merge patch: a merge patch never removes a map key it leaves out, so a deleted
    service would stay in ``status.services`` forever (and hold the controller's finalizer). With
    apply, whatever this field manager stops naming is removed, also across agent restarts.
    """

    def __init__(self, client: KubeClient) -> None:
        self._client = client
        self._exists = False

    async def write(self, node: str, status: dict[str, Any]) -> None:
        if not self._exists:
            body = {"apiVersion": "lvs.io/v1alpha1", "kind": "DirectorReport",
                    "metadata": {"name": node}, "spec": {"nodeName": node}}
            with contextlib.suppress(Conflict):  # already there (409 AlreadyExists)
                await self._client.create(DIRECTOR_REPORT, body)
            self._exists = True
        body = {"apiVersion": "lvs.io/v1alpha1", "kind": "DirectorReport",
                "metadata": {"name": node}, "status": status}
        await self._client.apply(DIRECTOR_REPORT, body, field_manager=FIELD_MANAGER, subresource="status")


class ReportWriter:
    def __init__(
        self,
        sink: ReportSink,
        node: str,
        *,
        min_interval: float = 2.0,
        heartbeat_interval: float = 60.0,
        monotonic: Callable[[], float] | None = None,
    ) -> None:
        self._sink = sink
        self.node = node
        self.min_interval = min_interval
        self.heartbeat_interval = heartbeat_interval
        self._latest: dict[str, Any] | None = None
        self._written: dict[str, Any] | None = None
        self._changed = asyncio.Event()
        self.writes = 0

    @staticmethod
    def _content(status: dict[str, Any] | None) -> dict[str, Any] | None:
        if status is None:
            return None
        return {key: value for key, value in status.items() if key != "heartbeatTime"}

    def update(self, status: DirectorReportStatus) -> None:
        self._latest = status_body(status)
        if self._content(self._latest) != self._content(self._written):
            self._changed.set()

    async def run(self) -> None:
        backoff = self.min_interval
        while True:
            with contextlib.suppress(TimeoutError):  # asyncio.timeout: 3.11's wait_for can swallow a cancel
                async with asyncio.timeout(self.heartbeat_interval):
                    await self._changed.wait()
            self._changed.clear()
            if self._latest is None:
                continue
            latest = self._latest
            try:
                await self._sink.write(self.node, latest)
            except (ApiError, aiohttp.ClientError, OSError, TimeoutError) as error:
                logger.warning("writing DirectorReport %s failed: %s", self.node, error)
                self._changed.set()
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, 60.0)
                continue
            backoff = self.min_interval
            self._written = latest
            self.writes += 1
            await asyncio.sleep(self.min_interval)  # rate limit: batch whatever changes meanwhile
