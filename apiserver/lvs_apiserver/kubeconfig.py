"""Kubeconfig files that kubectl, the kubernetes client and kopf accept."""

from __future__ import annotations

import base64
import os
from pathlib import Path

import yaml


def render(server_url: str, token: str, ca_pem: bytes | None = None, context: str = "lvs-emulator") -> str:
    cluster: dict[str, object] = {"server": server_url}
    if ca_pem is not None:
        cluster["certificate-authority-data"] = base64.b64encode(ca_pem).decode()
    config = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{"name": context, "cluster": cluster}],
        "users": [{"name": context, "user": {"token": token}}],
        "contexts": [
            {"name": context, "context": {"cluster": context, "user": context, "namespace": "default"}}
        ],
        "current-context": context,
        "preferences": {},
    }
    return yaml.safe_dump(config, sort_keys=False)


def write(path: str | os.PathLike[str], server_url: str, token: str, ca_pem: bytes | None = None) -> Path:
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(render(server_url, token, ca_pem))
    target.chmod(0o600)
    return target
