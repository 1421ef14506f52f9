"""Health checking of real servers (what Piranha's ``nanny`` did), for every service on the director.

Public API (see :mod:`lvs_agent.health.engine` for the design)::

    engine = HealthEngine(NetworkProber(allow_exec=False), reporter=HealthReporter(publish))
    async with engine:
        engine.set_active("group-a", True)                     # this director drives group-a
        engine.subscribe("shop/web", "198.51.100.11:80", "198.51.100.11", 80,
                         CheckSpec(HttpProbe(path="/healthz"), Timing(interval=1, fall=2)), group="group-a")
        # or declaratively each reconcile: engine.sync([SubscriptionRequest(...), ...])
        for change in await engine.changes.get():              # coalesced transitions, active groups only
            ...                                                # recompile the service with engine.health()
"""

from lvs_agent.health.clock import Clock, LoopClock
from lvs_agent.health.engine import (
    ChangeFeed,
    HealthChange,
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
