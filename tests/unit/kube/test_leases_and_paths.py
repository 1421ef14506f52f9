"""Pure parts of lvs_kube: URL paths, error mapping, the lease decision rule, kubeconfig loading."""

from __future__ import annotations

from pathlib import Path

import pytest
from lvs_kube.config import load_kubeconfig
from lvs_kube.errors import ApiError, Conflict, Gone, NotFound, error_for
from lvs_kube.leases import Decision, LeaseRecord, decide, next_record, parse_micro_time
from lvs_kube.resources import ENDPOINT_SLICE, NODE, POD, VIP_POOL, VIRTUAL_SERVICE


def test_paths_for_core_grouped_namespaced_and_cluster_scoped() -> None:
    assert POD.path("shop", "web-0") == "/api/v1/namespaces/shop/pods/web-0"
    assert POD.path() == "/api/v1/pods"
    assert NODE.path("ignored", "n1") == "/api/v1/nodes/n1"
    assert VIRTUAL_SERVICE.path("shop", "web", "status") == (
        "/apis/lvs.io/v1alpha1/namespaces/shop/virtualservices/web/status"
    )
    assert VIP_POOL.path(None, "public") == "/apis/lvs.io/v1alpha1/vippools/public"
    assert ENDPOINT_SLICE.path("shop") == "/apis/discovery.k8s.io/v1/namespaces/shop/endpointslices"
    assert ENDPOINT_SLICE.kopf_name == "endpointslices.discovery.k8s.io"
    assert POD.kopf_name == "pods"
    assert VIRTUAL_SERVICE.api_version == "lvs.io/v1alpha1"


@pytest.mark.parametrize(
    ("status", "kind"), [(404, NotFound), (409, Conflict), (410, Gone), (422, ApiError), (500, ApiError)]
)
def test_error_mapping(status: int, kind: type[ApiError]) -> None:
    error = error_for(status, {"reason": "X", "message": "why"}, "")
    assert type(error) is kind
    assert error.status == status
    assert error.message == "why"


def test_error_without_body_keeps_text() -> None:
    error = error_for(502, None, "bad gateway from proxy")
    assert error.message == "bad gateway from proxy"


def test_lease_decisions() -> None:
    live = LeaseRecord(holder="a", duration_seconds=15)
    assert decide(live, "a", observed_change_at=0.0, now=100.0) is Decision.RENEW
    assert decide(live, "b", observed_change_at=90.0, now=100.0) is Decision.WAIT
    assert decide(live, "b", observed_change_at=85.0, now=100.0) is Decision.TAKE
    assert decide(LeaseRecord(holder=""), "b", observed_change_at=99.0, now=100.0) is Decision.TAKE


def test_next_record_counts_transitions_only_on_a_change_of_holder() -> None:
    held = LeaseRecord(
        holder="a", duration_seconds=15, transitions=3, acquire_time="2026-01-01T00:00:00.000000Z"
    )
    renewed = next_record(held, "a", Decision.RENEW, 15)
    assert renewed.transitions == 3
    assert renewed.acquire_time == held.acquire_time
    assert parse_micro_time(renewed.renew_time) is not None
    taken = next_record(held, "b", Decision.TAKE, 15)
    assert taken.holder == "b"
    assert taken.transitions == 4
    assert next_record(LeaseRecord(holder="", transitions=4), "b", Decision.TAKE, 15).transitions == 5


def test_lease_record_round_trip() -> None:
    record = LeaseRecord("x", 7, "2026-01-01T00:00:00.000000Z", "2026-01-01T00:00:01.000000Z", 2)
    assert LeaseRecord.from_lease({"spec": record.to_spec()}) == record


def test_load_kubeconfig_token_and_namespace(tmp_path: Path) -> None:
    kubeconfig = tmp_path / "config"
    kubeconfig.write_text(
        """
apiVersion: v1
kind: Config
clusters: [{name: c, cluster: {server: "http://127.0.0.1:6443"}}]
users: [{name: u, user: {token: secret-token}}]
contexts: [{name: ctx, context: {cluster: c, user: u, namespace: shop}}]
current-context: ctx
"""
    )
    config = load_kubeconfig(str(kubeconfig))
    assert config.server == "http://127.0.0.1:6443"
    assert config.current_token() == "secret-token"
    assert config.default_namespace == "shop"
    assert config.ssl_context() is True
