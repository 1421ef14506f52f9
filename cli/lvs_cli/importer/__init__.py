"""Migration import: Piranha ``lvs.cf`` or ``keepalived.conf`` -> lvs.io/v1alpha1 manifests."""

from __future__ import annotations

import re
from typing import Literal

from lvs_cli.importer.diagnostics import ConfigError, Diagnostics, ImportWarning, Location
from lvs_cli.importer.emit import to_yaml
from lvs_cli.importer.keepalived import interpret_keepalived
from lvs_cli.importer.legacy import LegacyConfig
from lvs_cli.importer.mapper import ImportOptions, ImportResult, Manifest, map_config
from lvs_cli.importer.piranha import interpret_lvs_cf

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


def interpret(path: str, text: str, diagnostics: Diagnostics, fmt: Format | None = None) -> LegacyConfig:
    chosen = fmt or detect_format(path, text)
    if chosen == "lvs.cf":
        return interpret_lvs_cf(path, text, diagnostics)
    return interpret_keepalived(path, text, diagnostics)


def convert(
    path: str, text: str, options: ImportOptions | None = None, fmt: Format | None = None
) -> tuple[ImportResult, list[ImportWarning]]:
    """Parse, interpret and map one legacy config. Raises ConfigError on malformed input."""
    diagnostics = Diagnostics(path)
    config = interpret(path, text, diagnostics, fmt)
    result = map_config(config, diagnostics, options or ImportOptions())
    return result, sorted(diagnostics.warnings, key=lambda warning: warning.location.line)


__all__ = [
    "ConfigError",
    "Format",
    "ImportOptions",
    "ImportResult",
    "ImportWarning",
    "Manifest",
    "convert",
    "detect_format",
    "to_yaml",
]
