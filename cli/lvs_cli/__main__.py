"""`lvs-operator` console script: one argparse subcommand per entry of COMMANDS.

To add a subcommand, append a Command with a function that declares its arguments and one that runs it
(returning the exit code).
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from lvs_cli import demo
from lvs_cli.importer import command as import_command


@dataclass(frozen=True)
class Command:
    name: str
    help: str
    add_arguments: Callable[[argparse.ArgumentParser], None]
    run: Callable[[argparse.Namespace], int]


COMMANDS: list[Command] = [
    Command(
        name="import",
        help="convert an lvs.cf (Piranha/pulse) or keepalived.conf into lvs.io manifests",
        add_arguments=import_command.add_arguments,
        run=import_command.run,
    ),
    Command(
        name="demo",
        help="boot the kernel guest and run the product end to end (API server, controller, agents, IPVS)",
        add_arguments=demo.add_arguments,
        run=demo.run,
    ),
]


def build_parser(commands: Sequence[Command] = COMMANDS) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="lvs-operator", description="Linux Virtual Server operator tools")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for command in commands:
        sub = subparsers.add_parser(command.name, help=command.help, description=command.help)
        command.add_arguments(sub)
        sub.set_defaults(run=command.run)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    run: Callable[[argparse.Namespace], int] = args.run
    return run(args)


if __name__ == "__main__":
    sys.exit(main())
