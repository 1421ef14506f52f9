"""Prometheus metrics and the probe endpoints of the node agent.

One small HTTP server on the agent's event loop (``--metrics-port``; 0, the program's default, turns it
off; deploy/ and the chart use 9478 on the host network):

- ``/metrics``: the Prometheus text format, built with prometheus_client (the library the controller uses).
  Figures owned by other parts (health engine, failover runner, reconciler, IPVS counters) are read when
  scraped: a snapshot is taken on the event loop (cheap: it copies counters and takes references to the
  last pass and the last counter dump, which are replaced, never mutated), then the text is rendered on a
  worker thread so that a large table never holds up heartbeats.
- ``/healthz``: 200 whenever the event loop answers. Heartbeats, failover and health checks all run on
  it: a wedged loop fails the liveness probe by not answering in time.
- ``/readyz``: 200 once the desired-state source has synced and the first reconcile pass has finished, else
  503 with the reason. A rolling update of the DaemonSet then waits until the new agent has programmed
  the kernel before it takes the next director down.

Label cardinality is bounded by ``--metrics-detail``:

==============  ===============================================================================
``none``        fixed-size series only: totals over every IPVS service of ours, counts by check kind,
                state, VIP-group role, op kind and errno name. Independent of the table's size.
``services``    (default) adds 7 series per IPVS service of ours (labels ``virtualservice``,
                ``service``), 3 per VirtualService and 2 per VIP group: a 10,000-service table gives
                about 100,000 series.
``destinations`` adds 7 series per destination (label ``destination`` too): with 10 members per
                service, 700,000 series at 10,000 services. For small tables or debugging.
==============  ===============================================================================

Health is never labelled per member (100,000 members would be 100,000 series): members are counted by
check kind and state; a VirtualService's healthy members come with ``services``.

IPVS counters come from a :class:`StatsReader` on a netlink socket and thread of its own, read when
scraped and at most every ``min_interval`` seconds (5), so that a table of 10,000 services is dumped only
as often as someone looks, and never by the reconcile thread; without one, the counters the reconciler
last read for the DirectorReport. ``lvs_agent_ipvs_stats_timestamp_seconds`` says when they were read.
The kernel itself folds its per-CPU counters into what it reports every 2 s.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import errno
import logging
import time
from collections.abc import Awaitable, Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal, NamedTuple

from aiohttp import web
from lvs_api.ipvs import Op, Table
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.exposition import CONTENT_TYPE_LATEST, generate_latest

from lvs_agent.health.engine import HealthCounts
from lvs_agent.netlink.kernel import ApplyResult, IpvsError, IpvsKernel, StatsTable
from lvs_agent.reconcile import PassResult
from lvs_agent.report import ReportSink

logger = logging.getLogger("lvs_agent.metrics")

Detail = Literal["none", "services", "destinations"]
DETAILS: tuple[Detail, ...] = ("none", "services", "destinations")
DEFAULT_PORT = 9478  # what deploy/ and the chart use; the program itself defaults to off


def errno_name(code: int | None) -> str:
    return errno.errorcode.get(code or 0, str(code or 0))


@dataclass
class MetricSources:
    """What a scrape reads; each is called on the event loop (unset: that family is not exported)."""

    health: Callable[[], HealthCounts] | None = None
    roles: Callable[[], Mapping[str, str]] | None = None  # VIP group -> role ("active", "standby")
    activations: Callable[[], Mapping[str, int]] | None = None  # VIP group -> times it became active here
    last_pass: Callable[[], PassResult | None] | None = None
    ipvs_stats: Callable[[], StatsTable | None] | None = None
    before_scrape: Callable[[], Awaitable[None]] | None = None  # e.g. StatsReader.refresh


class _Snapshot(NamedTuple):
    health: HealthCounts | None
    roles: dict[str, str]
    activations: dict[str, int]
    last_pass: PassResult | None
    ipvs_stats: StatsTable | None


class AgentMetrics:
    """The agent's registry: counters fed by the agent's parts, a collector over :class:`MetricSources`."""

    def __init__(self, detail: str = "services", sources: MetricSources | None = None) -> None:
        if detail not in DETAILS:
            raise ValueError(f"metrics detail must be one of {', '.join(DETAILS)}, got {detail!r}")
        self.detail: Detail = detail
        self.sources = sources or MetricSources()
        self.registry = CollectorRegistry(auto_describe=True)
        registry = self.registry
        self.reconcile_passes = Counter(
            "lvs_agent_reconcile_passes", "Reconcile passes, by result (error: some op refused or the kernel "
            "unreadable)", ["result"], registry=registry)
        self.reconcile_ops = Counter(
            "lvs_agent_reconcile_ops", "IPVS operations sent to the kernel, by kind", ["op"],
            registry=registry)
        self.netlink_errors = Counter(
            "lvs_agent_netlink_errors", "Netlink requests the kernel refused, by request (op kind, dump, "
            "dump-stats; apply/ENOBUFS: error reports lost) and errno name", ["request", "errno"],
            registry=registry)
        self.pass_seconds = Histogram(
            "lvs_agent_reconcile_pass_seconds", "Time per reconcile pass (compile, kernel dump, plan, apply)",
            buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0), registry=registry)
        self.last_pass_seconds = Gauge(
            "lvs_agent_reconcile_last_pass_seconds", "Duration of the last reconcile pass", registry=registry)
        self.last_pass_time = Gauge(
            "lvs_agent_reconcile_last_pass_timestamp_seconds", "When the last reconcile pass ended",
            registry=registry)
        self.last_ok_pass_time = Gauge(
            "lvs_agent_reconcile_last_success_timestamp_seconds", "When the last pass without errors ended",
            registry=registry)
        self.report_writes = Counter(
            "lvs_agent_director_report_writes", "DirectorReport status writes, by result (ok, error)",
            ["result"], registry=registry)
        self.role_changes = Counter(
            "lvs_agent_vip_group_role_changes", "VIP-group role changes on this director, by role taken",
            ["role"], registry=registry)
        self.stats_time = Gauge(
            "lvs_agent_ipvs_stats_timestamp_seconds", "When the IPVS counters exported here were read",
            registry=registry)
        for result in ("ok", "error"):  # present from the start, so rate() sees the first increment
            self.reconcile_passes.labels(result)
            self.report_writes.labels(result)
        self._snapshot: _Snapshot | None = None
        self._pass_started: float | None = None
        registry.register(_SourcesCollector(self))

    # --- fed by the agent -------------------------------------------------------------------------------

    def pass_started(self) -> None:
        self._pass_started = time.perf_counter()

    def pass_finished(self, result: PassResult) -> None:
        now = time.time()
        if self._pass_started is not None:
            seconds = time.perf_counter() - self._pass_started
            self._pass_started = None
            self.pass_seconds.observe(seconds)
            self.last_pass_seconds.set(seconds)
        self.reconcile_passes.labels("ok" if result.ok else "error").inc()
        self.last_pass_time.set(now)
        if result.ok:
            self.last_ok_pass_time.set(now)

    # --- scraping ------------------------------------------------------------------------------------

    def take_snapshot(self) -> None:
        """Read the sources (call on the event loop, where they live)."""
        sources = self.sources
        self._snapshot = _Snapshot(
            health=sources.health() if sources.health else None,
            roles=dict(sources.roles()) if sources.roles else {},
            activations=dict(sources.activations()) if sources.activations else {},
            last_pass=sources.last_pass() if sources.last_pass else None,
            ipvs_stats=sources.ipvs_stats() if sources.ipvs_stats else None,
        )

    def render(self) -> bytes:
        """The exposition text of the last snapshot (thread-safe: the snapshot is not mutated)."""
        return bytes(generate_latest(self.registry))

    async def scrape(self) -> bytes:
        if self.sources.before_scrape is not None:
            await self.sources.before_scrape()
        self.take_snapshot()
        return await asyncio.to_thread(self.render)


def _counter(name: str, doc: str, labels: Sequence[str] = ()) -> CounterMetricFamily:
    return CounterMetricFamily(name, doc, labels=list(labels))


def _gauge(name: str, doc: str, labels: Sequence[str] = ()) -> GaugeMetricFamily:
    return GaugeMetricFamily(name, doc, labels=list(labels))


class _SourcesCollector:
    """Families computed from the last snapshot."""

    def __init__(self, metrics: AgentMetrics) -> None:
        self._metrics = metrics

    def describe(self) -> list[Metric]:
        return []  # names vary with what is wired; nothing to check them against at registration

    def collect(self) -> Iterator[Metric]:
        snapshot = self._metrics._snapshot
        if snapshot is None:
            return
        detail = self._metrics.detail
        if snapshot.health is not None:
            yield from _health_families(snapshot.health)
        yield from _role_families(snapshot.roles, snapshot.activations, per_group=detail != "none")
        if snapshot.last_pass is not None:
            yield from _pass_families(snapshot.last_pass, per_service=detail != "none")
            yield from _ipvs_families(snapshot.last_pass, snapshot.ipvs_stats, detail)


def _health_families(counts: HealthCounts) -> Iterator[Metric]:
    checks = _counter("lvs_agent_health_checks", "Health checks completed, by check kind", ["check"])
    failures = _counter(
        "lvs_agent_health_check_failures", "Health checks that failed, by check kind", ["check"])
    for kind, value in sorted(counts.checks.items()):
        checks.add_metric([kind], value)
        failures.add_metric([kind], counts.failures.get(kind, 0))
    transitions = _counter(
        "lvs_agent_health_transitions", "Member health transitions, by state reached", ["state"])
    for state, value in sorted(counts.transitions.items()):
        transitions.add_metric([state], value)
    members = _gauge(
        "lvs_agent_health_members", "Checked (service, member) pairs by check kind and state (healthy, "
        "unhealthy, unknown, refused)", ["check", "state"])
    for (kind, state), value in sorted(counts.members.items()):
        members.add_metric([kind, state], value)
    yield from (checks, failures, transitions, members)
    yield GaugeMetricFamily("lvs_agent_health_probe_jobs", "Distinct probe loops after deduplication",
                            value=counts.jobs)
    yield GaugeMetricFamily("lvs_agent_health_probes_in_flight", "Probes started and not finished",
                            value=counts.in_flight)
    yield CounterMetricFamily("lvs_agent_health_events_suppressed", "Kubernetes Events held back by the "
                              "per-member rate limit", value=counts.events_suppressed)


def _role_families(
    roles: dict[str, str], activations: dict[str, int], *, per_group: bool
) -> Iterator[Metric]:
    by_role = _gauge("lvs_agent_vip_groups", "VIP groups served by this director, by role", ["role"])
    totals = {"active": 0, "standby": 0}
    for role in roles.values():
        totals[role] = totals.get(role, 0) + 1
    for role, value in sorted(totals.items()):
        by_role.add_metric([role], value)
    yield by_role
    if not per_group:
        return
    role_of = _gauge("lvs_agent_vip_group_role", "1 for each VIP group, labelled with this director's role "
                     "for it", ["group", "role"])
    for group, role in sorted(roles.items()):
        role_of.add_metric([group, role], 1)
    yield role_of
    became_active = _counter("lvs_agent_vip_group_activations", "Times this director became active for a "
                             "VIP group", ["group"])
    for group in sorted(roles):
        became_active.add_metric([group], activations.get(group, 0))
    yield became_active


def _pass_families(result: PassResult, *, per_service: bool) -> Iterator[Metric]:
    yield GaugeMetricFamily("lvs_agent_ipvs_owned_services", "IPVS services this agent owns (ownership "
                            "record)", value=result.owned)
    yield GaugeMetricFamily("lvs_agent_ipvs_owned_destinations", "Destinations of the IPVS services this "
                            "agent programs", value=result.owned_dests)
    yield GaugeMetricFamily("lvs_agent_ipvs_foreign_services", "IPVS services in the kernel that are not "
                            "this agent's (kube-proxy, keepalived, ipvsadm): never touched",
                            value=result.foreign)
    by_reason = _gauge("lvs_agent_virtualservices", "VirtualServices seen by the last pass, by outcome "
                       "(Programmed, Conflict, NetlinkError, CompileError, NotSelected)", ["reason"])
    reasons: dict[str, int] = {}
    for outcome in result.outcomes.values():
        reasons[outcome.reason] = reasons.get(outcome.reason, 0) + 1
    for reason, value in sorted(reasons.items()):
        by_reason.add_metric([reason], value)
    yield by_reason
    if not per_service:
        return
    programmed = _gauge("lvs_agent_virtualservice_programmed", "1 when the VirtualService's IPVS services "
                        "are in the kernel as compiled", ["virtualservice"])
    members = _gauge("lvs_agent_virtualservice_members", "Members of the VirtualService", ["virtualservice"])
    healthy = _gauge("lvs_agent_virtualservice_healthy_members", "Members not failing their health check "
                     "(unknown counts as healthy, as in the kernel)", ["virtualservice"])
    for key, outcome in sorted(result.outcomes.items()):
        if outcome.reason == "NotSelected":
            continue
        programmed.add_metric([key], 1 if outcome.programmed else 0)
        members.add_metric([key], outcome.total_members)
        healthy.add_metric([key], outcome.healthy_members)
    yield from (programmed, members, healthy)


_IPVS_DOCS = {
    "connections": "Connections scheduled (IPVS conns counter)",
    "packets": "Packets, by direction (in: client to real server; out: replies, NAT only)",
    "bytes": "Bytes, by direction (in: client to real server; out: replies, NAT only)",
    "active_connections": "Connections in ESTABLISHED state (IPVS ActiveConn)",
    "inactive_connections": "Connections in other states (IPVS InActConn)",
}


class _IpvsFamilies:
    """The five IPVS families of one scope (total, service or destination)."""

    def __init__(self, scope: str, labels: Sequence[str]) -> None:
        prefix = "lvs_agent_ipvs_" + (f"{scope}_" if scope else "")
        what = {"": " of every IPVS service of this agent", "service": " per IPVS service",
                "destination": " per destination (real server) of an IPVS service"}[scope]
        self.connections = _counter(prefix + "connections", _IPVS_DOCS["connections"] + what, labels)
        self.packets = _counter(prefix + "packets", _IPVS_DOCS["packets"] + what, [*labels, "direction"])
        self.bytes = _counter(prefix + "bytes", _IPVS_DOCS["bytes"] + what, [*labels, "direction"])
        self.active = _gauge(prefix + "active_connections", _IPVS_DOCS["active_connections"] + what, labels)
        self.inactive = _gauge(prefix + "inactive_connections", _IPVS_DOCS["inactive_connections"] + what,
                               labels)

    def add(self, labels: list[str], counters: Any, active: int, inactive: int) -> None:
        self.connections.add_metric(labels, counters.conns)
        self.packets.add_metric([*labels, "in"], counters.inpkts)
        self.packets.add_metric([*labels, "out"], counters.outpkts)
        self.bytes.add_metric([*labels, "in"], counters.inbytes)
        self.bytes.add_metric([*labels, "out"], counters.outbytes)
        self.active.add_metric(labels, active)
        self.inactive.add_metric(labels, inactive)

    def families(self) -> list[Metric]:
        return [self.connections, self.packets, self.bytes, self.active, self.inactive]


def _ipvs_families(result: PassResult, stats: StatsTable | None, detail: Detail) -> Iterator[Metric]:
    if stats is None:
        return
    total = _IpvsFamilies("", [])
    services = _IpvsFamilies("service", ["virtualservice", "service"])
    destinations = _IpvsFamilies("destination", ["virtualservice", "service", "destination"])
    sums = [0, 0, 0, 0, 0, 0, 0]  # conns, inpkts, outpkts, inbytes, outbytes, active, inactive
    for key, outcome in sorted(result.outcomes.items()):
        for service in sorted(outcome.keys):  # only the services of our VirtualServices, not foreign ones
            entry = stats.get(service)
            if entry is None:
                continue
            counters = entry.counters
            active = sum(dest.active_conns for dest in entry.dests.values())
            inactive = sum(dest.inactive_conns for dest in entry.dests.values())
            for index, value in enumerate((counters.conns, counters.inpkts, counters.outpkts,
                                           counters.inbytes, counters.outbytes, active, inactive)):
                sums[index] += value
            if detail == "none":
                continue
            labels = [key, str(service)]
            services.add(labels, counters, active, inactive)
            if detail == "destinations":
                for dest_key, dest in sorted(entry.dests.items()):
                    destinations.add([*labels, str(dest_key)], dest.counters, dest.active_conns,
                                     dest.inactive_conns)
    total.connections.add_metric([], sums[0])
    total.packets.add_metric(["in"], sums[1])
    total.packets.add_metric(["out"], sums[2])
    total.bytes.add_metric(["in"], sums[3])
    total.bytes.add_metric(["out"], sums[4])
    total.active.add_metric([], sums[5])
    total.inactive.add_metric([], sums[6])
    yield from total.families()
    if detail != "none":
        yield from services.families()
    if detail == "destinations":
        yield from destinations.families()


# --- wrappers that count what passes through the agent's narrow interfaces ------------------------------


class InstrumentedKernel:
    """An :class:`~lvs_agent.netlink.kernel.IpvsKernel` that counts ops sent and errors by errno name.
    ``stats_time``: its counter reads are the ones exported (no :class:`StatsReader`)."""

    def __init__(self, kernel: IpvsKernel, metrics: AgentMetrics, *, stats_time: bool = True) -> None:
        self._kernel = kernel
        self._metrics = metrics
        self._stats_time = stats_time

    def dump(self) -> Table:
        try:
            return self._kernel.dump()
        except IpvsError as error:
            self._metrics.netlink_errors.labels("dump", errno_name(error.errno)).inc()
            raise

    def dump_stats(self) -> StatsTable:
        try:
            stats = self._kernel.dump_stats()
        except IpvsError as error:
            self._metrics.netlink_errors.labels("dump-stats", errno_name(error.errno)).inc()
            raise
        if self._stats_time:
            self._metrics.stats_time.set(time.time())
        return stats

    def apply(self, ops: Sequence[Op]) -> ApplyResult:
        result = self._kernel.apply(ops)
        metrics = self._metrics
        for op in ops:
            metrics.reconcile_ops.labels(op.kind.value).inc()
        for failure in result.failures:
            metrics.netlink_errors.labels(failure.op.kind.value, errno_name(failure.errno)).inc()
        if not result.complete:
            metrics.netlink_errors.labels("apply", "ENOBUFS").inc()
        return result

    def close(self) -> None:
        self._kernel.close()


class StatsReader:
    """IPVS counters for scrapes, read on a netlink socket and a thread of its own (``open_kernel`` runs
    there too: pyroute2 must not set up inside the event loop). A read at most every ``min_interval``
    seconds; a scrape waits for it at most ``wait`` seconds and otherwise gets the previous table."""

    def __init__(self, open_kernel: Callable[[], IpvsKernel], metrics: AgentMetrics, *,
                 min_interval: float = 5.0, wait: float = 5.0) -> None:
        self._open_kernel = open_kernel
        self._metrics = metrics
        self.min_interval = min_interval
        self.wait = wait
        self._worker = concurrent.futures.ThreadPoolExecutor(max_workers=1, thread_name_prefix="ipvs-stats")
        self._kernel: IpvsKernel | None = None
        self._read_at: float | None = None
        self._reading: asyncio.Future[StatsTable | None] | None = None
        self.stats: StatsTable | None = None

    def _read(self) -> StatsTable | None:
        if self._kernel is None:
            self._kernel = self._open_kernel()
        try:
            return self._kernel.dump_stats()
        except IpvsError as error:
            self._metrics.netlink_errors.labels("dump-stats", errno_name(error.errno)).inc()
            logger.warning("reading IPVS counters for /metrics failed: %s", error)
            return None

    async def refresh(self) -> None:
        loop = asyncio.get_running_loop()
        if self._reading is None:
            if self._read_at is not None and loop.time() - self._read_at < self.min_interval:
                return
            self._read_at = loop.time()
            self._reading = loop.run_in_executor(self._worker, self._read)
        reading = self._reading
        try:
            async with asyncio.timeout(self.wait):
                stats = await asyncio.shield(reading)
        except TimeoutError:
            return  # a huge table: this scrape gets the last counters, the read goes on
        except Exception:
            logger.exception("reading IPVS counters for /metrics failed")
            stats = None
        finally:
            if reading.done():
                self._reading = None
        if stats is not None:
            self.stats = stats
            self._metrics.stats_time.set(time.time())

    def close(self) -> None:
        kernel = self._kernel
        if kernel is not None:
            with contextlib.suppress(Exception):
                self._worker.submit(kernel.close).result(timeout=5)
        self._worker.shutdown(wait=False)


class CountingReportSink:
    """A :class:`~lvs_agent.report.ReportSink` that counts DirectorReport writes by result."""

    def __init__(self, sink: ReportSink, metrics: AgentMetrics) -> None:
        self._sink = sink
        self._metrics = metrics

    async def write(self, node: str, status: dict[str, Any]) -> None:
        try:
            await self._sink.write(node, status)
        except Exception:
            self._metrics.report_writes.labels("error").inc()
            raise
        self._metrics.report_writes.labels("ok").inc()


# --- the HTTP endpoint --------------------------------------------------------------------------------

Readiness = Callable[[], str | None]  # None when ready, else why not


class MetricsServer:
    """``/metrics``, ``/healthz`` and ``/readyz`` on the running event loop."""

    def __init__(self, metrics: AgentMetrics, readiness: Readiness, *, address: str = "0.0.0.0",
                 port: int = DEFAULT_PORT) -> None:
        self.metrics = metrics
        self._readiness = readiness
        self._address = address
        self._port = port
        self._runner: web.AppRunner | None = None
        self.port: int | None = None  # the bound port once started (port 0: an ephemeral one)

    async def _metrics(self, _request: web.Request) -> web.Response:
        body = await self.metrics.scrape()
        return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE_LATEST})

    async def _healthz(self, _request: web.Request) -> web.Response:
        return web.Response(text="ok\n")

    async def _readyz(self, _request: web.Request) -> web.Response:
        reason = self._readiness()
        if reason is None:
            return web.Response(text="ok\n")
        return web.Response(status=503, text=f"not ready: {reason}\n")

    async def start(self) -> None:
        app = web.Application()
        app.router.add_get("/metrics", self._metrics)
        app.router.add_get("/healthz", self._healthz)
        app.router.add_get("/readyz", self._readyz)
        runner = web.AppRunner(app, access_log=None, handle_signals=False)
        await runner.setup()
        site = web.TCPSite(runner, self._address, self._port, reuse_address=True)
        try:
            await site.start()
        except BaseException:
            await runner.cleanup()
            raise
        self._runner = runner
        self.port = int(runner.addresses[0][1])  # the one chosen, for port 0

    async def close(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None
