"""Health checking of real servers (what Piranha's ``nanny`` did), for every service on the director.

Wiring in the agent (see :mod:`lvs_agent.health.engine` for the design)::

    prober = NetworkProber(allow_exec=config.allow_exec)          # one per agent; prober.close() at exit
    reported = ReportedHealth(on_update=refresh_report)            # rebuild status -> ReportWriter.update
    engine = HealthEngine(
        prober,
        allow_exec=config.allow_exec,                             # Exec checks refused unless on
        on_change=lambda change: reconcile_loop.kick(),           # straight to the IPVS reconcile
        event_hook=event_writer.offer,                            # HealthEvent -> Event (HealthEventWriter)
        reporter=HealthReporter(reported.publish),                # batched, per-member rate limit
    )
    binding = HealthBinding(engine, group_of=vip_group_of)        # (lvs_agent.health.convert)
    reconciler = Reconciler(..., health=binding.lookup)           # verdicts into the compiler
    async with engine:
        # before each reconcile pass (incremental: unchanged objects cost nothing):
        binding.sync(desired_resolved_services)
        # on each failover role change:
        engine.set_active(group, role is Role.ACTIVE)
        # DirectorReport: build_status(..., member_health=reported.member_health())
        # metrics: engine.counts() (lvs_agent.metrics), engine.stats()

Without the API models, subscribe directly::

    engine.subscribe("shop/web", "198.51.100.11:80", "198.51.100.11", 80,
                     CheckSpec(HttpProbe(path="/healthz"), Timing(interval=1, fall=2)), group="vip-a")
    for change in await engine.changes.get():                     # coalesced, active groups only
        ...
"""

from lvs_agent.health.clock import Clock, LoopClock
from lvs_agent.health.engine import (
    ChangeFeed,
    HealthChange,
    HealthCounts,
    HealthEngine,
    HealthEvent,
    Subscription,
    SubscriptionRequest,
)
from lvs_agent.health.probe import Prober, ProbeResult
from lvs_agent.health.probes import EXEC_DISABLED_REASON, NetworkProber
from lvs_agent.health.report import HealthReporter, MemberReport, ReportCoalescer
from lvs_agent.health.spec import (
    CheckSpec,
    CheckSpecError,
    DnsProbe,
    ExecProbe,
    HttpProbe,
    ProbeSpec,
    TcpProbe,
    Timing,
    UdpProbe,
)
from lvs_agent.health.state import Health, RiseFall, Transition

__all__ = [
    "EXEC_DISABLED_REASON",
    "ChangeFeed",
    "CheckSpec",
    "CheckSpecError",
    "Clock",
    "DnsProbe",
    "ExecProbe",
    "Health",
    "HealthChange",
    "HealthCounts",
    "HealthEngine",
    "HealthEvent",
    "HealthReporter",
    "HttpProbe",
    "LoopClock",
    "MemberReport",
    "NetworkProber",
    "ProbeResult",
    "ProbeSpec",
    "Prober",
    "ReportCoalescer",
    "RiseFall",
    "Subscription",
    "SubscriptionRequest",
    "TcpProbe",
    "Timing",
    "Transition",
    "UdpProbe",
]
