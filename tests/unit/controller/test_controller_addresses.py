"""Addresses a VirtualService makes directors hold: one VIP group per VIP, natGateway tenancy and clashes."""

from __future__ import annotations

from typing import Any

from controller_fixtures import add, pool, vip_pool, virtual_service, world_with
from lvs_controller.reconciler import Reconciler
from lvs_controller.world import Kind

VIP = "203.0.113.10"
GATEWAY = "10.1.0.1"


def reasons(evaluation: Any) -> list[str]:
    return [problem.reason for problem in evaluation.problems]


def base_world(*extra: tuple[Kind, dict[str, Any]]) -> Reconciler:
    """VIPs of 203.0.113.0/24 for namespaces shop and shop2, a pool "web" in each, then ``extra``."""
    _, reconciler = world_with(
        (Kind.VIP_POOL, vip_pool(namespaces=["shop", "shop2"])),
        (Kind.REAL_SERVER_POOL, pool()),
        (Kind.REAL_SERVER_POOL, pool(namespace="shop2")),
        *extra,
    )
    return reconciler


def program(reconciler: Reconciler, vs: dict[str, Any]) -> None:
    """Accept ``vs`` and put its ResolvedService in the cache, as a published reconcile would."""
    key = (vs["metadata"]["namespace"], vs["metadata"]["name"])
    evaluation, resolved = reconciler.evaluate(key, vs)
    assert evaluation.accepted, evaluation.problems
    assert resolved is not None
    add(
        reconciler,
        Kind.RESOLVED_SERVICE,
        {
            "kind": "ResolvedService",
            "metadata": {"name": key[1], "namespace": key[0], "resourceVersion": "90000"},
            "spec": resolved.to_wire(),
        },
    )


def updated(vs: dict[str, Any], **spec: Any) -> dict[str, Any]:
    """A new generation of ``vs`` with ``spec`` changes (None removes a field)."""
    body = {**vs["spec"], **spec}
    metadata = {
        **vs["metadata"],
        "generation": vs["metadata"]["generation"] + 1,
        "resourceVersion": str(int(vs["metadata"]["resourceVersion"]) + 100000),
    }
    return {**vs, "metadata": metadata, "spec": {k: v for k, v in body.items() if v is not None}}


def test_second_service_on_a_vip_with_another_group_is_rejected_naming_field_owner_and_fix() -> None:
    http = virtual_service("http", created="2026-01-01T00:00:00Z", vipGroup="web")
    dns = virtual_service("dns", created="2026-01-02T00:00:00Z", ports=[{"port": 53, "protocol": "UDP"}])
    reconciler = base_world((Kind.VIRTUAL_SERVICE, http), (Kind.VIRTUAL_SERVICE, dns))
    first, _ = reconciler.evaluate(("shop", "http"), http)
    second, second_resolved = reconciler.evaluate(("shop", "dns"), dns)
    assert first.accepted, first.problems
    assert reasons(second) == ["VIPGroupConflict"]
    problem = second.problems[0]
    assert problem.field == "spec.vipGroup"
    assert "shop/http" in problem.message and "vipGroup web" in problem.message
    assert "set vipGroup: web" in problem.fix
    assert second.conflict is not None and second.conflict.owner == ("shop", "http")
    assert second_resolved is None
    # Fixed: the same group on both, and both are accepted.
    fixed = updated(dns, vipGroup="web")
    add(reconciler, Kind.VIRTUAL_SERVICE, fixed)
    assert reconciler.evaluate(("shop", "dns"), fixed)[0].accepted
    assert reconciler.evaluate(("shop", "http"), http)[0].accepted


def test_default_group_is_the_vip_itself() -> None:
    """No vipGroup on one and vipGroup on the other differ; the message says how to match the first."""
    plain = virtual_service("plain", created="2026-01-01T00:00:00Z")
    grouped = virtual_service("grouped", created="2026-01-02T00:00:00Z", ports=[{"port": 443}], vipGroup="g")
    reconciler = base_world((Kind.VIRTUAL_SERVICE, plain), (Kind.VIRTUAL_SERVICE, grouped))
    evaluation, _ = reconciler.evaluate(("shop", "grouped"), grouped)
    assert reasons(evaluation) == ["VIPGroupConflict"]
    assert "set no vipGroup here" in evaluation.problems[0].fix
    assert reconciler.evaluate(("shop", "plain"), plain)[0].accepted
    # Without vipGroup on either, they share the VIP's own group.
    same = updated(grouped, vipGroup=None)
    add(reconciler, Kind.VIRTUAL_SERVICE, same)
    assert reconciler.evaluate(("shop", "grouped"), same)[0].accepted


def test_programmed_group_wins_over_an_older_service_changing_it_alone() -> None:
    older = virtual_service("old", created="2026-01-01T00:00:00Z", vipGroup="g1")
    newer = virtual_service("new", created="2026-01-02T00:00:00Z", ports=[{"port": 443}], vipGroup="g1")
    reconciler = base_world((Kind.VIRTUAL_SERVICE, older), (Kind.VIRTUAL_SERVICE, newer))
    program(reconciler, older)
    program(reconciler, newer)
    moved = updated(older, vipGroup="g2")
    add(reconciler, Kind.VIRTUAL_SERVICE, moved)
    evaluation, kept = reconciler.evaluate(("shop", "old"), moved)
    assert reasons(evaluation) == ["VIPGroupConflict"]
    assert evaluation.conflict is not None and evaluation.conflict.owner == ("shop", "new")
    assert kept is not None and kept.service.vip_group == "g1"  # the last good spec stays programmed
    assert reconciler.evaluate(("shop", "new"), newer)[0].accepted  # the unchanged one keeps working


def test_services_on_a_vip_move_to_a_new_group_together() -> None:
    a = virtual_service("a", created="2026-01-01T00:00:00Z", vipGroup="g1")
    b = virtual_service("b", created="2026-01-02T00:00:00Z", ports=[{"port": 443}], vipGroup="g1")
    reconciler = base_world((Kind.VIRTUAL_SERVICE, a), (Kind.VIRTUAL_SERVICE, b))
    program(reconciler, a)
    program(reconciler, b)
    a2, b2 = updated(a, vipGroup="g2"), updated(b, vipGroup="g2")
    add(reconciler, Kind.VIRTUAL_SERVICE, a2)
    add(reconciler, Kind.VIRTUAL_SERVICE, b2)
    # Each sees the other still programmed in g1 but asking for g2: neither blocks the other.
    assert reconciler.evaluate(("shop", "b"), b2)[0].accepted
    program(reconciler, a2)
    assert reconciler.evaluate(("shop", "b"), b2)[0].accepted


def test_a_move_does_not_count_when_the_other_spec_would_be_rejected_anyway() -> None:
    """b asks for g2 too, but b's pool is missing: b keeps g1 programmed, so a may not move alone."""
    a = virtual_service("a", created="2026-01-01T00:00:00Z", vipGroup="g1")
    b = virtual_service("b", created="2026-01-02T00:00:00Z", ports=[{"port": 443}], vipGroup="g1")
    reconciler = base_world((Kind.VIRTUAL_SERVICE, a), (Kind.VIRTUAL_SERVICE, b))
    program(reconciler, a)
    program(reconciler, b)
    a2, b2 = updated(a, vipGroup="g2"), updated(b, vipGroup="g2", poolRef={"name": "missing"})
    add(reconciler, Kind.VIRTUAL_SERVICE, a2)
    add(reconciler, Kind.VIRTUAL_SERVICE, b2)
    assert reasons(reconciler.evaluate(("shop", "a"), a2)[0]) == ["VIPGroupConflict"]


def test_nat_gateway_inside_a_pool_of_another_namespace_is_rejected() -> None:
    reconciler = base_world((Kind.VIP_POOL, vip_pool("private", ("10.1.0.0/24",), namespaces=["other"])))
    vs = virtual_service("web", natGateway={"address": GATEWAY})
    evaluation, resolved = reconciler.evaluate(("shop", "web"), vs)
    assert reasons(evaluation) == ["NatGatewayNotAllowed"]
    problem = evaluation.problems[0]
    assert problem.field == "spec.natGateway.address"
    assert "private" in problem.message and "shop" in problem.message
    assert resolved is None
    # Admitted by that pool: accepted. Outside every pool (the real servers' network): accepted.
    add(reconciler, Kind.VIP_POOL, vip_pool("private", ("10.1.0.0/24",), namespaces=["other", "shop"]))
    assert reconciler.evaluate(("shop", "web"), vs)[0].accepted
    outside = virtual_service("web", natGateway={"address": "10.2.0.1"})
    assert reconciler.evaluate(("shop", "web"), outside)[0].accepted


def test_nat_gateway_may_not_be_the_own_vip() -> None:
    reconciler = base_world()
    evaluation, _ = reconciler.evaluate(("shop", "web"), virtual_service("web", natGateway={"address": VIP}))
    assert reasons(evaluation) == ["NatGatewayIsVIP"]


def test_nat_gateway_that_is_another_services_vip_and_the_reverse() -> None:
    shop = virtual_service("web", created="2026-01-01T00:00:00Z")
    thief = virtual_service(
        "gw",
        namespace="shop2",
        created="2026-01-02T00:00:00Z",
        vip="203.0.113.20",
        natGateway={"address": VIP},
    )
    reconciler = base_world(
        (Kind.VIRTUAL_SERVICE, shop),
        (Kind.VIRTUAL_SERVICE, thief),
    )
    program(reconciler, shop)
    evaluation, _ = reconciler.evaluate(("shop2", "gw"), thief)
    assert reasons(evaluation) == ["NatGatewayConflict"]
    assert "shop/web" in evaluation.problems[0].message
    assert evaluation.problems[0].field == "spec.natGateway.address"
    assert reconciler.evaluate(("shop", "web"), shop)[0].accepted
    # The other way round: a gateway is programmed, a newer service wants it as its VIP.
    gateway_owner = virtual_service(
        "nat", created="2026-01-01T00:00:00Z", vip="203.0.113.30", natGateway={"address": "203.0.113.40"}
    )
    late = virtual_service("late", namespace="shop2", created="2026-01-03T00:00:00Z", vip="203.0.113.40")
    add(reconciler, Kind.VIRTUAL_SERVICE, gateway_owner)
    add(reconciler, Kind.VIRTUAL_SERVICE, late)
    program(reconciler, gateway_owner)
    evaluation, _ = reconciler.evaluate(("shop2", "late"), late)
    assert reasons(evaluation) == ["VIPConflict"]
    assert evaluation.problems[0].field == "spec.vip"
    assert "shop/nat" in evaluation.problems[0].message


def test_nat_gateway_shared_only_within_one_vip_group() -> None:
    first = virtual_service("a", created="2026-01-01T00:00:00Z", natGateway={"address": GATEWAY})
    other_group = virtual_service(
        "b",
        namespace="shop2",
        created="2026-01-02T00:00:00Z",
        vip="203.0.113.20",
        natGateway={"address": GATEWAY},
    )
    reconciler = base_world(
        (Kind.VIRTUAL_SERVICE, first),
        (Kind.VIRTUAL_SERVICE, other_group),
    )
    evaluation, _ = reconciler.evaluate(("shop2", "b"), other_group)  # nothing programmed: the oldest wins
    assert reasons(evaluation) == ["NatGatewayConflict"]
    assert "shop/a" in evaluation.problems[0].message
    # a's group is its VIP's own (no vipGroup), which no vipGroup can name: both need the same vipGroup.
    assert (
        "give VirtualService shop/a and this VirtualService the same spec.vipGroup"
        in evaluation.problems[0].fix
    )
    named = virtual_service(
        "d",
        namespace="shop2",
        created="2026-01-04T00:00:00Z",
        vip="203.0.113.50",
        natGateway={"address": "10.3.0.1"},
    )
    joining = virtual_service(
        "e",
        namespace="shop2",
        created="2026-01-05T00:00:00Z",
        vip="203.0.113.60",
        natGateway={"address": "10.3.0.1"},
    )
    named["spec"]["vipGroup"] = "edge"
    add(reconciler, Kind.VIRTUAL_SERVICE, named)
    add(reconciler, Kind.VIRTUAL_SERVICE, joining)
    evaluation, _ = reconciler.evaluate(("shop2", "e"), joining)
    assert reasons(evaluation) == ["NatGatewayConflict"]
    assert evaluation.problems[0].fix.startswith("set spec.vipGroup: edge here")
    assert reconciler.evaluate(("shop", "a"), first)[0].accepted
    # Same VIP (so the same group), another port: the gateway is shared.
    same_group = virtual_service(
        "c", created="2026-01-03T00:00:00Z", ports=[{"port": 443}], natGateway={"address": GATEWAY}
    )
    add(reconciler, Kind.VIRTUAL_SERVICE, same_group)
    assert reconciler.evaluate(("shop", "c"), same_group)[0].accepted


def test_index_routes_gateway_and_vip_changes_to_the_services_sharing_the_address() -> None:
    web = virtual_service("web")
    reconciler = base_world((Kind.VIRTUAL_SERVICE, web))
    affected = add(
        reconciler,
        Kind.VIRTUAL_SERVICE,
        virtual_service("gw", namespace="shop2", vip="203.0.113.20", natGateway={"address": VIP}),
    )
    assert affected == {("shop2", "gw"), ("shop", "web")}
    # An address written in another form is the same address.
    affected = add(reconciler, Kind.VIRTUAL_SERVICE, virtual_service("v6", vip="2001:DB8:0::1"))
    assert affected == {("shop", "v6")}
    affected = add(
        reconciler, Kind.VIRTUAL_SERVICE, virtual_service("v6b", vip="2001:db8::1", ports=[{"port": 443}])
    )
    assert affected == {("shop", "v6"), ("shop", "v6b")}
