"""kopf's example operator style, run unmodified with `kopf run` against the embedded server:
a handler on a CRD that patches status, posts events, and peers with other operators."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import kubernetes
import pytest
from lvs_apiserver.testing import ServerThread

pytestmark = pytest.mark.integration

KOPF_EXAMPLE_CRD: dict[str, Any] = {
    "apiVersion": "apiextensions.k8s.io/v1",
    "kind": "CustomResourceDefinition",
    "metadata": {"name": "kopfexamples.kopf.dev"},
    "spec": {
        "scope": "Namespaced",
        "group": "kopf.dev",
        "names": {
            "kind": "KopfExample",
            "plural": "kopfexamples",
            "singular": "kopfexample",
            "shortNames": ["kex"],
        },
        "versions": [
            {
                "name": "v1",
                "served": True,
                "storage": True,
                "subresources": {"status": {}},
                "schema": {
                    "openAPIV3Schema": {
                        "type": "object",
                        "properties": {
                            "spec": {"type": "object", "x-kubernetes-preserve-unknown-fields": True},
                            "status": {"type": "object", "x-kubernetes-preserve-unknown-fields": True},
                        },
                    }
                },
                "additionalPrinterColumns": [
                    {"name": "Duration", "type": "string", "jsonPath": ".spec.duration"},
                    {"name": "Message", "type": "string", "jsonPath": ".status.create_fn.message"},
                ],
            }
        ],
    },
}

PEERING_CRD: dict[str, Any] = {
    "apiVersion": "apiextensions.k8s.io/v1",
    "kind": "CustomResourceDefinition",
    "metadata": {"name": "kopfpeerings.kopf.dev"},
    "spec": {
        "scope": "Namespaced",
        "group": "kopf.dev",
        "names": {"kind": "KopfPeering", "plural": "kopfpeerings", "singular": "kopfpeering"},
        "versions": [
            {
                "name": "v1",
                "served": True,
                "storage": True,
                "schema": {
                    "openAPIV3Schema": {
                        "type": "object",
                        "properties": {
                            "status": {"type": "object", "x-kubernetes-preserve-unknown-fields": True}
                        },
                    }
                },
            }
        ],
    },
}

OPERATOR = """
import kopf


@kopf.on.startup()
def configure(settings: kopf.OperatorSettings, **_):
    settings.peering.name = "example"
    settings.peering.priority = 100
    settings.posting.level = 20  # INFO and above become k8s events
    settings.watching.server_timeout = 30


@kopf.on.create("kopf.dev", "v1", "kopfexamples")
def create_fn(spec, body, patch, logger, **kwargs):
    logger.info(f"And here we are! Creating: {spec}")
    kopf.info(body, reason="SomeReason", message="Some message from the example operator")
    patch.status["phase"] = "Created"
    return {"message": "hello world"}


@kopf.on.field("kopf.dev", "v1", "kopfexamples", field="spec.duration")
def duration_fn(old, new, patch, **kwargs):
    patch.status["duration"] = new


@kopf.on.delete("kopf.dev", "v1", "kopfexamples")
def delete_fn(logger, **kwargs):
    logger.info("deleted")
"""


def wait_for(predicate: Callable[[], Any], timeout: float = 20.0) -> Any:
    deadline = time.monotonic() + timeout
    last: Any = None
    while time.monotonic() < deadline:
        try:
            last = predicate()
        except kubernetes.client.ApiException as error:
            last = error
        if last and not isinstance(last, Exception):
            return last
        time.sleep(0.1)
    raise AssertionError(f"timed out; last value: {last!r}")


def test_kopf_example_operator_runs_unmodified(
    make_apiserver: Callable[..., ServerThread], install_crds: Callable[..., list[str]], tmp_path: Path
) -> None:
    server = make_apiserver(bookmark_interval=1.0)
    install_crds(KOPF_EXAMPLE_CRD, PEERING_CRD, server=server)
    client = kubernetes.config.new_client_from_config(config_file=str(server.kubeconfig))
    custom = kubernetes.client.CustomObjectsApi(client)
    core = kubernetes.client.CoreV1Api(client)
    custom.create_namespaced_custom_object(
        "kopf.dev",
        "v1",
        "default",
        "kopfpeerings",
        {"apiVersion": "kopf.dev/v1", "kind": "KopfPeering", "metadata": {"name": "example"}},
    )

    script = tmp_path / "example_operator.py"
    script.write_text(OPERATOR)
    log = (tmp_path / "kopf.log").open("w")
    environment = {**os.environ, "KUBECONFIG": str(server.kubeconfig)}
    kopf_binary = str(Path(sys.executable).parent / "kopf")
    process = subprocess.Popen(
        [kopf_binary, "run", "--namespace=default", "--peering=example", "--verbose", str(script)],
        env=environment,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    try:
        custom.create_namespaced_custom_object(
            "kopf.dev",
            "v1",
            "default",
            "kopfexamples",
            {
                "apiVersion": "kopf.dev/v1",
                "kind": "KopfExample",
                "metadata": {"name": "kopf-example-1"},
                "spec": {"duration": "1m", "field": "value"},
            },
        )

        def created_status() -> Any:
            obj = custom.get_namespaced_custom_object(
                "kopf.dev", "v1", "default", "kopfexamples", "kopf-example-1"
            )
            status = obj.get("status", {})
            return status if status.get("create_fn") and status.get("duration") else None

        status = wait_for(created_status)
        assert status["create_fn"] == {"message": "hello world"}
        assert status["phase"] == "Created"
        assert status["duration"] == "1m"
        obj = custom.get_namespaced_custom_object(
            "kopf.dev", "v1", "default", "kopfexamples", "kopf-example-1"
        )
        assert "kopf.zalando.org/KopfFinalizerMarker" in obj["metadata"]["finalizers"]

        events = wait_for(
            lambda: [e for e in core.list_namespaced_event("default").items if e.reason == "SomeReason"]
        )
        assert events[0].involved_object.name == "kopf-example-1"
        assert events[0].message == "Some message from the example operator"

        peering = wait_for(
            lambda: custom.get_namespaced_custom_object(
                "kopf.dev", "v1", "default", "kopfpeerings", "example"
            ).get("status")
        )
        assert any(entry.get("priority") == 100 for entry in peering.values())

        custom.patch_namespaced_custom_object(
            "kopf.dev", "v1", "default", "kopfexamples", "kopf-example-1", {"spec": {"duration": "2m"}}
        )
        wait_for(
            lambda: (
                custom.get_namespaced_custom_object(
                    "kopf.dev", "v1", "default", "kopfexamples", "kopf-example-1"
                )["status"].get("duration")
                == "2m"
            )
        )

        custom.delete_namespaced_custom_object("kopf.dev", "v1", "default", "kopfexamples", "kopf-example-1")

        def deleted() -> bool:
            try:
                custom.get_namespaced_custom_object(
                    "kopf.dev", "v1", "default", "kopfexamples", "kopf-example-1"
                )
            except kubernetes.client.ApiException as error:
                return error.status == 404
            return False

        wait_for(deleted)
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
        log.close()
        client.close()
    output = (tmp_path / "kopf.log").read_text()
    assert "Handler 'create_fn' succeeded" in output, output[-3000:]
    assert "Traceback" not in output, output[-3000:]
