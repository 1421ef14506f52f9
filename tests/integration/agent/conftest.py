"""The agent's API tests: an lvs_kube client of the embedded API server with the product's CRDs installed."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from pathlib import Path

import pytest
from lvs_apiserver.testing import ServerThread
from lvs_kube.client import KubeClient
from lvs_kube.config import load_config

CRDS = Path(__file__).resolve().parents[3] / "crds"


@pytest.fixture
async def client(
    apiserver: ServerThread, install_crds: Callable[..., list[str]]
) -> AsyncIterator[KubeClient]:
    install_crds(CRDS)
    kube = KubeClient(load_config(str(apiserver.kubeconfig)))
    try:
        yield kube
    finally:
        await kube.close()
