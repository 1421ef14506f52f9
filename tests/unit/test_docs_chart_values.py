"""Every value values.yaml documents is used: changing it (to a value its schema accepts) changes what the
chart renders, templates or NOTES. A value the templates ignore is a setting users would change in vain.

Some values only matter together with another (a sync id needs a sync interface, a heartbeat secret needs
peers); CONTEXT gives the value each of those needs around it, in the baseline render as well.
"""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import helm_python as helm
import pytest
import yaml

REPO = Path(__file__).resolve().parents[2]
CHART = REPO / "charts" / "lvs-operator"
DEFAULTS = yaml.safe_load((CHART / "values.yaml").read_text())
SCHEMA = json.loads((CHART / "values.schema.json").read_text())

# Values that only take effect next to another value.
CONTEXT: dict[str, dict[str, Any]] = {
    "agent.connectionSync.syncId": {"agent": {"connectionSync": {"interface": "eth1"}}},
    "agent.heartbeat.peers": {"agent": {"heartbeat": {"existingSecret": "hb"}}},
    "agent.heartbeat.existingSecret": {
        "agent": {"heartbeat": {"peers": ["node-b=192.0.2.2"], "secret": "s"}}
    },
    "agent.heartbeat.secret": {
        "agent": {"heartbeat": {"peers": ["node-b=192.0.2.2"], "existingSecret": "hb"}}
    },
    "controller.leaderElection.enabled": {"controller": {"replicas": 1}},
    "controller.serviceAccount.name": {"controller": {"serviceAccount": {"create": True}}},
    "agent.serviceAccount.name": {"agent": {"serviceAccount": {"create": True}}},
}
# Values whose generic replacement the schema refuses, or that need a particular shape.
CANDIDATES: dict[str, list[Any]] = {
    "image.digest": ["sha256:" + "ab" * 32],
    "image.pullPolicy": ["Always"],
    "logLevel": ["DEBUG"],
    "controller.logLevel": ["DEBUG"],
    "agent.logLevel": ["DEBUG"],
    "controller.logFormat": ["text"],
    "agent.heartbeat.peers": [["node-b=192.0.2.2"]],
    "agent.stateHostPath": ["/var/lib/lvs-agent"],
    "agent.updateStrategy": [{"type": "OnDelete"}],
    "agent.directorNodeSelector": [{"node-role.example/lb": "yes"}],
    "agent.tolerations": [[{"key": "example.org/lb", "operator": "Exists"}]],
    "controller.tolerations": [[{"key": "example.org/ctl", "operator": "Exists"}]],
    "imagePullSecrets": [[{"name": "regcred"}]],
    "controller.affinity": [{"nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": {
        "nodeSelectorTerms": [{"matchExpressions": [{"key": "a", "operator": "Exists"}]}]}}}],
}  # fmt: skip
# Maps whose every entry is a setting of its own (each checked as a leaf); others are replaced whole.
WHOLE = {"controller.resources", "agent.resources", "agent.updateStrategy", "agent.directorNodeSelector"}


def leaves(values: dict[str, Any], prefix: str = "") -> list[str]:
    found: list[str] = []
    for key, value in values.items():
        path = f"{prefix}.{key}" if prefix else key
        if isinstance(value, dict) and value and path not in WHOLE:
            found += leaves(value, path)
        else:
            found.append(path)
    return found


def nested(path: str, value: Any) -> dict[str, Any]:
    result: Any = value
    for part in reversed(path.split(".")):
        result = {part: result}
    return dict(result)


def merged(*layers: dict[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for layer in layers:
        stack = [(out, layer)]
        while stack:
            into, source = stack.pop()
            for key, value in source.items():
                if isinstance(value, dict) and isinstance(into.get(key), dict):
                    stack.append((into[key], value))
                else:
                    into[key] = copy.deepcopy(value)
    return out


def default_of(path: str) -> Any:
    node: Any = DEFAULTS
    for part in path.split("."):
        node = node[part]
    return node


def schema_of(path: str) -> dict[str, Any]:
    node: dict[str, Any] = SCHEMA
    for part in path.split("."):
        node = node.get("properties", {}).get(part, {})
    return node


def generic_candidates(path: str, default: Any) -> list[Any]:
    if "enum" in schema_of(path):
        return list(schema_of(path)["enum"])
    if isinstance(default, bool):
        return [not default]
    if isinstance(default, int):
        return [default + 1, default * 2, max(default - 1, 0)]
    if isinstance(default, float):
        return [default * 2, default / 2]
    if isinstance(default, str):
        return ["alt-value", "lvs1", "eth9", "DEBUG", "example.org/other"]
    if isinstance(default, list):
        return [[{"name": "example"}], ["example"]]
    if isinstance(default, dict):
        return [{"example.org/key": "value"}, {"requests": {"cpu": "250m"}}]
    return []


def render(values: dict[str, Any]) -> str:
    with helm.Chart.load(CHART) as chart:
        chart.validate_schema(values)
        rendered = chart.render(values, name="lvs", namespace="lvs-system", is_install=True)
    return "\n".join(f"# {path}\n{text}" for path, text in sorted(rendered.items()))


def test_every_documented_value_is_reached() -> None:
    """Guard for the parametrisation below: it covers every key of values.yaml (new keys included)."""
    paths = leaves(DEFAULTS)
    assert len(paths) > 40
    assert {"agent.heartbeat.port", "controller.metrics.port", "image.digest", "commonLabels"} <= set(paths)


@pytest.mark.parametrize("path", leaves(DEFAULTS))
def test_changing_the_value_changes_the_render(path: str) -> None:
    context = CONTEXT.get(path, {})
    baseline = render(context)
    default = default_of(path)
    tried: list[str] = []
    for candidate in CANDIDATES.get(path) or generic_candidates(path, default):
        if candidate == default:
            continue
        try:
            changed = render(merged(context, nested(path, candidate)))
        except Exception as error:  # the schema or a template refused this candidate: try the next
            tried.append(f"{candidate!r}: {str(error).splitlines()[0][:160]}")
            continue
        assert changed != baseline, f"{path}: setting it to {candidate!r} changes nothing the chart renders"
        return
    pytest.fail(f"{path}: no accepted replacement value; tried {tried}")
