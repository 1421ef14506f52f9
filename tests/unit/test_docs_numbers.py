"""Numbers the documentation quotes are the ones the code uses: the agent's and the controller's defaults,
the DirectorReport writer's rate limits, the retry backoff, and the defaults in docs/install.md's values
table against the chart's values.yaml."""

from __future__ import annotations

import inspect
import re
from pathlib import Path
from typing import Any

import pytest
import yaml
from lvs_agent import reconcile as agent_reconcile
from lvs_agent.config import build_parser as agent_parser
from lvs_agent.report import ReportWriter
from lvs_controller.__main__ import parse_args as controller_args

REPO = Path(__file__).resolve().parents[2]
OPERATIONS = (REPO / "docs" / "operations.md").read_text()
INSTALL = (REPO / "docs" / "install.md").read_text()
TROUBLESHOOTING = (REPO / "docs" / "troubleshooting.md").read_text()
VALUES = yaml.safe_load((REPO / "charts" / "lvs-operator" / "values.yaml").read_text())


@pytest.fixture
def agent_defaults(monkeypatch: pytest.MonkeyPatch) -> dict[str, Any]:
    """The agent's defaults with none of its LVS_AGENT_* environment overrides set."""
    import os

    for name in [name for name in os.environ if name.startswith("LVS_AGENT_")]:
        monkeypatch.delenv(name)
    return vars(agent_parser().parse_args([]))


def table_rows(text: str, header: str) -> list[list[str]]:
    """The cells of the rows of the markdown table whose header line starts with `header`."""
    start = text.index(header)
    block = text[start:].split("\n\n", 1)[0].splitlines()[2:]
    return [[cell.strip() for cell in row.strip().strip("|").split("|")] for row in block]


def test_the_operations_timer_table_quotes_the_agent_defaults(agent_defaults: dict[str, Any]) -> None:
    rows = {row[0]: row[1:] for row in table_rows(OPERATIONS, "| setting | default | effect |")}
    assert rows["`--heartbeat-interval`"][0] == f"{agent_defaults['heartbeat_interval']:g} s"
    assert rows["`--missed`"][0] == str(agent_defaults["missed"])
    assert rows["`--lease-duration`"][0] == f"{agent_defaults['lease_duration']:g} s"
    detection_ms = agent_defaults["heartbeat_interval"] * agent_defaults["missed"] * 1000
    assert f"({detection_ms:.0f} ms)" in rows["`--missed`"][1]


def test_operations_prose_quotes_the_agent_defaults(agent_defaults: dict[str, Any]) -> None:
    interval_ms = agent_defaults["heartbeat_interval"] * 1000
    assert f"`--heartbeat-interval` (default **{interval_ms:.0f} ms**)" in OPERATIONS
    assert f"on `--heartbeat-port` (default {agent_defaults['heartbeat_port']})" in OPERATIONS
    assert f"`--missed` (default **{agent_defaults['missed']}**)" in OPERATIONS
    assert f"`--lease-duration` (default {agent_defaults['lease_duration']:g} s)" in OPERATIONS
    assert f"dummy interface `{agent_defaults['vip_interface']}` (`--vip-interface`)" in OPERATIONS


def test_report_rate_limits_and_retry_backoff_are_as_documented() -> None:
    writer = inspect.signature(ReportWriter.__init__).parameters
    minimum, liveness = writer["min_interval"].default, writer["heartbeat_interval"].default
    assert f"at most one every {minimum:g} s" in OPERATIONS
    assert f"at least every {liveness:g} s" in OPERATIONS
    backoff = f"{agent_reconcile.RETRY_FIRST:g} s doubling to {agent_reconcile.RETRY_MAX:g} s"
    assert backoff in OPERATIONS
    assert backoff in TROUBLESHOOTING


def test_the_finalizer_timeout_is_as_documented() -> None:
    default = controller_args([])[1].finalizer_timeout
    assert VALUES["controller"]["finalizerTimeoutSeconds"] == default
    assert f"`finalizerTimeoutSeconds` ({default:g} s)" in TROUBLESHOOTING


def _leaf(path: str) -> Any:
    node: Any = VALUES
    for part in path.split("."):
        node = node[part]
    return node


def _names(cell: str) -> list[str]:
    names: list[str] = []
    for token in re.findall(r"`([^`]+)`", cell):
        expanded = re.fullmatch(r"(.*)\{(.*)\}", token)
        names += [expanded.group(1) + leaf for leaf in expanded.group(2).split(",")] if expanded else [token]
    return names


def test_the_install_guide_values_table_quotes_the_chart_defaults() -> None:
    """Each `a / b / c` default matches the value it stands for, where the value is a scalar."""
    compared = 0
    for row in table_rows(INSTALL, "| value | default | what |"):
        names, defaults = _names(row[0]), [part.strip() for part in row[1].split(" / ")]
        if len(names) != len(defaults):
            if "`" not in row[1]:
                continue  # one word for all ("—")
            assert len(names) == 1, f"{row[0]}: {len(names)} values but {len(defaults)} defaults"
            defaults = [row[1]]
        for name, quoted in zip(names, defaults, strict=True):
            value = _leaf(name)
            token = re.match(r"`([^`]*)`", quoted)
            if token is None or isinstance(value, dict | list):
                continue  # words ("appVersion", "off", "route lookup") or a structured default
            assert yaml.safe_load(token.group(1)) == value, (
                f"{name}: docs say {quoted}, values.yaml {value!r}"
            )
            compared += 1
    assert compared >= 15


def test_failover_details_are_as_documented(agent_defaults: dict[str, Any]) -> None:
    from lvs_agent.config import load_config
    from lvs_agent.failover.heartbeat import HeartbeatReceiver
    from lvs_agent.failover.machine import FailoverTiming
    from lvs_agent.failover.runner import ANNOUNCE_DELAYS

    assert ANNOUNCE_DELAYS == (0.0, 0.1, 1.0)
    assert OPERATIONS.count("immediately, after 100 ms and after 1 s") == 1
    assert f"next one {FailoverTiming().takeover_stagger * 1000:.0f} ms later" in OPERATIONS
    skew = inspect.signature(HeartbeatReceiver.__init__).parameters["max_skew"].default
    assert f"rejected beyond {skew:g} s of skew" in OPERATIONS
    timing = load_config([]).timing
    assert timing.renew_interval == agent_defaults["lease_duration"] / 5
    assert f"(at most `lease-duration / 5`, {timing.renew_interval:g} s by default)" in OPERATIONS


def test_metrics_defaults_are_as_documented(agent_defaults: dict[str, Any]) -> None:
    """operations.md "Metrics and probes": the flags' defaults, the port the manifests use, the counter
    read interval and the TLS session cache."""
    from lvs_agent.metrics import DEFAULT_PORT, StatsReader

    table = table_rows(OPERATIONS, "| flag (environment) | default | chart value |")
    defaults = {row[0].split(" ")[0].strip("`"): row[1] for row in table}
    assert defaults["--metrics-port"].startswith(f"`{agent_defaults['metrics_port']}`: off")
    assert f"use **{DEFAULT_PORT}**" in defaults["--metrics-port"]
    assert VALUES["agent"]["metrics"]["port"] == DEFAULT_PORT
    assert defaults["--metrics-address"].startswith(f"`{agent_defaults['metrics_address']}`")
    assert defaults["--metrics-detail"] == f"`{agent_defaults['metrics_detail']}`"
    assert VALUES["agent"]["metrics"]["detail"] == agent_defaults["metrics_detail"]
    assert f"(default `{str(VALUES['agent']['metrics']['podAnnotations']).lower()}`)" in OPERATIONS
    reader = inspect.signature(StatsReader.__init__).parameters
    assert reader["min_interval"].default == reader["wait"].default == 5.0
    assert "at most every 5 s" in OPERATIONS and "longer than 5 s" in OPERATIONS
    assert f"`LVS_AGENT_TLS_SESSIONS`, default {agent_defaults['tls_sessions']:,})" in OPERATIONS


def test_handover_and_label_following_are_as_documented() -> None:
    """The graceful stop's bound and the pod's grace period (operations.md), the Node re-read interval
    (troubleshooting.md, migration.md)."""
    from lvs_agent.failover.runner import HANDOVER_TIMEOUT
    from lvs_agent.nodewatch import DEFAULT_INTERVAL

    daemonset = yaml.safe_load((REPO / "deploy" / "agent" / "daemonset.yaml").read_text())
    grace = daemonset["spec"]["template"]["spec"]["terminationGracePeriodSeconds"]
    assert grace > HANDOVER_TIMEOUT
    assert f"bounded by {HANDOVER_TIMEOUT:g} s" in OPERATIONS
    assert f"`terminationGracePeriodSeconds` ({grace} s)" in OPERATIONS
    assert f"released within those {HANDOVER_TIMEOUT:g} s" in OPERATIONS
    assert f"re-reads its Node every {DEFAULT_INTERVAL:g} s" in TROUBLESHOOTING
    migration = (REPO / "docs" / "migration.md").read_text()
    assert f"re-read their Node every {DEFAULT_INTERVAL:g} s" in migration
