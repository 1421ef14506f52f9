"""Shared helpers of the importer tests: run a conversion, index its output."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from lvs_cli.importer import ImportOptions, ImportResult, ImportWarning, convert

DATA = Path(__file__).resolve().parents[2] / "data" / "import"


def convert_text(text: str, name: str = "lvs.cf", **options: Any) -> tuple[ImportResult, list[ImportWarning]]:
    return convert(name, text, ImportOptions(**options))


def convert_sample(name: str, **options: Any) -> tuple[ImportResult, list[ImportWarning]]:
    path = DATA / name
    return convert(str(path), path.read_text(), ImportOptions(**options))


def by_kind_and_name(result: ImportResult) -> dict[tuple[str, str], dict[str, Any]]:
    return {(manifest.kind, manifest.name): manifest.body for manifest in result.manifests}


def spec_of(result: ImportResult, kind: str, name: str) -> dict[str, Any]:
    spec: dict[str, Any] = by_kind_and_name(result)[(kind, name)]["spec"]
    return spec


def warning_lines(warnings: list[ImportWarning]) -> list[tuple[int, str]]:
    return [(warning.location.line, warning.message) for warning in warnings]


def has_warning(warnings: list[ImportWarning], line: int, fragment: str) -> bool:
    return any(w.location.line == line and fragment in w.message for w in warnings)
