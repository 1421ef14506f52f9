"""Warnings and errors of an import, each tied to a file and line of the legacy config."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class Location:
    """A line in a source file (1-based)."""

    path: str
    line: int

    def __str__(self) -> str:
        return f"{self.path}:{self.line}"


@dataclass(frozen=True)
class ImportWarning:
    """Something in the legacy config that has no exact equivalent, and what the importer did instead."""

    location: Location
    message: str

    def __str__(self) -> str:
        return f"{self.location}: warning: {self.message}"


class ConfigError(Exception):
    """Malformed or unusable input: reported with its line, exit code 2, never a traceback."""

    def __init__(self, location: Location, message: str) -> None:
        super().__init__(f"{location}: error: {message}")
        self.location = location
        self.message = message


@dataclass
class Diagnostics:
    """Collects the warnings of one import, in the order they were found.

    Several files are imported as one config by numbering their lines on: file 2's line 1 comes after
    file 1's last line. ``sources`` holds (first global line - 1, path) per file, so every warning and
    error still names the file and its own line.
    """

    path: str
    warnings: list[ImportWarning] = field(default_factory=list)
    sources: list[tuple[int, str]] = field(default_factory=list)

    def location(self, line: int) -> Location:
        offset, path = 0, self.path
        for start, source in self.sources:
            if line > start:
                offset, path = start, source
        return Location(path, line - offset)

    def warn(self, line: int, message: str) -> None:
        warning = ImportWarning(self.location(line), message)
        if warning not in self.warnings:  # a virtual server split in several services says it once
            self.warnings.append(warning)

    def error(self, line: int, message: str) -> ConfigError:
        return ConfigError(self.location(line), message)
