"""From ``lvs_api`` models to engine subscriptions, and engine verdicts back to the compiler.

- :func:`check_spec` turns a ``HealthCheck`` into a :class:`CheckSpec` (``None`` for ``type: None``).
- :class:`HealthBinding` keeps the engine's subscriptions equal to the ``ResolvedService`` objects the
  agent serves (:meth:`HealthBinding.sync`, once per reconcile pass) and answers the reconcile's
  ``HealthLookup`` (:meth:`HealthBinding.lookup`): one verdict per member, covering every port of the
  service, probed at ``lvs_api.compiler.check_target`` (member checkPort, else healthCheck.port, else
  the member's port on the first virtual port). On a standby (group not active here) it answers
  ``None``: the warm verdicts reach the kernel only after ``engine.set_active(group, True)``.
- :class:`ReportedHealth` turns the engine's rate-limited reports into ``MemberHealth`` lists for the
  DirectorReport (``lvs_agent.report.build_status(member_health=...)``).

Members are labelled ``address:port`` of the check target (``[v6]:port``), so two members of one service
that would be probed identically share a subscription. Fallback (sorry) servers are not checked.
"""

from __future__ import annotations

import datetime
import logging
from collections.abc import Callable, Iterable, Mapping

from lvs_api.compiler import check_target
from lvs_api.models import (
    CheckType,
    HealthCheck,
    MemberHealth,
    ResolvedMember,
    ResolvedService,
    VirtualServiceSpec,
)

from lvs_agent.health.engine import HealthEngine, SubscriptionRequest
from lvs_agent.health.report import MemberReport
from lvs_agent.health.spec import (
    CheckSpec,
    CheckSpecError,
    DnsProbe,
    ExecProbe,
    HttpProbe,
    ProbeSpec,
    TcpProbe,
    Timing,
    UdpProbe,
)
from lvs_agent.health.state import Health

logger = logging.getLogger("lvs_agent.health")


def _probe_spec(check: HealthCheck) -> ProbeSpec:
    kind = check.type
    if kind in (CheckType.HTTP, CheckType.HTTPS):
        tls = kind is CheckType.HTTPS
        http = check.http
        if http is None:
            return HttpProbe(tls=tls)
        return HttpProbe(
            method=http.method.value,
            path=http.path,
            host=http.host,
            expect_status=tuple(http.expect_status),
            body_regex=http.body_regex,
            tls=tls,
            tls_verify=tls and http.tls_verify,
            sni=http.server_name if tls else None,
        )
    if kind is CheckType.UDP:
        udp = check.udp
        return UdpProbe() if udp is None else UdpProbe(send=udp.send.encode(), expect=udp.expect)
    if kind is CheckType.DNS:
        dns = check.dns
        if dns is None:
            raise CheckSpecError("healthCheck.type DNS needs healthCheck.dns.queryName")
        return DnsProbe(
            dns.query_name,
            query_type=dns.query_type.value,
            expect_rcode=dns.expect_rcode.value,
            expect_answers=frozenset() if dns.expect_answer is None else frozenset({dns.expect_answer}),
        )
    if kind is CheckType.EXEC:
        if check.exec is None:
            raise CheckSpecError("healthCheck.type Exec needs healthCheck.exec.command")
        return ExecProbe(tuple(check.exec.command))
    return TcpProbe()


def check_spec(check: HealthCheck) -> CheckSpec | None:
    """The engine's form of an API ``healthCheck``; ``None`` when members are not checked.

    Raises :class:`CheckSpecError` for a check the engine cannot run (the API validation should have
    refused it first)."""
    if check.type is CheckType.NONE:
        return None
    timing = Timing(
        interval=check.interval_seconds,
        timeout=check.timeout_seconds,
        rise=check.rise,
        fall=check.fall,
        jitter=check.jitter_percent / 100.0,
    )
    # The port override is resolved per member by check_target(), so the spec itself carries none.
    return CheckSpec(_probe_spec(check), timing)


def member_label(address: str, port: int) -> str:
    return f"[{address}]:{port}" if ":" in address else f"{address}:{port}"


def subscription_requests(
    key: str, spec: VirtualServiceSpec, members: Iterable[ResolvedMember], group: str
) -> list[SubscriptionRequest]:
    """One request per distinct check target of a VirtualService's members."""
    check = check_spec(spec.health_check)
    if check is None:
        return []
    requests: dict[str, SubscriptionRequest] = {}
    for member in members:
        address, port = check_target(spec, member)
        label = member_label(address, port)
        if label not in requests:
            requests[label] = SubscriptionRequest(key, label, address, port, check, group)
    return list(requests.values())


class HealthBinding:
    """Ties a :class:`HealthEngine` to the reconcile loop.

    ``group_of`` names the VIP group of a ResolvedService (the reconcile's ``vip_group_of``), so that the
    failover runner's ``engine.set_active(group, ...)`` applies to the right subscriptions.
    """

    def __init__(self, engine: HealthEngine, group_of: Callable[[ResolvedService], str]) -> None:
        self.engine = engine
        self._group_of = group_of
        self._specs: dict[str, VirtualServiceSpec] = {}
        self._seen: dict[str, ResolvedService] = {}  # the objects of the last sync (compared by identity)
        self.invalid: dict[str, str] = {}  # "namespace/name" -> why its check cannot run (members unknown)

    def sync(self, services: Mapping[str, ResolvedService]) -> None:
        """Subscribe every member of every served ``"namespace/name"`` service; drop the rest.

        Incremental: a service whose ResolvedService is the same object as at the last sync is not
        looked at again (the desired-state source replaces an object when it changes), so a pass over
        10,000 services after one health change costs nothing here. A service whose check cannot be
        built keeps its members unchecked (unknown, so counted healthy) and is listed in
        :attr:`invalid`; the others are not held back by it."""
        changed = [key for key, resolved in services.items() if self._seen.get(key) is not resolved]
        removed = [key for key in self._seen if key not in services]
        if not changed and not removed:
            return
        requests: list[SubscriptionRequest] = []
        for key in changed:
            resolved = services[key]
            self.invalid.pop(key, None)
            try:
                requests += subscription_requests(
                    key, resolved.spec.service, resolved.spec.members, self._group_of(resolved)
                )
            except (CheckSpecError, ValueError) as error:
                self.invalid[key] = str(error)
                logger.error(
                    "health check of %s cannot run: %s",
                    key,
                    error,
                    extra={"event": "health_check_invalid", "services": [key], "reason": str(error)},
                )
        for key in removed:
            self.invalid.pop(key, None)
            self._specs.pop(key, None)
        self.engine.sync(requests, services=[*changed, *removed])
        for key in changed:
            self._specs[key] = services[key].spec.service
        self._seen = dict(services)

    def lookup(self, key: str, member: ResolvedMember) -> Health:
        """The reconcile's ``HealthLookup``: the member's verdict where its VIP group is active on this
        director; ``None`` (unknown) while unchecked, unknown, or on a standby."""
        spec = self._specs.get(key)
        if spec is None:
            return None
        address, port = check_target(spec, member)
        return self.engine.applied_health(key, member_label(address, port))


class ReportedHealth:
    """Member health as the node report shows it, fed by a :class:`HealthReporter` (pass
    :meth:`publish` as its ``publish``): a member's entry changes at most once per the reporter's
    ``min_interval``, so a flapping member cannot make the report rewrite itself every second.

    :meth:`member_health` is the ``member_health`` argument of ``lvs_agent.report.build_status``.
    ``on_update`` (e.g. the report writer's kick) is called after each batch.
    """

    def __init__(self, on_update: Callable[[], None] | None = None) -> None:
        self._members: dict[str, dict[str, MemberReport]] = {}
        self._on_update = on_update

    async def publish(self, batch: list[MemberReport]) -> None:
        for report in batch:
            members = self._members.setdefault(report.service, {})
            if report.removed:
                members.pop(report.member, None)
                if not members:
                    del self._members[report.service]
            else:
                members[report.member] = report
        if self._on_update is not None:
            self._on_update()

    def member_health(self) -> dict[str, list[MemberHealth]]:
        return {
            service: [_member_health(report) for report in members.values()]
            for service, members in self._members.items()
        }


def _member_health(report: MemberReport) -> MemberHealth:
    since = None if report.since is None else datetime.datetime.fromtimestamp(report.since, datetime.UTC)
    reason = report.reason if report.healthy is not None else (report.reason or "NotYetChecked")
    if report.flaps:
        reason = f"{reason} (flapped {report.flaps}x)"
    return MemberHealth(
        address=report.address,
        port=report.port,
        healthy=report.healthy is not False,  # unknown counts as healthy, as in the compiler
        since=since,
        reason=reason[:256],
    )
