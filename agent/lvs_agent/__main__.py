"""``python -m lvs_agent``: the node agent (DaemonSet on director nodes).

Wires the parts together: desired-state source -> reconcile loop (compiler, planner, IpvsKernel,
ownership record) -> failover runner (heartbeats, Leases, VIPs) -> DirectorReport writer. Each runs as
its own asyncio task; none of them waits on another's I/O, so a slow API server never delays heartbeats
or kernel programming. With ``--metrics-port``, /metrics, /healthz and /readyz are served from the start
(see :mod:`lvs_agent.metrics`), so the liveness probe passes while the agent waits for the API server.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import signal
import sys
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import aiohttp
from lvs_api.compiler import compile_resolved
from lvs_api.models import ResolvedService
from lvs_api.planner import plan
from lvs_kube.client import KubeClient
from lvs_kube.config import load_config as load_kube_config
from lvs_kube.errors import ApiError
from lvs_kube.resources import NODE

from lvs_agent.addresses import NetlinkVipAddresses
from lvs_agent.config import AgentConfig, load_config
from lvs_agent.desired import DesiredStateSource, FileDesiredStateSource, KubeDesiredStateSource
from lvs_agent.events import HealthEventWriter, KubeEventSink, engine_member_state
from lvs_agent.failover.lease import FileLeaseStore, KubeLeaseStore, LeaseStore
from lvs_agent.failover.machine import Role
from lvs_agent.failover.runner import FailoverRunner
from lvs_agent.health import HealthEngine, HealthReporter, NetworkProber
from lvs_agent.health.convert import HealthBinding, ReportedHealth
from lvs_agent.lifecycle import stop_gracefully
from lvs_agent.metrics import (
    AgentMetrics,
    CountingReportSink,
    InstrumentedKernel,
    MetricsServer,
    StatsReader,
)
from lvs_agent.netlink import IpvsNetlink
from lvs_agent.nodewatch import NodeLabelWatch
from lvs_agent.ownership import OwnershipRecord
from lvs_agent.reconcile import PassResult, ReconcileLoop, Reconciler, vip_group_of
from lvs_agent.report import KubeReportSink, MemberTally, ReportWriter, build_status
from lvs_agent.syncd import NetlinkSyncDaemons, SyncDaemonConfig, SyncDaemonRecord

logger = logging.getLogger("lvs_agent")


async def _node_labels(config: AgentConfig, client: KubeClient) -> dict[str, str]:
    """This node's labels (for directorSelector). Retried while the API server is away: the kernel keeps
    forwarding meanwhile, and exiting would only make the DaemonSet restart us into the same wait."""
    delay = 0.5
    while True:
        try:
            node = await client.get(NODE, config.node)
        except (ApiError, aiohttp.ClientError, OSError, TimeoutError) as error:
            logger.warning("reading Node %s failed (retrying in %.1f s): %s", config.node, delay, error)
            await asyncio.sleep(delay)
            delay = min(delay * 2, 30.0)
            continue
        labels = (node.get("metadata") or {}).get("labels") or {}
        return {str(key): str(value) for key, value in labels.items()}


def _follow_node_labels(config: AgentConfig, client: KubeClient, labels: Mapping[str, str],
                        reconciler: Reconciler, kick: Callable[[], None]) -> NodeLabelWatch:
    """Relabelling the node re-matches every directorSelector at the next pass (no pod restart)."""

    async def read() -> dict[str, str]:
        labels = ((await client.get(NODE, config.node)).get("metadata") or {}).get("labels") or {}
        return {str(key): str(value) for key, value in labels.items()}

    def changed(new: dict[str, str]) -> None:
        reconciler.node_labels = new  # one reference swap: the reconcile thread sees the old or the new
        kick()

    return NodeLabelWatch(read, labels, changed)


async def run_agent(config: AgentConfig) -> None:
    metrics = AgentMetrics(config.metrics_detail)
    readiness_checks: list[Callable[[], str | None]] = []  # filled as the parts come up

    def readiness() -> str | None:
        if not readiness_checks:
            return "starting (reading the Node, opening netlink)"
        for check in readiness_checks:
            reason = check()
            if reason is not None:
                return reason
        return None

    server: MetricsServer | None = None
    if config.metrics_port:
        server = MetricsServer(metrics, readiness, address=config.metrics_address, port=config.metrics_port)
        await server.start()
        logger.info("metrics, /healthz and /readyz on %s:%d (detail: %s)", config.metrics_address,
                    server.port, config.metrics_detail)
    client = None
    if "kube" in (config.source, config.lease) or config.report:
        client = KubeClient(load_kube_config())
    try:
        labels = dict(config.node_labels)
        if config.source == "kube" and client is not None:
            labels = await _node_labels(config, client)
        source: DesiredStateSource
        if config.source.startswith("file:"):
            source = FileDesiredStateSource(config.source[len("file:"):])
        else:
            assert client is not None
            source = KubeDesiredStateSource(client)
        lease_store: LeaseStore
        if config.lease.startswith("file:"):
            lease_store = FileLeaseStore(config.lease[len("file:"):], config.timing.lease_duration)
        else:
            assert client is not None
            lease_store = KubeLeaseStore(client, config.lease_namespace, int(config.timing.lease_duration))
        vips = NetlinkVipAddresses(config.vip_interface, config.uplink)
        # pyroute2 sets its sockets up on an event loop of its own: not inside ours (see addresses.py)
        kernel = await asyncio.get_running_loop().run_in_executor(
            None, functools.partial(IpvsNetlink, netns=config.netns))
        sync_problems: list[str] = []
        if config.sync_interface:
            # before the reconcile loop exists: the only user of the netlink socket at this point
            sync = SyncDaemonConfig(config.sync_interface, config.sync_id)
            # the daemons it started are recorded beside the ownership record: only those are restarted
            syncd_record = SyncDaemonRecord(config.record_path.removesuffix(".json") + ".syncd.json")
            syncd = NetlinkSyncDaemons(kernel, syncd_record)
            started = syncd.ensure(sync)
            logger.info("IPVS sync daemons: started %s", started or "none (already running)")
            sync_problems += syncd.problems()  # foreign daemons left running: said in the report
        failovers: dict[str, int] = {}
        writer = None
        if config.report and client:
            writer = ReportWriter(CountingReportSink(KubeReportSink(client), metrics), config.node)

        # Health: one engine for every member of every served service. Verdicts drive the kernel only
        # where this director is active for the group (a standby probes, warm, without applying).
        # reported changes show at once (a lambda: refresh_report is defined further down)
        reported = ReportedHealth(on_update=lambda: refresh_report())  # noqa: PLW0108
        tally = MemberTally()  # healthy/total members of each service, from the same reports
        # Events on the VirtualService when a member changes state: aggregated, budgeted, active director only
        health_events = None
        if config.report and client:
            health_events = HealthEventWriter(KubeEventSink(client, config.node))
        engine = HealthEngine(NetworkProber(allow_exec=config.allow_exec, tls_sessions=config.tls_sessions),
                              reporter=HealthReporter(tally.forwarding(reported.publish)),
                              event_hook=health_events.offer if health_events is not None else None)
        if health_events is not None:
            health_events.member_state = engine_member_state(engine)
        binding = HealthBinding(engine, vip_group_of)
        kick: list[Callable[[], None]] = []  # set once the reconcile loop exists

        def on_role(group: str, role: Role, term: int) -> None:
            logger.info("VIP group %s: %s (term %d)", group, role.value, term)
            metrics.role_changes.labels(role.value).inc()
            if role is Role.ACTIVE:
                failovers[group] = failovers.get(group, 0) + 1
            engine.set_active(group, role is Role.ACTIVE)
            for callback in kick:
                callback()

        runner = FailoverRunner(
            node=config.node, peers=config.peers, secret=config.secret, lease_store=lease_store, vips=vips,
            timing=config.timing, bind=(config.heartbeat_bind, config.heartbeat_port), on_role_change=on_role,
        )

        loop_ = asyncio.get_running_loop()

        def on_groups(groups: Mapping[str, frozenset[str]], gateways: Mapping[str, str | None]) -> None:
            # called on the reconcile thread; the runner lives on the event loop
            loop_.call_soon_threadsafe(runner.set_groups, dict(groups), dict(gateways))

        def before_pass(selected: dict[str, ResolvedService]) -> None:
            metrics.pass_started()
            binding.sync(selected)
            tally.sync(selected)
            if health_events is not None:
                health_events.sync(selected)

        def on_pass(result: PassResult) -> None:
            metrics.pass_finished(result)
            refresh_report()

        def refresh_report() -> None:
            result = reconciler.last
            if writer is not None and result is not None:
                writer.update(build_status(result, groups=runner.status(), failovers=failovers,
                                           member_health=reported.member_health(), stats=reconciler.stats,
                                           agent_errors=sync_problems + sorted(vips.problems.values()),
                                           member_counts=tally))

        # /metrics reads IPVS counters on a socket of its own, when scraped; the reconciler's reads (every
        # 10 s at most, at the end of a pass) feed the DirectorReport
        stats_reader = None
        if server is not None:
            stats_reader = StatsReader(functools.partial(IpvsNetlink, netns=config.netns), metrics)
            metrics.sources.before_scrape = stats_reader.refresh
        reconciler = Reconciler(node_labels=labels,
                                kernel=InstrumentedKernel(kernel, metrics, stats_time=stats_reader is None),
                                record=OwnershipRecord(config.record_path),
                                compile_service=compile_resolved, plan=plan, health=binding.lookup,
                                on_groups=on_groups, stats_interval=10.0)
        loop = ReconcileLoop(reconciler, source, resync_interval=config.resync_interval, on_pass=on_pass,
                             before_pass=before_pass)
        kick.append(loop.kick)
        metrics.sources.health = engine.counts
        metrics.sources.roles = lambda: {group: state.role.value for group, state in runner.status().items()}
        metrics.sources.activations = lambda: failovers
        metrics.sources.last_pass = lambda: reconciler.last
        metrics.sources.ipvs_stats = lambda: stats_reader.stats if stats_reader else reconciler.stats

        def source_synced() -> str | None:
            synced = getattr(source, "synced", None)  # KubeDesiredStateSource: the first list arrived
            if isinstance(synced, asyncio.Event) and not synced.is_set():
                return "desired state (ResolvedService list) not synced yet"
            return None

        readiness_checks.append(source_synced)
        readiness_checks.append(lambda: None if loop.passes else "first reconcile pass not finished")
        readiness_checks.append(runner.leases_unread)  # a rolling update moves on once we can stand by

        async def health_changes() -> None:
            while True:
                await engine.changes.get()  # coalesced transitions of active groups: recompile
                loop.kick()

        await engine.start()
        tasks: list[asyncio.Task[Any]] = [asyncio.create_task(loop.run(), name="reconcile"),
                                          asyncio.create_task(runner.run(), name="failover"),
                                          asyncio.create_task(health_changes(), name="health")]
        if writer is not None:
            tasks.append(asyncio.create_task(writer.run(), name="report"))
        if health_events is not None:
            tasks.append(asyncio.create_task(health_events.run(), name="health-events"))
        if config.source == "kube" and client is not None:
            watch = _follow_node_labels(config, client, labels, reconciler, loop.kick)
            tasks.append(asyncio.create_task(watch.run(), name="node-labels"))
        logger.info("agent %s running: source=%s lease=%s peers=%s", config.node, config.source, config.lease,
                    [peer.node for peer in config.peers])
        stop = asyncio.Event()
        for signum in (signal.SIGTERM, signal.SIGINT):
            asyncio.get_running_loop().add_signal_handler(signum, stop.set)
        done, _ = await asyncio.wait([*tasks, asyncio.create_task(stop.wait())],
                                     return_when=asyncio.FIRST_COMPLETED)
        if stop.is_set():  # SIGTERM / SIGINT: hand the VIP groups over, keep the IPVS table
            await stop_gracefully(runner, tasks[1], tasks[:1] + tasks[2:])
        for task in tasks:
            task.cancel()
        for task in done:
            if task in tasks and not task.cancelled() and task.exception() is not None:
                raise task.exception()  # type: ignore[misc]
        with contextlib.suppress(asyncio.CancelledError):
            await asyncio.gather(*tasks, return_exceptions=True)
        await engine.stop()
        await asyncio.get_running_loop().run_in_executor(None, kernel.close)
        if stats_reader is not None:
            stats_reader.close()
        vips.close()
    finally:
        if client is not None:
            await client.close()
        if server is not None:
            await server.close()


def main(argv: Sequence[str] | None = None) -> int:
    config = load_config(argv)
    logging.basicConfig(level=config.log_level, stream=sys.stderr,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    asyncio.run(run_agent(config))
    return 0


if __name__ == "__main__":
    sys.exit(main())
