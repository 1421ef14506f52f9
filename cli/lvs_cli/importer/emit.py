"""Multi-document YAML with comments: a header, then each manifest under its own comment lines."""

from __future__ import annotations

import yaml

from lvs_cli.importer.mapper import ImportResult

# libyaml's emitter when PyYAML has it (about ten times faster on large imports)
_BaseDumper: type[yaml.SafeDumper] = getattr(yaml, "CSafeDumper", yaml.SafeDumper)


class _Dumper(_BaseDumper):  # type: ignore[valid-type,misc]
    """Strings with control characters (nanny's "\\r\\n" payloads) print double-quoted, on one line."""


def _represent_str(dumper: yaml.SafeDumper, value: str) -> yaml.ScalarNode:
    if any(ord(char) < 32 for char in value):
        return dumper.represent_scalar("tag:yaml.org,2002:str", value, style='"')
    return dumper.represent_str(value)


_Dumper.add_representer(str, _represent_str)


def _comment(lines: list[str]) -> str:
    return "".join(f"# {line}\n" if line else "#\n" for line in lines)


def to_yaml(result: ImportResult) -> str:
    parts = [_comment(result.header)]
    for manifest in result.manifests:
        body = yaml.dump(manifest.body, Dumper=_Dumper, sort_keys=False, default_flow_style=False, width=100)
        parts.append("---\n" + _comment(manifest.comments) + body)
    return "".join(parts)
