"""`python -m lvs_apiserver --port 0 --kubeconfig-out PATH`: run the embedded API server."""

from __future__ import annotations

import argparse
import asyncio
import logging
import signal
import tempfile
from pathlib import Path

from . import kubeconfig
from .server import ApiServer
from .storage import Store


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="lvs-apiserver", description="Embedded Kubernetes API server (emulator)"
    )
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0, help="0 picks a free port")
    parser.add_argument("--kubeconfig-out", help="write a kubeconfig for this server here")
    parser.add_argument("--state", help="sqlite file keeping the objects across restarts")
    parser.add_argument("--tls", action="store_true", help="serve HTTPS with a self-signed certificate")
    parser.add_argument(
        "--auth",
        action="store_true",
        help="require bearer tokens and enforce RBAC (implies --tls: kubectl sends no tokens over HTTP)",
    )
    parser.add_argument("--token", help="the admin bearer token (random when omitted)")
    parser.add_argument("--bookmark-interval", type=float, default=5.0)
    parser.add_argument(
        "--endpoint-slices",
        action="store_true",
        help="maintain EndpointSlices for Services with a selector from Pods that have a status.podIP",
    )
    parser.add_argument("--log-level", default="WARNING")
    return parser.parse_args(argv)


async def serve(args: argparse.Namespace) -> None:
    server = ApiServer(
        Store(sqlite_path=args.state),
        auth_enabled=args.auth,
        bookmark_interval=args.bookmark_interval,
        endpoint_slices=args.endpoint_slices,
    )
    if args.token:
        server.authenticator.tokens.pop(server.authenticator.admin_token)
        server.authenticator.admin_token = args.token
        from .auth import ADMIN

        server.authenticator.add_token(args.token, ADMIN)
    ssl_context, ca_pem = None, None
    if args.tls or args.auth:
        from .tls import self_signed

        ssl_context, ca_pem = self_signed(Path(tempfile.mkdtemp(prefix="lvs-apiserver-tls-")))
    url = await server.start(args.host, args.port, ssl_context)
    if args.kubeconfig_out:
        kubeconfig.write(args.kubeconfig_out, url, server.authenticator.admin_token, ca_pem)
    print(url, flush=True)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, stop.set)
    await stop.wait()
    await server.stop()


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    logging.basicConfig(level=args.log_level.upper())
    asyncio.run(serve(args))


if __name__ == "__main__":
    main()
