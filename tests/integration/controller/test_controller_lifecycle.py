"""Idempotence and availability: re-applied manifests and a controller restart cause no writes; of two
replicas exactly one is active, and the other takes over when it dies."""

from __future__ import annotations

import signal
import time
from collections.abc import Callable
from typing import Any

import pytest
from conftest import Cluster, ControllerProcess, condition, wait_for

pytestmark = pytest.mark.integration

BLOCK = "198.51.100.64"  # VIPs of this module: 198.51.100.64/27 (documentation range)


def manifests(namespace: str, count: int = 3, first_host: int = 65) -> list[dict[str, Any]]:
    objects: list[dict[str, Any]] = [
        {
            "apiVersion": "lvs.io/v1alpha1",
            "kind": "VIPPool",
            "metadata": {"name": f"p-{namespace}"},
            "spec": {"addresses": [f"{BLOCK}/27"], "namespaces": [namespace]},
        },
        {
            "apiVersion": "lvs.io/v1alpha1",
            "kind": "RealServerPool",
            "metadata": {"name": "web", "namespace": namespace},
            "spec": {"members": [{"address": "192.0.2.11"}, {"address": "192.0.2.12", "weight": 3}]},
        },
    ]
    for index in range(count):
        objects.append(
            {
                "apiVersion": "lvs.io/v1alpha1",
                "kind": "VirtualService",
                "metadata": {"name": f"svc-{index}", "namespace": namespace},
                "spec": {
                    "vip": f"198.51.100.{first_host + index}",
                    "ports": [{"port": 80}],
                    "poolRef": {"name": "web"},
                },
            }
        )
    # A rejected one too: its status and event must not be rewritten either.
    objects.append(
        {
            "apiVersion": "lvs.io/v1alpha1",
            "kind": "VirtualService",
            "metadata": {"name": "rejected", "namespace": namespace},
            "spec": {"vip": "192.0.2.250", "ports": [{"port": 80}], "poolRef": {"name": "web"}},
        }
    )
    return objects


def settled(cluster: Cluster, namespace: str, count: int = 3) -> bool:
    for index in range(count):
        obj = cluster.get("virtualservices.lvs.io", f"svc-{index}", namespace)
        if condition(obj, "Accepted").get("status") != "True":
            return False
        if cluster.get("resolvedservices.lvs.io", f"svc-{index}", namespace) is None:
            return False
    rejected = cluster.get("virtualservices.lvs.io", "rejected", namespace)
    return condition(rejected, "Accepted").get("reason") == "VIPNotInPool" and bool(
        [e for e in cluster.events(namespace, "rejected") if e["reason"] == "VIPNotInPool"]
    )


def wait_quiet(process: ControllerProcess, quiet: float = 3.0, timeout: float = 30.0) -> None:
    """Until the controller's write count has not moved for ``quiet`` seconds (longer than its debounces:
    status 0.2 s, pool status 0.5 s, VIPPool status 2 s)."""
    deadline = time.monotonic() + timeout
    last, since = process.object_writes(), time.monotonic()
    while time.monotonic() < deadline:
        time.sleep(0.2)
        current = process.object_writes()
        if current != last:
            last, since = current, time.monotonic()
        elif time.monotonic() - since >= quiet:
            return
    raise AssertionError(f"the controller kept writing for {timeout}s")


def test_reapply_and_restart_cause_no_writes(
    cluster: Cluster, namespace: str, start_controller: Callable[..., ControllerProcess]
) -> None:
    first = start_controller("first")
    first.wait_primed()
    documents = manifests(namespace)
    cluster.apply(*documents)
    wait_for(lambda: settled(cluster, namespace), what="steady state")
    wait_quiet(first)  # debounced pool status writes land after the VirtualServices settle
    before = cluster.snapshot([namespace])
    writes_before = first.object_writes()
    assert writes_before > 0  # it did write while converging (finalizers, ResolvedServices, status, events)

    # GitOps re-apply, client-side and server-side: the controller writes nothing.
    output = cluster.apply(*documents)
    assert "unchanged" in output
    for document in documents:
        if document["kind"] != "VIPPool":
            cluster.kubectl(
                "apply",
                "--server-side",
                "--force-conflicts",
                "--field-manager=gitops",
                "-f",
                "-",
                input=__import__("yaml").safe_dump(document),
            )
    time.sleep(2.0)
    assert first.object_writes() == writes_before
    after_reapply = cluster.snapshot([namespace])
    # Server-side apply by a new manager may touch managedFields of the user objects themselves, but no
    # ResolvedService and no Event is rewritten.
    for key, version in before.items():
        if not key.startswith("virtualservices.lvs.io/"):
            assert after_reapply.get(key) == version, key
    assert set(after_reapply) == set(before)

    # Restart: a new process primes its cache, reconciles everything, and writes nothing.
    assert first.stop() == 0
    steady = cluster.snapshot([namespace])
    second = start_controller("second")
    second.wait_primed()
    wait_for(
        lambda: second.metrics().get('lvs_controller_reconciles_total{result="ok"}', 0) >= 4,
        what="every VirtualService reconciled after the restart",
    )
    time.sleep(1.5)
    assert second.object_writes() == 0
    assert cluster.snapshot([namespace]) == steady


def lease_holder(cluster: Cluster) -> str:
    lease = cluster.get("leases.coordination.k8s.io", "lvs-controller", "default")
    return str(((lease or {}).get("spec") or {}).get("holderIdentity") or "")


def test_two_replicas_exactly_one_active_and_failover(
    cluster: Cluster, namespace: str, start_controller: Callable[..., ControllerProcess]
) -> None:
    # Any leftover holder from another test released the lease on SIGTERM; wait for a clean start anyway.
    replicas = {name: start_controller(name) for name in ("replica-a", "replica-b")}
    holder = wait_for(lambda: lease_holder(cluster) in replicas and lease_holder(cluster), what="a leader")
    leader, standby = replicas[holder], next(r for n, r in replicas.items() if n != holder)
    leader.wait_primed()
    wait_for(lambda: leader.logged("active"), what="the leader says it is active")
    assert not standby.logged("active")
    assert not standby.logged("cache primed")

    cluster.apply(*manifests(namespace, count=1, first_host=75))
    wait_for(
        lambda: cluster.get("resolvedservices.lvs.io", "svc-0", namespace), what="published by the leader"
    )
    assert standby.object_writes() == 0
    assert standby.metrics().get("lvs_controller_leader") == 0.0
    assert leader.metrics().get("lvs_controller_leader") == 1.0

    # The leader dies without releasing the lease: the standby takes over after the lease expires.
    killed_at = time.monotonic()
    leader.stop(signal.SIGKILL)
    wait_for(lambda: standby.logged("active"), timeout=15, what="standby takes over")
    takeover = time.monotonic() - killed_at  # bounded by wait_for's 15 s: the figure is printed, not judged
    assert lease_holder(cluster) == standby.identity
    standby.wait_primed()
    cluster.apply(
        {
            "apiVersion": "lvs.io/v1alpha1",
            "kind": "VirtualService",
            "metadata": {"name": "after-failover", "namespace": namespace},
            "spec": {"vip": "198.51.100.80", "ports": [{"port": 80}], "poolRef": {"name": "web"}},
        }
    )
    wait_for(
        lambda: cluster.get("resolvedservices.lvs.io", "after-failover", namespace), what="new leader works"
    )

    # A graceful stop releases the lease at once: a fresh replica takes it without waiting for expiry.
    fresh = start_controller("replica-c")
    time.sleep(1.0)
    assert not fresh.logged("active")
    stopping_at = time.monotonic()
    assert standby.stop() == 0
    stopped_at = time.monotonic()
    wait_for(lambda: fresh.logged("active"), timeout=10, interval=0.05, what="fresh replica takes over")
    handover = time.monotonic() - stopping_at
    # released on SIGTERM (holder emptied), so the fresh replica did not have to wait for the expiry; said
    # by the log rather than by the clock, which a loaded CI machine stretches
    released = standby.logged("released lease default/lvs-controller")
    assert released, "the stopping leader did not release the lease"
    print(
        f"\ntakeover after SIGKILL of the leader: {takeover:.2f}s; graceful stop took "
        f"{stopped_at - stopping_at:.2f}s, handover after SIGTERM: {handover:.2f}s"
    )
