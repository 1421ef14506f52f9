"""``python -m lvs_controller``: the controller process (see app.py)."""

from __future__ import annotations

import argparse
import asyncio
import sys

from lvs_controller.app import Options, run
from lvs_controller.logging_setup import setup_logging


def parse_args(argv: list[str] | None = None) -> tuple[Options, argparse.Namespace]:
    parser = argparse.ArgumentParser(prog="lvs-controller", description="lvs-operator controller (kopf)")
    parser.add_argument("--kubeconfig", help="kubeconfig file (default: in-cluster, then $KUBECONFIG)")
    parser.add_argument("--context", help="kubeconfig context")
    parser.add_argument("--identity", default="", help="leader-election identity (default: pod name + pid)")
    parser.add_argument("--no-leader-election", action="store_true", help="run active without a lease")
    parser.add_argument("--lease-name", default="lvs-controller")
    parser.add_argument("--lease-namespace", help="default: $POD_NAMESPACE or the kubeconfig namespace")
    parser.add_argument("--lease-duration", type=int, default=15)
    parser.add_argument("--renew-deadline", type=float, default=10.0)
    parser.add_argument("--retry-period", type=float, default=2.0)
    parser.add_argument(
        "--workers",
        type=int,
        default=32,
        help="concurrent reconciles (and status writes); each waits mostly on one API round trip",
    )
    parser.add_argument("--metrics-port", type=int, default=8080, help="0 disables /metrics")
    parser.add_argument(
        "--finalizer-timeout",
        type=float,
        default=300.0,
        help="seconds a deleted VirtualService waits for directors to drop it before the finalizer goes",
    )
    parser.add_argument("--resync-seconds", type=float, default=0.0, help="requeue everything this often")
    parser.add_argument("--log-level", default="INFO")
    parser.add_argument("--log-format", choices=["json", "text"], default="json")
    args = parser.parse_args(argv)
    options = Options(
        kubeconfig=args.kubeconfig,
        context=args.context,
        identity=args.identity,
        leader_election=not args.no_leader_election,
        lease_name=args.lease_name,
        lease_namespace=args.lease_namespace,
        lease_duration=args.lease_duration,
        renew_deadline=args.renew_deadline,
        retry_period=args.retry_period,
        workers=args.workers,
        metrics_port=args.metrics_port,
        finalizer_timeout=args.finalizer_timeout,
        resync_seconds=args.resync_seconds,
    )
    return options, args


def main(argv: list[str] | None = None) -> int:
    options, args = parse_args(argv)
    setup_logging(args.log_level, json_format=args.log_format == "json")
    return asyncio.run(run(options))


if __name__ == "__main__":
    sys.exit(main())
