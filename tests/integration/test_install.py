"""Installing lvs-operator the ways users do, against the embedded API server with the real kubectl:
``kubectl apply -k deploy/`` (server dry-run, then for real) and the Helm chart's rendered manifests
(what Argo CD and Flux apply). Applying the same manifests again must change nothing: every object keeps
its resourceVersion (GitOps idempotency: no write, no spurious drift), with client-side and server-side
apply alike, and ``kubectl diff`` reports no difference."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import helm_python as helm
import pytest
import yaml
from lvs_apiserver.testing import ServerThread

REPO = Path(__file__).resolve().parents[2]
KUBECTL = str(Path(sys.executable).parent / "kubectl")
NAMESPACE = "lvs-system"

pytestmark = pytest.mark.integration

Kubectl = Callable[..., subprocess.CompletedProcess[str]]


@pytest.fixture
def cluster(tmp_path: Path) -> Iterator[Kubectl]:
    """A fresh API server per test and a kubectl bound to it (own discovery cache)."""
    server = ServerThread(bookmark_interval=1.0).start()

    def kubectl(*args: str, input: str | None = None, check: bool = True) -> subprocess.CompletedProcess[str]:
        command = [KUBECTL, f"--kubeconfig={server.kubeconfig}", f"--cache-dir={tmp_path / 'cache'}", *args]
        result = subprocess.run(
            command, input=input, capture_output=True, text=True, timeout=120, check=False
        )
        if check and result.returncode != 0:
            raise AssertionError(
                f"kubectl {' '.join(args)}: {result.returncode}\n{result.stdout}\n{result.stderr}"
            )
        return result

    try:
        yield kubectl
    finally:
        server.stop()


def kustomize_deploy(kubectl: Kubectl) -> list[dict[str, Any]]:
    return [doc for doc in yaml.safe_load_all(kubectl("kustomize", str(REPO / "deploy")).stdout) if doc]


def helm_manifests(values: dict[str, Any] | None = None) -> str:
    """What `helm template --include-crds` would print: the chart's CRDs, then its rendered templates."""
    with helm.Chart.load(REPO / "charts" / "lvs-operator") as chart:
        crds = [entry["data"] for entry in chart.crds]
        rendered = chart.render(values, name="lvs", namespace=NAMESPACE, is_install=True)
    templates = [text for path, text in sorted(rendered.items()) if not path.endswith("NOTES.txt")]
    return "\n---\n".join([*crds, *templates])


def identity(obj: dict[str, Any]) -> str:
    meta = obj["metadata"]
    return f"{obj['kind']}/{meta.get('namespace', '')}/{meta['name']}"


def versions(kubectl: Kubectl, objects: list[dict[str, Any]]) -> dict[str, str]:
    """resourceVersion of each object, read back from the server."""
    found: dict[str, str] = {}
    for obj in objects:
        api_version, kind, meta = obj["apiVersion"], obj["kind"], obj["metadata"]
        group = api_version.split("/")[0] if "/" in api_version else ""
        resource = f"{kind.lower()}.{group}" if group else kind.lower()
        args = ["get", resource, meta["name"], "-o", "json"]
        if meta.get("namespace"):
            args += ["-n", meta["namespace"]]
        found[identity(obj)] = json.loads(kubectl(*args).stdout)["metadata"]["resourceVersion"]
    return found


def install_checks(
    kubectl: Kubectl, apply_args: list[str], manifests: str | None, objects: list[dict[str, Any]]
) -> None:
    """Server dry run writes nothing; the apply creates everything; a second apply writes nothing.

    As on any cluster, a server dry run of namespaced objects needs their namespace to exist (the dry run
    of the Namespace object does not create it), so the namespace is created first, like
    `helm install --create-namespace` or Argo CD's CreateNamespace=true do.
    """
    kubectl("create", "namespace", NAMESPACE)
    new = [o for o in objects if identity(o) != f"Namespace//{NAMESPACE}"]

    dry = kubectl("apply", *apply_args, "--dry-run=server", input=manifests)
    assert dry.stdout.count("(server dry run)") == len(objects), dry.stdout
    crds = kubectl("get", "customresourcedefinitions", "-o", "name").stdout.split()
    assert not [name for name in crds if name.endswith(".lvs.io")], "a server dry run created CRDs"
    created = kubectl("get", "deployments,daemonsets,roles", "-n", NAMESPACE, "-o", "name").stdout.split()
    assert created == [], "a server dry run created objects"

    first = kubectl("apply", *apply_args, input=manifests)
    assert first.stdout.count(" created") == len(new), first.stdout
    before = versions(kubectl, objects)
    assert len(before) == len(objects)

    second = kubectl("apply", *apply_args, input=manifests)
    assert second.stdout.count(" unchanged") == len(objects), second.stdout
    assert versions(kubectl, objects) == before, "the second apply wrote objects"

    # What GitOps tools see as drift: nothing.
    diff = kubectl("diff", *apply_args, input=manifests, check=False)
    assert diff.returncode == 0, diff.stdout + diff.stderr
    assert versions(kubectl, objects) == before


def test_kubectl_apply_k_deploy_is_idempotent(cluster: Kubectl) -> None:
    objects = kustomize_deploy(cluster)
    kinds = {obj["kind"] for obj in objects}
    assert {"CustomResourceDefinition", "Namespace", "Deployment", "DaemonSet", "ClusterRole"} <= kinds
    install_checks(cluster, ["-k", str(REPO / "deploy")], None, objects)
    crds = cluster("get", "crd", "-o", "name").stdout.split()
    assert "customresourcedefinition.apiextensions.k8s.io/virtualservices.lvs.io" in crds
    # The CRDs are served right after the install, under their own names and short names.
    assert cluster("get", "virtualservices.lvs.io", "-A").returncode == 0
    assert cluster("get", "lvsvs", "-A").returncode == 0


def test_helm_chart_manifests_apply_idempotently(cluster: Kubectl) -> None:
    """The chart's output applied as Argo CD / Flux apply it (client-side apply), twice."""
    manifests = helm_manifests(
        {"agent": {"heartbeat": {"peers": ["node-b=192.0.2.2"], "secret": "hb-secret"}}}
    )
    objects = [doc for doc in yaml.safe_load_all(manifests) if doc]
    assert {"CustomResourceDefinition", "Deployment", "DaemonSet", "Secret"} <= {o["kind"] for o in objects}
    install_checks(cluster, ["-f", "-"], manifests, objects)


def server_side_apply_twice(cluster: Kubectl) -> tuple[dict[str, str], dict[str, str]]:
    objects = kustomize_deploy(cluster)
    args = ["apply", "--server-side", "--field-manager=gitops", "-k", str(REPO / "deploy")]
    cluster(*args)
    before = versions(cluster, objects)
    time.sleep(1.1)  # timestamps have one-second resolution: a rewritten one must show
    again = cluster(*args)
    assert again.stdout.count(" serverside-applied") == len(objects), again.stdout
    return before, versions(cluster, objects)


def test_server_side_apply_twice_changes_nothing_but_crds(cluster: Kubectl) -> None:
    """Argo CD (ServerSideApply=true) and Flux apply with server-side apply: a re-apply is a no-op too."""
    before, after = server_side_apply_twice(cluster)
    not_crd = [key for key in before if not key.startswith("CustomResourceDefinition/")]
    assert {key: after[key] for key in not_crd} == {key: before[key] for key in not_crd}


def test_server_side_apply_twice_leaves_crds_alone(cluster: Kubectl) -> None:
    before, after = server_side_apply_twice(cluster)
    assert after == before


def test_deploy_and_chart_install_the_same_objects(cluster: Kubectl) -> None:
    """`kubectl apply -k deploy/` and the chart (with fullnameOverride=lvs) name the same objects."""
    plain = {identity(o) for o in kustomize_deploy(cluster)}
    manifests = helm_manifests({"fullnameOverride": "lvs"})
    charted = {identity(o) for o in yaml.safe_load_all(manifests) if o}
    # The chart leaves the namespace to `helm install --create-namespace` (Helm cannot own its own namespace).
    assert plain - charted == {f"Namespace//{NAMESPACE}"}
    assert charted - plain == set()


def test_examples_apply_on_the_installed_crds_and_reapply_without_writes(cluster: Kubectl) -> None:
    """After `kubectl apply -k deploy/`, the shipped examples are accepted by the installed CRDs (schema and
    CEL rules), and applying them again writes nothing, client-side or server-side.

    Client-side apply sends JSON merge patches for custom resources, which replace lists whole: a list whose
    items the server defaults (members' weight and thresholds, ports' protocol) differs from the file, so
    kubectl reports "configured" and sends the patch, but the result equals the stored object and the
    server writes nothing (as a real API server). Server-side apply knows the defaults and reports no change.
    """
    cluster("apply", "-k", str(REPO / "deploy"))
    examples = sorted((REPO / "deploy" / "examples").glob("*.yaml"))
    objects = [doc for path in examples for doc in yaml.safe_load_all(path.read_text()) if doc]
    for namespace in sorted({o["metadata"]["namespace"] for o in objects if o["metadata"].get("namespace")}):
        cluster("create", "namespace", namespace)
    args = [arg for path in examples for arg in ("-f", str(path))]
    first = cluster("apply", *args)
    assert first.stdout.count(" created") == len(objects), first.stdout
    before = versions(cluster, objects)

    second = cluster("apply", *args)
    assert " created" not in second.stdout
    assert versions(cluster, objects) == before, "re-applying the examples wrote objects"
    diff = cluster("diff", *args, check=False)
    assert diff.returncode == 0, diff.stdout + diff.stderr

    cluster("apply", "--server-side", "--force-conflicts", *args)  # take over from client-side apply
    taken_over = versions(cluster, objects)
    cluster("apply", "--server-side", *args)
    assert versions(cluster, objects) == taken_over, "a second server-side apply wrote objects"


def test_documented_kustomize_overlay_builds(tmp_path: Path) -> None:
    """The overlay of docs/install.md (its remote base swapped for this checkout) builds with kubectl's
    kustomize: image and digest replaced everywhere, the agent's nodeSelector patched."""
    text = (REPO / "docs" / "install.md").read_text()
    start = text.index("# my-overlay/kustomization.yaml")
    overlay = yaml.safe_load(text[start : text.index("```", start)])
    overlay["resources"] = [os.path.relpath(REPO / "deploy", tmp_path)]  # kustomize wants relative roots
    digest = "sha256:" + "0123456789abcdef" * 4
    overlay["images"][0]["digest"] = digest
    (tmp_path / "kustomization.yaml").write_text(yaml.safe_dump(overlay))
    result = subprocess.run([KUBECTL, "kustomize", str(tmp_path)], capture_output=True, text=True, check=True)
    objects = [doc for doc in yaml.safe_load_all(result.stdout) if doc]
    workloads = {o["kind"]: o for o in objects if o["kind"] in ("Deployment", "DaemonSet")}
    for workload in workloads.values():
        for container in workload["spec"]["template"]["spec"]["containers"]:
            assert container["image"] == f"registry.example/lvs-operator@{digest}"
    assert workloads["DaemonSet"]["spec"]["template"]["spec"]["nodeSelector"] == {"node-role.example/lb": ""}
