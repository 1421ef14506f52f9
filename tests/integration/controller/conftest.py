"""Fixtures for the controller's integration tests: an embedded API server (real HTTP on 127.0.0.1), the
CRDs, kubectl against it, and the controller as real subprocesses (``python -m lvs_controller``)."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from lvs_apiserver.testing import ServerThread

REPO = Path(__file__).resolve().parents[3]
KUBECTL = str(Path(sys.executable).parent / "kubectl")
LEASE_ARGS = ["--lease-duration", "3", "--renew-deadline", "2", "--retry-period", "0.5"]
DEBUG_ARGS = ["--log-level", os.environ.get("LVS_TEST_CONTROLLER_LOG_LEVEL", "INFO")]

pytestmark = pytest.mark.integration


class Cluster:
    """The API server plus kubectl helpers bound to it."""

    def __init__(self, server: ServerThread, workdir: Path) -> None:
        self.server = server
        self.workdir = workdir
        self.cache = workdir / "kubectl-cache"

    def kubectl(
        self, *args: str, input: str | None = None, check: bool = True
    ) -> subprocess.CompletedProcess[str]:
        command = [KUBECTL, f"--kubeconfig={self.server.kubeconfig}", f"--cache-dir={self.cache}", *args]
        result = subprocess.run(command, check=False, input=input, capture_output=True, text=True, timeout=60)
        if check and result.returncode != 0:
            raise AssertionError(
                f"kubectl {' '.join(args)}: {result.returncode}\n{result.stdout}\n{result.stderr}"
            )
        return result

    def apply(self, *documents: dict[str, Any]) -> str:
        return self.kubectl("apply", "-f", "-", input=yaml.safe_dump_all(documents)).stdout

    def get(self, resource: str, name: str, namespace: str | None = None) -> dict[str, Any] | None:
        args = ["get", resource, name, "-o", "json", "--show-managed-fields"]
        if namespace:
            args += ["-n", namespace]
        result = self.kubectl(*args, check=False)
        if result.returncode != 0:
            if "NotFound" in result.stderr or "not found" in result.stderr:
                return None
            raise AssertionError(result.stderr)
        parsed: dict[str, Any] = json.loads(result.stdout)
        return parsed

    def items(self, resource: str, namespace: str | None = None) -> list[dict[str, Any]]:
        args = ["get", resource, "-o", "json"]
        args += ["-n", namespace] if namespace else ["-A"]
        items: list[dict[str, Any]] = json.loads(self.kubectl(*args).stdout)["items"]
        return items

    def events(self, namespace: str, name: str) -> list[dict[str, Any]]:
        return [e for e in self.items("events", namespace) if e["involvedObject"].get("name") == name]

    def snapshot(self, namespaces: list[str]) -> dict[str, str]:
        """resourceVersion of every object the controller could write (VirtualServices with their status,
        ResolvedServices, Events), to prove that nothing was written."""
        versions: dict[str, str] = {}
        for namespace in namespaces:
            for resource in ("virtualservices.lvs.io", "resolvedservices.lvs.io", "events"):
                for item in self.items(resource, namespace):
                    meta = item["metadata"]
                    versions[f"{resource}/{namespace}/{meta['name']}"] = meta["resourceVersion"]
        return versions


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def condition(obj: dict[str, Any] | None, kind: str) -> dict[str, Any]:
    for entry in ((obj or {}).get("status") or {}).get("conditions") or []:
        if entry.get("type") == kind:
            return dict(entry)
    return {}


def wait_for(
    predicate: Callable[[], Any], timeout: float = 20.0, interval: float = 0.2, what: str = ""
) -> Any:
    deadline = time.monotonic() + timeout
    last: Any = None
    while time.monotonic() < deadline:
        last = predicate()
        if last:
            return last
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout}s waiting for {what or predicate}: last={last!r}")


class ControllerProcess:
    """One controller replica as a real process, with its JSON log captured in a file."""

    def __init__(self, cluster: Cluster, identity: str, extra: list[str] | None = None) -> None:
        self.cluster = cluster
        self.identity = identity
        self.extra = extra or []
        self.metrics_port = free_port()
        self.log_path = cluster.workdir / f"controller-{identity}-{uuid.uuid4().hex[:6]}.log"
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> ControllerProcess:
        env = {**os.environ, "PYTHONUNBUFFERED": "1"}
        command = [
            sys.executable,
            "-m",
            "lvs_controller",
            "--kubeconfig",
            str(self.cluster.server.kubeconfig),
            "--identity",
            self.identity,
            "--lease-namespace",
            "default",
            "--metrics-port",
            str(self.metrics_port),
            "--finalizer-timeout",
            "30",
            *LEASE_ARGS,
            *DEBUG_ARGS,
            *self.extra,
        ]
        with open(self.log_path, "ab") as log:
            self.process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, env=env, cwd=REPO)
        return self

    def log_lines(self) -> list[dict[str, Any]]:
        lines = []
        for raw in self.log_path.read_text().splitlines():
            try:
                lines.append(json.loads(raw))
            except ValueError:
                lines.append({"message": raw})
        return lines

    def logged(self, message: str) -> bool:
        return any(line.get("message") == message for line in self.log_lines())

    def wait_primed(self, timeout: float = 30.0) -> None:
        wait_for(lambda: self.logged("cache primed"), timeout, what=f"{self.identity} primed")

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 15.0) -> int | None:
        if self.process is None or self.process.poll() is not None:
            return self.process.returncode if self.process else None
        self.process.send_signal(sig)
        try:
            return self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            self.process.kill()
            return self.process.wait(5)

    def metrics(self) -> dict[str, float]:
        """The process's Prometheus samples: {'name{labels}': value}."""
        with urllib.request.urlopen(f"http://127.0.0.1:{self.metrics_port}/metrics", timeout=5) as response:
            text = response.read().decode()
        samples = {}
        for line in text.splitlines():
            if line and not line.startswith("#"):
                name, _, value = line.rpartition(" ")
                samples[name] = float(value)
        return samples

    def object_writes(self) -> float:
        """Writes this process sent, leader-election Lease renewals excepted."""
        return sum(
            value
            for name, value in self.metrics().items()
            if name.startswith("lvs_controller_api_writes_total{") and "Lease" not in name
        )

    @property
    def alive(self) -> bool:
        return self.process is not None and self.process.poll() is None


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    server = ServerThread(bookmark_interval=1.0).start()
    workdir = tmp_path_factory.mktemp("controller-it")
    try:
        cluster = Cluster(server, workdir)
        cluster.kubectl("apply", "-f", str(REPO / "crds"))
        wait_for(
            lambda: cluster.kubectl("get", "virtualservices.lvs.io", "-A", check=False).returncode == 0,
            what="CRDs served",
        )
        yield cluster
    finally:
        server.stop()


@pytest.fixture
def start_controller(cluster: Cluster) -> Iterator[Callable[..., ControllerProcess]]:
    started: list[ControllerProcess] = []

    def start(identity: str = "a", extra: list[str] | None = None) -> ControllerProcess:
        process = ControllerProcess(cluster, identity, extra).start()
        started.append(process)
        return process

    yield start
    for process in started:
        process.stop()


@pytest.fixture
def namespace(cluster: Cluster) -> str:
    name = f"t-{uuid.uuid4().hex[:8]}"
    cluster.apply({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name}})
    return name
