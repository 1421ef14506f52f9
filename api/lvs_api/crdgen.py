"""Generate the CustomResourceDefinitions in ``crds/`` from the pydantic models.

``python -m lvs_api.crdgen --out crds`` writes one file per kind; ``--check`` exits non-zero when the
files differ from what the models say (the unit tests do the same comparison).

The JSON schema pydantic produces is turned into a Kubernetes *structural* schema: ``$ref`` inlined,
``anyOf [X, null]`` collapsed to ``X`` (an absent field is the Kubernetes way to say null),
``int | str`` turned into ``x-kubernetes-int-or-string``, draft-2020 ``exclusiveMinimum: n`` turned into
the OpenAPI v3.0 ``minimum: n, exclusiveMinimum: true``, titles dropped, and the cross-field rules of
``lvs_api.rules`` attached as ``x-kubernetes-validations`` on the object they are registered for.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from lvs_api.models import (
    GROUP,
    VERSION,
    ApiModel,
    DirectorReport,
    RealServerPool,
    ResolvedService,
    VIPPool,
    VirtualService,
)
from lvs_api.rules import rules_for

__all__ = ["CRDS", "CrdSpec", "build_crd", "crd_file_name", "main", "render_all", "structural_schema"]

JsonSchema = dict[str, Any]

# Keys of a JSON schema node that carry over unchanged into the OpenAPI v3 schema.
_PASSTHROUGH = (
    "type",
    "description",
    "enum",
    "format",
    "pattern",
    "minimum",
    "maximum",
    "minLength",
    "maxLength",
    "minItems",
    "maxItems",
    "x-kubernetes-int-or-string",
    "x-kubernetes-list-type",
    "x-kubernetes-list-map-keys",
    "x-kubernetes-preserve-unknown-fields",
)


@dataclass(frozen=True)
class PrinterColumn:
    """One ``additionalPrinterColumns`` entry."""

    name: str
    json_path: str
    type: str = "string"
    description: str = ""
    priority: int = 0

    def to_crd(self) -> dict[str, Any]:
        column: dict[str, Any] = {"name": self.name, "type": self.type, "jsonPath": self.json_path}
        if self.description:
            column["description"] = self.description
        if self.priority:
            column["priority"] = self.priority
        return column


AGE = PrinterColumn("Age", ".metadata.creationTimestamp", "date")


@dataclass(frozen=True)
class CrdSpec:
    """What the CRD of one kind needs beyond its schema."""

    model: type[ApiModel]
    singular: str
    short_names: tuple[str, ...]
    categories: tuple[str, ...]
    columns: tuple[PrinterColumn, ...]
    status_subresource: bool = True
    extra_labels: dict[str, str] = field(default_factory=dict)


CRDS: tuple[CrdSpec, ...] = (
    CrdSpec(
        VirtualService,
        singular="virtualservice",
        # Not "vs": Istio's VirtualService owns it.
        short_names=("lvsvs", "lvsvirtualservice"),
        categories=("lvs",),
        columns=(
            PrinterColumn("VIP", ".spec.vip", description="Virtual IP address"),
            PrinterColumn("Ports", ".spec.ports[*].port", description="Virtual ports"),
            PrinterColumn("Protocols", ".spec.ports[*].protocol", description="Port protocols", priority=1),
            PrinterColumn("FWMark", ".spec.firewallMark", "integer", "Firewall mark", priority=1),
            PrinterColumn("Scheduler", ".spec.scheduler.name", description="IPVS scheduler"),
            PrinterColumn("Forwarding", ".spec.forwarding", description="NAT, DirectRouting or Tunnel"),
            PrinterColumn("Members", ".status.readyMembers", description="Healthy/total members"),
            PrinterColumn("Director", ".status.activeDirector", description="Node holding the VIP"),
            PrinterColumn(
                "Ready", '.status.conditions[?(@.type=="Ready")].status', description="Ready condition"
            ),
            AGE,
        ),
    ),
    CrdSpec(
        RealServerPool,
        singular="realserverpool",
        short_names=("rspool", "lvspool"),
        categories=("lvs",),
        columns=(
            PrinterColumn("Members", ".status.resolvedMembers", "integer", "Resolved members"),
            PrinterColumn(
                "Service", ".spec.selector.service.name", description="Selected Service", priority=1
            ),
            PrinterColumn(
                "Accepted", '.status.conditions[?(@.type=="Accepted")].status', description="Accepted"
            ),
            AGE,
        ),
    ),
    CrdSpec(
        VIPPool,
        singular="vippool",
        short_names=("vippool", "lvsvippool"),
        categories=("lvs",),
        columns=(
            PrinterColumn("Addresses", ".spec.addresses", description="VIP ranges"),
            PrinterColumn("Claimed", ".status.claimedAddresses", "integer", "VIPs in use"),
            AGE,
        ),
    ),
    CrdSpec(
        ResolvedService,
        singular="resolvedservice",
        short_names=("lvsresolved",),
        categories=("lvs-internal",),
        columns=(
            PrinterColumn("VIP", ".spec.service.vip", description="Virtual IP address"),
            PrinterColumn("Generation", ".spec.acceptedGeneration", "integer", "Accepted generation"),
            AGE,
        ),
        status_subresource=False,
    ),
    CrdSpec(
        DirectorReport,
        singular="directorreport",
        short_names=("lvsdirector", "lvsreport"),
        categories=("lvs-internal",),
        columns=(
            PrinterColumn("Node", ".spec.nodeName", description="Reporting node"),
            PrinterColumn("Services", ".status.ipvsServices", "integer", "Owned IPVS services"),
            PrinterColumn("Heartbeat", ".status.heartbeatTime", "date", "Last report"),
            AGE,
        ),
    ),
)


def _model_classes() -> dict[str, type[ApiModel]]:
    """Every ApiModel subclass by class name (the key pydantic uses in ``$defs``)."""
    found: dict[str, type[ApiModel]] = {}
    pending: list[type[ApiModel]] = [ApiModel]
    while pending:
        cls = pending.pop()
        for sub in cls.__subclasses__():
            if sub.__name__ in found and found[sub.__name__] is not sub:
                raise ValueError(f"two API models are named {sub.__name__}")
            found[sub.__name__] = sub
            pending.append(sub)
    return found


class _Converter:
    def __init__(self, defs: dict[str, JsonSchema], classes: dict[str, type[ApiModel]]) -> None:
        self.defs = defs
        self.classes = classes

    def object_schema(self, node: JsonSchema, model: type[ApiModel] | None) -> JsonSchema:
        out = self.convert(node)
        if model is not None:
            rules = rules_for(model)
            if rules:
                out["x-kubernetes-validations"] = [rule.to_crd() for rule in rules]
            out.update(model.crd_schema_extra)
        return out

    def convert(self, node: JsonSchema) -> JsonSchema:
        node = dict(node)
        ref = node.pop("$ref", None)
        if ref is None and "allOf" in node and len(node["allOf"]) == 1:
            ref = node.pop("allOf")[0]["$ref"]
        if ref is not None:
            name = ref.rsplit("/", 1)[-1]
            target = self.object_schema(self.defs[name], self.classes.get(name))
            return self._merge_siblings(target, node)

        if "anyOf" in node:
            options = [opt for opt in node.pop("anyOf") if opt.get("type") != "null"]
            types = sorted(opt.get("type", "") for opt in options)
            if len(options) == 1:
                return self._merge_siblings(self.convert(options[0]), node)
            if types == ["integer", "string"]:
                merged = self._merge_siblings({"x-kubernetes-int-or-string": True}, node)
                merged.pop("type", None)
                return merged
            raise ValueError(f"cannot express anyOf {options} in a structural schema")

        if "const" in node:
            # apiVersion / kind: the API server checks those itself.
            node.pop("const")
            node.pop("enum", None)
            node.pop("default", None)
            node["type"] = "string"

        out: JsonSchema = {key: node[key] for key in _PASSTHROUGH if key in node}
        if "description" in out:
            # Docstrings use reST ``literals``; kubectl explain reads better with plain `backticks`.
            out["description"] = out["description"].replace("``", "`")
        if out.get("x-kubernetes-int-or-string"):
            out.pop("type", None)
        if "exclusiveMinimum" in node:
            out["minimum"] = node["exclusiveMinimum"]
            out["exclusiveMinimum"] = True
        if "exclusiveMaximum" in node:
            out["maximum"] = node["exclusiveMaximum"]
            out["exclusiveMaximum"] = True
        if "default" in node and node["default"] is not None:
            out["default"] = node["default"]
        if "properties" in node:
            out["type"] = "object"
            out["properties"] = {name: self.convert(prop) for name, prop in node["properties"].items()}
            required = [name for name in node.get("required", []) if name in out["properties"]]
            if required:
                out["required"] = required
        if "items" in node:
            out["items"] = self.convert(node["items"])
        additional = node.get("additionalProperties")
        if isinstance(additional, dict):
            out["additionalProperties"] = self.convert(additional)
        if out.get("type") == "object" and "properties" not in out and "additionalProperties" not in out:
            out["x-kubernetes-preserve-unknown-fields"] = True
        return out

    @staticmethod
    def _merge_siblings(target: JsonSchema, siblings: JsonSchema) -> JsonSchema:
        merged = dict(target)
        for key in ("description", "default", "x-kubernetes-int-or-string", "maxLength", "pattern"):
            if key in siblings and siblings[key] is not None:
                merged[key] = siblings[key]
        if "description" in merged:
            merged["description"] = merged["description"].replace("``", "`")
        for key, value in siblings.items():
            if key.startswith("x-kubernetes-"):
                merged[key] = value
        return merged


def structural_schema(model: type[ApiModel]) -> JsonSchema:
    """The openAPIV3Schema of a top-level kind."""
    raw = model.model_json_schema(by_alias=True, mode="validation")
    defs = raw.pop("$defs", {})
    converter = _Converter(defs, _model_classes())
    schema = converter.object_schema(raw, model)
    # Kubernetes owns the metadata schema; a CRD may only say it is an object.
    schema["properties"]["metadata"] = {"type": "object"}
    schema["required"] = [name for name in schema.get("required", []) if name != "metadata"]
    return schema


def build_crd(spec: CrdSpec) -> dict[str, Any]:
    """The CustomResourceDefinition of one kind."""
    model = spec.model
    version: dict[str, Any] = {
        "name": VERSION,
        "served": True,
        "storage": True,
        "schema": {"openAPIV3Schema": structural_schema(model)},
        "additionalPrinterColumns": [column.to_crd() for column in spec.columns],
    }
    if spec.status_subresource:
        version["subresources"] = {"status": {}}
    return {
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {
            "name": f"{model.plural}.{GROUP}",
            "labels": {"app.kubernetes.io/part-of": "lvs-operator", **spec.extra_labels},
        },
        "spec": {
            "group": GROUP,
            "scope": "Namespaced" if model.namespaced else "Cluster",
            "names": {
                "kind": model.kind_name,
                "listKind": f"{model.kind_name}List",
                "plural": model.plural,
                "singular": spec.singular,
                "shortNames": list(spec.short_names),
                "categories": list(spec.categories),
            },
            "versions": [version],
        },
    }


def crd_file_name(spec: CrdSpec) -> str:
    """``<plural>.lvs.io.yaml``."""
    return f"{spec.model.plural}.{GROUP}.yaml"


_HEADER = "# Generated by `python -m lvs_api.crdgen --out crds` from api/lvs_api/models. Do not edit.\n"


def render(spec: CrdSpec) -> str:
    """The YAML text of one CRD file."""
    body = yaml.safe_dump(build_crd(spec), sort_keys=False, width=1000, allow_unicode=True)
    return _HEADER + body


def render_all(specs: Iterable[CrdSpec] = CRDS) -> dict[str, str]:
    """File name -> YAML text for every CRD."""
    return {crd_file_name(spec): render(spec) for spec in specs}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Generate lvs.io CRDs from the pydantic models.")
    parser.add_argument("--out", default="crds", type=Path, help="output directory (default: crds)")
    parser.add_argument("--check", action="store_true", help="exit 1 if the files differ; write nothing")
    args = parser.parse_args(argv)
    out: Path = args.out
    drifted = []
    for name, text in render_all().items():
        path = out / name
        if args.check:
            if not path.exists() or path.read_text() != text:
                drifted.append(str(path))
            continue
        out.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    if drifted:
        print(
            "CRDs out of date (run: python -m lvs_api.crdgen --out crds):",
            *drifted,
            sep="\n  ",
            file=sys.stderr,
        )
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
