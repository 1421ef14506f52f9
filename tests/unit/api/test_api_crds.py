"""Generated CRDs: no drift from the models, structural schemas, names and printer columns."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml
from lvs_api.crdgen import CRDS, main, render_all

REPO = Path(__file__).resolve().parents[3]
CRD_DIR = REPO / "crds"


def test_crds_directory_matches_the_models() -> None:
    expected = render_all()
    on_disk = {path.name: path.read_text() for path in CRD_DIR.glob("*.yaml")}
    assert set(on_disk) == set(expected), "crds/ has missing or extra files"
    drifted = [name for name, text in expected.items() if on_disk[name] != text]
    assert drifted == [], f"regenerate with: python -m lvs_api.crdgen --out crds ({drifted})"


def test_check_mode_detects_drift(tmp_path: Path) -> None:
    assert main(["--out", str(tmp_path)]) == 0
    assert main(["--out", str(tmp_path), "--check"]) == 0
    victim = tmp_path / "virtualservices.lvs.io.yaml"
    victim.write_text(victim.read_text().replace("wlc", "rr", 1))
    assert main(["--out", str(tmp_path), "--check"]) == 1


def _walk(node: Any, path: str, problems: list[str]) -> None:
    if not isinstance(node, dict):
        return
    for banned in ("$ref", "anyOf", "oneOf", "allOf", "title", "const", "$defs"):
        if banned in node:
            problems.append(f"{path}: {banned}")
    if "type" not in node and not node.get("x-kubernetes-int-or-string"):
        problems.append(f"{path}: no type")
    if node.get("type") == "null":
        problems.append(f"{path}: null type")
    for name, prop in node.get("properties", {}).items():
        if name not in ("metadata", "apiVersion", "kind") and "description" not in prop:
            problems.append(f"{path}.{name}: no description")
        _walk(prop, f"{path}.{name}", problems)
    if "items" in node:
        _walk(node["items"], f"{path}[]", problems)
    if isinstance(node.get("additionalProperties"), dict):
        _walk(node["additionalProperties"], f"{path}{{}}", problems)


def _load(name: str) -> dict[str, Any]:
    loaded: dict[str, Any] = yaml.safe_load((CRD_DIR / name).read_text())
    return loaded


def test_schemas_are_structural_and_described() -> None:
    for name in render_all():
        crd = _load(name)
        version = crd["spec"]["versions"][0]
        problems: list[str] = []
        _walk(version["schema"]["openAPIV3Schema"], "", problems)
        assert problems == [], f"{name}: {problems}"


def test_names_scopes_and_columns() -> None:
    crds = {spec.model.kind_name: _load(f"{spec.model.plural}.lvs.io.yaml") for spec in CRDS}
    vs = crds["VirtualService"]["spec"]
    assert vs["scope"] == "Namespaced"
    assert "vs" not in vs["names"]["shortNames"]  # Istio's
    assert "lvsvs" in vs["names"]["shortNames"]
    assert vs["names"]["categories"] == ["lvs"]
    columns = {c["name"]: c["jsonPath"] for c in vs["versions"][0]["additionalPrinterColumns"]}
    assert columns["VIP"] == ".spec.vip"
    assert columns["Members"] == ".status.readyMembers"
    assert columns["Director"] == ".status.activeDirector"
    assert {"Ports", "Scheduler", "Forwarding", "Age"} <= set(columns)
    assert vs["versions"][0]["subresources"] == {"status": {}}
    assert crds["VIPPool"]["spec"]["scope"] == "Cluster"
    assert crds["DirectorReport"]["spec"]["scope"] == "Cluster"
    assert crds["RealServerPool"]["spec"]["scope"] == "Namespaced"
    assert crds["ResolvedService"]["spec"]["scope"] == "Namespaced"
    short_names = [n for crd in crds.values() for n in crd["spec"]["names"]["shortNames"]]
    assert len(short_names) == len(set(short_names))


def test_cross_field_rules_land_in_the_schema() -> None:
    spec_schema = _load("virtualservices.lvs.io.yaml")["spec"]["versions"][0]["schema"]["openAPIV3Schema"][
        "properties"
    ]["spec"]
    messages = [rule["message"] for rule in spec_schema["x-kubernetes-validations"]]
    assert any("forwarding: Tunnel" in message for message in messages)
    assert spec_schema["properties"]["persistence"]["properties"]["netmask"] == {
        "x-kubernetes-int-or-string": True,
        "description": spec_schema["properties"]["persistence"]["properties"]["netmask"]["description"],
    }
    timeout = spec_schema["properties"]["healthCheck"]["properties"]["timeoutSeconds"]
    assert timeout["exclusiveMinimum"] is True and timeout["minimum"] == 0
