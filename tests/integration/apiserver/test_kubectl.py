"""The real kubectl binary against the server: apply (client- and server-side), get with printer
columns, describe, wait, explain, patch --subresource=status, delete, and validation errors."""

from __future__ import annotations

import json
import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from .widgets import widget

pytestmark = pytest.mark.integration

Kubectl = Callable[..., subprocess.CompletedProcess[str]]


def manifest(obj: dict[str, Any]) -> str:
    return json.dumps(obj)


def test_apply_get_describe_wait_delete(kubectl: Kubectl, namespace: str, widgets: Any) -> None:
    body = widget("w1", ports=[{"port": 80}], tags=["a"])
    assert (
        "widget.demo.lvs.io/w1 created"
        in kubectl("apply", "-n", namespace, "-f", "-", input=manifest(body)).stdout
    )
    assert (
        "widget.demo.lvs.io/w1 unchanged"
        in kubectl("apply", "-n", namespace, "-f", "-", input=manifest(body)).stdout
    )
    body["spec"]["size"] = 5
    assert (
        "widget.demo.lvs.io/w1 configured"
        in kubectl("apply", "-n", namespace, "-f", "-", input=manifest(body)).stdout
    )

    table = kubectl("get", "widgets", "-n", namespace).stdout.splitlines()
    assert table[0].split() == ["NAME", "SIZE", "COLOR", "READY", "AGE"]
    assert table[1].split()[:3] == ["w1", "5", "green"]  # defaulted color shows in the printer column

    kubectl(
        "patch",
        "wdg",
        "w1",
        "-n",
        namespace,
        "--subresource=status",
        "--type=merge",
        "-p",
        '{"status":{"conditions":[{"type":"Ready","status":"True","reason":"Done"}]}}',
    )
    waited = kubectl("wait", "--for=condition=Ready", "widget/w1", "-n", namespace, "--timeout=10s")
    assert "condition met" in waited.stdout
    assert kubectl("get", "widget", "w1", "-n", namespace).stdout.splitlines()[1].split()[3] == "True"

    described = kubectl("describe", "widget", "w1", "-n", namespace).stdout
    assert "Name:         w1" in described
    assert "Size:" in described and "Kind:         Widget" in described

    as_json = json.loads(kubectl("get", "widget", "w1", "-n", namespace, "-o", "json").stdout)
    assert as_json["metadata"]["generation"] == 2
    assert "kubectl.kubernetes.io/last-applied-configuration" in as_json["metadata"]["annotations"]

    assert "deleted" in kubectl("delete", "widget", "w1", "-n", namespace).stdout
    missing = kubectl("get", "widget", "w1", "-n", namespace, check=False)
    assert missing.returncode != 0 and "NotFound" in missing.stderr


def test_wait_for_condition_set_later(kubectl: Kubectl, namespace: str, widgets: Any) -> None:
    kubectl("apply", "-n", namespace, "-f", "-", input=manifest(widget("late")))
    import threading
    import time

    def flip() -> None:
        time.sleep(1.0)
        kubectl(
            "patch",
            "widget",
            "late",
            "-n",
            namespace,
            "--subresource=status",
            "--type=merge",
            "-p",
            '{"status":{"conditions":[{"type":"Ready","status":"True"}]}}',
        )

    thread = threading.Thread(target=flip)
    thread.start()
    started = time.monotonic()
    result = kubectl("wait", "--for=condition=Ready", "widget/late", "-n", namespace, "--timeout=15s")
    thread.join()
    assert "condition met" in result.stdout
    assert 0.9 < time.monotonic() - started < 10


def test_get_builtin_tables_and_output_formats(kubectl: Kubectl, namespace: str) -> None:
    kubectl(
        "apply",
        "-n",
        namespace,
        "-f",
        "-",
        input=manifest(
            {
                "apiVersion": "v1",
                "kind": "Service",
                "metadata": {"name": "web"},
                "spec": {"selector": {"app": "web"}, "ports": [{"port": 80, "protocol": "TCP"}]},
            }
        ),
    )
    lines = kubectl("get", "svc", "-n", namespace).stdout.splitlines()
    assert lines[0].split() == ["NAME", "TYPE", "CLUSTER-IP", "EXTERNAL-IP", "PORT(S)", "AGE"]
    assert lines[1].split()[:2] == ["web", "ClusterIP"] and "80/TCP" in lines[1]
    names = kubectl("get", "svc", "-n", namespace, "-o", "name").stdout.split()
    assert names == ["service/web"]
    value = kubectl("get", "svc", "web", "-n", namespace, "-o", "jsonpath={.spec.ports[0].port}").stdout
    assert value == "80"
    namespaces = kubectl("get", "ns", namespace, "--show-labels").stdout
    assert f"kubernetes.io/metadata.name={namespace}" in namespaces


def test_client_side_apply_of_builtin_uses_strategic_merge(kubectl: Kubectl, namespace: str) -> None:
    pod = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": "p", "labels": {"app": "x"}},
        "spec": {"containers": [{"name": "a", "image": "img:1"}, {"name": "b", "image": "img:1"}]},
    }
    kubectl("apply", "-n", namespace, "-f", "-", input=manifest(pod))
    pod["spec"]["containers"][1]["image"] = "img:2"
    assert "configured" in kubectl("apply", "-n", namespace, "-f", "-", input=manifest(pod)).stdout
    images = kubectl("get", "pod", "p", "-n", namespace, "-o", "jsonpath={.spec.containers[*].image}").stdout
    assert images == "img:1 img:2"


def test_server_side_apply_and_conflicts(kubectl: Kubectl, namespace: str, widgets: Any) -> None:
    body = widget("ssa", size=4, ports=[{"port": 80, "name": "http"}])
    out = kubectl("apply", "--server-side", "-n", namespace, "-f", "-", input=manifest(body)).stdout
    assert "serverside-applied" in out
    # another manager wants a different size: 409 naming the owner, unless forced
    other = widget("ssa", size=7)
    clash = kubectl(
        "apply",
        "--server-side",
        "--field-manager=other",
        "-n",
        namespace,
        "-f",
        "-",
        input=manifest(other),
        check=False,
    )
    assert clash.returncode != 0
    assert 'conflict with "kubectl"' in clash.stderr and ".spec.size" in clash.stderr
    kubectl(
        "apply",
        "--server-side",
        "--field-manager=other",
        "--force-conflicts",
        "-n",
        namespace,
        "-f",
        "-",
        input=manifest(other),
    )
    got = json.loads(
        kubectl("get", "widget", "ssa", "-n", namespace, "-o", "json", "--show-managed-fields").stdout
    )
    assert got["spec"]["size"] == 7
    managers = {entry["manager"]: entry for entry in got["metadata"]["managedFields"]}
    assert "f:size" in managers["other"]["fieldsV1"]["f:spec"]
    assert "f:size" not in managers["kubectl"]["fieldsV1"]["f:spec"]
    assert 'k:{"port":80}' in managers["kubectl"]["fieldsV1"]["f:spec"]["f:ports"]


def test_explain_reads_openapi_v3(kubectl: Kubectl, widgets: Any) -> None:
    out = kubectl("explain", "widgets.spec.ports").stdout
    assert "KIND:       Widget" in out and "GROUP:      demo.lvs.io" in out
    assert "port" in out and "<integer> -required-" in out
    recursive = kubectl("explain", "widget.spec.color").stdout
    assert "ENUM:" in recursive and "green" in recursive


def test_invalid_custom_resource_is_rejected_with_field_errors(
    kubectl: Kubectl, namespace: str, widgets: Any
) -> None:
    bad = widget("bad", size=300, color="pink")
    result = kubectl("apply", "-n", namespace, "-f", "-", input=manifest(bad), check=False)
    assert result.returncode != 0
    assert 'The Widget "bad" is invalid' in result.stderr
    assert (
        "spec.size: Invalid value: 300: spec.size in body should be less than or equal to 100"
        in result.stderr
    )
    assert 'spec.color: Unsupported value: "pink"' in result.stderr
    cel = widget("cel", minReplicas=5, maxReplicas=2)
    result = kubectl("apply", "-n", namespace, "-f", "-", input=manifest(cel), check=False)
    assert 'spec: Invalid value: "object": minReplicas must not exceed maxReplicas' in result.stderr
    unknown = widget("unknown", bogus=1)
    result = kubectl("apply", "-n", namespace, "-f", "-", input=manifest(unknown), check=False)
    assert result.returncode != 0 and 'unknown field "spec.bogus"' in result.stderr
    # --validate=warn: the server prunes it and kubectl prints the server's warning
    warned = kubectl(
        "apply", "--validate=warn", "-n", namespace, "-f", "-", input=manifest(widget("warned", bogus=1))
    )
    assert 'Warning: unknown field "spec.bogus"' in warned.stderr
    # --validate=false lets the server prune it instead
    kubectl("apply", "--validate=false", "-n", namespace, "-f", "-", input=manifest(unknown))
    stored = json.loads(kubectl("get", "widget", "unknown", "-n", namespace, "-o", "json").stdout)
    assert "bogus" not in stored["spec"]


def test_create_namespace_and_configmap_with_kubectl(kubectl: Kubectl, tmp_path: Path) -> None:
    kubectl("create", "namespace", "made-by-kubectl")
    kubectl("create", "configmap", "settings", "-n", "made-by-kubectl", "--from-literal=mode=fast")
    data = json.loads(kubectl("get", "cm", "settings", "-n", "made-by-kubectl", "-o", "json").stdout)["data"]
    assert data == {"mode": "fast"}
    kubectl("create", "secret", "generic", "s", "-n", "made-by-kubectl", "--from-literal=password=x")
    kubectl("create", "serviceaccount", "robot", "-n", "made-by-kubectl")
    token = kubectl("create", "token", "robot", "-n", "made-by-kubectl").stdout.strip()
    assert len(token) > 20
    kubectl("delete", "namespace", "made-by-kubectl", "--wait=true", "--timeout=20s")


def test_get_watch_prints_changes(kubectl: Kubectl, namespace: str, widgets: Any, apiserver: Any) -> None:
    import threading
    import time

    kubectl("apply", "-n", namespace, "-f", "-", input=manifest(widget("watched", size=1)))

    def change() -> None:
        time.sleep(1.0)
        kubectl("patch", "widget", "watched", "-n", namespace, "--type=merge", "-p", '{"spec":{"size":42}}')

    thread = threading.Thread(target=change)
    thread.start()
    result = kubectl("get", "widgets", "-n", namespace, "-w", "--request-timeout=3s", check=False, timeout=20)
    thread.join()
    lines = [line.split() for line in result.stdout.splitlines()]
    assert lines[0][:3] == ["NAME", "SIZE", "COLOR"]
    assert lines[1][:2] == ["watched", "1"]
    assert ["watched", "42"] in [line[:2] for line in lines[2:]], result.stdout


def test_describe_shows_events_of_a_custom_resource(kubectl: Kubectl, namespace: str, widgets: Any) -> None:
    kubectl("apply", "-n", namespace, "-f", "-", input=manifest(widget("eventful")))
    uid = kubectl("get", "widget", "eventful", "-n", namespace, "-o", "jsonpath={.metadata.uid}").stdout
    event = {
        "apiVersion": "v1",
        "kind": "Event",
        "metadata": {"name": "eventful.1"},
        "involvedObject": {
            "apiVersion": "demo.lvs.io/v1",
            "kind": "Widget",
            "name": "eventful",
            "namespace": namespace,
            "uid": uid,
        },
        "reason": "Programmed",
        "message": "IPVS table updated",
        "type": "Normal",
        "count": 1,
        "firstTimestamp": "2026-01-01T00:00:00Z",
        "lastTimestamp": "2026-01-01T00:00:00Z",
        "source": {"component": "lvs-controller"},
    }
    kubectl("create", "-n", namespace, "-f", "-", input=manifest(event))
    described = kubectl("describe", "widget", "eventful", "-n", namespace).stdout
    events_section = described.split("Events:", 1)[1]
    assert "Programmed" in events_section and "IPVS table updated" in events_section


def test_explain_built_in_kinds(kubectl: Kubectl) -> None:
    lease = kubectl("explain", "lease.spec").stdout
    assert "holderIdentity" in lease and "leaseDurationSeconds" in lease
    slices = kubectl("explain", "endpointslices.endpoints.conditions").stdout
    assert "ready" in slices and "terminating" in slices
    service = kubectl("explain", "service.spec.ports").stdout
    assert "targetPort" in service
