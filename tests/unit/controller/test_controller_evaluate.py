"""Validation, conflicts, tenancy and resolution of the controller, as pure functions of its cache."""

from __future__ import annotations

from typing import Any

from controller_fixtures import (
    add,
    endpoint,
    endpoint_slice,
    pool,
    vip_pool,
    virtual_service,
    world_with,
)
from lvs_controller.world import Kind

KEY = ("shop", "web")


def reasons(evaluation: Any) -> list[str]:
    return [problem.reason for problem in evaluation.problems]


def test_valid_service_is_accepted_and_resolves_static_members() -> None:
    _, reconciler = world_with((Kind.VIP_POOL, vip_pool()), (Kind.REAL_SERVER_POOL, pool()))
    evaluation, resolved = reconciler.evaluate(KEY, virtual_service("web"))
    assert evaluation.accepted, evaluation.problems
    assert resolved is not None
    assert [(m.address, m.weight) for m in resolved.members] == [("198.51.100.11", 1), ("198.51.100.12", 2)]
    assert resolved.accepted_generation == 1
    assert resolved.virtual_service_uid == "uid-shop-web"


def test_vip_outside_every_pool_is_rejected_naming_the_field() -> None:
    _, reconciler = world_with((Kind.VIP_POOL, vip_pool()), (Kind.REAL_SERVER_POOL, pool()))
    evaluation, resolved = reconciler.evaluate(KEY, virtual_service("web", vip="192.0.2.10"))
    assert reasons(evaluation) == ["VIPNotInPool"]
    assert evaluation.problems[0].field == "spec.vip"
    assert "fix:" in evaluation.problems[0].text()
    assert resolved is None  # nothing was ever accepted: nothing to program


def test_pool_that_does_not_admit_the_namespace() -> None:
    _, reconciler = world_with(
        (Kind.VIP_POOL, vip_pool(namespaces=["other"])), (Kind.REAL_SERVER_POOL, pool())
    )
    evaluation, _ = reconciler.evaluate(KEY, virtual_service("web"))
    assert reasons(evaluation) == ["NamespaceNotAllowed"]
    assert "public" in evaluation.problems[0].message


def test_namespace_selector_admits_by_label() -> None:
    namespace = {"metadata": {"name": "shop", "labels": {"team": "web"}, "resourceVersion": "1"}}
    _, reconciler = world_with(
        (Kind.NAMESPACE, namespace),
        (Kind.VIP_POOL, vip_pool(namespaces=[], namespaceSelector={"matchLabels": {"team": "web"}})),
        (Kind.REAL_SERVER_POOL, pool()),
    )
    assert reconciler.evaluate(KEY, virtual_service("web"))[0].accepted


def test_exec_checks_need_the_pool_to_allow_them() -> None:
    check = {"type": "Exec", "exec": {"command": ["/bin/true"]}}
    _, reconciler = world_with((Kind.VIP_POOL, vip_pool()), (Kind.REAL_SERVER_POOL, pool()))
    evaluation, _ = reconciler.evaluate(KEY, virtual_service("web", healthCheck=check))
    assert reasons(evaluation) == ["ExecCheckNotAllowed"]
    _, allowing = world_with(
        (Kind.VIP_POOL, vip_pool(allowExecHealthChecks=True)), (Kind.REAL_SERVER_POOL, pool())
    )
    assert allowing.evaluate(KEY, virtual_service("web", healthCheck=check))[0].accepted


def test_schema_violation_is_invalid_spec_with_path_and_fix() -> None:
    _, reconciler = world_with((Kind.VIP_POOL, vip_pool()), (Kind.REAL_SERVER_POOL, pool()))
    evaluation, _ = reconciler.evaluate(
        KEY, virtual_service("web", forwarding="DirectRouting", ports=[{"port": 80, "targetPort": 8080}])
    )
    assert reasons(evaluation) == ["InvalidSpec"]
    assert evaluation.problems[0].field.startswith("spec")
    assert "NAT" in evaluation.problems[0].text()


def test_missing_pool_and_family_mismatch() -> None:
    _, reconciler = world_with((Kind.VIP_POOL, vip_pool(addresses=("203.0.113.0/24", "2001:db8::/64"))))
    assert reasons(reconciler.evaluate(KEY, virtual_service("web"))[0]) == ["PoolNotFound"]
    add(reconciler, Kind.REAL_SERVER_POOL, pool())
    evaluation, _ = reconciler.evaluate(KEY, virtual_service("web", vip="2001:db8::10"))
    assert reasons(evaluation) == ["FamilyMismatch"]


def test_direct_routing_cannot_rewrite_member_ports() -> None:
    _, reconciler = world_with(
        (Kind.VIP_POOL, vip_pool()),
        (Kind.REAL_SERVER_POOL, pool(members=[{"address": "198.51.100.11", "port": 8080}])),
    )
    evaluation, _ = reconciler.evaluate(KEY, virtual_service("web", forwarding="DirectRouting"))
    assert reasons(evaluation) == ["ForwardingMismatch"]
    assert reconciler.evaluate(KEY, virtual_service("web"))[0].accepted  # NAT rewrites ports


def test_second_claimant_conflicts_and_first_keeps_working() -> None:
    first = virtual_service("a", created="2026-01-01T00:00:00Z")
    second = virtual_service("b", created="2026-01-02T00:00:00Z", ports=[{"port": 443}, {"port": 80}])
    _, reconciler = world_with(
        (Kind.VIP_POOL, vip_pool()),
        (Kind.REAL_SERVER_POOL, pool()),
        (Kind.VIRTUAL_SERVICE, first),
        (Kind.VIRTUAL_SERVICE, second),
    )
    first_eval, _ = reconciler.evaluate(("shop", "a"), first)
    second_eval, second_resolved = reconciler.evaluate(("shop", "b"), second)
    assert first_eval.accepted
    assert reasons(second_eval) == ["PortConflict"]
    assert second_eval.conflict is not None and second_eval.conflict.owner == ("shop", "a")
    assert "shop/a" in second_eval.problems[0].message
    assert second_resolved is None
    # Different port on the same VIP: no conflict.
    third = virtual_service("c", created="2026-01-03T00:00:00Z", ports=[{"port": 8443}])
    add(reconciler, Kind.VIRTUAL_SERVICE, third)
    assert reconciler.evaluate(("shop", "c"), third)[0].accepted


def test_programmed_claim_wins_over_an_older_newcomer() -> None:
    """The owner is who has it programmed: an older VirtualService changing its ports cannot steal."""
    older = virtual_service("old", created="2026-01-01T00:00:00Z", ports=[{"port": 443}])
    newer = virtual_service("new", created="2026-01-02T00:00:00Z", ports=[{"port": 443}])
    _, reconciler = world_with(
        (Kind.VIP_POOL, vip_pool()), (Kind.REAL_SERVER_POOL, pool()), (Kind.VIRTUAL_SERVICE, newer)
    )
    _, resolved = reconciler.evaluate(("shop", "new"), newer)
    assert resolved is not None
    programmed = {
        "kind": "ResolvedService",
        "metadata": {"name": "new", "namespace": "shop", "resourceVersion": "9000"},
        "spec": resolved.to_wire(),
    }
    add(reconciler, Kind.RESOLVED_SERVICE, programmed)
    add(reconciler, Kind.VIRTUAL_SERVICE, older)
    old_eval, _ = reconciler.evaluate(("shop", "old"), older)
    assert reasons(old_eval) == ["PortConflict"]
    assert reconciler.evaluate(("shop", "new"), newer)[0].accepted


def test_firewall_mark_is_unique_per_family_across_vips() -> None:
    check = {"port": 80}
    a = virtual_service("a", created="2026-01-01T00:00:00Z", ports=[], firewallMark=7, healthCheck=check)
    b = virtual_service(
        "b", vip="203.0.113.20", created="2026-01-02T00:00:00Z", ports=[], firewallMark=7, healthCheck=check
    )
    _, reconciler = world_with(
        (Kind.VIP_POOL, vip_pool()),
        (Kind.REAL_SERVER_POOL, pool()),
        (Kind.VIRTUAL_SERVICE, a),
        (Kind.VIRTUAL_SERVICE, b),
    )
    assert reasons(reconciler.evaluate(("shop", "b"), b)[0]) == ["FirewallMarkConflict"]


def test_rejected_spec_keeps_the_last_good_one_programmed() -> None:
    good = virtual_service("web")
    _, reconciler = world_with((Kind.VIP_POOL, vip_pool()), (Kind.REAL_SERVER_POOL, pool()))
    _, resolved = reconciler.evaluate(KEY, good)
    assert resolved is not None
    add(
        reconciler,
        Kind.RESOLVED_SERVICE,
        {
            "kind": "ResolvedService",
            "metadata": {"name": "web", "namespace": "shop", "resourceVersion": "9001"},
            "spec": resolved.to_wire(),
        },
    )
    bad = virtual_service("web", vip="192.0.2.99")
    bad["metadata"]["generation"] = 2
    evaluation, kept = reconciler.evaluate(KEY, bad)
    assert reasons(evaluation) == ["VIPNotInPool"]
    assert kept is not None
    assert kept.accepted_generation == 1
    assert kept.service.vip == "203.0.113.10"


def test_service_members_follow_endpoint_slices() -> None:
    selector_pool = pool(members=[], selector={"service": {"name": "web", "port": "http"}, "weight": 3})
    _, reconciler = world_with((Kind.VIP_POOL, vip_pool()), (Kind.REAL_SERVER_POOL, selector_pool))
    slice_a = endpoint_slice(
        "web",
        [
            endpoint("10.0.0.1"),
            endpoint("10.0.0.2", ready=False, serving=True, terminating=True),
            endpoint("10.0.0.3", ready=False, serving=False, terminating=False),
        ],
    )
    affected = add(reconciler, Kind.ENDPOINT_SLICE, slice_a)
    assert affected == set()  # no VirtualService uses the pool yet
    affected = add(reconciler, Kind.VIRTUAL_SERVICE, virtual_service("web"))
    _, resolved = reconciler.evaluate(KEY, virtual_service("web"))
    assert resolved is not None
    members = {(m.address, m.port, m.weight, m.terminating) for m in resolved.members}
    assert members == {("10.0.0.1", 8080, 3, False), ("10.0.0.2", 8080, 0, True)}
    # Scale up: a new slice for the same service queues the VirtualService and adds its endpoints.
    slice_b = endpoint_slice("web", [endpoint("10.0.0.4")], name="web-def")
    assert add(reconciler, Kind.ENDPOINT_SLICE, slice_b) == {KEY}
    _, resolved = reconciler.evaluate(KEY, virtual_service("web"))
    assert resolved is not None
    assert [m.address for m in resolved.members] == ["10.0.0.1", "10.0.0.2", "10.0.0.4"]
    # Scale down: the slice goes, its endpoint goes.
    assert add(reconciler, Kind.ENDPOINT_SLICE, slice_b, event="DELETED") == {KEY}
    _, resolved = reconciler.evaluate(KEY, virtual_service("web"))
    assert resolved is not None
    assert [m.address for m in resolved.members] == ["10.0.0.1", "10.0.0.2"]


def test_service_port_number_maps_through_the_service() -> None:
    selector_pool = pool(members=[], selector={"service": {"name": "web", "port": 80}})
    service = {
        "kind": "Service",
        "metadata": {"name": "web", "namespace": "shop", "resourceVersion": "1"},
        "spec": {"ports": [{"name": "http", "port": 80, "targetPort": 8080}]},
    }
    _, reconciler = world_with(
        (Kind.VIP_POOL, vip_pool()),
        (Kind.REAL_SERVER_POOL, selector_pool),
        (Kind.SERVICE, service),
        (Kind.ENDPOINT_SLICE, endpoint_slice("web", [endpoint("10.0.0.1")])),
    )
    _, resolved = reconciler.evaluate(KEY, virtual_service("web"))
    assert resolved is not None
    assert [(m.address, m.port) for m in resolved.members] == [("10.0.0.1", 8080)]


def test_pod_and_node_selectors() -> None:
    pod_pool = pool(
        members=[], selector={"pods": {"selector": {"matchLabels": {"app": "web"}}, "port": 8080}}
    )
    pods = [
        {
            "metadata": {
                "name": n,
                "namespace": "shop",
                "labels": {"app": app},
                "resourceVersion": "1",
                **({"deletionTimestamp": "2026-01-01T00:00:00Z"} if deleting else {}),
            },
            "status": {
                "podIPs": [{"ip": ip}],
                "conditions": [{"type": "Ready", "status": "True" if ready else "False"}],
            },
        }
        for n, app, ip, ready, deleting in [
            ("a", "web", "10.1.0.1", True, False),
            ("b", "web", "10.1.0.2", False, False),
            ("c", "db", "10.1.0.3", True, False),
            ("d", "web", "10.1.0.4", True, True),
        ]
    ]
    _, reconciler = world_with(
        (Kind.VIP_POOL, vip_pool()), (Kind.REAL_SERVER_POOL, pod_pool), *[(Kind.POD, p) for p in pods]
    )
    _, resolved = reconciler.evaluate(KEY, virtual_service("web"))
    assert resolved is not None
    assert [(m.address, m.weight, m.terminating, m.target) for m in resolved.members] == [
        ("10.1.0.1", 1, False, "pod/a"),
        ("10.1.0.4", 0, True, "pod/d"),
    ]
    node_pool = pool(
        name="nodes", members=[], selector={"nodes": {"selector": {"matchLabels": {"edge": "yes"}}}}
    )
    nodes = [
        {
            "metadata": {"name": n, "labels": {"edge": "yes"}, "resourceVersion": "1"},
            "spec": {"unschedulable": cordoned},
            "status": {
                "addresses": [{"type": "InternalIP", "address": ip}],
                "conditions": [{"type": "Ready", "status": "True" if ready else "False"}],
            },
        }
        for n, ip, ready, cordoned in [
            ("n1", "192.0.2.1", True, False),
            ("n2", "192.0.2.2", False, False),
            ("n3", "192.0.2.3", True, True),
        ]
    ]
    for node in nodes:
        add(reconciler, Kind.NODE, node)
    add(reconciler, Kind.REAL_SERVER_POOL, node_pool)
    _, resolved = reconciler.evaluate(KEY, virtual_service("web", poolRef={"name": "nodes"}))
    assert resolved is not None
    assert [(m.address, m.weight) for m in resolved.members] == [("192.0.2.1", 1), ("192.0.2.3", 0)]


def test_fallback_is_resolved_separately() -> None:
    _, reconciler = world_with((Kind.VIP_POOL, vip_pool()), (Kind.REAL_SERVER_POOL, pool()))
    _, resolved = reconciler.evaluate(KEY, virtual_service("web", fallback=[{"address": "198.51.100.99"}]))
    assert resolved is not None
    assert [m.address for m in resolved.fallback] == ["198.51.100.99"]
    assert "198.51.100.99" not in [m.address for m in resolved.members]


def test_dependency_index_routes_events_to_the_right_services() -> None:
    _, reconciler = world_with((Kind.VIP_POOL, vip_pool()), (Kind.REAL_SERVER_POOL, pool()))
    add(reconciler, Kind.VIRTUAL_SERVICE, virtual_service("web"))
    add(
        reconciler,
        Kind.VIRTUAL_SERVICE,
        virtual_service("other", poolRef={"name": "other"}, vip="203.0.113.11"),
    )
    assert add(reconciler, Kind.REAL_SERVER_POOL, pool(members=[{"address": "198.51.100.1"}])) == {KEY}
    assert add(reconciler, Kind.VIP_POOL, vip_pool(name="second")) == {KEY, ("shop", "other")}
    # Same VIP: both are re-evaluated when one changes (a freed port may resolve the other's conflict).
    add(reconciler, Kind.VIRTUAL_SERVICE, virtual_service("twin", ports=[{"port": 81}]))
    assert add(reconciler, Kind.VIRTUAL_SERVICE, virtual_service("web", ports=[{"port": 82}])) == {
        KEY,
        ("shop", "twin"),
    }
    report = {
        "kind": "DirectorReport",
        "metadata": {"name": "n1", "resourceVersion": "5"},
        "spec": {"nodeName": "n1"},
        "status": {"heartbeatTime": "t1", "services": {"shop/web": {"programmed": True}}},
    }
    assert add(reconciler, Kind.DIRECTOR_REPORT, report) == {KEY}
    heartbeat = {
        **report,
        "metadata": {"name": "n1", "resourceVersion": "6"},
        "status": {**report["status"], "heartbeatTime": "t2"},
    }
    assert add(reconciler, Kind.DIRECTOR_REPORT, heartbeat) == set()  # heartbeats reconcile nothing
