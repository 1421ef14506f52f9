"""docs/operations.md's metrics table lists every metric the agent exports, with its type, labels and the
lowest --metrics-detail at which it appears, and nothing the agent no longer exports.

The metrics are not read from the source: an AgentMetrics with every source wired (a reconcile pass over
the fake kernel, IPVS counters, health counts, VIP-group roles) is rendered at each detail level and the
exposition text parsed, so a metric added anywhere (a new family, a new IPVS scope) fails this test until
it is documented.
"""

from __future__ import annotations

import dataclasses
import errno
import re
from pathlib import Path

import pytest
from lvs_agent.health.engine import HealthCounts
from lvs_agent.metrics import DETAILS, AgentMetrics, InstrumentedKernel, MetricSources
from lvs_agent.netlink import FakeIpvsKernel
from lvs_agent.netlink.codec import Counters
from lvs_agent.ownership import OwnershipRecord
from lvs_agent.reconcile import Reconciler
from lvs_api.compiler import compile_resolved
from lvs_api.ipvs import DestKey, Family, Protocol, ServiceKey
from lvs_api.models import ResolvedService
from lvs_api.planner import plan
from prometheus_client.parser import text_string_to_metric_families

REPO = Path(__file__).resolve().parents[2]
OPERATIONS = REPO / "docs" / "operations.md"
TABLE_HEADER = "| metric | type | labels | detail | what |"


class Exported:
    """One metric as scraped: its name as queried (counters with `_total`), type and label names."""

    def __init__(self, name: str, kind: str, labels: frozenset[str]) -> None:
        self.name, self.kind, self.labels = name, kind, labels


def resolved_service() -> ResolvedService:
    return ResolvedService.model_validate({
        "metadata": {"name": "web", "namespace": "shop"},
        "spec": {
            "acceptedGeneration": 1, "virtualServiceUid": "uid-web",
            "service": {"vip": "203.0.113.10", "ports": [{"port": 80}], "poolRef": {"name": "pool"}},
            "members": [{"address": "198.51.100.10"}, {"address": "198.51.100.11"}],
        },
    })  # fmt: skip


def exported(detail: str, tmp_path: Path) -> dict[str, Exported]:
    """Every metric an agent with every source wired exports at ``detail``."""
    metrics = AgentMetrics(detail)
    kernel = FakeIpvsKernel()
    reconciler = Reconciler(
        node_labels={}, kernel=InstrumentedKernel(kernel, metrics),
        record=OwnershipRecord(tmp_path / f"{detail}.json"), compile_service=compile_resolved, plan=plan,
        stats_interval=0.0,
    )  # fmt: skip
    service = ServiceKey(Family.INET, Protocol.TCP, "203.0.113.10", 80)
    kernel.counters[(service, None)] = Counters(conns=3, inpkts=30, outpkts=20, inbytes=3000, outbytes=2000)
    kernel.counters[(service, DestKey(Family.INET, "198.51.100.10", 80))] = Counters(
        conns=3, inpkts=30, outpkts=20, inbytes=3000, outbytes=2000)
    metrics.pass_started()
    metrics.pass_finished(reconciler.reconcile_once({"shop/web": resolved_service()}))
    # counters whose labels only appear once something happened
    metrics.netlink_errors.labels("add-dest", errno.errorcode[errno.ENOMEM]).inc()
    metrics.role_changes.labels("active").inc()
    health = HealthCounts(
        checks={"TCP": 4}, failures={"TCP": 1}, transitions={"unhealthy": 1},
        members={("TCP", "healthy"): 1, ("TCP", "unhealthy"): 1}, subscriptions=2, jobs=2, in_flight=0,
        events_suppressed=0,
    )  # fmt: skip
    metrics.sources = MetricSources(
        health=lambda: health, roles=lambda: {"web": "active"}, activations=lambda: {"web": 1},
        last_pass=lambda: reconciler.last, ipvs_stats=lambda: reconciler.stats,
    )  # fmt: skip
    metrics.take_snapshot()
    found: dict[str, Exported] = {}
    for family in text_string_to_metric_families(metrics.render().decode()):
        if family.name.endswith("_created"):
            continue  # prometheus_client's creation time of a counter or histogram: said once in the text
        samples = family.samples
        name = family.name + "_total" if family.type == "counter" else family.name
        labels = frozenset(label for sample in samples for label in sample.labels if label != "le")
        found[name] = Exported(name, family.type, labels)
    return found


def exported_by_level(tmp_path: Path) -> dict[str, tuple[Exported, str]]:
    """Each metric with the lowest detail level that exports it."""
    first: dict[str, tuple[Exported, str]] = {}
    for detail in DETAILS:  # none, services, destinations: each adds to the one before
        for name, metric in exported(detail, tmp_path).items():
            first.setdefault(name, (metric, detail))
    return first


def documented() -> dict[str, tuple[str, frozenset[str], str]]:
    """name -> (type, labels, detail) from the rows of the metrics table."""
    text = OPERATIONS.read_text()
    start = text.index(TABLE_HEADER)
    rows = text[start:].split("\n\n", 1)[0].splitlines()[2:]
    table: dict[str, tuple[str, frozenset[str], str]] = {}
    for row in rows:
        cells = [cell.strip() for cell in row.strip().strip("|").split("|")]
        name = cells[0].strip("`")
        labels = frozenset(re.findall(r"`([a-z_]+)`", cells[2]))
        table[name] = (cells[1], labels, cells[3].strip("`"))
    return table


@pytest.fixture(scope="module")
def by_level(tmp_path_factory: pytest.TempPathFactory) -> dict[str, tuple[Exported, str]]:
    return exported_by_level(tmp_path_factory.mktemp("metrics"))


def test_every_metric_source_is_wired_here() -> None:
    """An unset source exports nothing, so a source added to MetricSources must be set in exported()
    (before_scrape only refreshes what the others read)."""
    wired = {"health", "roles", "activations", "last_pass", "ipvs_stats"}
    assert {field.name for field in dataclasses.fields(MetricSources)} - {"before_scrape"} == wired


def test_the_exporter_is_seen_whole(by_level: dict[str, tuple[Exported, str]]) -> None:
    """Guards the harness: families of every source and every detail level are found."""
    assert {"lvs_agent_reconcile_passes_total", "lvs_agent_health_checks_total", "lvs_agent_vip_groups",
            "lvs_agent_ipvs_connections_total"} <= by_level.keys()  # fmt: skip
    assert by_level["lvs_agent_ipvs_service_connections_total"][1] == "services"
    assert by_level["lvs_agent_ipvs_destination_connections_total"][1] == "destinations"
    assert by_level["lvs_agent_reconcile_pass_seconds"][0].kind == "histogram"


def test_every_exported_metric_is_documented(by_level: dict[str, tuple[Exported, str]]) -> None:
    missing = sorted(set(by_level) - set(documented()))
    assert not missing, f"the agent exports metrics docs/operations.md does not list: {missing}"


def test_every_documented_metric_is_exported(by_level: dict[str, tuple[Exported, str]]) -> None:
    stale = sorted(set(documented()) - set(by_level))
    assert not stale, f"docs/operations.md lists metrics the agent no longer exports: {stale}"


def test_type_labels_and_detail_level_are_as_documented(by_level: dict[str, tuple[Exported, str]]) -> None:
    for name, (kind, labels, detail) in documented().items():
        if name not in by_level:
            continue  # reported by the test above
        metric, level = by_level[name]
        assert (kind, labels, detail) == (metric.kind, metric.labels, level), name
