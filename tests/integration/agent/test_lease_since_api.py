"""The Kubernetes Lease store keeps what the agents report as `since` and `failovers`: spec.acquireTime
(kept when the holder re-takes its own Lease) and the per-node activation counts (lvs.io/activations)."""

from __future__ import annotations

import json
import uuid

import pytest
from lvs_agent.failover.lease import ACTIVATIONS_ANNOTATION, KubeLeaseStore, lease_name
from lvs_kube.client import KubeClient
from lvs_kube.resources import LEASE, NAMESPACE

pytestmark = [pytest.mark.integration, pytest.mark.timeout(120)]

GROUP = "203.0.113.10"



async def test_acquire_time_and_activation_counts_in_the_lease(client: KubeClient) -> None:
    namespace = f"lease-{uuid.uuid4().hex[:8]}"
    await client.create(NAMESPACE, {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": namespace}})
    store = KubeLeaseStore(client, namespace, duration_seconds=10)
    first = await store.acquire(GROUP, "dir1", None)
    assert first.acquired is not None and first.activations == {"dir1": 1}
    renewed = await store.renew(GROUP, "dir1")
    again = await store.acquire(GROUP, "dir1", renewed)  # dir1's agent restarted
    assert (again.transitions, again.acquired, again.activations) == (0, first.acquired, {"dir1": 1})
    taken = await store.acquire(GROUP, "dir2", again)
    back = await store.acquire(GROUP, "dir1", taken)
    assert (back.transitions, back.activations) == (2, {"dir1": 2, "dir2": 1})
    assert taken.acquired is not None and back.acquired is not None
    assert first.acquired < taken.acquired < back.acquired
    lease = await client.get(LEASE, lease_name(GROUP), namespace)
    assert json.loads(lease["metadata"]["annotations"][ACTIVATIONS_ANNOTATION]) == {"dir1": 2, "dir2": 1}
    assert lease["metadata"]["annotations"]["lvs.io/vip-group"] == GROUP
    assert (await store.read(GROUP)).acquired == back.acquired
