"""Core object semantics through the real `kubernetes` client: identity, resourceVersion, generation,
status subresource, patches, selectors, pagination, finalizers, dry-run, namespaces, GC."""

from __future__ import annotations

import json
import time
from typing import Any

import kubernetes
import pytest
from kubernetes.client import ApiException

from .widgets import GROUP, PLURAL, VERSION, widget

pytestmark = pytest.mark.integration


def custom(kube_api: Any) -> Any:
    return kubernetes.client.CustomObjectsApi(kube_api)


def wait_until(predicate: Any, timeout: float = 5.0) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.05)
    raise AssertionError("condition not reached in time")


def test_create_sets_identity_fields(kube_api: Any, namespace: str, widgets: Any) -> None:
    created = custom(kube_api).create_namespaced_custom_object(GROUP, VERSION, namespace, PLURAL, widget("a"))
    meta = created["metadata"]
    assert len(meta["uid"]) == 36
    assert meta["creationTimestamp"].endswith("Z")
    assert meta["generation"] == 1
    assert int(meta["resourceVersion"]) > 0
    assert meta["namespace"] == namespace
    fetched = custom(kube_api).get_namespaced_custom_object(GROUP, VERSION, namespace, PLURAL, "a")
    assert fetched["metadata"]["uid"] == meta["uid"]
    with pytest.raises(ApiException) as error:
        custom(kube_api).create_namespaced_custom_object(GROUP, VERSION, namespace, PLURAL, widget("a"))
    assert error.value.status == 409
    assert "already exists" in error.value.body


def test_generate_name(kube_api: Any, namespace: str) -> None:
    core = kubernetes.client.CoreV1Api(kube_api)
    made = core.create_namespaced_config_map(
        namespace, {"metadata": {"generateName": "cfg-"}, "data": {"a": "1"}}
    )
    assert made.metadata.name.startswith("cfg-") and len(made.metadata.name) == 9


def test_stale_update_conflicts(kube_api: Any, namespace: str) -> None:
    core = kubernetes.client.CoreV1Api(kube_api)
    first = core.create_namespaced_config_map(namespace, {"metadata": {"name": "c"}, "data": {"k": "1"}})
    first.data = {"k": "2"}
    updated = core.replace_namespaced_config_map("c", namespace, first)
    assert int(updated.metadata.resource_version) > int(first.metadata.resource_version)
    first.data = {"k": "3"}  # still carries the old resourceVersion
    with pytest.raises(ApiException) as error:
        core.replace_namespaced_config_map("c", namespace, first)
    assert error.value.status == 409
    assert "the object has been modified" in error.value.body
    assert core.read_namespaced_config_map("c", namespace).data == {"k": "2"}


def test_generation_bumps_on_spec_change_only(kube_api: Any, namespace: str, widgets: Any) -> None:
    api = custom(kube_api)
    api.create_namespaced_custom_object(GROUP, VERSION, namespace, PLURAL, widget("g"))
    labelled = api.patch_namespaced_custom_object(
        GROUP, VERSION, namespace, PLURAL, "g", {"metadata": {"labels": {"x": "y"}}}
    )
    assert labelled["metadata"]["generation"] == 1
    status = api.patch_namespaced_custom_object_status(
        GROUP, VERSION, namespace, PLURAL, "g", {"status": {"phase": "Up"}}
    )
    assert status["metadata"]["generation"] == 1
    changed = api.patch_namespaced_custom_object(
        GROUP, VERSION, namespace, PLURAL, "g", {"spec": {"size": 4}}
    )
    assert changed["metadata"]["generation"] == 2
    same = api.patch_namespaced_custom_object(GROUP, VERSION, namespace, PLURAL, "g", {"spec": {"size": 4}})
    assert same["metadata"]["generation"] == 2
    assert same["metadata"]["resourceVersion"] == changed["metadata"]["resourceVersion"]  # no-op write


def test_status_subresource_separation(kube_api: Any, namespace: str, widgets: Any) -> None:
    api = custom(kube_api)
    api.create_namespaced_custom_object(GROUP, VERSION, namespace, PLURAL, widget("s"))
    # status sent with a create is dropped (the status subresource owns it)
    with_status = widget("born-with-status")
    with_status["status"] = {"phase": "Claimed"}
    assert "status" not in api.create_namespaced_custom_object(GROUP, VERSION, namespace, PLURAL, with_status)
    # status written through the main resource is ignored
    main = api.patch_namespaced_custom_object(
        GROUP, VERSION, namespace, PLURAL, "s", {"status": {"phase": "Bogus"}}
    )
    assert "status" not in main
    # spec written through /status is ignored, status is kept
    sub = api.patch_namespaced_custom_object_status(
        GROUP, VERSION, namespace, PLURAL, "s", {"spec": {"size": 50}, "status": {"phase": "Running"}}
    )
    assert sub["status"] == {"phase": "Running"}
    assert sub["spec"]["size"] == 3
    got = api.get_namespaced_custom_object_status(GROUP, VERSION, namespace, PLURAL, "s")
    assert got["status"]["phase"] == "Running"


def test_merge_json_and_strategic_patches(kube_api: Any, namespace: str, widgets: Any) -> None:
    api = custom(kube_api)
    api.create_namespaced_custom_object(
        GROUP, VERSION, namespace, PLURAL, widget("p", settings={"a": "1", "b": "2"})
    )
    merged = api.patch_namespaced_custom_object(
        GROUP, VERSION, namespace, PLURAL, "p", {"spec": {"settings": {"a": None, "c": "3"}}}
    )
    assert merged["spec"]["settings"] == {"b": "2", "c": "3"}
    # a list body makes the client send application/json-patch+json
    patched = api.patch_namespaced_custom_object(
        GROUP,
        VERSION,
        namespace,
        PLURAL,
        "p",
        [
            {"op": "replace", "path": "/spec/size", "value": 9},
            {"op": "add", "path": "/spec/label", "value": "ab"},
        ],
        _content_type="application/json-patch+json",
    )
    assert patched["spec"]["size"] == 9 and patched["spec"]["label"] == "ab"
    failing = [{"op": "test", "path": "/spec/size", "value": 1}]
    with pytest.raises(ApiException) as error:
        api.patch_namespaced_custom_object(
            GROUP, VERSION, namespace, PLURAL, "p", failing, _content_type="application/json-patch+json"
        )
    assert error.value.status == 422
    # strategic merge patch on a built-in merges containers by name
    core = kubernetes.client.CoreV1Api(kube_api)
    core.create_namespaced_pod(
        namespace,
        {
            "metadata": {"name": "pod"},
            "spec": {"containers": [{"name": "a", "image": "x"}, {"name": "b", "image": "y"}]},
        },
    )
    pod = core.patch_namespaced_pod("pod", namespace, {"spec": {"containers": [{"name": "b", "image": "z"}]}})
    assert [(c.name, c.image) for c in pod.spec.containers] == [("a", "x"), ("b", "z")]


def test_label_and_field_selectors(kube_api: Any, namespace: str) -> None:
    core = kubernetes.client.CoreV1Api(kube_api)
    for name, labels, node in [
        ("p1", {"app": "web", "tier": "a"}, "n1"),
        ("p2", {"app": "web"}, "n2"),
        ("p3", {"app": "db"}, "n1"),
    ]:
        core.create_namespaced_pod(
            namespace,
            {
                "metadata": {"name": name, "labels": labels},
                "spec": {"nodeName": node, "containers": [{"name": "c", "image": "i"}]},
            },
        )

    def names(**kwargs: Any) -> list[str]:
        return [p.metadata.name for p in core.list_namespaced_pod(namespace, **kwargs).items]

    assert names(label_selector="app=web") == ["p1", "p2"]
    assert names(label_selector="app!=web") == ["p3"]
    assert names(label_selector="app in (db, other)") == ["p3"]
    assert names(label_selector="tier") == ["p1"]
    assert names(label_selector="!tier,app=web") == ["p2"]
    assert names(field_selector="spec.nodeName=n1") == ["p1", "p3"]
    assert names(field_selector="metadata.name=p2") == ["p2"]
    assert names(field_selector="metadata.namespace=other") == []
    assert [
        p.metadata.name
        for p in core.list_pod_for_all_namespaces(
            field_selector=f"metadata.namespace={namespace},spec.nodeName!=n1"
        ).items
    ] == ["p2"]


def test_pagination(kube_api: Any, namespace: str) -> None:
    core = kubernetes.client.CoreV1Api(kube_api)
    for index in range(7):
        core.create_namespaced_config_map(namespace, {"metadata": {"name": f"cm-{index}"}})
    seen: list[str] = []
    token = None
    pages = 0
    while True:
        page = core.list_namespaced_config_map(namespace, limit=3, _continue=token)
        pages += 1
        seen.extend(item.metadata.name for item in page.items)
        token = page.metadata._continue
        if not token:
            break
        assert page.metadata.remaining_item_count == 7 - len(seen)
    assert pages == 3
    assert seen == [f"cm-{index}" for index in range(7)]


def test_finalizers_hold_deletion(kube_api: Any, namespace: str) -> None:
    core = kubernetes.client.CoreV1Api(kube_api)
    core.create_namespaced_config_map(
        namespace, {"metadata": {"name": "held", "finalizers": ["demo.lvs.io/hold"]}}
    )
    core.delete_namespaced_config_map("held", namespace)
    held = core.read_namespaced_config_map("held", namespace)
    assert held.metadata.deletion_timestamp is not None
    with pytest.raises(ApiException) as error:
        core.patch_namespaced_config_map(
            "held", namespace, {"metadata": {"finalizers": ["demo.lvs.io/hold", "other"]}}
        )
    assert error.value.status == 403
    core.patch_namespaced_config_map("held", namespace, {"metadata": {"finalizers": None}})
    with pytest.raises(ApiException) as gone:
        core.read_namespaced_config_map("held", namespace)
    assert gone.value.status == 404


def test_dry_run_does_not_persist(kube_api: Any, namespace: str) -> None:
    core = kubernetes.client.CoreV1Api(kube_api)
    result = core.create_namespaced_config_map(
        namespace, {"metadata": {"name": "dry"}, "data": {"a": "b"}}, dry_run="All"
    )
    assert result.metadata.name == "dry" and result.metadata.uid
    with pytest.raises(ApiException):
        core.read_namespaced_config_map("dry", namespace)
    core.create_namespaced_config_map(namespace, {"metadata": {"name": "wet"}, "data": {"a": "b"}})
    core.patch_namespaced_config_map("wet", namespace, {"data": {"a": "c"}}, dry_run="All")
    core.delete_namespaced_config_map("wet", namespace, dry_run="All")
    assert core.read_namespaced_config_map("wet", namespace).data == {"a": "b"}


def test_namespace_deletion_cascades(kube_api: Any) -> None:
    core = kubernetes.client.CoreV1Api(kube_api)
    core.create_namespace({"metadata": {"name": "doomed"}})
    core.create_namespaced_config_map("doomed", {"metadata": {"name": "a"}})
    core.create_namespaced_config_map("doomed", {"metadata": {"name": "b", "finalizers": ["x/y"]}})
    core.delete_namespace("doomed")
    assert core.read_namespace("doomed").status.phase == "Terminating"
    with pytest.raises(ApiException) as refused:
        core.create_namespaced_config_map("doomed", {"metadata": {"name": "c"}})
    assert refused.value.status == 403
    wait_until(lambda: [cm.metadata.name for cm in core.list_namespaced_config_map("doomed").items] == ["b"])
    core.patch_namespaced_config_map("b", "doomed", {"metadata": {"finalizers": None}})

    def namespace_gone() -> bool:
        try:
            core.read_namespace("doomed")
        except ApiException as error:
            return error.status == 404
        return False

    wait_until(namespace_gone)
    with pytest.raises(ApiException) as missing:
        core.create_namespaced_config_map("nowhere", {"metadata": {"name": "c"}})
    assert missing.value.status == 404


def test_owner_references_garbage_collection(kube_api: Any, namespace: str) -> None:
    core = kubernetes.client.CoreV1Api(kube_api)
    owner = core.create_namespaced_config_map(namespace, {"metadata": {"name": "owner"}})
    reference = {"apiVersion": "v1", "kind": "ConfigMap", "name": "owner", "uid": owner.metadata.uid}
    core.create_namespaced_config_map(
        namespace, {"metadata": {"name": "child", "ownerReferences": [reference]}}
    )
    core.create_namespaced_config_map(
        namespace, {"metadata": {"name": "orphan-child", "ownerReferences": [reference]}}
    )
    core.create_namespaced_config_map(namespace, {"metadata": {"name": "bystander"}})
    core.delete_namespaced_config_map("owner", namespace, propagation_policy="Background")
    wait_until(
        lambda: {cm.metadata.name for cm in core.list_namespaced_config_map(namespace).items} == {"bystander"}
    )

    owner2 = core.create_namespaced_config_map(namespace, {"metadata": {"name": "owner2"}})
    reference2 = {"apiVersion": "v1", "kind": "ConfigMap", "name": "owner2", "uid": owner2.metadata.uid}
    core.create_namespaced_config_map(
        namespace, {"metadata": {"name": "kept", "ownerReferences": [reference2]}}
    )
    core.delete_namespaced_config_map("owner2", namespace, propagation_policy="Orphan")
    wait_until(
        lambda: "owner2" not in {cm.metadata.name for cm in core.list_namespaced_config_map(namespace).items}
    )
    kept = core.read_namespaced_config_map("kept", namespace)
    assert not kept.metadata.owner_references


def test_discovery_documents(kube_api: Any, widgets: Any) -> None:
    groups = kubernetes.client.ApisApi(kube_api).get_api_versions()
    names = [group.name for group in groups.groups]
    for expected in (
        "apps",
        "coordination.k8s.io",
        "discovery.k8s.io",
        "events.k8s.io",
        "rbac.authorization.k8s.io",
        GROUP,
    ):
        assert expected in names
    resources = kubernetes.client.CustomObjectsApi(kube_api).get_api_resources(GROUP, VERSION)
    widget_entry = next(r for r in resources.resources if r.name == PLURAL)
    assert widget_entry.kind == "Widget" and widget_entry.namespaced and widget_entry.short_names == ["wdg"]
    assert any(r.name == f"{PLURAL}/status" for r in resources.resources)
    core = kubernetes.client.CoreApi(kube_api).get_api_versions()
    assert core.versions == ["v1"]
    version = kubernetes.client.VersionApi(kube_api).get_code()
    assert version.major == "1"


def test_leases_events_and_endpointslices(kube_api: Any, namespace: str) -> None:
    leases = kubernetes.client.CoordinationV1Api(kube_api)
    lease = leases.create_namespaced_lease(
        namespace,
        {"metadata": {"name": "vip-group"}, "spec": {"holderIdentity": "node-a", "leaseDurationSeconds": 5}},
    )
    lease.spec.holder_identity = "node-b"
    assert leases.replace_namespaced_lease("vip-group", namespace, lease).spec.holder_identity == "node-b"
    events = kubernetes.client.EventsV1Api(kube_api)
    events.create_namespaced_event(
        namespace,
        {
            "metadata": {"name": "e1"},
            "eventTime": "2026-01-01T00:00:00.000000Z",
            "reportingController": "x",
            "reportingInstance": "y",
            "action": "A",
            "reason": "R",
            "type": "Normal",
            "note": "via events.k8s.io",
            "regarding": {"kind": "Pod", "name": "p"},
        },
    )
    core = kubernetes.client.CoreV1Api(kube_api)
    core.create_namespaced_event(
        namespace,
        {
            "metadata": {"name": "e2"},
            "involvedObject": {"kind": "Pod", "name": "p"},
            "reason": "R",
            "message": "m",
            "eventTime": "2026-01-01T00:00:00.000000Z",  # required by the events.k8s.io view
        },
    )
    # one storage, two views: each API lists both events, with its own field names
    as_core = {e.metadata.name: e for e in core.list_namespaced_event(namespace).items}
    as_events = {e.metadata.name: e for e in events.list_namespaced_event(namespace).items}
    assert set(as_core) == set(as_events) == {"e1", "e2"}
    assert as_core["e1"].message == "via events.k8s.io" and as_core["e1"].involved_object.name == "p"
    assert as_core["e1"].reporting_component == "x"
    assert as_events["e2"].note == "m" and as_events["e2"].regarding.kind == "Pod"
    patched = events.patch_namespaced_event("e1", namespace, {"note": "changed"})
    assert patched.note == "changed"
    assert core.read_namespaced_event("e1", namespace).message == "changed"
    slices = kubernetes.client.DiscoveryV1Api(kube_api)
    slices.create_namespaced_endpoint_slice(
        namespace,
        {
            "metadata": {"name": "web-1", "labels": {"kubernetes.io/service-name": "web"}},
            "addressType": "IPv4",
            "endpoints": [{"addresses": ["198.51.100.11"], "conditions": {"ready": True}}],
            "ports": [{"port": 80, "protocol": "TCP"}],
        },
    )
    found = slices.list_namespaced_endpoint_slice(
        namespace, label_selector="kubernetes.io/service-name=web"
    ).items
    assert found[0].endpoints[0].addresses == ["198.51.100.11"]


def test_foreground_deletion_waits_for_dependents(kube_api: Any, namespace: str) -> None:
    core = kubernetes.client.CoreV1Api(kube_api)
    owner = core.create_namespaced_config_map(namespace, {"metadata": {"name": "fg-owner"}})
    reference = {"apiVersion": "v1", "kind": "ConfigMap", "name": "fg-owner", "uid": owner.metadata.uid}
    core.create_namespaced_config_map(
        namespace,
        {"metadata": {"name": "fg-child", "ownerReferences": [reference], "finalizers": ["x/hold"]}},
    )
    core.delete_namespaced_config_map("fg-owner", namespace, propagation_policy="Foreground")
    held = core.read_namespaced_config_map("fg-owner", namespace)
    assert held.metadata.deletion_timestamp is not None
    assert "foregroundDeletion" in held.metadata.finalizers
    # the child is being deleted but its own finalizer keeps it, so the owner stays too
    wait_until(lambda: core.read_namespaced_config_map("fg-child", namespace).metadata.deletion_timestamp)
    time.sleep(0.3)
    assert core.read_namespaced_config_map("fg-owner", namespace).metadata.deletion_timestamp is not None
    core.patch_namespaced_config_map("fg-child", namespace, {"metadata": {"finalizers": None}})
    wait_until(
        lambda: (
            not {"fg-owner", "fg-child"}
            & {cm.metadata.name for cm in core.list_namespaced_config_map(namespace).items}
        )
    )


def test_delete_precondition_and_collection(kube_api: Any, namespace: str) -> None:
    core = kubernetes.client.CoreV1Api(kube_api)
    made = core.create_namespaced_config_map(
        namespace, {"metadata": {"name": "pre", "labels": {"batch": "1"}}}
    )
    core.create_namespaced_config_map(namespace, {"metadata": {"name": "pre2", "labels": {"batch": "1"}}})
    core.create_namespaced_config_map(namespace, {"metadata": {"name": "keep"}})
    with pytest.raises(ApiException) as error:
        core.delete_namespaced_config_map(
            "pre",
            namespace,
            body={"preconditions": {"resourceVersion": str(int(made.metadata.resource_version) - 1)}},
        )
    assert error.value.status == 409
    core.delete_collection_namespaced_config_map(namespace, label_selector="batch=1")
    assert [cm.metadata.name for cm in core.list_namespaced_config_map(namespace).items] == ["keep"]


def test_crd_versions_share_storage(kube_api: Any, namespace: str) -> None:
    schema = {
        "openAPIV3Schema": {
            "type": "object",
            "properties": {"spec": {"type": "object", "x-kubernetes-preserve-unknown-fields": True}},
        }
    }
    crd = {
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {"name": "gizmos.demo.lvs.io"},
        "spec": {
            "group": "demo.lvs.io",
            "scope": "Namespaced",
            "names": {"plural": "gizmos", "kind": "Gizmo"},
            "versions": [
                {"name": "v1alpha1", "served": True, "storage": False, "schema": schema},
                {"name": "v1", "served": True, "storage": True, "schema": schema},
            ],
        },
    }
    kubernetes.client.ApiextensionsV1Api(kube_api).create_custom_resource_definition(crd)
    api = custom(kube_api)
    wait_until(lambda: _served(api, "demo.lvs.io", "v1alpha1", "gizmos"))
    api.create_namespaced_custom_object(
        "demo.lvs.io",
        "v1alpha1",
        namespace,
        "gizmos",
        {"apiVersion": "demo.lvs.io/v1alpha1", "kind": "Gizmo", "metadata": {"name": "g"}, "spec": {"a": 1}},
    )
    as_v1 = api.get_namespaced_custom_object("demo.lvs.io", "v1", namespace, "gizmos", "g")
    assert as_v1["apiVersion"] == "demo.lvs.io/v1" and as_v1["spec"] == {"a": 1}
    group = kubernetes.client.ApisApi(kube_api).get_api_versions()
    demo = next(g for g in group.groups if g.name == "demo.lvs.io")
    assert demo.preferred_version.version == "v1"


def _served(api: Any, group: str, version: str, plural: str) -> bool:
    try:
        return any(r.name == plural for r in api.get_api_resources(group, version).resources)
    except ApiException:
        return False


def test_builtin_generation_and_delete_status(kube_api: Any, namespace: str) -> None:
    core = kubernetes.client.CoreV1Api(kube_api)
    made = core.create_namespaced_config_map(namespace, {"metadata": {"name": "nogen"}, "data": {"a": "1"}})
    assert made.metadata.generation is None  # ConfigMaps carry no generation upstream
    pod = core.create_namespaced_pod(
        namespace, {"metadata": {"name": "gen"}, "spec": {"containers": [{"name": "c", "image": "i"}]}}
    )
    assert pod.metadata.generation == 1
    relabelled = core.patch_namespaced_pod("gen", namespace, {"metadata": {"labels": {"a": "b"}}})
    assert relabelled.metadata.generation == 1
    status = core.delete_namespaced_config_map("nogen", namespace)  # this client returns a plain dict here
    assert status["kind"] == "Status" and status["status"] == "Success"
    assert status["details"]["name"] == "nogen" and status["details"]["uid"] == made.metadata.uid


@pytest.mark.parametrize(
    ("create", "message"),
    [
        (
            lambda core, ns: core.create_namespace({"metadata": {"name": "Bad.Name"}}),
            "a lowercase RFC 1123 label",
        ),
        (
            lambda core, ns: core.create_namespaced_service(
                ns, {"metadata": {"name": "1svc"}, "spec": {"ports": [{"port": 1}]}}
            ),
            "a DNS-1035 label",
        ),
        (
            lambda core, ns: core.create_namespaced_config_map(
                ns, {"metadata": {"name": "ok", "labels": {"a": "not valid!"}}}
            ),
            "a valid label must be an empty string",
        ),
        (
            lambda core, ns: core.create_namespaced_config_map(
                ns, {"metadata": {"name": "ok2", "labels": {"-bad": "x"}}}
            ),
            "name part must consist of alphanumeric characters",
        ),
    ],
)
def test_names_and_labels_are_validated(kube_api: Any, namespace: str, create: Any, message: str) -> None:
    with pytest.raises(ApiException) as error:
        create(kubernetes.client.CoreV1Api(kube_api), namespace)
    assert error.value.status == 422
    assert message in json.loads(error.value.body)["message"]


def test_endpoint_slice_controller_follows_pods(make_apiserver: Any) -> None:
    server = make_apiserver(endpoint_slices=True)
    client = kubernetes.config.new_client_from_config(config_file=str(server.kubeconfig))
    core = kubernetes.client.CoreV1Api(client)
    slices = kubernetes.client.DiscoveryV1Api(client)
    core.create_namespaced_service(
        "default",
        {
            "metadata": {"name": "web"},
            "spec": {
                "selector": {"app": "web"},
                "ports": [{"name": "http", "port": 80, "targetPort": "http"}],
            },
        },
    )
    for index, ready in [(1, "True"), (2, "False")]:
        core.create_namespaced_pod(
            "default",
            {
                "metadata": {"name": f"web-{index}", "labels": {"app": "web"}},
                "spec": {
                    "nodeName": "n1",
                    "containers": [
                        {"name": "c", "image": "i", "ports": [{"name": "http", "containerPort": 8080}]}
                    ],
                },
            },
        )
        core.patch_namespaced_pod_status(
            f"web-{index}",
            "default",
            {
                "status": {
                    "podIP": f"198.51.100.{10 + index}",
                    "conditions": [{"type": "Ready", "status": ready}],
                }
            },
        )
    core.create_namespaced_pod(
        "default",
        {
            "metadata": {"name": "other", "labels": {"app": "db"}},
            "spec": {"containers": [{"name": "c", "image": "i"}]},
        },
    )

    def endpoints() -> list[tuple[str, bool]]:
        found = slices.list_namespaced_endpoint_slice(
            "default", label_selector="kubernetes.io/service-name=web"
        ).items
        return sorted((e.addresses[0], e.conditions.ready) for s in found for e in s.endpoints or [])

    assert wait_until(lambda: endpoints() == [("198.51.100.11", True), ("198.51.100.12", False)])
    found = slices.list_namespaced_endpoint_slice(
        "default", label_selector="kubernetes.io/service-name=web"
    ).items
    assert found[0].ports[0].port == 8080 and found[0].address_type == "IPv4"
    core.delete_namespaced_pod("web-1", "default")
    assert wait_until(lambda: endpoints() == [("198.51.100.12", False)])
    core.delete_namespaced_service("web", "default")
    assert wait_until(lambda: endpoints() == [])  # the slice is garbage-collected with its Service
    client.close()


def test_objects_above_the_etcd_limit_are_refused(kube_api: Any, namespace: str) -> None:
    core = kubernetes.client.CoreV1Api(kube_api)
    with pytest.raises(ApiException) as error:
        core.create_namespaced_config_map(
            namespace, {"metadata": {"name": "huge"}, "data": {"blob": "x" * 1_600_000}}
        )
    assert error.value.status == 413
    assert "request is too large" in error.value.body
    core.create_namespaced_config_map(
        namespace, {"metadata": {"name": "big"}, "data": {"blob": "x" * 1_000_000}}
    )


def test_crd_deletion_waits_for_its_custom_resources(make_apiserver: Any) -> None:
    from .widgets import GROUP as W_GROUP
    from .widgets import PLURAL as W_PLURAL
    from .widgets import VERSION as W_VERSION
    from .widgets import widget_crd

    server = make_apiserver()
    client = kubernetes.config.new_client_from_config(config_file=str(server.kubeconfig))
    extensions = kubernetes.client.ApiextensionsV1Api(client)
    api = kubernetes.client.CustomObjectsApi(client)
    extensions.create_custom_resource_definition(widget_crd())
    held = widget("held")
    held["metadata"]["finalizers"] = ["demo.lvs.io/cleanup"]
    api.create_namespaced_custom_object(W_GROUP, W_VERSION, "default", W_PLURAL, held)
    api.create_namespaced_custom_object(W_GROUP, W_VERSION, "default", W_PLURAL, widget("free"))
    extensions.delete_custom_resource_definition(f"{W_PLURAL}.{W_GROUP}")

    def names() -> list[str]:
        return [
            o["metadata"]["name"]
            for o in api.list_namespaced_custom_object(W_GROUP, W_VERSION, "default", W_PLURAL)["items"]
        ]

    wait_until(lambda: names() == ["held"])
    crd = extensions.read_custom_resource_definition(f"{W_PLURAL}.{W_GROUP}")
    assert crd.metadata.deletion_timestamp is not None
    assert api.get_namespaced_custom_object(W_GROUP, W_VERSION, "default", W_PLURAL, "held")["metadata"][
        "deletionTimestamp"
    ]
    with pytest.raises(ApiException) as refused:
        api.create_namespaced_custom_object(W_GROUP, W_VERSION, "default", W_PLURAL, widget("late"))
    assert refused.value.status == 405
    api.patch_namespaced_custom_object(
        W_GROUP, W_VERSION, "default", W_PLURAL, "held", {"metadata": {"finalizers": None}}
    )

    def crd_gone() -> bool:
        try:
            extensions.read_custom_resource_definition(f"{W_PLURAL}.{W_GROUP}")
        except ApiException as error:
            return error.status == 404
        return False

    wait_until(crd_gone)
    client.close()


def test_custom_resources_need_a_resource_version_to_replace(
    kube_api: Any, namespace: str, widgets: Any
) -> None:
    api = custom(kube_api)
    created = api.create_namespaced_custom_object(GROUP, VERSION, namespace, PLURAL, widget("r"))
    with pytest.raises(ApiException) as error:
        api.replace_namespaced_custom_object(GROUP, VERSION, namespace, PLURAL, "r", widget("r", size=5))
    assert error.value.status == 422
    assert "metadata.resourceVersion: Invalid value: 0x0: must be specified for an update" in error.value.body
    body = widget("r", size=5)
    body["metadata"]["resourceVersion"] = created["metadata"]["resourceVersion"]
    assert (
        api.replace_namespaced_custom_object(GROUP, VERSION, namespace, PLURAL, "r", body)["spec"]["size"]
        == 5
    )


def test_dependent_of_an_owner_that_never_existed_is_collected(kube_api: Any, namespace: str) -> None:
    # The collector wakes for writes naming an unknown owner uid (not for every write with owners).
    core = kubernetes.client.CoreV1Api(kube_api)
    owner = core.create_namespaced_config_map(namespace, {"metadata": {"name": "real-owner"}})
    present = {"apiVersion": "v1", "kind": "ConfigMap", "name": "real-owner", "uid": owner.metadata.uid}
    missing = {"apiVersion": "v1", "kind": "ConfigMap", "name": "ghost", "uid": "00000000-0000-4000-8000-0"}
    core.create_namespaced_config_map(
        namespace, {"metadata": {"name": "owned", "ownerReferences": [present]}}
    )
    core.create_namespaced_config_map(
        namespace, {"metadata": {"name": "stray", "ownerReferences": [missing]}}
    )
    wait_until(
        lambda: (
            {cm.metadata.name for cm in core.list_namespaced_config_map(namespace).items}
            == {"real-owner", "owned"}
        ),
        timeout=30,
    )
