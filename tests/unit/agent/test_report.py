"""The DirectorReport built from a reconcile pass: outcomes, member counts, counters, groups, errors."""

from __future__ import annotations

import datetime
from pathlib import Path

from lvs_agent.failover.lease import lease_name
from lvs_agent.failover.machine import Role
from lvs_agent.failover.runner import GroupStatus
from lvs_agent.netlink import FakeIpvsKernel
from lvs_agent.netlink.codec import Counters
from lvs_agent.ownership import OwnershipRecord
from lvs_agent.reconcile import Reconciler
from lvs_agent.report import build_status, status_body
from lvs_api.compiler import compile_resolved
from lvs_api.ipvs import Family, Protocol, ServiceKey
from lvs_api.models import ResolvedService, VIPGroupRole
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
