"""Fidelity with a real kube-apiserver for what operators and GitOps tools do with the lvs.io CRDs,
driven by the real kubectl and the kubernetes client: managedFields in server-side apply responses,
conflict messages, label removal, field-selector limits, discovery order of CRD groups, tables."""

from __future__ import annotations

import json
import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import Any

import kubernetes
import pytest
import yaml
from kubernetes.client import ApiException

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parents[3]
CRDS = REPO / "crds"
APPLY = "application/apply-patch+yaml"
Kubectl = Callable[..., subprocess.CompletedProcess[str]]


@pytest.fixture
def lvs_crds(install_crds: Callable[..., list[str]]) -> list[str]:
    return install_crds(CRDS)


def virtual_service(name: str, namespace: str, vip: str = "203.0.113.10", **spec: Any) -> dict[str, Any]:
    return {
        "apiVersion": "lvs.io/v1alpha1",
        "kind": "VirtualService",
        "metadata": {"name": name, "namespace": namespace},
        "spec": {"vip": vip, "poolRef": {"name": "web-backends"}, "ports": [{"port": 80}], **spec},
    }


def managers(obj: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {
        f"{entry['manager']}/{entry['operation']}": entry
        for entry in obj["metadata"].get("managedFields") or []
    }


def test_server_side_apply_echoes_managed_fields_through_kubectl(
    lvs_crds: list[str], kubectl: Kubectl, namespace: str
) -> None:
    # The lvs.io schemas declare `metadata`, so admission rebuilds it: the create by apply used to
    # store the object without the applier's managedFields.
    manifest = json.dumps(virtual_service("web", namespace))
    created = yaml.safe_load(
        kubectl(
            "apply", "--server-side", "-f", "-", "-o", "yaml", "--show-managed-fields", input=manifest
        ).stdout
    )
    entry = managers(created)["kubectl/Apply"]
    assert set(entry["fieldsV1"]["f:spec"]) == {"f:vip", "f:poolRef", "f:ports"}
    stored = yaml.safe_load(
        kubectl(
            "get", "virtualservices.lvs.io", "web", "-n", namespace, "-o", "yaml", "--show-managed-fields"
        ).stdout
    )
    assert stored["metadata"]["managedFields"] == created["metadata"]["managedFields"]

    # an update by apply echoes them too, with both managers
    second = json.dumps(virtual_service("web", namespace, scheduler={"name": "rr"}))
    updated = yaml.safe_load(
        kubectl(
            "apply",
            "--server-side",
            "--field-manager=gitops",
            "-f",
            "-",
            "-o",
            "yaml",
            "--show-managed-fields",
            input=second,
        ).stdout
    )
    assert set(managers(updated)) == {"kubectl/Apply", "gitops/Apply"}
    assert "f:scheduler" in managers(updated)["gitops/Apply"]["fieldsV1"]["f:spec"]


def test_server_side_apply_echoes_managed_fields_to_the_client(
    lvs_crds: list[str], kube_api: Any, namespace: str
) -> None:
    api = kubernetes.client.CustomObjectsApi(kube_api)
    # _preload_content=False: the client maps only 200 for PATCH, the create answers 201
    response = api.patch_namespaced_custom_object(
        "lvs.io",
        "v1alpha1",
        namespace,
        "virtualservices",
        "api",
        virtual_service("api", namespace),
        field_manager="operator",
        _content_type=APPLY,
        _preload_content=False,
    )
    assert response.status == 201
    created = json.loads(response.data)
    assert "f:vip" in managers(created)["operator/Apply"]["fieldsV1"]["f:spec"]
    status_apply = {
        "apiVersion": "lvs.io/v1alpha1",
        "kind": "VirtualService",
        "metadata": {"name": "api", "namespace": namespace},
        "status": {"observedGeneration": 1},
    }
    patched = api.patch_namespaced_custom_object_status(
        "lvs.io",
        "v1alpha1",
        namespace,
        "virtualservices",
        "api",
        status_apply,
        field_manager="controller",
        _content_type=APPLY,
    )
    entry = managers(patched)["controller/Apply"]
    assert entry["subresource"] == "status"
    assert "f:observedGeneration" in entry["fieldsV1"]["f:status"]


def test_conflict_messages_name_manager_and_field_like_a_real_server(
    lvs_crds: list[str], kubectl: Kubectl, kube_api: Any, namespace: str
) -> None:
    kubectl("apply", "--server-side", "-f", "-", input=json.dumps(virtual_service("web", namespace)))
    kubectl(
        "patch",
        "virtualservices.lvs.io",
        "web",
        "-n",
        namespace,
        "--type=merge",
        "-p",
        '{"spec":{"scheduler":{"name":"sh"}}}',
    )
    # An applier is named alone; an updater with the apiVersion it wrote (its printManager).
    clash = kubectl(
        "apply",
        "--server-side",
        "--field-manager=gitops",
        "-f",
        "-",
        check=False,
        input=json.dumps(virtual_service("web", namespace, vip="203.0.113.11")),
    )
    assert clash.returncode != 0
    assert 'Apply failed with 1 conflict: conflict with "kubectl": .spec.vip' in clash.stderr, clash.stderr
    both = virtual_service("web", namespace, vip="203.0.113.11", scheduler={"name": "rr"})
    with pytest.raises(ApiException) as conflict:
        kubernetes.client.CustomObjectsApi(kube_api).patch_namespaced_custom_object(
            "lvs.io",
            "v1alpha1",
            namespace,
            "virtualservices",
            "web",
            both,
            field_manager="gitops",
            _content_type=APPLY,
        )
    status = json.loads(conflict.value.body)
    assert status["message"] == (
        'Apply failed with 2 conflicts: conflicts with "kubectl":\n- .spec.vip\n'
        'conflicts with "kubectl-patch" using lvs.io/v1alpha1:\n- .spec.scheduler.name'
    )
    assert {(cause["field"], cause["message"]) for cause in status["details"]["causes"]} == {
        (".spec.vip", 'conflict with "kubectl"'),
        (".spec.scheduler.name", 'conflict with "kubectl-patch" using lvs.io/v1alpha1'),
    }
    forced = kubectl(
        "apply",
        "--server-side",
        "--force-conflicts",
        "--field-manager=gitops",
        "-f",
        "-",
        "-o",
        "json",
        "--show-managed-fields",
        input=json.dumps(both),
    )
    taken = managers(json.loads(forced.stdout))
    assert "f:vip" in taken["gitops/Apply"]["fieldsV1"]["f:spec"]
    assert "f:vip" not in taken["kubectl/Apply"]["fieldsV1"]["f:spec"]
    assert "kubectl-patch/Update" not in taken  # it owned only the scheduler name, now gitops'


def test_removing_the_last_label_leaves_no_empty_map_or_owner(
    lvs_crds: list[str], kubectl: Kubectl, namespace: str
) -> None:
    kubectl("apply", "--server-side", "-f", "-", input=json.dumps(virtual_service("web", namespace)))
    kubectl("label", "virtualservices.lvs.io", "web", "-n", namespace, "tier=front")
    kubectl("annotate", "virtualservices.lvs.io", "web", "-n", namespace, "note=hi")
    refused = kubectl("label", "virtualservices.lvs.io", "web", "-n", namespace, "tier=back", check=False)
    assert "'tier' already has a value (front), and --overwrite is false" in refused.stderr
    listed = kubectl("get", "virtualservices.lvs.io", "-n", namespace, "-l", "tier=front", "-o", "name")
    assert listed.stdout.split() == ["virtualservice.lvs.io/web"]
    kubectl("label", "virtualservices.lvs.io", "web", "-n", namespace, "tier-")
    kubectl("annotate", "virtualservices.lvs.io", "web", "-n", namespace, "note-")
    obj = json.loads(
        kubectl(
            "get", "virtualservices.lvs.io", "web", "-n", namespace, "-o", "json", "--show-managed-fields"
        ).stdout
    )
    assert "labels" not in obj["metadata"] and "annotations" not in obj["metadata"]
    assert set(managers(obj)) == {"kubectl/Apply"}


def test_field_selectors_are_limited_like_a_real_server(
    lvs_crds: list[str], kubectl: Kubectl, namespace: str, install_crds: Callable[..., list[str]]
) -> None:
    kubectl("apply", "--server-side", "-f", "-", input=json.dumps(virtual_service("web", namespace)))
    by_name = kubectl(
        "get",
        "virtualservices.lvs.io",
        "-A",
        "--field-selector",
        f"metadata.name=web,metadata.namespace={namespace}",
        "-o",
        "name",
    )
    assert by_name.stdout.split() == ["virtualservice.lvs.io/web"]
    for resource, selector in (
        ("virtualservices.lvs.io", "spec.vip=203.0.113.10"),
        ("configmaps", "data.x=1"),
        ("pods", "spec.containers=x"),
    ):
        refused = kubectl("get", resource, "-A", "--field-selector", selector, check=False)
        assert refused.returncode != 0
        assert f"field label not supported: {selector.split('=')[0]}" in refused.stderr
    # kinds' own labels work (pods, events as `kubectl events --for` and describe use them)
    kubectl("get", "pods", "-A", "--field-selector", "status.phase=Running,spec.nodeName=n1")
    kubectl("get", "events", "-n", namespace, "--field-selector", "involvedObject.kind=VirtualService")
    # a CRD's selectableFields extend the set
    crd = {
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {"name": "lamps.fidelity.lvs.io"},
        "spec": {
            "group": "fidelity.lvs.io",
            "scope": "Namespaced",
            "names": {"plural": "lamps", "kind": "Lamp"},
            "versions": [
                {
                    "name": "v1",
                    "served": True,
                    "storage": True,
                    "selectableFields": [{"jsonPath": ".spec.color"}],
                    "schema": {
                        "openAPIV3Schema": {
                            "type": "object",
                            "properties": {
                                "spec": {"type": "object", "properties": {"color": {"type": "string"}}}
                            },
                        }
                    },
                }
            ],
        },
    }
    install_crds(crd)
    for name, color in (("a", "red"), ("b", "blue")):
        lamp = {
            "apiVersion": "fidelity.lvs.io/v1",
            "kind": "Lamp",
            "metadata": {"name": name},
            "spec": {"color": color},
        }
        kubectl("apply", "-n", namespace, "-f", "-", input=json.dumps(lamp))
    red = kubectl("get", "lamps", "-n", namespace, "--field-selector", "spec.color=red", "-o", "name")
    assert red.stdout.split() == ["lamp.fidelity.lvs.io/a"]


def test_crd_groups_are_discovered_by_name_so_plural_ambiguity_resolves_like_a_cluster(
    lvs_crds: list[str],
    kubectl: Kubectl,
    install_crds: Callable[..., list[str]],
    namespace: str,
    tmp_path: Path,
) -> None:
    # An Istio-like VirtualService installed after ours: `vs` (Istio's short name) means Istio's,
    # the bare plural means the group that sorts first by name (lvs.io), `lvsvs` means ours.
    istio = {
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {"name": "virtualservices.networking.istio.io"},
        "spec": {
            "group": "networking.istio.io",
            "scope": "Namespaced",
            "names": {"plural": "virtualservices", "kind": "VirtualService", "shortNames": ["vs"]},
            "versions": [
                {
                    "name": "v1",
                    "served": True,
                    "storage": True,
                    "schema": {
                        "openAPIV3Schema": {"type": "object", "x-kubernetes-preserve-unknown-fields": True}
                    },
                }
            ],
        },
    }
    alpha = {
        **istio,
        "metadata": {"name": "virtualservices.aaa.fidelity.lvs.io"},
        "spec": {
            **istio["spec"],
            "group": "aaa.fidelity.lvs.io",
            "names": {"plural": "virtualservices", "kind": "VirtualService"},
        },
    }
    install_crds(istio)
    kubectl("apply", "--server-side", "-f", "-", input=json.dumps(virtual_service("web", namespace)))
    assert kubectl("get", "vs", "-n", namespace, "-o", "name").stdout.split() == []
    assert kubectl("get", "lvsvs", "-n", namespace, "-o", "name").stdout.split() == [
        "virtualservice.lvs.io/web"
    ]
    assert kubectl("get", "virtualservices", "-n", namespace, "-o", "name").stdout.split() == [
        "virtualservice.lvs.io/web"
    ]
    # a group sorting before lvs.io, installed later, comes first (a real server orders by name);
    # a new cache dir, or kubectl keeps resolving from the discovery it cached above
    install_crds(alpha)
    fresh_cache = f"--cache-dir={tmp_path / 'fresh-cache'}"
    assert kubectl("get", "virtualservices", "-n", namespace, "-o", "name", fresh_cache).stdout.split() == []
    groups = json.loads(kubectl("get", "--raw", "/apis").stdout)["groups"]
    names = [group["name"] for group in groups]
    custom = [name for name in names if name.endswith(("lvs.io", "istio.io"))]
    assert custom == sorted(custom)
    assert names.index("apps") < names.index("aaa.fidelity.lvs.io")
    kubectl("delete", "crd", "virtualservices.aaa.fidelity.lvs.io", "virtualservices.networking.istio.io")


def test_event_and_crd_tables_have_the_real_columns(
    lvs_crds: list[str], kubectl: Kubectl, namespace: str
) -> None:
    event = {
        "apiVersion": "events.k8s.io/v1",
        "kind": "Event",
        "metadata": {"name": "web.1", "namespace": namespace},
        "eventTime": "2026-01-01T00:00:00.000000Z",
        "reportingController": "lvs.io/controller",
        "reportingInstance": "controller-0",
        "action": "Resolve",
        "reason": "Resolved",
        "note": "resolved 3 members",
        "type": "Normal",
        "regarding": {
            "apiVersion": "lvs.io/v1alpha1",
            "kind": "VirtualService",
            "name": "web",
            "namespace": namespace,
        },
    }
    kubectl("create", "-f", "-", input=json.dumps(event))
    for resource in ("events", "events.events.k8s.io"):
        lines = kubectl("get", resource, "-n", namespace, "-o", "wide").stdout.splitlines()
        assert lines[0].split() == [
            "LAST",
            "SEEN",
            "TYPE",
            "REASON",
            "OBJECT",
            "SUBOBJECT",
            "SOURCE",
            "MESSAGE",
            "FIRST",
            "SEEN",
            "COUNT",
            "NAME",
        ]
        assert "virtualservice/web" in lines[1] and "lvs.io/controller, controller-0" in lines[1]
        assert lines[1].split()[-2:] == ["1", "web.1"]
    narrow = kubectl("get", "events", "-n", namespace).stdout.splitlines()[0].split()
    assert narrow == ["LAST", "SEEN", "TYPE", "REASON", "OBJECT", "MESSAGE"]
    listed = kubectl("events", "-n", namespace, "--for", "virtualservice.lvs.io/web").stdout
    assert "VirtualService/web" in listed and "resolved 3 members" in listed
    crds = kubectl("get", "crd", "virtualservices.lvs.io").stdout.splitlines()
    assert crds[0].split() == ["NAME", "CREATED", "AT"]
    assert crds[1].split()[1].endswith("Z")


def test_kubectl_moves_from_client_side_to_server_side_apply_like_on_a_cluster(
    lvs_crds: list[str], kubectl: Kubectl, namespace: str
) -> None:
    first = virtual_service("web", namespace, scheduler={"name": "wlc"}, onFailure="Quiesce")
    kubectl("apply", "-f", "-", input=json.dumps(first))
    kubectl(
        "patch",
        "virtualservices.lvs.io",
        "web",
        "-n",
        namespace,
        "--type=merge",
        "-p",
        '{"spec":{"onFailure":"Remove"}}',
    )
    # Fields the last-applied annotation still describes move to kubectl's apply without conflicts;
    # one that someone else changed since (onFailure) still conflicts, and is the only one named.
    changed = virtual_service("web", namespace, scheduler={"name": "rr"}, onFailure="Quiesce")
    clash = kubectl("apply", "--server-side", "-f", "-", input=json.dumps(changed), check=False)
    assert clash.returncode != 0
    assert (
        'Apply failed with 1 conflict: conflict with "kubectl-patch" using lvs.io/v1alpha1: .spec.onFailure'
        in clash.stderr
    ), clash.stderr
    agreed = virtual_service(
        "web", namespace, scheduler={"name": "rr"}, onFailure="Remove", vipGroup="shop-web"
    )
    kubectl("apply", "--server-side", "-f", "-", input=json.dumps(agreed))
    obj = json.loads(
        kubectl(
            "get", "virtualservices.lvs.io", "web", "-n", namespace, "-o", "json", "--show-managed-fields"
        ).stdout
    )
    assert obj["spec"]["scheduler"]["name"] == "rr" and obj["spec"]["vipGroup"] == "shop-web"
    assert "f:scheduler" in managers(obj)["kubectl/Apply"]["fieldsV1"]["f:spec"]
    # The annotation follows the server-side apply, so a later client-side apply's three-way merge
    # knows vipGroup was applied: leaving it out of the config removes it (with the old annotation,
    # kubectl would keep it as someone else's field).
    last = json.loads(obj["metadata"]["annotations"]["kubectl.kubernetes.io/last-applied-configuration"])
    assert last["spec"]["vipGroup"] == "shop-web"
    back = virtual_service("web", namespace, scheduler={"name": "rr"}, onFailure="Remove")
    kubectl("apply", "-f", "-", input=json.dumps(back))
    spec = json.loads(kubectl("get", "virtualservices.lvs.io", "web", "-n", namespace, "-o", "json").stdout)[
        "spec"
    ]
    assert "vipGroup" not in spec and spec["scheduler"] == {"name": "rr"}
    # another manager gets no such leniency
    other = kubectl(
        "apply",
        "--server-side",
        "--field-manager=gitops",
        "-f",
        "-",
        check=False,
        input=json.dumps(virtual_service("web", namespace, vip="203.0.113.12", onFailure="Remove")),
    )
    assert other.returncode != 0 and ".spec.vip" in other.stderr
