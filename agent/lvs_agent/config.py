"""Agent settings: command-line flags, each with an ``LVS_AGENT_*`` environment default."""

from __future__ import annotations

import argparse
import os
import socket
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from lvs_agent.addresses import DEFAULT_VIP_INTERFACE
from lvs_agent.failover.heartbeat import DEFAULT_PORT
from lvs_agent.failover.machine import FailoverTiming
from lvs_agent.failover.runner import Peer
from lvs_agent.ownership import DEFAULT_RECORD_PATH


@dataclass
class AgentConfig:
    node: str
    node_labels: dict[str, str] = field(default_factory=dict)
    source: str = "kube"  # "kube" or "file:<path>"
    lease: str = "kube"  # "kube" or "file:<directory>"
    lease_namespace: str = "lvs-system"
    vip_interface: str = DEFAULT_VIP_INTERFACE
    uplink: str | None = None
    peers: list[Peer] = field(default_factory=list)
    heartbeat_bind: str = "0.0.0.0"
    heartbeat_port: int = DEFAULT_PORT
    secret: bytes = b""
    timing: FailoverTiming = field(default_factory=FailoverTiming)
    record_path: str = DEFAULT_RECORD_PATH
    sync_interface: str | None = None
    sync_id: int = 0
    report: bool = True
    resync_interval: float = 60.0
    netns: str | None = None
    log_level: str = "INFO"
    allow_exec: bool = False
    metrics_port: int = 0  # 0: no /metrics, /healthz, /readyz endpoint
    metrics_address: str = "0.0.0.0"
    metrics_detail: str = "services"  # none | services | destinations (see lvs_agent.metrics)
    tls_sessions: int = 1024  # HTTPS checks: members whose TLS session is kept for resumption


def parse_peer(text: str) -> Peer:
    """``node=address[:port]`` (IPv6 in brackets: ``node=[2001:db8::2]:7946``)."""
    node, _, where = text.partition("=")
    if not node or not where:
        raise argparse.ArgumentTypeError(f"peer {text!r}: expected node=address[:port]")
    port = DEFAULT_PORT
    if where.startswith("["):
        address, _, rest = where[1:].partition("]")
        if rest.startswith(":"):
            port = int(rest[1:])
    elif where.count(":") == 1:
        address, port_text = where.split(":")
        port = int(port_text)
    else:
        address = where
    return Peer(node, address, port)


def parse_labels(text: str) -> dict[str, str]:
    labels: dict[str, str] = {}
    for item in filter(None, (part.strip() for part in text.split(","))):
        key, _, value = item.partition("=")
        labels[key] = value
    return labels


def _env(name: str, default: str | None = None) -> str | None:
    return os.environ.get(f"LVS_AGENT_{name}", default)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="lvs-agent", description="lvs-operator node agent (IPVS director)")
    parser.add_argument("--node", default=_env("NODE", os.environ.get("NODE_NAME", socket.gethostname())),
                        help="this node's name (default: $NODE_NAME, else the hostname)")
    parser.add_argument("--node-labels", default=_env("NODE_LABELS", ""),
                        help="k=v,... used for directorSelector in file mode (kube mode reads the Node)")
    parser.add_argument("--source", default=_env("SOURCE", "kube"),
                        help='desired-state source: "kube" (watch ResolvedService) or "file:PATH"')
    parser.add_argument("--lease", default=_env("LEASE", "kube"),
                        help='VIP-group Leases: "kube" (coordination.k8s.io) or "file:DIR"')
    parser.add_argument("--lease-namespace", default=_env("LEASE_NAMESPACE", "lvs-system"))
    parser.add_argument("--vip-interface", default=_env("VIP_INTERFACE", DEFAULT_VIP_INTERFACE))
    parser.add_argument("--uplink", default=_env("UPLINK"), help="interface to announce VIPs on (GARP/NA)")
    parser.add_argument("--peer", action="append", type=parse_peer, default=None,
                        help="another director: node=address[:port] (repeat); or $LVS_AGENT_PEERS")
    parser.add_argument("--heartbeat-bind", default=_env("HEARTBEAT_BIND", "0.0.0.0"))
    parser.add_argument("--heartbeat-port", type=int,
                        default=int(_env("HEARTBEAT_PORT", str(DEFAULT_PORT)) or 0))
    parser.add_argument("--secret-file", default=_env("SECRET_FILE"),
                        help="file holding the heartbeat HMAC secret (mount a Secret)")
    parser.add_argument("--heartbeat-interval", type=float,
                        default=float(_env("HEARTBEAT_INTERVAL", "0.05") or 0))
    parser.add_argument("--missed", type=int, default=int(_env("MISSED", "3") or 0),
                        help="a peer is dead after this many missed heartbeats")
    parser.add_argument("--lease-duration", type=float, default=float(_env("LEASE_DURATION", "10") or 0))
    parser.add_argument("--record", default=_env("RECORD", DEFAULT_RECORD_PATH))
    parser.add_argument("--sync-interface", default=_env("SYNC_INTERFACE"),
                        help="run the IPVS connection sync daemons (master + backup) on this interface")
    parser.add_argument("--sync-id", type=int, default=int(_env("SYNC_ID", "0") or 0))
    parser.add_argument("--no-report", action="store_true", help="do not write a DirectorReport")
    parser.add_argument("--resync-interval", type=float, default=60.0)
    parser.add_argument("--netns", default=_env("NETNS"), help="IPVS of this named network namespace")
    parser.add_argument("--log-level", default=_env("LOG_LEVEL", "INFO") or "INFO",
                        choices=["DEBUG", "INFO", "WARNING", "ERROR"], type=str.upper)
    parser.add_argument("--allow-exec", action="store_true",
                        default=(_env("ALLOW_EXEC", "false") or "").lower() in ("1", "true", "yes"),
                        help="allow healthCheck.type Exec (commands run in the agent's container)")
    parser.add_argument("--metrics-port", type=int, default=int(_env("METRICS_PORT", "0") or 0),
                        help="serve /metrics, /healthz and /readyz on this TCP port (0: off; the manifests "
                             "use 9478)")
    parser.add_argument("--metrics-address", default=_env("METRICS_ADDRESS", "0.0.0.0"),
                        help="address the metrics endpoint listens on (host network: every interface by "
                             "default)")
    parser.add_argument("--metrics-detail", default=_env("METRICS_DETAIL", "services"),
                        choices=["none", "services", "destinations"],
                        help="label cardinality: none (fixed-size series only), services (per IPVS service, "
                             "VirtualService and VIP group; default) or destinations (also per real server)")
    parser.add_argument("--tls-sessions", type=int, default=int(_env("TLS_SESSIONS", "1024") or 0),
                        help="HTTPS health checks resume the TLS sessions of this many members (about 12 KB "
                             "each; 0: a full handshake every check)")
    return parser


def load_config(argv: Sequence[str] | None = None) -> AgentConfig:
    args = build_parser().parse_args(argv)
    peers: list[Peer] = list(args.peer or [])
    if not peers and _env("PEERS"):
        peers = [parse_peer(item) for item in str(_env("PEERS")).split(",") if item.strip()]
    secret = b""
    if args.secret_file:
        secret = Path(args.secret_file).read_bytes().strip()
    if peers and not secret:
        raise SystemExit("lvs-agent: peers configured but no --secret-file: heartbeats must be authenticated")
    timing = FailoverTiming(interval=args.heartbeat_interval, missed=args.missed,
                            lease_duration=args.lease_duration,
                            renew_interval=max(args.lease_duration / 5, args.heartbeat_interval))
    return AgentConfig(
        node=args.node, node_labels=parse_labels(args.node_labels), source=args.source, lease=args.lease,
        lease_namespace=args.lease_namespace, vip_interface=args.vip_interface, uplink=args.uplink,
        peers=peers, heartbeat_bind=args.heartbeat_bind, heartbeat_port=args.heartbeat_port, secret=secret,
        timing=timing, record_path=args.record, sync_interface=args.sync_interface, sync_id=args.sync_id,
        report=not args.no_report, resync_interval=args.resync_interval, netns=args.netns,
        log_level=args.log_level, allow_exec=args.allow_exec, metrics_port=args.metrics_port,
        metrics_address=args.metrics_address, metrics_detail=args.metrics_detail,
        tls_sessions=args.tls_sessions,
    )
