"""The agent's /metrics, /healthz and /readyz, scraped over real HTTP on loopback and parsed with
prometheus_client's own parser: reconcile passes over the fake kernel, IPVS counters per service and per
destination, netlink errors by errno name, health counts from a running engine, VIP-group roles,
DirectorReport write failures, and bounded cardinality."""

from __future__ import annotations

import asyncio
import errno
import threading
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from lvs_agent.health.engine import HealthEngine
from lvs_agent.health.probe import ProbeResult
from lvs_agent.health.spec import CheckSpec, ProbeSpec, TcpProbe, Timing
from lvs_agent.metrics import (
    AgentMetrics,
    CountingReportSink,
    InstrumentedKernel,
    MetricSources,
    MetricsServer,
    StatsReader,
)
from lvs_agent.netlink import FakeIpvsKernel
from lvs_agent.netlink.codec import Counters, DestStats
from lvs_agent.netlink.kernel import IpvsError, ServiceStats, StatsTable
from lvs_agent.ownership import OwnershipRecord
from lvs_agent.reconcile import Reconciler
from lvs_api.compiler import compile_resolved
from lvs_api.ipvs import DestKey, Family, OpKind, Protocol, ServiceKey
from lvs_api.models import ResolvedService
from lvs_api.planner import plan
from prometheus_client.parser import text_string_to_metric_families

pytestmark = pytest.mark.timeout(120)

LOOPBACK = "127.0.0.1"
Samples = dict[tuple[str, tuple[tuple[str, str], ...]], float]


def resolved(index: int, members: int = 2) -> ResolvedService:
    return ResolvedService.model_validate({
        "metadata": {"name": f"web{index}", "namespace": "shop"},
        "spec": {
            "acceptedGeneration": 1, "virtualServiceUid": f"uid-{index}",
            "service": {"vip": f"203.0.113.{index + 1}", "ports": [{"port": 80}],
                        "poolRef": {"name": "pool"}},
            "members": [{"address": f"198.51.100.{member + 10}"} for member in range(members)],
        },
    })


def desired(count: int, members: int = 2) -> dict[str, ResolvedService]:
    return {f"shop/web{index}": resolved(index, members) for index in range(count)}


def vip_key(index: int) -> ServiceKey:
    return ServiceKey(Family.INET, Protocol.TCP, f"203.0.113.{index + 1}", 80)


class ConnectedFakeKernel(FakeIpvsKernel):
    """The fake kernel, with connection gauges per destination (the fake reports 0 active, 0 inactive)."""

    def __init__(self) -> None:
        super().__init__()
        self.connections: dict[tuple[ServiceKey, DestKey], tuple[int, int]] = {}

    def dump_stats(self) -> StatsTable:
        table = super().dump_stats()
        return {
            key: ServiceStats(entry.counters, {
                dest: DestStats(stats.counters, *self.connections.get((key, dest), (0, 0)), 0)
                for dest, stats in entry.dests.items()
            })
            for key, entry in table.items()
        }


async def get(port: int, path: str) -> tuple[int, str, str]:
    async with aiohttp.ClientSession() as session, session.get(f"http://{LOOPBACK}:{port}{path}") as reply:
        return reply.status, reply.headers.get("Content-Type", ""), await reply.text()


async def scrape(port: int) -> Samples:
    status, content_type, text = await get(port, "/metrics")
    assert status == 200
    assert content_type.startswith("text/plain; version=")  # the text format, as prometheus_client serves it
    samples: Samples = {}
    for family in text_string_to_metric_families(text):  # raises on a malformed exposition
        for sample in family.samples:
            samples[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return samples


def value(samples: Samples, name: str, **labels: str) -> float:
    return samples[(name, tuple(sorted(labels.items())))]


def names(samples: Samples) -> set[str]:
    return {name for name, _ in samples}


@pytest.fixture
async def serve() -> AsyncIterator[Callable[..., Any]]:
    servers: list[MetricsServer] = []

    async def start(metrics: AgentMetrics, readiness: Callable[[], str | None] = lambda: None) -> int:
        server = MetricsServer(metrics, readiness, address=LOOPBACK, port=0)
        await server.start()
        servers.append(server)
        assert server.port
        return server.port

    yield start
    for server in servers:
        await server.close()


def reconciler_for(kernel: FakeIpvsKernel, metrics: AgentMetrics, tmp_path: Path,
                   stats_interval: float | None = 0.0) -> Reconciler:
    return Reconciler(node_labels={}, kernel=InstrumentedKernel(kernel, metrics),
                      record=OwnershipRecord(tmp_path / "owned.json"), compile_service=compile_resolved,
                      plan=plan, stats_interval=stats_interval)


async def test_probes_answer_and_readiness_follows_the_condition(serve: Callable[..., Any]) -> None:
    state = {"reason": "first reconcile pass not finished"}
    port = await serve(AgentMetrics(), lambda: state["reason"])
    assert (await get(port, "/healthz"))[0] == 200
    status, _, text = await get(port, "/readyz")
    assert (status, text) == (503, "not ready: first reconcile pass not finished\n")
    state["reason"] = None  # type: ignore[assignment]
    assert (await get(port, "/readyz"))[:1] == (200,)
    assert (await get(port, "/nothing"))[0] == 404


async def test_reconcile_ipvs_counters_and_errno_names(serve: Callable[..., Any], tmp_path: Path) -> None:
    kernel = ConnectedFakeKernel()
    metrics = AgentMetrics("destinations")
    reconciler = reconciler_for(kernel, metrics, tmp_path)
    metrics.sources = MetricSources(last_pass=lambda: reconciler.last, ipvs_stats=lambda: reconciler.stats)
    port = await serve(metrics)
    web0, member = vip_key(0), DestKey(Family.INET, "198.51.100.10", 80)
    # the second service's first destination is refused: EEXIST would be odd, ENOMEM is what a full host says
    kernel.inject_failure(OpKind.ADD_DEST, vip_key(1), DestKey(Family.INET, "198.51.100.10", 80),
                          code=errno.ENOMEM)
    metrics.pass_started()
    result = reconciler.reconcile_once(desired(2))
    metrics.pass_finished(result)
    assert result.failed == 1

    kernel.counters[(web0, None)] = Counters(conns=7, inpkts=70, outpkts=60, inbytes=7000, outbytes=6000)
    kernel.counters[(web0, member)] = Counters(conns=4, inpkts=40, outpkts=30, inbytes=4000, outbytes=3000)
    kernel.connections[(web0, member)] = (3, 1)
    metrics.pass_started()
    result = reconciler.reconcile_once(desired(2))  # retries the refused destination, reads counters again
    metrics.pass_finished(result)
    assert result.ok

    samples = await scrape(port)
    assert value(samples, "lvs_agent_reconcile_passes_total", result="error") == 1
    assert value(samples, "lvs_agent_reconcile_passes_total", result="ok") == 1
    assert value(samples, "lvs_agent_reconcile_ops_total", op="add-service") == 2
    assert value(samples, "lvs_agent_reconcile_ops_total", op="add-dest") == 5  # 4, then the retry
    assert value(samples, "lvs_agent_netlink_errors_total", request="add-dest", errno="ENOMEM") == 1
    assert value(samples, "lvs_agent_reconcile_pass_seconds_count") == 2
    assert value(samples, "lvs_agent_reconcile_last_pass_seconds") > 0
    assert value(samples, "lvs_agent_reconcile_last_success_timestamp_seconds") >= value(
        samples, "lvs_agent_reconcile_last_pass_timestamp_seconds") - 1
    assert value(samples, "lvs_agent_ipvs_stats_timestamp_seconds") > 0
    assert value(samples, "lvs_agent_ipvs_owned_services") == 2
    assert value(samples, "lvs_agent_ipvs_owned_destinations") == 4
    assert value(samples, "lvs_agent_virtualservices", reason="Programmed") == 2
    assert value(samples, "lvs_agent_virtualservice_programmed", virtualservice="shop/web1") == 1

    service = {"virtualservice": "shop/web0", "service": "TCP 203.0.113.1:80"}
    assert value(samples, "lvs_agent_ipvs_service_connections_total", **service) == 7
    assert value(samples, "lvs_agent_ipvs_service_packets_total", direction="in", **service) == 70
    assert value(samples, "lvs_agent_ipvs_service_bytes_total", direction="out", **service) == 6000
    assert value(samples, "lvs_agent_ipvs_service_active_connections", **service) == 3
    assert value(samples, "lvs_agent_ipvs_service_inactive_connections", **service) == 1
    dest = {**service, "destination": "198.51.100.10:80"}
    assert value(samples, "lvs_agent_ipvs_destination_connections_total", **dest) == 4
    assert value(samples, "lvs_agent_ipvs_destination_bytes_total", direction="in", **dest) == 4000
    assert value(samples, "lvs_agent_ipvs_destination_active_connections", **dest) == 3
    assert value(samples, "lvs_agent_ipvs_connections_total") == 7
    assert value(samples, "lvs_agent_ipvs_active_connections") == 3


async def test_dump_errors_are_counted_by_errno_name(serve: Callable[..., Any], tmp_path: Path) -> None:
    class Unreadable(FakeIpvsKernel):
        def dump(self) -> Any:
            raise IpvsError(errno.ENOENT, "IPVS family missing (ip_vs not loaded)")

    metrics = AgentMetrics()
    reconciler = reconciler_for(Unreadable(), metrics, tmp_path)
    port = await serve(metrics)
    result = reconciler.reconcile_once(desired(1))
    metrics.pass_finished(result)
    samples = await scrape(port)
    assert value(samples, "lvs_agent_netlink_errors_total", request="dump", errno="ENOENT") == 1
    assert value(samples, "lvs_agent_reconcile_passes_total", result="error") == 1


async def series_count(serve: Callable[..., Any], tmp_path: Path, detail: str, services: int) -> int:
    metrics = AgentMetrics(detail)
    reconciler = reconciler_for(FakeIpvsKernel(), metrics, tmp_path / f"{detail}-{services}")
    metrics.sources = MetricSources(last_pass=lambda: reconciler.last, ipvs_stats=lambda: reconciler.stats)
    metrics.pass_finished(reconciler.reconcile_once(desired(services, members=3)))
    samples = await scrape(await serve(metrics))
    per_service = ("lvs_agent_ipvs_service_", "lvs_agent_virtualservice_", "lvs_agent_ipvs_destination_")
    if detail == "none":
        assert not any(name.startswith(per_service) for name in names(samples))
    if detail == "services":
        assert not any(name.startswith(per_service[2]) for name in names(samples))
        assert value(samples, "lvs_agent_ipvs_service_connections_total", virtualservice="shop/web0",
                     service="TCP 203.0.113.1:80") == 0
    return len(samples)


async def test_series_per_detail_level(serve: Callable[..., Any], tmp_path: Path) -> None:
    small, large = 1, 40
    none = [await series_count(serve, tmp_path, "none", size) for size in (small, large)]
    assert none[0] == none[1]  # independent of the table's size
    for size in (small, large):
        services = await series_count(serve, tmp_path, "services", size)
        destinations = await series_count(serve, tmp_path, "destinations", size)
        # per IPVS service 7 samples (5 families; packets and bytes in two directions), 3 per
        # VirtualService; per destination 7 more
        assert services - none[0] == size * (7 + 3)
        assert destinations - services == size * 3 * 7


class Prober:
    """Up or down by address, answered at once."""

    def __init__(self) -> None:
        self.down: set[str] = set()

    async def probe(self, address: str, port: int, spec: ProbeSpec, timeout: float) -> ProbeResult:
        return ProbeResult(address not in self.down, "scripted")


async def until(condition: Callable[[], bool], deadline: float = 20.0) -> None:
    loop = asyncio.get_running_loop()
    end = loop.time() + deadline
    while not condition():
        assert loop.time() < end, "condition not reached in time"
        await asyncio.sleep(0.01)


async def test_health_roles_and_report_writes(serve: Callable[..., Any]) -> None:
    prober = Prober()
    prober.down.add("198.51.100.12")
    engine = HealthEngine(prober, default_active=True, resolution=0.001)  # type: ignore[arg-type]
    check = CheckSpec(TcpProbe(), Timing(interval=0.02, timeout=0.5, rise=1, fall=1, jitter=0))
    for address in ("198.51.100.11", "198.51.100.12"):
        engine.subscribe("shop/web", address, address, 80, check)
    roles = {"vip-a": "active", "vip-b": "standby"}
    metrics = AgentMetrics(sources=MetricSources(health=engine.counts, roles=lambda: roles,
                                                 activations=lambda: {"vip-a": 2}))
    metrics.role_changes.labels("active").inc()

    class FailingSink:
        fail = True

        async def write(self, node: str, status: dict[str, Any]) -> None:
            if self.fail:
                raise OSError(errno.ECONNREFUSED, "API server away")

    inner = FailingSink()
    sink = CountingReportSink(inner, metrics)
    with pytest.raises(OSError):
        await sink.write("node-a", {})
    inner.fail = False
    await sink.write("node-a", {})

    port = await serve(metrics)
    async with engine:
        await until(lambda: engine.health("shop/web", "198.51.100.12") is False
                    and engine.health("shop/web", "198.51.100.11") is True)
        samples = await scrape(port)
    assert value(samples, "lvs_agent_health_members", check="TCP", state="healthy") == 1
    assert value(samples, "lvs_agent_health_members", check="TCP", state="unhealthy") == 1
    assert value(samples, "lvs_agent_health_checks_total", check="TCP") >= 2
    assert value(samples, "lvs_agent_health_check_failures_total", check="TCP") >= 1
    assert value(samples, "lvs_agent_health_transitions_total", state="unhealthy") == 1
    assert value(samples, "lvs_agent_health_probe_jobs") == 2
    assert value(samples, "lvs_agent_vip_group_role", group="vip-a", role="active") == 1
    assert value(samples, "lvs_agent_vip_group_role", group="vip-b", role="standby") == 1
    assert value(samples, "lvs_agent_vip_groups", role="active") == 1
    assert value(samples, "lvs_agent_vip_group_activations_total", group="vip-a") == 2
    assert value(samples, "lvs_agent_vip_group_role_changes_total", role="active") == 1
    assert value(samples, "lvs_agent_director_report_writes_total", result="error") == 1
    assert value(samples, "lvs_agent_director_report_writes_total", result="ok") == 1


async def test_a_port_in_use_is_an_error(serve: Callable[..., Any]) -> None:
    port = await serve(AgentMetrics())
    second = MetricsServer(AgentMetrics(), lambda: None, address=LOOPBACK, port=port)
    with pytest.raises(OSError):  # the agent exits with the reason rather than run without probes
        await second.start()


class CountingStatsKernel(ConnectedFakeKernel):
    """Counts stats dumps; ``gate`` (when set) holds each dump until the test opens it."""

    def __init__(self) -> None:
        super().__init__()
        self.dumps = 0
        self.gate: threading.Event | None = None
        self.fail_with: int | None = None

    def dump_stats(self) -> StatsTable:
        self.dumps += 1
        if self.gate is not None:
            self.gate.wait(30)
        if self.fail_with is not None:
            raise IpvsError(self.fail_with, "dump refused")
        return super().dump_stats()


async def test_stats_reader_reads_when_scraped_at_most_every_min_interval(
    serve: Callable[..., Any], tmp_path: Path
) -> None:
    kernel = CountingStatsKernel()
    metrics = AgentMetrics()
    reconciler = reconciler_for(kernel, metrics, tmp_path, stats_interval=None)  # reads no counters itself
    metrics.pass_finished(reconciler.reconcile_once(desired(1)))
    reader = StatsReader(lambda: kernel, metrics, min_interval=3600.0, wait=5.0)
    metrics.sources = MetricSources(last_pass=lambda: reconciler.last, ipvs_stats=lambda: reader.stats,
                                    before_scrape=reader.refresh)
    port = await serve(metrics)
    service = {"virtualservice": "shop/web0", "service": "TCP 203.0.113.1:80"}
    kernel.counters[(vip_key(0), None)] = Counters(conns=5)
    samples = await scrape(port)
    assert value(samples, "lvs_agent_ipvs_service_connections_total", **service) == 5
    assert value(samples, "lvs_agent_ipvs_stats_timestamp_seconds") > 0
    kernel.counters[(vip_key(0), None)] = Counters(conns=9)
    samples = await scrape(port)  # within min_interval: no second dump, the same counters
    assert kernel.dumps == 1
    assert value(samples, "lvs_agent_ipvs_service_connections_total", **service) == 5
    reader.min_interval = 0.0
    samples = await scrape(port)
    assert kernel.dumps == 2
    assert value(samples, "lvs_agent_ipvs_service_connections_total", **service) == 9

    kernel.fail_with = errno.EPERM
    samples = await scrape(port)  # a refused dump: counted, and the last counters stay
    assert value(samples, "lvs_agent_netlink_errors_total", request="dump-stats", errno="EPERM") == 1
    assert value(samples, "lvs_agent_ipvs_service_connections_total", **service) == 9
    reader.close()


async def test_a_slow_stats_dump_does_not_hold_the_scrape(serve: Callable[..., Any], tmp_path: Path) -> None:
    kernel = CountingStatsKernel()
    metrics = AgentMetrics()
    reconciler = reconciler_for(kernel, metrics, tmp_path)
    metrics.pass_finished(reconciler.reconcile_once(desired(1)))
    reader = StatsReader(lambda: kernel, metrics, min_interval=0.0, wait=0.2)
    metrics.sources = MetricSources(last_pass=lambda: reconciler.last, ipvs_stats=lambda: reader.stats,
                                    before_scrape=reader.refresh)
    port = await serve(metrics)
    kernel.gate = threading.Event()
    samples = await scrape(port)  # answered after `wait`, without counters yet
    assert "lvs_agent_ipvs_connections_total" not in names(samples)
    kernel.counters[(vip_key(0), None)] = Counters(conns=3)
    kernel.gate.set()
    deadline = asyncio.get_running_loop().time() + 20
    while "lvs_agent_ipvs_connections_total" not in names(samples := await scrape(port)):
        assert asyncio.get_running_loop().time() < deadline
        await asyncio.sleep(0.05)
    assert value(samples, "lvs_agent_ipvs_connections_total") == 3
    assert kernel.dumps >= 1
    reader.close()
