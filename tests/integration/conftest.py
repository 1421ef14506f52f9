"""Shared fixtures for integration tests against the embedded Kubernetes API server.

Fixtures (stable; other test packages rely on them):

- ``apiserver`` (session): a running server (``lvs_apiserver.testing.ServerThread``) on 127.0.0.1 with a
  random port. ``.url``, ``.kubeconfig`` (Path), ``.server`` (the ApiServer: ``.store``, ``.objects``),
  ``.call(fn)`` runs ``fn`` on the server's event loop thread.
- ``fresh_apiserver`` (function): a server of its own for tests that need isolation.
- ``make_apiserver`` (function): factory ``make_apiserver(**ServerThread options)`` -> started server,
  stopped at teardown (e.g. ``auth_enabled=True``, ``bookmark_interval=0.2``, ``history_limit=50``).
- ``kubectl``: ``kubectl(*args, input=None, check=True, server=None) -> CompletedProcess[str]`` running
  the venv's kubectl with the session server's kubeconfig and a private cache dir.
  ``check=True`` raises ``KubectlError`` (stdout/stderr in the message) on a non-zero exit.
- ``kube_api``: a ``kubernetes.client.ApiClient`` configured from the session server's kubeconfig.
- ``namespace``: a fresh namespace name (created on the session server), unique per test.
- ``install_crds``: ``install_crds(*crds_or_paths, server=None)`` creates CRDs (dicts, or YAML files /
  directories) and waits until they are served; returns the list of CRD names.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from lvs_apiserver.testing import ServerThread

REPO = Path(__file__).resolve().parents[2]
KUBECTL = str(Path(sys.executable).parent / "kubectl")


class KubectlError(AssertionError):
    def __init__(self, args: tuple[str, ...], result: subprocess.CompletedProcess[str]) -> None:
        super().__init__(
            f"kubectl {' '.join(args)} exited {result.returncode}\n"
            f"stdout: {result.stdout}\nstderr: {result.stderr}"
        )
        self.result = result


def run_kubectl(
    server: ServerThread,
    cache_dir: Path,
    *args: str,
    input: str | None = None,
    check: bool = True,
    timeout: float = 60,
) -> subprocess.CompletedProcess[str]:
    command = [KUBECTL, f"--kubeconfig={server.kubeconfig}", f"--cache-dir={cache_dir}", *args]
    result = subprocess.run(
        command, input=input, capture_output=True, text=True, timeout=timeout, check=False
    )
    if check and result.returncode != 0:
        raise KubectlError(args, result)
    return result


@pytest.fixture(scope="session")
def apiserver() -> Iterator[ServerThread]:
    server = ServerThread(bookmark_interval=1.0).start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def make_apiserver() -> Iterator[Callable[..., ServerThread]]:
    started: list[ServerThread] = []

    def factory(**options: Any) -> ServerThread:
        server = ServerThread(**options).start()
        started.append(server)
        return server

    yield factory
    for server in started:
        server.stop()


@pytest.fixture
def fresh_apiserver(make_apiserver: Callable[..., ServerThread]) -> ServerThread:
    return make_apiserver()


@pytest.fixture(scope="session")
def _kubectl_cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("kubectl-cache")


@pytest.fixture
def kubectl(apiserver: ServerThread, tmp_path: Path) -> Callable[..., subprocess.CompletedProcess[str]]:
    # A cache dir per test: discovery changes (new CRDs) must never be hidden by kubectl's disk cache.
    cache_dir = tmp_path / "kubectl-cache"

    def runner(
        *args: str,
        input: str | None = None,
        check: bool = True,
        server: ServerThread | None = None,
        timeout: float = 60,
    ) -> subprocess.CompletedProcess[str]:
        return run_kubectl(server or apiserver, cache_dir, *args, input=input, check=check, timeout=timeout)

    return runner


@pytest.fixture
def kube_api(apiserver: ServerThread) -> Iterator[Any]:
    import kubernetes

    client = kubernetes.config.new_client_from_config(config_file=str(apiserver.kubeconfig))
    try:
        yield client
    finally:
        client.close()


@pytest.fixture
def namespace(apiserver: ServerThread, kube_api: Any) -> str:
    import kubernetes

    name = f"t-{uuid.uuid4().hex[:10]}"
    kubernetes.client.CoreV1Api(kube_api).create_namespace({"metadata": {"name": name}})
    return name


def _load_crds(item: Any) -> list[dict[str, Any]]:
    if isinstance(item, dict):
        return [item]
    path = Path(item)
    files = sorted(path.glob("*.y*ml")) if path.is_dir() else [path]
    documents: list[dict[str, Any]] = []
    for file in files:
        documents.extend(
            doc
            for doc in yaml.safe_load_all(file.read_text())
            if doc and doc.get("kind") == "CustomResourceDefinition"
        )
    return documents


@pytest.fixture
def install_crds(apiserver: ServerThread) -> Callable[..., list[str]]:
    import kubernetes

    def install(*items: Any, server: ServerThread | None = None) -> list[str]:
        target = server or apiserver
        client = kubernetes.config.new_client_from_config(config_file=str(target.kubeconfig))
        api = kubernetes.client.ApiextensionsV1Api(client)
        names = []
        try:
            for item in items:
                for crd in _load_crds(item):
                    name = crd["metadata"]["name"]
                    try:
                        api.create_custom_resource_definition(crd)
                    except kubernetes.client.ApiException as error:
                        if error.status != 409:
                            raise
                        current = api.read_custom_resource_definition(name)
                        replacement = {
                            **crd,
                            "metadata": {
                                **crd["metadata"],
                                "resourceVersion": current.metadata.resource_version,
                            },
                        }
                        api.replace_custom_resource_definition(name, replacement)
                    names.append(name)
            # Generous: a loaded CI machine may be slow; the loop ends as soon as every CRD is served.
            deadline = time.monotonic() + 30
            assert target.server is not None
            while True:
                served = {t.crd_name for t in target.call(target.server.registry.all_types)}
                missing = [name for name in names if name not in served]
                if not missing:
                    break
                assert time.monotonic() < deadline, f"CRDs not served within 30 s: {missing}"
                time.sleep(0.05)
        finally:
            client.close()
        return names

    return install


def kubectl_available() -> bool:
    return shutil.which(KUBECTL) is not None or Path(KUBECTL).exists()
