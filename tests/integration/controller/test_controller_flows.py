"""The controller against the embedded API server over HTTP: real kopf, real lvs_kube client, real kubectl,
controller replicas as real processes."""

from __future__ import annotations

import itertools
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from conftest import Cluster, ControllerProcess, condition, wait_for

pytestmark = pytest.mark.integration

_subnets = itertools.count(1)


def vip_block() -> str:
    """A /28 of 203.0.113.0/24 of its own for each test (VIPs are cluster-wide): 15 in all."""
    index = next(_subnets)
    assert index < 16, "out of /28 blocks in 203.0.113.0/24: give this module's tests another range"
    return f"203.0.113.{index * 16}"


def vip_pool(name: str, block: str, namespaces: list[str], **spec: Any) -> dict[str, Any]:
    return {
        "apiVersion": "lvs.io/v1alpha1",
        "kind": "VIPPool",
        "metadata": {"name": name},
        "spec": {"addresses": [f"{block}/28"], "namespaces": namespaces, **spec},
    }


def real_server_pool(namespace: str, name: str = "web", **spec: Any) -> dict[str, Any]:
    body = spec or {"members": [{"address": "198.51.100.11"}, {"address": "198.51.100.12", "weight": 2}]}
    return {
        "apiVersion": "lvs.io/v1alpha1",
        "kind": "RealServerPool",
        "metadata": {"name": name, "namespace": namespace},
        "spec": body,
    }


def virtual_service(namespace: str, name: str, vip: str, **spec: Any) -> dict[str, Any]:
    body: dict[str, Any] = {"vip": vip, "ports": [{"port": 80}], "poolRef": {"name": "web"}}
    body.update(spec)
    return {
        "apiVersion": "lvs.io/v1alpha1",
        "kind": "VirtualService",
        "metadata": {"name": name, "namespace": namespace},
        "spec": body,
    }


def vip_in(block: str, host: int) -> str:
    base, last = block.rsplit(".", 1)
    return f"{base}.{int(last) + host}"


def accepted(cluster: Cluster, namespace: str, name: str, status: str = "True") -> dict[str, Any] | None:
    obj = cluster.get("virtualservices.lvs.io", name, namespace)
    found = condition(obj, "Accepted")
    generation = (obj or {}).get("metadata", {}).get("generation")
    if found.get("status") == status and found.get("observedGeneration") == generation:
        return obj
    return None


def resolved(cluster: Cluster, namespace: str, name: str) -> dict[str, Any] | None:
    return cluster.get("resolvedservices.lvs.io", name, namespace)


def member_addresses(obj: dict[str, Any] | None) -> list[str]:
    return [m["address"] for m in ((obj or {}).get("spec") or {}).get("members", [])]


@pytest.fixture(scope="module")
def controller(cluster: Cluster) -> Iterator[ControllerProcess]:
    """One controller for the module's tests (each test has its own namespace and VIP range)."""
    process = ControllerProcess(cluster, "solo").start()
    try:
        process.wait_primed()
        yield process
    finally:
        process.stop()


def test_create_update_delete_with_kubectl_apply(
    cluster: Cluster, namespace: str, controller: ControllerProcess
) -> None:
    block = vip_block()
    vip = vip_in(block, 1)
    cluster.apply(
        vip_pool(f"p-{namespace}", block, [namespace]),
        real_server_pool(namespace),
        virtual_service(namespace, "web", vip),
    )
    obj = wait_for(lambda: accepted(cluster, namespace, "web"), what="Accepted=True")
    # No director reports it: deletion would have nothing to wait for, so no finalizer yet.
    assert "lvs.io/cleanup" not in (obj["metadata"].get("finalizers") or [])
    rs = wait_for(lambda: resolved(cluster, namespace, "web"), what="ResolvedService")
    assert member_addresses(rs) == ["198.51.100.11", "198.51.100.12"]
    assert rs["spec"]["acceptedGeneration"] == 1
    assert rs["metadata"]["ownerReferences"][0]["uid"] == obj["metadata"]["uid"]
    managers = {f.get("manager") for f in rs["metadata"].get("managedFields", [])}
    assert managers <= {"lvs-controller"}  # the embedded server currently omits managedFields on CRs
    assert condition(obj, "Conflict")["status"] == "False"
    # No director reports yet: accepted but neither programmed nor ready (kstatus: in progress).
    assert condition(obj, "Ready")["status"] == "False"
    assert obj["status"]["observedGeneration"] == 1

    # Pool and VIPPool status (printer columns): members, users, claimed addresses.
    pool = wait_for(
        lambda: (
            (p := cluster.get("realserverpools.lvs.io", "web", namespace))
            and p.get("status", {}).get("usedBy") == ["web"]
            and p
        ),
        what="pool status",
    )
    assert pool["status"]["resolvedMembers"] == 2
    assert condition(pool, "Accepted")["status"] == "True"
    assert condition(pool, "Resolved")["status"] == "True"
    wait_for(
        lambda: (
            (cluster.get("vippools.lvs.io", f"p-{namespace}") or {}).get("status", {}).get("claimedAddresses")
            == 1
        ),
        what="VIPPool claimedAddresses",
    )

    # Update the pool: the resolved members follow.
    cluster.apply(real_server_pool(namespace, members=[{"address": "198.51.100.13"}]))
    wait_for(
        lambda: member_addresses(resolved(cluster, namespace, "web")) == ["198.51.100.13"], what="new members"
    )
    # Update the service: a new generation is accepted and published.
    cluster.apply(virtual_service(namespace, "web", vip, ports=[{"port": 80}, {"port": 443}]))
    rs = wait_for(
        lambda: (r := resolved(cluster, namespace, "web")) and r["spec"]["acceptedGeneration"] == 2 and r,
        what="generation 2 published",
    )
    assert [p["port"] for p in rs["spec"]["service"]["ports"]] == [80, 443]
    wait_for(lambda: accepted(cluster, namespace, "web"), what="generation 2 accepted")

    # Delete: no director lists it (so no finalizer): it goes at once, and the ResolvedService with it.
    cluster.kubectl("delete", "virtualservices.lvs.io", "web", "-n", namespace, "--wait=false")
    wait_for(lambda: cluster.get("virtualservices.lvs.io", "web", namespace) is None, what="VS gone")
    wait_for(lambda: resolved(cluster, namespace, "web") is None, what="ResolvedService gone")


FAILURES: list[tuple[str, Callable[[str, str, str], list[dict[str, Any]]], str]] = [
    # (reason, objects for (namespace, block, vip), field named in the message)
    ("VIPNotInPool", lambda ns, block, vip: [virtual_service(ns, "web", "192.0.2.77")], "spec.vip"),
    (
        "NamespaceNotAllowed",
        lambda ns, block, vip: [
            vip_pool(f"p-{ns}", block, ["someone-else"]),
            virtual_service(ns, "web", vip),
        ],
        "spec.vip",
    ),
    (
        "PoolNotFound",
        lambda ns, block, vip: [
            vip_pool(f"p-{ns}", block, [ns]),
            virtual_service(ns, "web", vip, poolRef={"name": "missing"}),
        ],
        "spec.poolRef.name",
    ),
    (
        "FamilyMismatch",
        lambda ns, block, vip: [
            vip_pool(f"p-{ns}", block, [ns]),
            real_server_pool(ns, members=[{"address": "2001:db8::11"}]),
            virtual_service(ns, "web", vip),
        ],
        "spec.members",
    ),
    (
        "ForwardingMismatch",
        lambda ns, block, vip: [
            vip_pool(f"p-{ns}", block, [ns]),
            real_server_pool(ns, members=[{"address": "198.51.100.11", "port": 8080}]),
            virtual_service(ns, "web", vip, forwarding="DirectRouting"),
        ],
        "spec.forwarding",
    ),
    (
        "ExecCheckNotAllowed",
        lambda ns, block, vip: [
            vip_pool(f"p-{ns}", block, [ns]),
            real_server_pool(ns),
            virtual_service(ns, "web", vip, healthCheck={"type": "Exec", "exec": {"command": ["/bin/true"]}}),
        ],
        "spec.healthCheck.type",
    ),
]


@pytest.mark.parametrize(("reason", "objects", "field"), FAILURES, ids=[f[0] for f in FAILURES])
def test_validation_failure_sets_condition_and_warning_event(  # noqa: PLR0917
    cluster: Cluster,
    namespace: str,
    controller: ControllerProcess,
    reason: str,
    objects: Callable[[str, str, str], list[dict[str, Any]]],
    field: str,
) -> None:
    block = vip_block()
    cluster.apply(*objects(namespace, block, vip_in(block, 1)))
    obj = wait_for(lambda: accepted(cluster, namespace, "web", "False"), what="Accepted=False")
    found = condition(obj, "Accepted")
    assert found["reason"] == reason
    assert field in found["message"]
    assert "fix:" in found["message"]
    assert condition(obj, "Ready")["status"] == "False"
    events = wait_for(
        lambda: [e for e in cluster.events(namespace, "web") if e["reason"] == reason], what=f"{reason} event"
    )
    assert events[0]["type"] == "Warning"
    assert field in events[0]["message"]
    # Nothing of a rejected spec is programmed.
    assert resolved(cluster, namespace, "web") is None


def test_conflict_names_the_owner_and_resolves_when_it_goes(
    cluster: Cluster, namespace: str, controller: ControllerProcess
) -> None:
    block = vip_block()
    vip = vip_in(block, 2)
    cluster.apply(
        vip_pool(f"p-{namespace}", block, [namespace]),
        real_server_pool(namespace),
        virtual_service(namespace, "first", vip),
    )
    wait_for(lambda: resolved(cluster, namespace, "first"), what="first published")
    cluster.apply(virtual_service(namespace, "second", vip, ports=[{"port": 443}, {"port": 80}]))
    second = wait_for(lambda: accepted(cluster, namespace, "second", "False"), what="second rejected")
    conflict = condition(second, "Conflict")
    assert conflict["status"] == "True"
    assert conflict["reason"] == "PortConflict"
    assert f"{namespace}/first" in conflict["message"]
    assert resolved(cluster, namespace, "second") is None
    wait_for(
        lambda: [e for e in cluster.events(namespace, "second") if e["reason"] == "PortConflict"],
        what="PortConflict event",
    )
    # The first keeps working.
    first = cluster.get("virtualservices.lvs.io", "first", namespace)
    assert condition(first, "Accepted")["status"] == "True"
    assert condition(first, "Conflict")["status"] == "False"
    # Resolution: the owner goes, the second claimant is accepted and published.
    cluster.kubectl("delete", "virtualservices.lvs.io", "first", "-n", namespace)
    second = wait_for(lambda: accepted(cluster, namespace, "second"), what="second accepted")
    assert condition(second, "Conflict")["status"] == "False"
    wait_for(lambda: resolved(cluster, namespace, "second"), what="second published")
    wait_for(
        lambda: [e for e in cluster.events(namespace, "second") if e["reason"] == "ConflictResolved"],
        what="ConflictResolved event",
    )


def test_vip_pool_tenancy(cluster: Cluster, controller: ControllerProcess) -> None:
    """Namespace b cannot claim a VIP from the range VIPPool gives to namespace a."""
    block = vip_block()
    tenant_a, tenant_b = f"a-{block.rsplit('.', 1)[1]}", f"b-{block.rsplit('.', 1)[1]}"
    for name in (tenant_a, tenant_b):
        cluster.apply({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name}})
    cluster.apply(
        vip_pool(f"p-{tenant_a}", block, [tenant_a]),
        real_server_pool(tenant_a),
        real_server_pool(tenant_b),
        virtual_service(tenant_a, "web", vip_in(block, 3)),
        virtual_service(tenant_b, "web", vip_in(block, 4)),
    )
    wait_for(lambda: accepted(cluster, tenant_a, "web"), what="tenant a accepted")
    rejected = wait_for(lambda: accepted(cluster, tenant_b, "web", "False"), what="tenant b rejected")
    assert condition(rejected, "Accepted")["reason"] == "NamespaceNotAllowed"
    # The admin extends the pool by label: now b is admitted too.
    cluster.kubectl("label", "namespace", tenant_b, "lvs.io/tenant=yes")
    cluster.apply(
        vip_pool(
            f"p-{tenant_a}", block, [tenant_a], namespaceSelector={"matchLabels": {"lvs.io/tenant": "yes"}}
        )
    )
    wait_for(lambda: accepted(cluster, tenant_b, "web"), what="tenant b admitted by label")


def test_rejected_update_keeps_last_good_spec_programmed(
    cluster: Cluster, namespace: str, controller: ControllerProcess
) -> None:
    block = vip_block()
    good_vip = vip_in(block, 5)
    cluster.apply(
        vip_pool(f"p-{namespace}", block, [namespace]),
        real_server_pool(namespace),
        virtual_service(namespace, "web", good_vip),
    )
    wait_for(lambda: resolved(cluster, namespace, "web"), what="published")
    cluster.apply(virtual_service(namespace, "web", "192.0.2.200"))
    obj = wait_for(lambda: accepted(cluster, namespace, "web", "False"), what="rejected")
    assert condition(obj, "Degraded")["reason"] == "LastGoodSpecActive"
    rs = resolved(cluster, namespace, "web")
    assert rs is not None
    assert rs["spec"]["service"]["vip"] == good_vip
    assert rs["spec"]["acceptedGeneration"] == 1
    # Members still follow the pool while the spec is being fixed.
    cluster.apply(real_server_pool(namespace, members=[{"address": "198.51.100.20"}]))
    wait_for(
        lambda: member_addresses(resolved(cluster, namespace, "web")) == ["198.51.100.20"], what="members"
    )
    cluster.apply(virtual_service(namespace, "web", vip_in(block, 6)))
    wait_for(
        lambda: (r := resolved(cluster, namespace, "web")) and r["spec"]["acceptedGeneration"] == 3,
        what="generation 3 published",
    )


def test_deleting_a_pool_in_use_is_reported(
    cluster: Cluster, namespace: str, controller: ControllerProcess
) -> None:
    block = vip_block()
    cluster.apply(
        vip_pool(f"p-{namespace}", block, [namespace]),
        real_server_pool(namespace),
        virtual_service(namespace, "web", vip_in(block, 7)),
    )
    wait_for(lambda: resolved(cluster, namespace, "web"), what="published")
    cluster.kubectl("delete", "realserverpools.lvs.io", "web", "-n", namespace)
    obj = wait_for(lambda: accepted(cluster, namespace, "web", "False"), what="PoolNotFound")
    assert condition(obj, "Accepted")["reason"] == "PoolNotFound"
    assert member_addresses(resolved(cluster, namespace, "web")) == ["198.51.100.11", "198.51.100.12"]
    assert controller.alive


def endpoint_slice(namespace: str, name: str, endpoints: list[tuple[str, bool, bool]]) -> dict[str, Any]:
    return {
        "apiVersion": "discovery.k8s.io/v1",
        "kind": "EndpointSlice",
        "metadata": {
            "name": name,
            "namespace": namespace,
            "labels": {"kubernetes.io/service-name": "backend"},
        },
        "addressType": "IPv4",
        "ports": [{"name": "http", "port": 8080, "protocol": "TCP"}],
        "endpoints": [
            {
                "addresses": [address],
                "conditions": {"ready": ready, "serving": ready or terminating, "terminating": terminating},
            }
            for address, ready, terminating in endpoints
        ],
    }


def test_service_scale_up_down_and_terminating_drain(
    cluster: Cluster, namespace: str, controller: ControllerProcess
) -> None:
    block = vip_block()
    service = {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {"name": "backend", "namespace": namespace},
        "spec": {"ports": [{"name": "http", "port": 80, "targetPort": 8080}], "selector": {"app": "b"}},
    }
    cluster.apply(
        vip_pool(f"p-{namespace}", block, [namespace]),
        service,
        real_server_pool(namespace, selector={"service": {"name": "backend", "port": "http"}}),
        endpoint_slice(namespace, "backend-1", [("10.9.0.1", True, False), ("10.9.0.2", True, False)]),
        virtual_service(namespace, "web", vip_in(block, 8)),
    )
    wait_for(
        lambda: member_addresses(resolved(cluster, namespace, "web")) == ["10.9.0.1", "10.9.0.2"],
        what="two endpoints",
    )
    # Scale up: a second slice.
    cluster.apply(endpoint_slice(namespace, "backend-2", [("10.9.0.3", True, False)]))
    wait_for(
        lambda: member_addresses(resolved(cluster, namespace, "web")) == ["10.9.0.1", "10.9.0.2", "10.9.0.3"],
        what="scale up",
    )
    # Rollout: one endpoint terminating -> drained with weight 0, still present.
    cluster.apply(
        endpoint_slice(namespace, "backend-1", [("10.9.0.1", True, False), ("10.9.0.2", False, True)])
    )

    def drained() -> bool:
        members = {
            m["address"]: m
            for m in (resolved(cluster, namespace, "web") or {}).get("spec", {}).get("members", [])
        }
        entry = members.get("10.9.0.2")
        return bool(entry and entry["terminating"] and entry["weight"] == 0)

    wait_for(drained, what="terminating endpoint drained")
    rs = resolved(cluster, namespace, "web")
    assert rs is not None and all(m["port"] == 8080 for m in rs["spec"]["members"])
    # Scale down: the slice goes away.
    cluster.kubectl("delete", "endpointslices.discovery.k8s.io", "backend-2", "-n", namespace)
    wait_for(
        lambda: member_addresses(resolved(cluster, namespace, "web")) == ["10.9.0.1", "10.9.0.2"],
        what="scale down",
    )


def director_report(
    node: str, entries: dict[str, Any], groups: list[dict[str, Any]] | None = None
) -> dict[str, Any]:
    return {"services": entries, "vipGroups": groups or [], "heartbeatTime": "2026-01-01T00:00:00Z"}


def test_director_reports_fold_into_status_and_gate_deletion(
    cluster: Cluster, namespace: str, controller: ControllerProcess
) -> None:
    block = vip_block()
    vip = vip_in(block, 9)
    node = f"node-{namespace}"
    cluster.apply(
        vip_pool(f"p-{namespace}", block, [namespace]),
        real_server_pool(namespace),
        virtual_service(namespace, "web", vip),
        {
            "apiVersion": "lvs.io/v1alpha1",
            "kind": "DirectorReport",
            "metadata": {"name": node},
            "spec": {"nodeName": node},
        },
    )
    wait_for(lambda: resolved(cluster, namespace, "web"), what="published")
    entry = {
        "programmed": True,
        "reason": "Programmed",
        "acceptedGeneration": 1,
        "active": True,
        "healthyMembers": 2,
        "totalMembers": 2,
    }
    group = {"name": vip, "vips": [vip], "role": "Active", "since": "2026-01-01T00:00:05Z", "failovers": 2}
    import json

    cluster.kubectl(
        "patch",
        "directorreports.lvs.io",
        node,
        "--subresource=status",
        "--type=merge",
        "-p",
        json.dumps({"status": director_report(node, {f"{namespace}/web": entry}, [group])}),
    )
    cluster.kubectl(
        "wait", "virtualservices.lvs.io/web", "-n", namespace, "--for=condition=Ready", "--timeout=20s"
    )
    obj = cluster.get("virtualservices.lvs.io", "web", namespace)
    assert obj is not None
    # A director reports it now: the finalizer makes deletion wait for that director.
    assert "lvs.io/cleanup" in obj["metadata"]["finalizers"]
    status = obj["status"]
    assert status["activeDirector"] == node
    assert (status["healthyMembers"], status["totalMembers"]) == (2, 2)
    assert status["failoverCount"] == 1
    assert status["lastFailoverTime"] == "2026-01-01T00:00:05Z"
    assert condition(obj, "Programmed")["status"] == "True"
    # One member fails: Degraded, still Ready.
    cluster.kubectl(
        "patch",
        "directorreports.lvs.io",
        node,
        "--subresource=status",
        "--type=merge",
        "-p",
        json.dumps({"status": {"services": {f"{namespace}/web": {**entry, "healthyMembers": 1}}}}),
    )
    degraded = wait_for(
        lambda: (
            condition(cluster.get("virtualservices.lvs.io", "web", namespace), "Degraded").get("status")
            == "True"
            and cluster.get("virtualservices.lvs.io", "web", namespace)
        ),
        what="Degraded",
    )
    assert condition(degraded, "Degraded")["reason"] == "MembersUnhealthy"
    # Deletion waits for the director to drop the service.
    cluster.kubectl("delete", "virtualservices.lvs.io", "web", "-n", namespace, "--wait=false")
    wait_for(lambda: resolved(cluster, namespace, "web") is None, what="ResolvedService withdrawn")
    time.sleep(1.5)
    pending = cluster.get("virtualservices.lvs.io", "web", namespace)
    assert pending is not None and pending["metadata"].get("deletionTimestamp")
    cluster.kubectl(
        "patch",
        "directorreports.lvs.io",
        node,
        "--subresource=status",
        "--type=merge",
        "-p",
        json.dumps({"status": {"services": {f"{namespace}/web": None}}}),
    )
    wait_for(lambda: cluster.get("virtualservices.lvs.io", "web", namespace) is None, what="VS gone")


def test_vip_group_mismatch_on_one_vip_is_rejected_and_resolves_when_fixed(
    cluster: Cluster, namespace: str, controller: ControllerProcess
) -> None:
    """Two VirtualServices on one VIP (HTTP and DNS) must share a vipGroup: the second claimant with
    another group is rejected naming the field, the first and the fix; setting the same group fixes it."""
    block = vip_block()
    vip = vip_in(block, 10)
    cluster.apply(
        vip_pool(f"p-{namespace}", block, [namespace]),
        real_server_pool(namespace),
        virtual_service(namespace, "http", vip, vipGroup="front"),
    )
    wait_for(lambda: resolved(cluster, namespace, "http"), what="http published")
    dns = virtual_service(namespace, "dns", vip, ports=[{"port": 53, "protocol": "UDP"}], vipGroup="other")
    cluster.apply(dns)
    rejected = wait_for(lambda: accepted(cluster, namespace, "dns", "False"), what="dns rejected")
    found = condition(rejected, "Accepted")
    assert found["reason"] == "VIPGroupConflict"
    assert "spec.vipGroup" in found["message"]
    assert f"{namespace}/http" in found["message"]
    assert "fix: set vipGroup: front" in found["message"]
    conflict = condition(rejected, "Conflict")
    assert (conflict["status"], conflict["reason"]) == ("True", "VIPGroupConflict")
    events = wait_for(
        lambda: [e for e in cluster.events(namespace, "dns") if e["reason"] == "VIPGroupConflict"],
        what="VIPGroupConflict event",
    )
    assert events[0]["type"] == "Warning" and "spec.vipGroup" in events[0]["message"]
    assert resolved(cluster, namespace, "dns") is None
    http = cluster.get("virtualservices.lvs.io", "http", namespace)
    assert condition(http, "Accepted")["status"] == "True"
    assert condition(http, "Conflict")["status"] == "False"
    # The fix: the same group. Accepted, published, and the conflict is reported resolved.
    cluster.apply(
        virtual_service(namespace, "dns", vip, ports=[{"port": 53, "protocol": "UDP"}], vipGroup="front")
    )
    fixed = wait_for(lambda: accepted(cluster, namespace, "dns"), what="dns accepted")
    assert condition(fixed, "Conflict")["status"] == "False"
    rs = wait_for(lambda: resolved(cluster, namespace, "dns"), what="dns published")
    assert rs["spec"]["service"]["vipGroup"] == "front"
    wait_for(
        lambda: [e for e in cluster.events(namespace, "dns") if e["reason"] == "ConflictResolved"],
        what="ConflictResolved event",
    )


def test_nat_gateway_tenancy_and_clashes_across_namespaces(
    cluster: Cluster, controller: ControllerProcess
) -> None:
    """Namespace b may not take a natGateway inside a's VIPPool range, nor a's VIP, nor a's gateway in
    another VIP group; each rejection names the field, the reason and the fix, and a fix is picked up."""
    block = vip_block()
    suffix = block.rsplit(".", 1)[1]
    tenant_a, tenant_b = f"ga-{suffix}", f"gb-{suffix}"
    for name in (tenant_a, tenant_b):
        cluster.apply({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name}})
    gateway_block = f"198.51.100.{int(suffix)}"  # a /28 of its own: the real servers' network of a
    own_gateway = vip_in(gateway_block, 1)
    vip_a, vip_b = vip_in(block, 1), vip_in(block, 2)
    cluster.apply(
        vip_pool(f"p-{tenant_a}", block, [tenant_a, tenant_b]),
        vip_pool(f"g-{tenant_a}", gateway_block, [tenant_a]),
        real_server_pool(tenant_a),
        real_server_pool(tenant_b),
        virtual_service(tenant_a, "web", vip_a, natGateway={"address": own_gateway}),
    )
    wait_for(lambda: resolved(cluster, tenant_a, "web"), what="a published")

    def rejected_for(reason: str, field: str, kind: str = "Accepted") -> dict[str, Any]:
        """b not accepted, with ``reason`` on its ``kind`` condition and a Warning event for it."""
        obj = wait_for(
            lambda: (
                (o := accepted(cluster, tenant_b, "web", "False"))
                and condition(o, kind)["reason"] == reason
                and o
            ),
            what=f"b rejected with {reason}",
        )
        message = condition(obj, kind)["message"]
        assert field in message and "fix:" in message
        wait_for(
            lambda: [e for e in cluster.events(tenant_b, "web") if e["reason"] == reason],
            what=f"{reason} event",
        )
        assert resolved(cluster, tenant_b, "web") is None  # never accepted: nothing published
        return obj

    # Inside a range only a is admitted to.
    cluster.apply(virtual_service(tenant_b, "web", vip_b, natGateway={"address": vip_in(gateway_block, 2)}))
    obj = rejected_for("NatGatewayNotAllowed", "spec.natGateway.address")
    assert f"g-{tenant_a}" in condition(obj, "Accepted")["message"]
    # a's VIP as b's gateway.
    cluster.apply(virtual_service(tenant_b, "web", vip_b, natGateway={"address": vip_a}))
    obj = rejected_for("NatGatewayConflict", "spec.natGateway.address")
    assert f"{tenant_a}/web" in condition(obj, "Conflict")["message"]
    # a's gateway in another VIP group (b's VIP is its own group); that gateway is also in a's range.
    cluster.apply(virtual_service(tenant_b, "web", vip_b, natGateway={"address": own_gateway}))
    obj = rejected_for("NatGatewayConflict", "spec.natGateway.address", kind="Conflict")
    assert "(and 1 more)" in condition(obj, "Accepted")["message"]
    assert f"{tenant_a}/web" in condition(obj, "Conflict")["message"]
    # a keeps working throughout.
    a = cluster.get("virtualservices.lvs.io", "web", tenant_a)
    assert condition(a, "Accepted")["status"] == "True"
    assert condition(a, "Conflict")["status"] == "False"
    # The fix: a gateway of b's own, outside every pool.
    cluster.apply(virtual_service(tenant_b, "web", vip_b, natGateway={"address": "192.0.2.1"}))
    wait_for(lambda: accepted(cluster, tenant_b, "web"), what="b accepted")
    rs = wait_for(
        lambda: (r := resolved(cluster, tenant_b, "web")) and r["spec"]["service"].get("natGateway") and r,
        what="b published with its gateway",
    )
    assert rs["spec"]["service"]["natGateway"]["address"] == "192.0.2.1"
