"""Typed readers for directive arguments: each failure is a ConfigError naming the line."""

from __future__ import annotations

import ipaddress
import re

from lvs_cli.importer.diagnostics import Diagnostics
from lvs_cli.importer.syntax import Directive

_IPV4_RANGE = re.compile(r"^(\d+\.\d+\.\d+\.)(\d+)-(\d+)$")


class ValueReader:
    """Reads the arguments of directives of one file, reporting bad values against their line."""

    def __init__(self, diagnostics: Diagnostics) -> None:
        self.diagnostics = diagnostics

    def arity(self, directive: Directive, minimum: int, maximum: int | None = None) -> None:
        count = len(directive.args)
        if count < minimum or (maximum is not None and count > maximum):
            if maximum == minimum:
                wanted = f"{minimum} value{'s' if minimum != 1 else ''}"
            elif maximum is None:
                wanted = f"at least {minimum} value{'s' if minimum != 1 else ''}"
            else:
                wanted = f"{minimum} to {maximum} values"
            got = " ".join(directive.args) or "nothing"
            raise self.diagnostics.error(directive.line, f"'{directive.keyword}' takes {wanted}, got: {got}")

    def integer(
        self,
        directive: Directive,
        index: int = 0,
        *,
        minimum: int = 0,
        maximum: int | None = None,
        text: str | None = None,
    ) -> int:
        if text is None:
            self.arity(directive, index + 1)
            text = directive.args[index]
        try:
            number = int(text, 10)
        except ValueError:
            raise self.diagnostics.error(
                directive.line, f"'{directive.keyword}' needs a whole number, got {text!r}"
            ) from None
        if number < minimum or (maximum is not None and number > maximum):
            bound = f"{minimum}..{maximum}" if maximum is not None else f">= {minimum}"
            raise self.diagnostics.error(
                directive.line, f"'{directive.keyword}' must be {bound}, got {number}"
            )
        return number

    def seconds(self, directive: Directive, index: int = 0) -> float:
        """A duration in seconds; keepalived accepts fractions (advert_int 0.5, delay_loop 1.5)."""
        self.arity(directive, index + 1)
        text = directive.args[index]
        try:
            value = float(text)
        except ValueError:
            raise self.diagnostics.error(
                directive.line, f"'{directive.keyword}' needs a number of seconds, got {text!r}"
            ) from None
        if value < 0:
            raise self.diagnostics.error(directive.line, f"'{directive.keyword}' must not be negative")
        return value

    def flag(self, directive: Directive) -> bool:
        """lvs.cf booleans are 0/1 (some files say yes/no, true/false)."""
        self.arity(directive, 1, 1)
        text = directive.args[0].lower()
        if text in {"1", "yes", "true", "on"}:
            return True
        if text in {"0", "no", "false", "off"}:
            return False
        raise self.diagnostics.error(directive.line, f"'{directive.keyword}' must be 0 or 1, got {text!r}")

    def ip(self, directive: Directive, index: int = 0, *, text: str | None = None) -> str:
        if text is None:
            self.arity(directive, index + 1)
            text = directive.args[index]
        try:
            return str(ipaddress.ip_address(text))
        except ValueError:
            raise self.diagnostics.error(
                directive.line, f"'{directive.keyword}' needs an IP address, got {text!r}"
            ) from None

    def port(self, directive: Directive, index: int = 0, *, text: str | None = None) -> int:
        return self.integer(directive, index, minimum=1, maximum=65535, text=text)

    def netmask(self, directive: Directive, index: int = 0) -> str:
        """A dotted IPv4 netmask (255.255.255.0) or a prefix length, returned as written but validated."""
        self.arity(directive, index + 1)
        text = directive.args[index]
        if text.isdigit() and 0 <= int(text) <= 128:
            return text
        try:
            ipaddress.IPv4Network(f"0.0.0.0/{text}")
        except ValueError:
            raise self.diagnostics.error(
                directive.line, f"'{directive.keyword}' needs a netmask such as 255.255.255.0, got {text!r}"
            ) from None
        return text

    def address_range(self, directive: Directive, text: str) -> list[str]:
        """keepalived's `192.0.2.20-23` (last octet range) or a single address."""
        match = _IPV4_RANGE.match(text)
        if not match:
            return [self.ip(directive, text=text)]
        prefix, first, last = match.group(1), int(match.group(2)), int(match.group(3))
        if not 0 <= first <= last <= 255:
            raise self.diagnostics.error(directive.line, f"bad address range {text!r}")
        return [self.ip(directive, text=f"{prefix}{octet}") for octet in range(first, last + 1)]


def prefix_length(netmask: str, *, ipv6: bool = False) -> int:
    """255.255.255.0 -> 24; a bare prefix length is returned as is."""
    if netmask.isdigit():
        return int(netmask)
    if ipv6:
        return ipaddress.IPv6Network(f"::/{netmask}").prefixlen
    return ipaddress.IPv4Network(f"0.0.0.0/{netmask}").prefixlen
