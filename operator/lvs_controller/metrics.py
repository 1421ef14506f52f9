"""Prometheus metrics of the controller (served by prometheus_client on --metrics-port)."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, start_http_server

REGISTRY = CollectorRegistry(auto_describe=True)

RECONCILES = Counter(
    "lvs_controller_reconciles_total", "VirtualService reconciles, by result", ["result"], registry=REGISTRY
)
RECONCILE_ERRORS = Counter(
    "lvs_controller_reconcile_errors_total",
    "Reconciles that raised, by error type",
    ["error"],
    registry=REGISTRY,
)
WRITES = Counter(
    "lvs_controller_api_writes_total",
    "Writes sent to the API server, by kind of write",
    ["write"],
    registry=REGISTRY,
)
QUEUE_DEPTH = Gauge(
    "lvs_controller_queue_depth", "VirtualService keys waiting to be reconciled", registry=REGISTRY
)
STATUS_QUEUE_DEPTH = Gauge(
    "lvs_controller_status_queue_depth",
    "VirtualService keys waiting for a status write (scheduled or queued on the status lane)",
    registry=REGISTRY,
)
IN_FLIGHT = Gauge("lvs_controller_reconciles_in_flight", "Reconciles running now", registry=REGISTRY)
LEADER = Gauge("lvs_controller_leader", "1 while this replica holds the leader lease", registry=REGISTRY)
RECONCILE_SECONDS = Histogram(
    "lvs_controller_reconcile_seconds",
    "Time per VirtualService reconcile",
    buckets=(0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5),
    registry=REGISTRY,
)
CACHED_OBJECTS = Gauge(
    "lvs_controller_cached_objects", "Objects in the watch cache, by kind", ["kind"], registry=REGISTRY
)


def serve_metrics(port: int, address: str = "0.0.0.0") -> None:
    """Start the /metrics HTTP endpoint in a background thread (port 0 disables it)."""
    if port:
        start_http_server(port, addr=address, registry=REGISTRY)
