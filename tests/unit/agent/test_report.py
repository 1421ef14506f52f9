"""The DirectorReport built from a reconcile pass: outcomes, member counts, counters, groups, errors."""

from __future__ import annotations

import datetime
from pathlib import Path

from lvs_agent.failover.lease import lease_name
from lvs_agent.failover.machine import Role
from lvs_agent.failover.runner import GroupStatus
from lvs_agent.health.report import MemberReport
from lvs_agent.netlink import FakeIpvsKernel
from lvs_agent.netlink.codec import Counters
from lvs_agent.ownership import OwnershipRecord
from lvs_agent.reconcile import Reconciler
from lvs_agent.report import MemberTally, build_status, status_body
from lvs_api.compiler import compile_resolved
from lvs_api.ipvs import Family, Protocol, ServiceKey
from lvs_api.models import MemberHealth, ResolvedService, ServiceReport, VIPGroupRole
from lvs_api.planner import plan

WEB = ServiceKey(Family.INET, Protocol.TCP, "203.0.113.10", 80)


def desired() -> dict[str, ResolvedService]:
    document = {
        "metadata": {"name": "web", "namespace": "shop"},
        "spec": {"acceptedGeneration": 7, "virtualServiceUid": "u",
                 "service": {"vip": "203.0.113.10", "ports": [{"port": 80}], "poolRef": {"name": "p"},
                             "vipGroup": "front"},
                 "members": [{"address": "198.51.100.11"}, {"address": "198.51.100.12"}]},
    }
    return {"shop/web": ResolvedService.model_validate(document)}


def test_report_of_a_programmed_service_with_counters_and_its_group(tmp_path: Path) -> None:
    kernel = FakeIpvsKernel()
    reconciler = Reconciler(node_labels={}, kernel=kernel, record=OwnershipRecord(tmp_path / "owned.json"),
                            compile_service=compile_resolved, plan=plan,
                            health=lambda _key, member: member.address != "198.51.100.12",
                            stats_interval=0.0)
    result = reconciler.reconcile_once(desired())
    kernel.counters[(WEB, None)] = Counters(conns=5, inpkts=50, outpkts=40, inbytes=5000, outbytes=4000)
    reconciler.reconcile_once(desired())  # reads the counters again (interval 0)
    assert reconciler.stats is not None
    groups = {"front": GroupStatus(Role.ACTIVE, 3, "dir1", {"203.0.113.10": []})}
    status = build_status(result, groups=groups, stats=reconciler.stats, failovers={"front": 2})
    service = status.services["shop/web"]
    assert (service.programmed, service.reason, service.accepted_generation) == (True, "Programmed", 7)
    assert service.active
    assert (service.healthy_members, service.total_members) == (1, 2)
    assert service.stats is not None and service.stats.connections == 5 and service.stats.out_bytes == 4000
    [group] = status.vip_groups
    assert (group.name, group.role, group.lease_holder, group.failovers) == ("front", VIPGroupRole.ACTIVE,
                                                                              "dir1", 2)
    assert group.lease_name == lease_name("front")
    assert group.vips == ["203.0.113.10"]
    assert status.ipvs_services == 1 and status.foreign_services == 0
    body = status_body(status)
    assert body["services"]["shop/web"]["healthyMembers"] == 1  # camelCase on the wire
    assert "heartbeatTime" in body


def test_conflicts_and_errors_are_reported(tmp_path: Path) -> None:
    kernel = FakeIpvsKernel()
    kernel.apply(plan({WEB: compile_resolved(desired()["shop/web"])[WEB]}, {}, set()).ops)  # foreign copy
    reconciler = Reconciler(node_labels={}, kernel=kernel, record=OwnershipRecord(tmp_path / "owned.json"),
                            compile_service=compile_resolved, plan=plan)
    result = reconciler.reconcile_once(desired())
    groups = {"front": GroupStatus(Role.STANDBY, 0, "dir2", {"203.0.113.10": ["kube-ipvs0"]})}
    status = build_status(result, groups=groups)
    service = status.services["shop/web"]
    assert (service.programmed, service.reason, service.active) == (False, "Conflict", False)
    assert service.stats is None
    assert any("kube-ipvs0" in error for error in status.errors)
    assert status.vip_groups == []  # a conflicting service contributes no VIP group
    assert status.foreign_services == 1


def test_the_group_reports_the_leases_since_and_activation_count(tmp_path: Path) -> None:
    reconciler = Reconciler(node_labels={}, kernel=FakeIpvsKernel(),
                            record=OwnershipRecord(tmp_path / "owned.json"), compile_service=compile_resolved,
                            plan=plan, health=lambda _key, _member: True)
    result = reconciler.reconcile_once(desired())
    since = datetime.datetime(2026, 1, 1, 0, 0, 5, 250000, tzinfo=datetime.UTC)
    groups = {"front": GroupStatus(Role.ACTIVE, 3, "dir1", since=since, activations=4)}
    # the Lease's count wins over the caller's in-memory one (which an agent restart resets)
    status = build_status(result, groups=groups, failovers={"front": 1})
    [group] = status.vip_groups
    assert (group.since, group.failovers) == (since, 4)
    assert status_body(status)["vipGroups"][0]["since"] == "2026-01-01T00:00:05.250000Z"
    # a Lease not read yet: the in-memory count stands in
    unread = {"front": GroupStatus(Role.STANDBY, 0, None)}
    [group] = build_status(result, groups=unread, failovers={"front": 1}).vip_groups
    assert (group.role, group.since, group.failovers) == (VIPGroupRole.STANDBY, None, 1)
    # no failover state at all: role Unknown, no since
    [group] = build_status(result).vip_groups
    assert (group.role, group.since, group.failovers) == (VIPGroupRole.UNKNOWN, None, 0)


def test_agent_errors_join_the_reports_errors(tmp_path: Path) -> None:
    reconciler = Reconciler(node_labels={}, kernel=FakeIpvsKernel(),
                            record=OwnershipRecord(tmp_path / "owned.json"), compile_service=compile_resolved,
                            plan=plan, health=lambda _key, _member: True)
    status = build_status(reconciler.reconcile_once(desired()), agent_errors=["IPVS backup sync daemon ..."])
    assert status.errors == ["IPVS backup sync daemon ..."]


def three_members(check: dict[str, object] | None = None) -> dict[str, ResolvedService]:
    service: dict[str, object] = {"vip": "203.0.113.10", "ports": [{"port": 80}], "poolRef": {"name": "p"}}
    if check is not None:
        service["healthCheck"] = check
    document = {
        "metadata": {"name": "web", "namespace": "shop"},
        "spec": {"acceptedGeneration": 1, "virtualServiceUid": "u", "service": service,
                 "members": [{"address": "198.51.100.11"}, {"address": "198.51.100.12"},
                             {"address": "198.51.100.13"}]},
    }
    return {"shop/web": ResolvedService.model_validate(document)}


def verdict(
    member: str, healthy: bool | None, reason: str = "connected", removed: bool = False
) -> MemberReport:
    address = member.rpartition(":")[0]
    return MemberReport("shop/web", member, address, 80, "TCP", healthy, reason, None, 0, True, removed)


def service_report(
    tally: MemberTally, services: dict[str, ResolvedService], tmp_path: Path,
    member_health: dict[str, list[MemberHealth]] | None = None,
) -> ServiceReport:
    reconciler = Reconciler(node_labels={}, kernel=FakeIpvsKernel(),
                            record=OwnershipRecord(tmp_path / "owned.json"), compile_service=compile_resolved,
                            plan=plan)
    result = reconciler.reconcile_once(services)
    return build_status(result, member_health=member_health, member_counts=tally).services["shop/web"]


def counted(tally: MemberTally, services: dict[str, ResolvedService], tmp_path: Path) -> tuple[int, int]:
    service = service_report(tally, services, tmp_path)
    return service.healthy_members, service.total_members


def test_members_without_a_verdict_count_in_the_total_not_as_healthy(tmp_path: Path) -> None:
    """A 3-member pool with 2 verdicts in is 2/3, not 2/2; a failed member is listed with its reason and a
    pending one as NotYetChecked."""
    services = three_members()
    tally = MemberTally()
    tally.sync(services)
    assert counted(tally, services, tmp_path) == (0, 3)  # nothing checked yet: nothing confirmed
    tally.record([verdict("198.51.100.11:80", True), verdict("198.51.100.12:80", True)])
    assert counted(tally, services, tmp_path) == (2, 3)
    tally.record([verdict("198.51.100.13:80", False, "ECONNREFUSED")])
    down = MemberHealth(address="198.51.100.13", port=80, healthy=False, reason="ECONNREFUSED")
    service = service_report(tally, services, tmp_path, {"shop/web": [down]})
    assert (service.healthy_members, service.total_members) == (2, 3)
    assert [(m.address, m.healthy, m.reason) for m in service.members] == [
        ("198.51.100.13", False, "ECONNREFUSED")]
    tally.record([verdict("198.51.100.13:80", True)])
    assert counted(tally, services, tmp_path) == (3, 3)
    tally.record([verdict("198.51.100.12:80", None, removed=True)])  # unsubscribed: its verdict is gone
    assert counted(tally, services, tmp_path) == (2, 3)


def test_pending_and_refused_members_are_listed_with_why(tmp_path: Path) -> None:
    services = three_members()
    tally = MemberTally()
    tally.sync(services)
    tally.record([verdict("198.51.100.11:80", True), verdict("198.51.100.12:80", None, "exec disabled")])
    service = service_report(tally, services, tmp_path)
    assert (service.healthy_members, service.total_members) == (1, 3)
    assert [(m.address, m.port, m.reason) for m in service.members] == [
        ("198.51.100.12", 80, "exec disabled"), ("198.51.100.13", 80, "NotYetChecked")]


def test_members_sharing_a_check_target_each_count(tmp_path: Path) -> None:
    """Two members probed at one target (healthCheck.port) share one verdict but are two members."""
    services = three_members({"type": "TCP", "port": 8080})
    document = services["shop/web"].model_dump(mode="json", by_alias=True)
    document["spec"]["members"].append({"address": "198.51.100.11", "port": 81})
    services = {"shop/web": ResolvedService.model_validate(document)}
    tally = MemberTally()
    tally.sync(services)
    tally.record([verdict("198.51.100.11:8080", True)])
    assert counted(tally, services, tmp_path) == (2, 4)


def test_a_service_without_a_check_keeps_the_reconciles_count(tmp_path: Path) -> None:
    services = three_members({"type": "None"})
    tally = MemberTally()
    tally.sync(services)
    assert counted(tally, services, tmp_path) == (3, 3)
    tally.sync({})  # no longer served: forgotten
    assert tally.count("shop/web") is None


async def test_forwarding_records_then_publishes() -> None:
    services = three_members()
    tally = MemberTally()
    tally.sync(services)
    published: list[list[MemberReport]] = []

    async def publish(batch: list[MemberReport]) -> None:
        published.append(batch)

    batch = [verdict("198.51.100.11:80", True)]
    await tally.forwarding(publish)(batch)
    assert published == [batch]
    count = tally.count("shop/web")
    assert count is not None and (count.healthy, count.total) == (1, 3)
