"""The GitOps objects docs/install.md tells users to apply are well-formed for what they point at: the Argo
CD Application's path and values render with the chart, the argocd-cm health key names our group and kind,
the Flux Kustomizations point at folders that exist, and the Flux health expressions compile as CEL.
(tests/integration/test_docs_examples.py runs the health logic on live objects.)"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import celpy
import helm_python as helm
import yaml

REPO = Path(__file__).resolve().parents[2]
INSTALL = (REPO / "docs" / "install.md").read_text()


def yaml_blocks(section: str) -> list[dict[str, Any]]:
    """Every YAML document in the ```yaml blocks of one `## ` section."""
    start = INSTALL.index(f"## {section}\n")
    end = INSTALL.find("\n## ", start + 1)
    text = INSTALL[start : end if end > 0 else None]
    blocks = re.findall(r"```yaml\n(.*?)```", text, flags=re.S)
    return [doc for block in blocks for doc in yaml.safe_load_all(block) if doc]


def test_the_argocd_application_renders_the_chart_with_its_values() -> None:
    (application,) = [doc for doc in yaml_blocks("Argo CD") if doc["kind"] == "Application"]
    source = application["spec"]["source"]
    chart_dir = REPO / source["path"]
    assert (chart_dir / "Chart.yaml").exists()
    values = source["helm"]["valuesObject"]
    with helm.Chart.load(chart_dir) as chart:
        chart.validate_schema(values)
        rendered = chart.render(
            values, name=source["helm"]["releaseName"], namespace="lvs-system", is_install=True
        )
    objects = [
        doc
        for path, text in rendered.items()
        if not path.endswith("NOTES.txt")
        for doc in yaml.safe_load_all(text)
        if isinstance(doc, dict)
    ]
    names = {(obj["kind"], obj["metadata"]["name"]) for obj in objects}
    assert {("Deployment", "lvs-controller"), ("DaemonSet", "lvs-agent")} <= names
    daemonset = next(obj for obj in objects if obj["kind"] == "DaemonSet")
    volumes = daemonset["spec"]["template"]["spec"]["volumes"]
    assert any(volume.get("secret", {}).get("secretName") == "lvs-heartbeat" for volume in volumes)
    sync = application["spec"]["syncPolicy"]["syncOptions"]
    assert "ServerSideApply=true" in sync and "CreateNamespace=true" in sync


def test_the_argocd_health_key_names_our_group_and_kind() -> None:
    (config_map,) = [doc for doc in yaml_blocks("Argo CD") if doc["kind"] == "ConfigMap"]
    assert config_map["metadata"] == {"name": "argocd-cm", "namespace": "argocd"}
    crd = yaml.safe_load((REPO / "crds" / "virtualservices.lvs.io.yaml").read_text())
    key = f"resource.customizations.health.{crd['spec']['group']}_{crd['spec']['names']['kind']}"
    assert list(config_map["data"]) == [key]


def test_the_flux_kustomizations_point_at_folders_that_exist() -> None:
    kustomizations = [doc for doc in yaml_blocks("Flux") if doc["kind"] == "Kustomization"]
    operator = next(doc for doc in kustomizations if doc["metadata"]["name"] == "lvs-operator")
    assert (REPO / operator["spec"]["path"] / "kustomization.yaml").exists()
    services = next(doc for doc in kustomizations if doc["metadata"]["name"] == "lvs-services")
    assert services["spec"]["dependsOn"] == [{"name": "lvs-operator"}]
    assert services["spec"]["wait"] is True


def test_the_flux_health_expressions_compile_and_name_our_kind() -> None:
    services = next(doc for doc in yaml_blocks("Flux") if doc["metadata"]["name"] == "lvs-services")
    (entry,) = services["spec"]["healthCheckExprs"]
    assert (entry["apiVersion"], entry["kind"]) == ("lvs.io/v1alpha1", "VirtualService")
    environment = celpy.Environment()
    for key in ("current", "failed"):
        environment.compile(entry[key])
        assert "metadata.generation" in entry[key], f"{key} must judge the current generation only"
