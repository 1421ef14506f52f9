"""Command line: run a command in a fresh kernel guest, fetch kernels, or say which backend is chosen.

    python -m lvs_guest run [--backend uml|qemu] [--timeout S] [--module M]... -- CMD [ARG...]
    python -m lvs_guest run -- 'shell command; with pipes | and all'      (one argument = shell text)
    python -m lvs_guest run --collect results/ -- python bench/x.py       (copies $LVS_GUEST_OUT back)
    python -m lvs_guest fetch [--backend uml|qemu|all]
    python -m lvs_guest info

`run` streams the guest console to stdout and exits with the command's status (124 on timeout, 125 when
the guest died without one, 126 when no guest can start on this machine).
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from lvs_guest.backends import (
    BACKEND_ENV,
    BACKEND_NAMES,
    backend_by_name,
    has_hardware_virtualisation,
    select_backend,
)
from lvs_guest.errors import GuestUnavailable
from lvs_guest.runner import DEFAULT_MODULES, RunStatus, run_in_guest

EXIT_UNAVAILABLE = 126


def _print_line(line: str) -> None:
    sys.stdout.write(line + "\n")
    sys.stdout.flush()


def _run(args: argparse.Namespace) -> int:
    command: list[str] = args.command[1:] if args.command[:1] == ["--"] else args.command
    if not command:
        print("lvs_guest run: give a command after --", file=sys.stderr)
        return 2
    backend = select_backend(args.backend)
    result = run_in_guest(
        command[0] if len(command) == 1 else command,
        backend=backend,
        timeout=args.timeout,
        modules=args.module if args.module is not None else DEFAULT_MODULES,
        on_output=_print_line,
        debug=args.debug,
        collect_to=args.collect,
    )
    boot = f"{result.boot_seconds:.2f} s" if result.boot_seconds is not None else "n/a"
    print(
        f"lvs_guest: {result.backend}: {result.status.value}, exit {result.exit_code}, "
        f"boot {boot}, total {result.total_seconds:.2f} s",
        file=sys.stderr,
    )
    if result.status is RunStatus.NO_STATUS:
        print(
            f"lvs_guest: the guest ended without an exit status (see the console above). "
            f"{result.boot_failure_hint}",
            file=sys.stderr,
        )
    return result.exit_code


def _fetch(args: argparse.Namespace) -> int:
    names = BACKEND_NAMES if args.backend == "all" else (args.backend or select_backend().name,)
    for name in names:
        backend = backend_by_name(name)
        backend.prepare()
        print(f"{backend.describe()}: ready")
    return 0


def _info(_: argparse.Namespace) -> int:
    chosen = select_backend()
    print(f"hardware virtualisation (KVM usable for stock kernels): {has_hardware_virtualisation()}")
    print(f"{BACKEND_ENV}={os.environ.get(BACKEND_ENV, '(unset)')}")
    print(f"chosen backend: {chosen.name}")
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m lvs_guest", description=__doc__.split("\n")[0])
    commands = parser.add_subparsers(dest="action", required=True)
    run = commands.add_parser("run", help="run a command as root in a fresh guest")
    run.add_argument(
        "--backend", choices=BACKEND_NAMES, help=f"default: ${BACKEND_ENV} or the measured choice"
    )
    run.add_argument("--timeout", type=float, default=600.0, help="seconds before the guest is killed")
    run.add_argument("--module", action="append", help="modprobe before the command (repeat; default ip_vs)")
    run.add_argument("--debug", action="store_true", help="kernel boot messages and init trace")
    run.add_argument(
        "--collect", type=Path, metavar="DIR", help="copy what the command wrote under $LVS_GUEST_OUT to DIR"
    )
    run.add_argument("command", nargs=argparse.REMAINDER)
    fetch = commands.add_parser("fetch", help="download and unpack the guest kernel(s) into the cache")
    fetch.add_argument("--backend", choices=(*BACKEND_NAMES, "all"))
    commands.add_parser("info", help="say which backend would run and why")
    args = parser.parse_args(argv)
    try:
        if args.action == "run":
            return _run(args)
        if args.action == "fetch":
            return _fetch(args)
        return _info(args)
    except GuestUnavailable as error:
        print(f"lvs_guest: {error}", file=sys.stderr)
        return EXIT_UNAVAILABLE


if __name__ == "__main__":
    sys.exit(main())
