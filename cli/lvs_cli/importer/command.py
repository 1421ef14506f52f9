"""`lvs-operator import FILE`: print manifests on stdout, warnings on stderr; exit 2 on malformed input."""

from __future__ import annotations

import argparse
import re
import sys
from typing import TextIO, cast

from lvs_cli.importer import ConfigError, Format, ImportOptions, convert_files, to_yaml
from lvs_cli.importer.mapper import DEFAULT_DIRECTOR_LABEL
from lvs_cli.importer.names import dns1123

# Kubernetes label syntax: [dns-subdomain/]name (name <= 63), value <= 63, both [A-Za-z0-9] at the ends
_LABEL_NAME = r"[A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?"
_LABEL_KEY = re.compile(rf"([a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*/)?{_LABEL_NAME}")
_LABEL_VALUE = re.compile(rf"({_LABEL_NAME})?")

EXIT_OK = 0
EXIT_BAD_INPUT = 2


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "file",
        nargs="+",
        help="lvs.cf (Piranha / pulse) or keepalived.conf; '-' reads stdin. Several files (e.g. a "
        "keepalived.conf and the files it includes) are imported as one config",
    )
    parser.add_argument(
        "--format",
        choices=["lvs.cf", "keepalived"],
        default=None,
        help="input format (default: guessed from the file name, then the content)",
    )
    parser.add_argument(
        "-n",
        "--namespace",
        default="default",
        help="namespace of the VirtualServices and pools (default: default)",
    )
    parser.add_argument(
        "--director-label",
        default="=".join(DEFAULT_DIRECTOR_LABEL),
        metavar="KEY=VALUE",
        help="node label the directors carry (default: %(default)s)",
    )
    parser.add_argument(
        "--no-vip-pool", action="store_true", help="do not emit a VIPPool covering the VIPs (cluster-scoped)"
    )
    parser.add_argument("-o", "--output", default="-", help="write the manifests here (default: stdout)")


def run(args: argparse.Namespace, stdout: TextIO | None = None, stderr: TextIO | None = None) -> int:
    out = stdout or sys.stdout
    err = stderr or sys.stderr
    paths: list[str] = list(args.file)
    key, sep, value = str(args.director_label).partition("=")
    if not sep or not _LABEL_KEY.fullmatch(key) or not _LABEL_VALUE.fullmatch(value):
        print(
            f"lvs-operator import: --director-label must be a Kubernetes label KEY=VALUE, got "
            f"{args.director_label!r}",
            file=err,
        )
        return EXIT_BAD_INPUT
    namespace = str(args.namespace)
    if dns1123(namespace) != namespace:
        print(f"lvs-operator import: {namespace!r} is not a valid namespace name", file=err)
        return EXIT_BAD_INPUT
    if "-" in paths and len(paths) > 1:
        print("lvs-operator import: '-' (stdin) cannot be combined with other files", file=err)
        return EXIT_BAD_INPUT
    files: list[tuple[str, str]] = []
    for path in paths:
        try:
            files.append(("<stdin>", sys.stdin.read()) if path == "-" else (path, _read(path)))
        except OSError as error:
            print(f"lvs-operator import: cannot read {path}: {error}", file=err)
            return EXIT_BAD_INPUT
    display = ", ".join(path for path, _ in files)
    options = ImportOptions(namespace=namespace, director_label=(key, value), vip_pool=not args.no_vip_pool)
    try:
        result, warnings = convert_files(files, options, cast("Format | None", args.format))
    except ConfigError as error:
        print(str(error), file=err)
        return EXIT_BAD_INPUT
    for warning in warnings:
        print(str(warning), file=err)
    document = to_yaml(result)
    if args.output == "-":
        out.write(document)
    else:
        try:
            with open(args.output, "w", encoding="utf-8") as handle:
                handle.write(document)
        except OSError as error:
            print(f"lvs-operator import: cannot write {args.output}: {error}", file=err)
            return EXIT_BAD_INPUT
    print(
        f"{display}: {result.count('VirtualService')} VirtualService, {result.count('RealServerPool')} "
        f"RealServerPool, {result.count('VIPPool')} VIPPool, {len(warnings)} warning(s)",
        file=err,
    )
    return EXIT_OK


def _read(path: str) -> str:
    # old configs may carry Latin-1 comments: undecodable bytes become U+FFFD instead of failing the import
    with open(path, encoding="utf-8", errors="replace") as handle:
        return handle.read()
