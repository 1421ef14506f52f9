"""Server-side apply field ownership, CRD schema enforcement (types, formats, defaults, pruning, CEL),
the 422 Status body, Tables, OpenAPI v3 and aggregated discovery, over plain HTTP and the client."""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from typing import Any

import kubernetes
import pytest
from kubernetes.client import ApiException
from lvs_apiserver.testing import ServerThread

from .widgets import GROUP, PLURAL, VERSION, widget

pytestmark = pytest.mark.integration
APPLY = "application/apply-patch+yaml"


def apply(
    kube_api: Any, namespace: str, name: str, body: dict[str, Any], *, manager: str, force: bool = False
) -> Any:
    api = kubernetes.client.CustomObjectsApi(kube_api)
    result = api.patch_namespaced_custom_object(
        GROUP, VERSION, namespace, PLURAL, name, body, field_manager=manager, force=force, _content_type=APPLY
    )
    if result is None:  # 201 Created (apply created it): this client maps only 200 for PATCH responses
        result = api.get_namespaced_custom_object(GROUP, VERSION, namespace, PLURAL, name)
    return result


def http(
    server: ServerThread, method: str, path: str, body: Any = None, headers: dict[str, str] | None = None
) -> tuple[int, dict[str, str], Any]:
    data = json.dumps(body).encode() if body is not None else None
    request = urllib.request.Request(
        server.url + path,
        data=data,
        method=method,
        headers={"Content-Type": "application/json", **(headers or {})},
    )
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, dict(response.headers), json.loads(response.read() or b"null")
    except urllib.error.HTTPError as error:
        return error.code, dict(error.headers), json.loads(error.read() or b"null")


def managers(obj: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {
        f"{m['manager']}/{m['operation']}": m["fieldsV1"] for m in obj["metadata"].get("managedFields", [])
    }


def test_server_side_apply_ownership(kube_api: Any, namespace: str, widgets: Any) -> None:
    created = apply(
        kube_api,
        namespace,
        "own",
        widget("own", size=2, label="ab", ports=[{"port": 80, "weight": 1}]),
        manager="alice",
    )
    assert created["spec"]["size"] == 2
    assert set(managers(created)) == {"alice/Apply"}
    assert managers(created)["alice/Apply"]["f:spec"]["f:ports"]['k:{"port":80}'] == {
        ".": {},
        "f:port": {},
        "f:weight": {},
    }

    # bob adds his own list item: items are merged by the list-map key, each owned by its applier
    both = apply(
        kube_api,
        namespace,
        "own",
        {**widget("own", size=2), "spec": {"size": 2, "ports": [{"port": 443}]}},
        manager="bob",
    )
    assert [p["port"] for p in both["spec"]["ports"]] == [80, 443]
    assert 'k:{"port":443}' in managers(both)["bob/Apply"]["f:spec"]["f:ports"]
    assert (
        "f:size" in managers(both)["alice/Apply"]["f:spec"]
        and "f:size" in managers(both)["bob/Apply"]["f:spec"]
    )  # shared

    # a conflicting value is refused with 409 naming the owner
    with pytest.raises(ApiException) as conflict:
        apply(kube_api, namespace, "own", widget("own", size=9), manager="carol")
    assert conflict.value.status == 409
    status = json.loads(conflict.value.body)
    assert status["reason"] == "Conflict"
    assert status["message"] == (
        'Apply failed with 2 conflicts: conflicts with "alice":\n- .spec.size\n'
        'conflicts with "bob":\n- .spec.size'
    )
    assert {cause["field"] for cause in status["details"]["causes"]} == {".spec.size"}

    # alice drops `label` from her config: it is removed since nobody else owns it
    dropped = apply(
        kube_api, namespace, "own", widget("own", size=2, ports=[{"port": 80, "weight": 1}]), manager="alice"
    )
    assert "label" not in dropped["spec"]

    # an Update (merge patch) takes ownership of what it changes
    patched = kubernetes.client.CustomObjectsApi(kube_api).patch_namespaced_custom_object(
        GROUP, VERSION, namespace, PLURAL, "own", {"spec": {"color": "red"}}, field_manager="dave"
    )
    assert "f:color" in managers(patched)["dave/Update"]["f:spec"]

    forced = apply(kube_api, namespace, "own", widget("own", size=9), manager="carol", force=True)
    assert forced["spec"]["size"] == 9
    assert "f:size" not in managers(forced)["alice/Apply"].get("f:spec", {})
    assert "f:size" not in managers(forced)["bob/Apply"].get("f:spec", {})


def test_server_side_apply_on_builtin_and_status(kube_api: Any, namespace: str) -> None:
    core = kubernetes.client.CoreV1Api(kube_api)
    body = {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": "applied", "labels": {"a": "1"}},
        "data": {"x": "1", "y": "2"},
    }
    core.patch_namespaced_config_map("applied", namespace, body, field_manager="m1", _content_type=APPLY)
    assert core.read_namespaced_config_map("applied", namespace).data == {"x": "1", "y": "2"}
    body["data"] = {"x": "1"}
    result = core.patch_namespaced_config_map(
        "applied", namespace, body, field_manager="m1", _content_type=APPLY
    )
    assert result.data == {"x": "1"}
    assert result.metadata.managed_fields[0].operation == "Apply"


def test_schema_defaults_pruning_and_preserved_fields(
    apiserver: ServerThread, namespace: str, widgets: Any
) -> None:
    path = f"/apis/{GROUP}/{VERSION}/namespaces/{namespace}/{PLURAL}"
    body = widget("d", extra={"anything": {"goes": [1, 2]}}, unknownThing=True, settings={"k": "v"})
    code, headers, created = http(apiserver, "POST", path, body)
    assert code == 201
    assert created["spec"]["color"] == "green" and created["spec"]["minReplicas"] == 1  # defaults
    assert "unknownThing" not in created["spec"]  # pruned
    assert created["spec"]["extra"] == {"anything": {"goes": [1, 2]}}  # preserved
    assert 'unknown field \\"spec.unknownThing\\"' in headers.get(
        "Warning", ""
    ) or "spec.unknownThing" in headers.get("Warning", "")
    code, _, status = http(
        apiserver, "POST", path + "?fieldValidation=Strict", widget("strict", unknownThing=True)
    )
    assert code == 400 and 'unknown field "spec.unknownThing"' in status["message"]


@pytest.mark.parametrize(
    ("spec", "field", "message"),
    [
        (
            {"size": "three"},
            "spec.size",
            'Invalid value: "string": spec.size in body must be of type integer: "string"',
        ),
        ({"size": 2**31}, "spec.size", "must be of type int32"),
        (
            {"size": 0},
            "spec.size",
            "Invalid value: 0: spec.size in body should be greater than or equal to 1",
        ),
        (
            {"size": 1, "color": "pink"},
            "spec.color",
            'Unsupported value: "pink": supported values: "red", "green", "blue"',
        ),
        ({"size": 1, "label": "Bad!"}, "spec.label", "in body should match '^[a-z][a-z0-9-]*$'"),
        ({"size": 1, "label": "a"}, "spec.label", "in body should be at least 2 chars long"),
        ({"size": 1, "label": "a" * 21}, "spec.label", "Too long: may not be more than 20 bytes"),
        ({"size": 1, "vip": "300.1.1.1"}, "spec.vip", 'spec.vip in body must be of type ipv4: "300.1.1.1"'),
        ({"size": 1, "tags": []}, "spec.tags", "spec.tags in body should have at least 1 items"),
        (
            {"size": 1, "ports": [{"port": p} for p in range(1, 6)]},
            "spec.ports",
            "Too many: 5: must have at most 4 items",
        ),
        ({"size": 1, "ports": [{"port": 1}, {"port": 1}]}, "spec.ports[1]", "Duplicate value"),
        ({"size": 1, "ports": [{"name": "x"}]}, "spec.ports[0].port", "Required value"),
        ({"color": "red"}, "spec.size", "Required value"),
        (
            {"size": 1, "minReplicas": 4, "maxReplicas": 1},
            "spec",
            'Invalid value: "object": minReplicas must not exceed maxReplicas',
        ),
        ({"size": 1, "address": "nope"}, "spec.address", "address must be an IP address"),
    ],
)
def test_schema_violations_return_422(
    apiserver: ServerThread, namespace: str, widgets: Any, *, spec: dict[str, Any], field: str, message: str
) -> None:
    body = {"apiVersion": f"{GROUP}/{VERSION}", "kind": "Widget", "metadata": {"name": "bad"}, "spec": spec}
    code, _, status = http(
        apiserver, "POST", f"/apis/{GROUP}/{VERSION}/namespaces/{namespace}/{PLURAL}", body
    )
    assert code == 422, status
    assert status["kind"] == "Status" and status["reason"] == "Invalid"
    assert status["message"].startswith('Widget.demo.lvs.io "bad" is invalid: ')
    causes = [(cause["field"], cause["message"]) for cause in status["details"]["causes"]]
    assert any(f == field and message in m for f, m in causes), causes
    assert status["details"]["kind"] == "Widget" and status["details"]["group"] == GROUP


def test_cel_transition_rule_uses_old_self(kube_api: Any, namespace: str, widgets: Any) -> None:
    api = kubernetes.client.CustomObjectsApi(kube_api)
    api.create_namespaced_custom_object(
        GROUP, VERSION, namespace, PLURAL, widget("fixed", size=2, mutableSize=False)
    )
    with pytest.raises(ApiException) as error:
        api.patch_namespaced_custom_object(GROUP, VERSION, namespace, PLURAL, "fixed", {"spec": {"size": 3}})
    assert error.value.status == 422
    assert "size is immutable unless mutableSize" in error.value.body
    api.patch_namespaced_custom_object(
        GROUP, VERSION, namespace, PLURAL, "fixed", {"spec": {"size": 3, "mutableSize": True}}
    )


def test_crd_with_broken_cel_rule_is_rejected(kube_api: Any) -> None:
    crd = {
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {"name": "brokens.demo.lvs.io"},
        "spec": {
            "group": "demo.lvs.io",
            "scope": "Namespaced",
            "names": {"plural": "brokens", "kind": "Broken"},
            "versions": [
                {
                    "name": "v1",
                    "served": True,
                    "storage": True,
                    "schema": {
                        "openAPIV3Schema": {
                            "type": "object",
                            "x-kubernetes-validations": [{"rule": "self.a ==== 1"}],
                        }
                    },
                }
            ],
        },
    }
    with pytest.raises(ApiException) as error:
        kubernetes.client.ApiextensionsV1Api(kube_api).create_custom_resource_definition(crd)
    assert error.value.status == 422 and "compilation failed" in error.value.body


def test_table_output(apiserver: ServerThread, namespace: str, widgets: Any, kube_api: Any) -> None:
    kubernetes.client.CustomObjectsApi(kube_api).create_namespaced_custom_object(
        GROUP, VERSION, namespace, PLURAL, widget("t", size=7)
    )
    accept = {"Accept": "application/json;as=Table;v=v1;g=meta.k8s.io,application/json"}
    code, headers, table = http(
        apiserver, "GET", f"/apis/{GROUP}/{VERSION}/namespaces/{namespace}/{PLURAL}", headers=accept
    )
    assert code == 200 and headers["Content-Type"].startswith("application/json;as=Table")
    assert table["kind"] == "Table"
    assert [c["name"] for c in table["columnDefinitions"]] == ["Name", "Size", "Color", "Ready", "Age"]
    cells = table["rows"][0]["cells"]
    assert cells[:3] == ["t", 7, "green"] and cells[3] is None and cells[4].endswith("s")
    assert table["rows"][0]["object"]["kind"] == "PartialObjectMetadata"
    code, _, pods = http(apiserver, "GET", f"/api/v1/namespaces/{namespace}/pods", headers=accept)
    columns = [(c["name"], c["priority"]) for c in pods["columnDefinitions"]]
    assert columns == [
        ("Name", 0),
        ("Ready", 0),
        ("Status", 0),
        ("Restarts", 0),
        ("Age", 0),
        ("IP", 1),
        ("Node", 1),
    ]


def test_openapi_v3_documents(apiserver: ServerThread, widgets: Any) -> None:
    code, _, index = http(apiserver, "GET", "/openapi/v3")
    assert code == 200
    key = f"apis/{GROUP}/{VERSION}"
    url = index["paths"][key]["serverRelativeURL"]
    assert url.startswith(f"/openapi/v3/{key}?hash=")
    code, _, doc = http(apiserver, "GET", url)
    schema = doc["components"]["schemas"]["io.lvs.demo.v1.Widget"]
    assert schema["x-kubernetes-group-version-kind"] == [
        {"group": GROUP, "version": VERSION, "kind": "Widget"}
    ]
    assert schema["properties"]["spec"]["properties"]["size"]["maximum"] == 100
    patch = doc["paths"][f"/apis/{GROUP}/{VERSION}/namespaces/{{namespace}}/{PLURAL}/{{name}}"]["patch"]
    assert any(p["name"] == "fieldValidation" for p in patch["parameters"])
    assert "api/v1" in index["paths"] and "apis/coordination.k8s.io/v1" in index["paths"]


@pytest.mark.parametrize("version", ["v2", "v2beta1"])
def test_aggregated_discovery(apiserver: ServerThread, widgets: Any, version: str) -> None:
    accept = {
        "Accept": f"application/json;g=apidiscovery.k8s.io;v={version};as=APIGroupDiscoveryList,"
        "application/json"
    }
    code, headers, doc = http(apiserver, "GET", "/apis", headers=accept)
    assert code == 200
    assert (
        headers["Content-Type"]
        == f"application/json;g=apidiscovery.k8s.io;v={version};as=APIGroupDiscoveryList"
    )
    assert doc["kind"] == "APIGroupDiscoveryList" and doc["apiVersion"] == f"apidiscovery.k8s.io/{version}"
    groups = {item["metadata"]["name"]: item for item in doc["items"]}
    widget_resource = next(r for r in groups[GROUP]["versions"][0]["resources"] if r["resource"] == PLURAL)
    assert widget_resource["scope"] == "Namespaced" and widget_resource["responseKind"]["kind"] == "Widget"
    assert widget_resource["subresources"][0]["subresource"] == "status"
    code, _, core = http(apiserver, "GET", "/api", headers=accept)
    assert [item["metadata"].get("name", "") for item in core["items"]] == [""]
    assert any(r["resource"] == "pods" for r in core["items"][0]["versions"][0]["resources"])


def test_server_side_apply_of_status_by_several_writers(kube_api: Any, namespace: str, widgets: Any) -> None:
    """Each writer applies its own condition (list-map keyed by type) through /status: no conflicts,
    no clobbering, and a writer dropping its entry removes only that entry."""
    api = kubernetes.client.CustomObjectsApi(kube_api)
    api.create_namespaced_custom_object(GROUP, VERSION, namespace, PLURAL, widget("multi"))

    def apply_status(manager: str, conditions: list[dict[str, str]]) -> Any:
        body = {
            "apiVersion": f"{GROUP}/{VERSION}",
            "kind": "Widget",
            "metadata": {"name": "multi"},
            "status": {"conditions": conditions},
        }
        return api.patch_namespaced_custom_object_status(
            GROUP, VERSION, namespace, PLURAL, "multi", body, field_manager=manager, _content_type=APPLY
        )

    apply_status("node-a", [{"type": "NodeAReady", "status": "True"}])
    apply_status("node-b", [{"type": "NodeBReady", "status": "False"}])
    both = api.get_namespaced_custom_object(GROUP, VERSION, namespace, PLURAL, "multi")
    assert {c["type"]: c["status"] for c in both["status"]["conditions"]} == {
        "NodeAReady": "True",
        "NodeBReady": "False",
    }
    entries = {(m["manager"], m.get("subresource", "")) for m in both["metadata"]["managedFields"]}
    assert {("node-a", "status"), ("node-b", "status")} <= entries
    assert both["metadata"]["generation"] == 1
    apply_status("node-a", [])
    after = api.get_namespaced_custom_object(GROUP, VERSION, namespace, PLURAL, "multi")
    assert [c["type"] for c in after["status"]["conditions"]] == ["NodeBReady"]
    with pytest.raises(ApiException) as conflict:
        apply_status("node-c", [{"type": "NodeBReady", "status": "True"}])
    assert conflict.value.status == 409
    assert 'conflict with "node-b" with subresource "status"' in json.loads(conflict.value.body)["message"]
