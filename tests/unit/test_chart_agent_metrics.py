"""The agent's metrics endpoint in the chart and in deploy/agent: flags the agent accepts, the port, the
liveness and readiness probes on it, and none of it when agent.metrics.port is 0."""

from __future__ import annotations

from typing import Any

import yaml
from lvs_agent.config import build_parser, load_config
from test_chart import DEPLOY_EQUIVALENT, REPO, container, expand_env, find, render

Manifest = dict[str, Any]


def agent_daemonset(values: dict[str, Any] | None = None) -> Manifest:
    return find(render(values), "DaemonSet")


def parsed_args(daemonset: Manifest) -> Any:
    args = expand_env(container(daemonset)["args"], {"NODE_NAME": "node-a", "POD_NAMESPACE": "lvs-system"})
    return build_parser().parse_args(args)


def test_default_serves_metrics_with_probes_on_the_named_port() -> None:
    daemonset = agent_daemonset()
    agent = container(daemonset)
    assert {"name": "metrics", "containerPort": 9478, "protocol": "TCP"} in agent["ports"]
    assert agent["livenessProbe"]["httpGet"] == {"path": "/healthz", "port": "metrics"}
    assert agent["readinessProbe"]["httpGet"] == {"path": "/readyz", "port": "metrics"}
    parsed = parsed_args(daemonset)
    assert (parsed.metrics_port, parsed.metrics_detail) == (9478, "services")
    assert "annotations" not in daemonset["spec"]["template"]["metadata"]


def test_metrics_values_follow_and_port_zero_turns_everything_off() -> None:
    metrics = {"port": 9999, "detail": "none", "podAnnotations": True}
    daemonset = agent_daemonset({"agent": {"metrics": metrics}})
    parsed = parsed_args(daemonset)
    assert (parsed.metrics_port, parsed.metrics_detail) == (9999, "none")
    annotations = daemonset["spec"]["template"]["metadata"]["annotations"]
    assert annotations == {"prometheus.io/scrape": "true", "prometheus.io/port": "9999"}

    off = container(agent_daemonset({"agent": {"metrics": {"port": 0, "podAnnotations": True}}}))
    assert [port["name"] for port in off["ports"]] == ["heartbeat"]
    assert "livenessProbe" not in off and "readinessProbe" not in off
    assert not any(arg.startswith("--metrics") for arg in off["args"])


def test_deploy_manifest_has_the_same_endpoint_as_the_chart() -> None:
    plain = next(
        doc for doc in yaml.safe_load_all((REPO / "deploy/agent/daemonset.yaml").read_text())
        if doc and doc["kind"] == "DaemonSet"
    )
    chart = find(render(DEPLOY_EQUIVALENT), "DaemonSet", "lvs-agent")
    for field in ("ports", "livenessProbe", "readinessProbe"):
        assert container(plain)[field] == container(chart)[field], field
    metric_flags = [arg for arg in container(plain)["args"] if arg.startswith("--metrics")]
    assert metric_flags == [arg for arg in container(chart)["args"] if arg.startswith("--metrics")]
    assert metric_flags == ["--metrics-port=9478", "--metrics-detail=services"]


def test_program_default_is_off() -> None:
    assert load_config(["--node", "node-a"]).metrics_port == 0
