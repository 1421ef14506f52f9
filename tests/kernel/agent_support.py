"""Running the real agent (``python -m lvs_agent``) in a director namespace of the guest topology, fed
from a desired-state file (the file source behind the same interface as the API watch), and a client
load generator that records every request's outcome."""

from __future__ import annotations

import contextlib
import itertools
import os
import re
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from lvs_agent.netlink import IpvsNetlink
from lvs_api.ipvs import Table
from lvs_guest.client import Client
from lvs_guest.hosts import Host

PASS_LINE = re.compile(r"pass (\d+): (\d+) op\(s\), sent (\d+), (\d+) failed")


def resolved_service(
    name: str,
    vip: str,
    members: Sequence[tuple[str, int]],
    *,
    port: int = 80,
    target_port: int | None = None,
    forwarding: str = "NAT",
    scheduler: str = "rr",
    persistence: int | None = None,
    vip_group: str | None = None,
    generation: int = 1,
) -> dict[str, Any]:
    """A ResolvedService document as the controller writes it (static members, no health checks)."""
    service: dict[str, Any] = {
        "vip": vip,
        "ports": [{"port": port, **({"targetPort": target_port} if target_port else {})}],
        "poolRef": {"name": f"{name}-pool"},
        "scheduler": {"name": scheduler},
        "forwarding": forwarding,
        "healthCheck": {"type": "None"},
    }
    if persistence is not None:
        service["persistence"] = {"timeoutSeconds": persistence}
    if vip_group is not None:
        service["vipGroup"] = vip_group
    return {
        "apiVersion": "lvs.io/v1alpha1",
        "kind": "ResolvedService",
        "metadata": {"name": name, "namespace": "demo"},
        "spec": {
            "acceptedGeneration": generation,
            "virtualServiceUid": f"uid-{name}",
            "service": service,
            "members": [{"address": address, "weight": weight} for address, weight in members],
        },
    }


def write_desired(path: Path, documents: Sequence[dict[str, Any]]) -> None:
    """Atomic replace, so the agent never reads half a file."""
    temporary = path.with_suffix(".tmp")
    temporary.write_text(yaml.safe_dump_all(list(documents)))
    os.replace(temporary, path)


@dataclass
class AgentProcess:
    """One ``python -m lvs_agent`` in ``director``'s namespace."""

    director: Host
    workdir: Path
    desired: Path
    lease_dir: Path
    peers: Sequence[Host] = ()
    secret_file: Path | None = None
    extra: Sequence[str] = ()
    process: subprocess.Popen[bytes] | None = None
    log: Path = field(init=False)
    starts: int = 0

    def __post_init__(self) -> None:
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.log = self.workdir / f"agent-{self.director.name}.log"

    def argv(self) -> list[str]:
        argv = [
            sys.executable, "-m", "lvs_agent", "--node", self.director.name,
            "--source", f"file:{self.desired}",
            "--lease", f"file:{self.lease_dir}", "--no-report", "--uplink", "eth0",
            "--record", str(self.workdir / f"owned-{self.director.name}.json"),
            "--heartbeat-bind", str(self.director.ipv4),
        ]
        for peer in self.peers:
            if peer.name != self.director.name:
                argv += ["--peer", f"{peer.name}={peer.ipv4}"]
        if self.secret_file is not None:
            argv += ["--secret-file", str(self.secret_file)]
        return [*argv, *self.extra]

    def start(self) -> None:
        self.starts += 1
        with open(self.log, "ab") as log:
            log.write(f"=== start {self.starts}\n".encode())
            log.flush()
            self.process = self.director.popen(self.argv(), stdout=log, stderr=subprocess.STDOUT)

    def kill9(self) -> None:
        assert self.process is not None
        self.process.send_signal(signal.SIGKILL)
        self.process.wait(timeout=10)

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()

    def text(self) -> str:
        return self.log.read_text() if self.log.exists() else ""

    def passes(self, start: int | None = None) -> list[tuple[int, int, int, int]]:
        """(pass, ops, sent, failed) of every logged pass of the given start (default: the latest)."""
        start = start or self.starts
        section = self.text().split(f"=== start {start}\n", 1)[-1].split("=== start", 1)[0]
        return [tuple(int(value) for value in match.groups()) for match in PASS_LINE.finditer(section)]  # type: ignore[misc]

    def wait_for(self, predicate: Any, timeout: float = 60.0, what: str = "condition") -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if predicate():
                return
            if self.process is not None and self.process.poll() is not None:
                raise AssertionError(f"agent on {self.director.name} exited ({self.process.returncode}):\n"
                                     + self.text()[-4000:])
            time.sleep(0.05)
        raise AssertionError(f"timed out waiting for {what}; agent log:\n{self.text()[-4000:]}")


def kernel_table(director: Host) -> Table:
    with IpvsNetlink(netns=director.netns) as kernel:
        return kernel.dump()


@contextlib.contextmanager
def agents(processes: Sequence[AgentProcess]) -> Iterator[Sequence[AgentProcess]]:
    try:
        for process in processes:
            process.start()
        yield processes
    finally:
        for process in processes:
            process.stop()


@dataclass
class Load:
    """Requests in a loop from a client thread; records (start, end, ok, answer) of each."""

    client: Client
    vip: str
    port: int = 80
    interval: float = 0.0
    results: list[tuple[float, float, bool, str]] = field(default_factory=list)
    _stop: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None

    def _run(self) -> None:
        while not self._stop.is_set():
            started = time.monotonic()
            try:
                answer = self.client.http_get_one(self.vip, self.port)
                self.results.append((started, time.monotonic(), True, answer))
            except OSError as error:
                self.results.append((started, time.monotonic(), False, repr(error)))
            if self.interval:
                time.sleep(self.interval)

    def __enter__(self) -> Load:
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *_exc: object) -> None:
        self._stop.set()
        assert self._thread is not None
        self._thread.join(timeout=30)

    def failures(self) -> list[tuple[float, float, bool, str]]:
        return [result for result in self.results if not result[2]]

    def longest_gap(self, after: float = 0.0) -> float:
        """Longest time between two consecutive successful answers (the client-observed outage)."""
        ends = [end for _, end, ok, _ in self.results if ok and end >= after]
        return max((b - a for a, b in itertools.pairwise(ends)), default=0.0)


def reachable(client: Client, vip: str, port: int = 80) -> bool:
    try:
        client.http_get_one(vip, port)
    except OSError:
        return False
    return True
