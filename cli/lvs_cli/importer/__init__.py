"""Migration import: Piranha ``lvs.cf`` or ``keepalived.conf`` -> lvs.io/v1alpha1 manifests."""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Literal

from lvs_cli.importer.diagnostics import ConfigError, Diagnostics, ImportWarning, Location
from lvs_cli.importer.emit import to_yaml
from lvs_cli.importer.grammars import parse_keepalived, parse_lvs_cf
from lvs_cli.importer.keepalived import interpret_keepalived
from lvs_cli.importer.mapper import ImportOptions, ImportResult, Manifest, map_config
from lvs_cli.importer.piranha import interpret_lvs_cf
from lvs_cli.importer.syntax import Directive, shifted

Format = Literal["lvs.cf", "keepalived"]

_KEEPALIVED_HINT = re.compile(
    r"^\s*(virtual_server|vrrp_instance|global_defs|real_server|virtual_server_group)\b", re.MULTILINE
)
_LVS_CF_HINT = re.compile(r"^\s*[A-Za-z_]+\s*=", re.MULTILINE)


def detect_format(path: str, text: str) -> Format:
    """By name first (lvs.cf, keepalived*.conf), then by content."""
    name = path.rsplit("/", 1)[-1].lower()
    if name.endswith(".cf"):
        return "lvs.cf"
    if "keepalived" in name:
        return "keepalived"
    keepalived_hint = _KEEPALIVED_HINT.search(text)
    lvs_cf_hint = _LVS_CF_HINT.search(text)
    if keepalived_hint and (not lvs_cf_hint or keepalived_hint.start() < lvs_cf_hint.start()):
        return "keepalived"
    if lvs_cf_hint:
        return "lvs.cf"
    raise ConfigError(
        Location(path, 1),
        "cannot tell whether this is an lvs.cf or a keepalived.conf; "
        "pass --format lvs.cf or --format keepalived",
    )


def _parse(path: str, text: str, fmt: Format) -> tuple[Directive, ...]:
    diagnostics = Diagnostics(path)
    return parse_lvs_cf(text, diagnostics) if fmt == "lvs.cf" else parse_keepalived(text, diagnostics)


def convert_files(
    files: Sequence[tuple[str, str]], options: ImportOptions | None = None, fmt: Format | None = None
) -> tuple[ImportResult, list[ImportWarning]]:
    """Parse, interpret and map legacy config files as one config (e.g. a keepalived.conf and the files
    it includes). Raises ConfigError, naming the file and line, on malformed input."""
    if not files:
        raise ValueError("no files to import")
    formats = [fmt or detect_format(path, text) for path, text in files]
    chosen = formats[0]
    for (path, _), other in zip(files, formats, strict=True):
        if other != chosen:
            raise ConfigError(
                Location(path, 1),
                f"is a {other} file but {files[0][0]} is a {chosen}: import them separately",
            )
    diagnostics = Diagnostics(files[0][0])
    directives: list[Directive] = []
    offset = 0
    for path, text in files:
        diagnostics.sources.append((offset, path))
        directives.extend(shifted(directive, offset) for directive in _parse(path, text, chosen))
        offset += text.count("\n") + 1
    interpret = interpret_lvs_cf if chosen == "lvs.cf" else interpret_keepalived
    config = interpret(files[0][0], tuple(directives), diagnostics)
    config.paths = [path for path, _ in files]
    result = map_config(config, diagnostics, options or ImportOptions())
    paths = config.paths
    warnings = sorted(
        diagnostics.warnings, key=lambda warning: (paths.index(warning.location.path), warning.location.line)
    )
    return result, warnings


def convert(
    path: str, text: str, options: ImportOptions | None = None, fmt: Format | None = None
) -> tuple[ImportResult, list[ImportWarning]]:
    """Parse, interpret and map one legacy config. Raises ConfigError on malformed input."""
    return convert_files([(path, text)], options, fmt)


__all__ = [
    "ConfigError",
    "Format",
    "ImportOptions",
    "ImportResult",
    "ImportWarning",
    "Manifest",
    "convert",
    "convert_files",
    "detect_format",
    "to_yaml",
]
