"""Runs the Argo CD health check that docs/install.md tells users to paste into argocd-cm, as Argo CD runs
it: a Lua 5.1 chunk (Argo CD embeds gopher-lua, a Lua 5.1) with the live object as the global ``obj``,
returning ``{status, message}``. The script is read from the document itself, so it cannot drift."""

from __future__ import annotations

import textwrap
from pathlib import Path
from typing import Any

from lupa import lua51

INSTALL_DOC = Path(__file__).resolve().parents[2] / "docs" / "install.md"
KEY = "resource.customizations.health.lvs.io_VirtualService: |"


def health_script(doc: Path = INSTALL_DOC) -> str:
    text = doc.read_text()
    start = text.index(KEY) + len(KEY)
    return textwrap.dedent(text[start : text.index("```", start)]).strip("\n")


def _to_lua(runtime: Any, value: Any) -> Any:
    """JSON-shaped Python data as Lua tables (lists 1-indexed), like Argo CD's object conversion."""
    if isinstance(value, dict):
        return runtime.table_from({key: _to_lua(runtime, item) for key, item in value.items()})
    if isinstance(value, list):
        return runtime.table_from([_to_lua(runtime, item) for item in value])
    return value


def assess(obj: dict[str, Any]) -> tuple[str, str]:
    """(status, message) the health check gives ``obj``."""
    runtime = lua51.LuaRuntime(unpack_returned_tuples=True)
    runtime.globals().obj = _to_lua(runtime, obj)
    result = runtime.execute(health_script())
    return str(result["status"]), str(result["message"])
