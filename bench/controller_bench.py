"""Controller latency: apply -> ResolvedService, and one EndpointSlice change among many services.

Three real processes over HTTP on 127.0.0.1: the embedded API server (``python -m lvs_apiserver``), the
controller (``python -m lvs_controller``, one replica, no leader election), and this script (the client,
on lvs_kube). VIPs and members are from 2001:db8::/32 (documentation range), one VIP per service.

Figures printed:
1. ``--burst`` VirtualServices (default 1,000) created at once (64 concurrent requests): latency from
   each create's response to its ResolvedService ADDED event on a watch, p50/p99/max, and the time until
   the last one.
2. ``--services`` services (default 10,000), each VirtualService -> own RealServerPool -> own Service
   with one EndpointSlice: after the controller is idle, ``--changes`` single-slice changes (one endpoint
   added), one at a time: latency until that service's ResolvedService carries the new endpoint, with the
   controller's reconciles and writes per change (from its /metrics).

Usage: .venv/bin/python bench/controller_bench.py [--burst 1000] [--services 10000] [--changes 20]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import random
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path
from typing import Any

from lvs_kube import KubeClient, load_kubeconfig
from lvs_kube import resources as res

REPO = Path(__file__).resolve().parents[1]
PYTHON = sys.executable
KUBECTL = str(Path(sys.executable).parent / "kubectl")
NAMESPACE_BURST = "bench-burst"
NAMESPACE_SCALE = "bench-scale"


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    index = min(len(ordered) - 1, max(0, round(fraction * (len(ordered) - 1))))
    return ordered[index]


def ms(value: float) -> str:
    return f"{value * 1000:.0f} ms"


class Processes:
    def __init__(self, workdir: Path) -> None:
        self.workdir = workdir
        self.kubeconfig = workdir / "kubeconfig"
        self.metrics_port = free_port()
        self.server: subprocess.Popen[bytes] | None = None
        self.controller: subprocess.Popen[bytes] | None = None

    def start_server(self, profile: str | None = None) -> None:
        log = open(self.workdir / "apiserver.log", "wb")  # noqa: SIM115 - lives as long as the process
        wrapper = ["-m", "cProfile", "-o", profile] if profile else []
        self.server = subprocess.Popen(
            [
                PYTHON,
                *wrapper,
                "-m",
                "lvs_apiserver",
                "--port",
                "0",
                "--kubeconfig-out",
                str(self.kubeconfig),
            ],
            stdout=subprocess.PIPE,
            stderr=log,
            cwd=REPO,
        )
        assert self.server.stdout is not None
        self.server.stdout.readline()  # the URL: the server is listening and the kubeconfig written
        subprocess.run(
            [KUBECTL, f"--kubeconfig={self.kubeconfig}", "apply", "-f", str(REPO / "crds")],
            check=True,
            capture_output=True,
        )

    def start_controller(self, profile: str | None = None, workers: int | None = None) -> None:
        log = open(self.workdir / "controller.log", "wb")  # noqa: SIM115
        wrapper = ["-m", "cProfile", "-o", profile] if profile else []
        self.controller = subprocess.Popen(
            [
                PYTHON,
                *wrapper,
                "-m",
                "lvs_controller",
                "--kubeconfig",
                str(self.kubeconfig),
                "--no-leader-election",
                "--metrics-port",
                str(self.metrics_port),
                "--log-level",
                "WARNING",
                *(["--workers", str(workers)] if workers else []),
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
            cwd=REPO,
            env={**os.environ, "PYTHONUNBUFFERED": "1"},
        )

    def metrics(self) -> dict[str, float]:
        with urllib.request.urlopen(f"http://127.0.0.1:{self.metrics_port}/metrics", timeout=10) as response:
            text = response.read().decode()
        samples: dict[str, float] = {}
        for line in text.splitlines():
            if line and not line.startswith("#"):
                name, _, value = line.rpartition(" ")
                samples[name] = float(value)
        return samples

    def stop(self) -> None:
        for process in (self.controller, self.server):
            if process is not None and process.poll() is None:
                process.terminate()
                try:
                    process.wait(15)
                except subprocess.TimeoutExpired:
                    process.kill()


def counter(samples: dict[str, float], prefix: str) -> float:
    return sum(value for name, value in samples.items() if name.startswith(prefix) and "Lease" not in name)


async def wait_metrics(processes: Processes) -> None:
    for _ in range(300):
        with contextlib.suppress(OSError):
            processes.metrics()
            return
        await asyncio.sleep(0.1)
    raise RuntimeError("controller metrics never came up")


async def wait_idle(processes: Processes, quiet: float = 1.0, timeout: float = 1800) -> None:
    """Until the controller's reconcile and write counts stop moving and its queue is empty for ``quiet``
    seconds."""
    deadline = time.monotonic() + timeout
    last = -1.0
    stable_since = time.monotonic()
    while time.monotonic() < deadline:
        samples = processes.metrics()
        # Reconciles and writes both still: pool status writes trail the VirtualService reconciles.
        total = counter(samples, "lvs_controller_reconciles_total") + counter(
            samples, "lvs_controller_api_writes_total"
        )
        busy = (
            samples.get("lvs_controller_queue_depth", 0)
            + samples.get("lvs_controller_reconciles_in_flight", 0)
            + samples.get("lvs_controller_status_queue_depth", 0)  # status lane (absent before it existed)
        )
        if total != last or busy:
            last, stable_since = total, time.monotonic()
        elif time.monotonic() - stable_since >= quiet:
            return
        await asyncio.sleep(0.2)
    raise RuntimeError("controller never went idle")


async def bounded(concurrency: int, coroutines: list[Any]) -> list[Any]:
    semaphore = asyncio.Semaphore(concurrency)

    async def run(coroutine: Any) -> Any:
        async with semaphore:
            return await coroutine

    return await asyncio.gather(*(run(c) for c in coroutines))


def vip_pool(name: str, namespace: str, block: str) -> dict[str, Any]:
    return {
        "apiVersion": "lvs.io/v1alpha1",
        "kind": "VIPPool",
        "metadata": {"name": name},
        "spec": {"addresses": [block], "namespaces": [namespace]},
    }


def virtual_service(namespace: str, name: str, vip: str, pool: str) -> dict[str, Any]:
    return {
        "apiVersion": "lvs.io/v1alpha1",
        "kind": "VirtualService",
        "metadata": {"name": name, "namespace": namespace},
        "spec": {"vip": vip, "ports": [{"port": 80}], "poolRef": {"name": pool}},
    }


async def namespace(client: KubeClient, name: str) -> None:
    await client.create(res.NAMESPACE, {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name}})


async def burst(client: KubeClient, count: int) -> None:
    await namespace(client, NAMESPACE_BURST)
    await client.create(res.VIP_POOL, vip_pool("bench-burst", NAMESPACE_BURST, "2001:db8:1::/64"))
    members = [{"address": f"2001:db8:ff::{index + 1:x}"} for index in range(10)]
    await client.create(
        res.REAL_SERVER_POOL,
        {
            "apiVersion": "lvs.io/v1alpha1",
            "kind": "RealServerPool",
            "metadata": {"name": "shared", "namespace": NAMESPACE_BURST},
            "spec": {"members": members},
        },
    )
    listed = await client.list(res.RESOLVED_SERVICE, NAMESPACE_BURST)
    seen: dict[str, float] = {}
    done = asyncio.Event()

    async def watch() -> None:
        version = listed.resource_version
        while True:  # the server may end a watch (e.g. a slow reader): resume from the last version seen
            async for event in client.watch(
                res.RESOLVED_SERVICE, NAMESPACE_BURST, resource_version=version, timeout_seconds=600
            ):
                version = event.object.get("metadata", {}).get("resourceVersion", version)
                name = event.object.get("metadata", {}).get("name", "")
                if event.type == "ADDED" and name not in seen:
                    seen[name] = time.perf_counter()
                    if len(seen) >= count:
                        done.set()
                        return

    watcher = asyncio.create_task(watch())
    await asyncio.sleep(0.2)
    created: dict[str, float] = {}

    async def create(index: int) -> None:
        name = f"vs-{index:05d}"
        await client.create(
            res.VIRTUAL_SERVICE,
            virtual_service(NAMESPACE_BURST, name, f"2001:db8:1::{index + 1:x}", "shared"),
        )
        created[name] = time.perf_counter()

    started = time.perf_counter()
    await bounded(64, [create(index) for index in range(count)])
    all_created = time.perf_counter()
    waiting = asyncio.create_task(done.wait())
    await asyncio.wait({waiting, watcher}, timeout=900, return_when=asyncio.FIRST_COMPLETED)
    if not done.is_set():
        raise RuntimeError(f"only {len(seen)} of {count} ResolvedServices seen: {watcher!r}")
    finished = time.perf_counter()
    watcher.cancel()
    latencies = [seen[name] - created[name] for name in created]
    from_burst = [seen[name] - started for name in created]
    print(
        f"[1] {count} VirtualServices created at once (64 in flight): "
        f"creates took {all_created - started:.2f} s"
    )
    print(
        f"    apply -> ResolvedService, from each create's response: p50 {ms(percentile(latencies, 0.5))}, "
        f"p99 {ms(percentile(latencies, 0.99))}, max {ms(max(latencies))}"
    )
    print(
        f"    from the start of the burst: p50 {ms(percentile(from_burst, 0.5))}, "
        f"p99 {ms(percentile(from_burst, 0.99))}; all {count} published after {finished - started:.2f} s "
        f"({count / (finished - started):.0f} VirtualServices/s)"
    )


def endpoint_slice(index: int, endpoints: int) -> dict[str, Any]:
    return {
        "apiVersion": "discovery.k8s.io/v1",
        "kind": "EndpointSlice",
        "metadata": {
            "name": f"svc-{index:05d}-a",
            "namespace": NAMESPACE_SCALE,
            "labels": {"kubernetes.io/service-name": f"svc-{index:05d}"},
        },
        "addressType": "IPv6",
        "ports": [{"name": "http", "port": 8080, "protocol": "TCP"}],
        "endpoints": [
            {"addresses": [f"2001:db8:2:{index:x}::{e + 1:x}"], "conditions": {"ready": True}}
            for e in range(endpoints)
        ],
    }


async def scale(client: KubeClient, processes: Processes, count: int, changes: int) -> None:
    await namespace(client, NAMESPACE_SCALE)
    await client.create(res.VIP_POOL, vip_pool("bench-scale", NAMESPACE_SCALE, "2001:db8:3::/64"))
    started = time.perf_counter()

    async def create_service(index: int) -> None:
        name = f"svc-{index:05d}"
        await client.create(
            res.SERVICE,
            {
                "apiVersion": "v1",
                "kind": "Service",
                "metadata": {"name": name, "namespace": NAMESPACE_SCALE},
                "spec": {
                    "ports": [{"name": "http", "port": 80, "targetPort": 8080}],
                    "selector": {"app": name},
                },
            },
        )
        await client.create(res.ENDPOINT_SLICE, endpoint_slice(index, 2))
        await client.create(
            res.REAL_SERVER_POOL,
            {
                "apiVersion": "lvs.io/v1alpha1",
                "kind": "RealServerPool",
                "metadata": {"name": name, "namespace": NAMESPACE_SCALE},
                "spec": {"selector": {"service": {"name": name, "port": "http"}}},
            },
        )
        await client.create(
            res.VIRTUAL_SERVICE, virtual_service(NAMESPACE_SCALE, name, f"2001:db8:3::{index + 1:x}", name)
        )

    await bounded(64, [create_service(index) for index in range(count)])
    created = time.perf_counter()
    await wait_idle(processes, quiet=2.0)
    settled = time.perf_counter()
    resolved = await client.list(res.RESOLVED_SERVICE, NAMESPACE_SCALE)
    assert len(resolved.items) == count, f"{len(resolved.items)} of {count} published"
    print(
        f"[2] {count} services (Service + EndpointSlice + RealServerPool + VirtualService each): "
        f"created in {created - started:.1f} s, controller idle {settled - started:.1f} s after the start"
    )

    latencies: list[float] = []
    reconciles: list[float] = []
    writes: list[float] = []
    rng = random.Random(7)
    for change in range(changes):
        index = rng.randrange(count)
        name = f"svc-{index:05d}"
        new_address = f"2001:db8:2:{index:x}::{100 + change:x}"
        # A list narrowed to this one object gives a current collection resourceVersion to watch from
        # (the object's own version may be older than the server's watch history).
        current = await client.list(
            res.RESOLVED_SERVICE, NAMESPACE_SCALE, label_selector=f"lvs.io/virtual-service={name}"
        )
        before = processes.metrics()
        body = endpoint_slice(index, 2)
        body["endpoints"].append({"addresses": [new_address], "conditions": {"ready": True}})
        slice_now = await client.get(res.ENDPOINT_SLICE, body["metadata"]["name"], NAMESPACE_SCALE)
        body["metadata"]["resourceVersion"] = slice_now["metadata"]["resourceVersion"]
        watch_from = current.resource_version

        async def wait_member(
            resource_version: str = watch_from, address: str = new_address, target: str = name
        ) -> float:
            while True:
                async for event in client.watch(
                    res.RESOLVED_SERVICE,
                    NAMESPACE_SCALE,
                    resource_version=resource_version,
                    label_selector=f"lvs.io/virtual-service={target}",
                    timeout_seconds=60,
                ):
                    resource_version = event.object.get("metadata", {}).get(
                        "resourceVersion", resource_version
                    )
                    if event.object.get("metadata", {}).get("name") != target:
                        continue
                    addresses = [m["address"] for m in event.object.get("spec", {}).get("members", [])]
                    if address in addresses:
                        return time.perf_counter()

        waiter = asyncio.create_task(wait_member())
        await asyncio.sleep(0.05)
        sent = time.perf_counter()
        await client.replace(res.ENDPOINT_SLICE, body)
        seen = await asyncio.wait_for(waiter, timeout=60)
        latencies.append(seen - sent)
        await wait_idle(processes, quiet=0.5)
        after = processes.metrics()
        reconciles.append(
            counter(after, "lvs_controller_reconciles_total")
            - counter(before, "lvs_controller_reconciles_total")
        )
        writes.append(
            counter(after, "lvs_controller_api_writes_total")
            - counter(before, "lvs_controller_api_writes_total")
        )
    print(
        f"    one EndpointSlice change among {count} services ({changes} changes, one at a time): "
        f"p50 {ms(percentile(latencies, 0.5))}, p99 {ms(percentile(latencies, 0.99))}, "
        f"max {ms(max(latencies))}"
    )
    print(
        f"    per change: reconciles {statistics.mean(reconciles):.1f} (max {max(reconciles):.0f}), "
        f"controller writes {statistics.mean(writes):.1f} (max {max(writes):.0f})"
    )
    rss = rss_mb(processes.controller)
    if rss is not None:
        print(f"    controller RSS with {count} services cached: {rss:.0f} MB")


def cpu_seconds(process: subprocess.Popen[bytes] | None) -> float:
    """user+system CPU time of a process so far (from /proc), to tell the controller's cost from the
    API server's."""
    if process is None:
        return 0.0
    fields = Path(f"/proc/{process.pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def rss_mb(process: subprocess.Popen[bytes] | None) -> float | None:
    if process is None:
        return None
    try:
        for line in Path(f"/proc/{process.pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    except OSError:
        return None
    return None


async def main_async(args: argparse.Namespace) -> None:
    workdir = Path(tempfile.mkdtemp(prefix="controller-bench-"))
    processes = Processes(workdir)
    try:
        processes.start_server(args.profile_server)
        processes.start_controller(args.profile, args.workers)
        await wait_metrics(processes)
        async with KubeClient(load_kubeconfig(str(processes.kubeconfig)), max_connections=64) as client:
            if args.burst:
                controller_cpu, server_cpu = cpu_seconds(processes.controller), cpu_seconds(processes.server)
                writes = counter(processes.metrics(), "lvs_controller_api_writes_total")
                burst_started = time.perf_counter()
                await burst(client, args.burst)
                await wait_idle(processes, quiet=0.5)
                idle_after = time.perf_counter() - burst_started - 0.5
                print(
                    f"    controller idle (every status written) {idle_after:.1f} s after the burst started"
                )
                controller_cpu = cpu_seconds(processes.controller) - controller_cpu
                server_cpu = cpu_seconds(processes.server) - server_cpu
                writes = counter(processes.metrics(), "lvs_controller_api_writes_total") - writes
                print(
                    f"    CPU per VirtualService: controller {ms(controller_cpu / args.burst)}, "
                    f"API server {ms(server_cpu / args.burst)} (2 cores shared with other jobs)"
                )
                print(
                    f"    controller writes per VirtualService until idle: {writes / args.burst:.2f} "
                    "(pool and VIPPool status included)"
                )
            if args.services:
                await scale(client, processes, args.services, args.changes)
        samples = processes.metrics()
        errors = counter(samples, "lvs_controller_reconcile_errors_total")
        count = samples.get("lvs_controller_reconcile_seconds_count", 0)
        total = samples.get("lvs_controller_reconcile_seconds_sum", 0)
        if count:
            print(
                f"    controller: {count:.0f} reconciles, mean {ms(total / count)} each "
                "(mostly API round trips)"
            )
        print(f"    controller reconcile errors: {errors:.0f}; logs in {workdir}")
        print(
            json.dumps(
                {
                    "writes": {
                        k: v for k, v in samples.items() if k.startswith("lvs_controller_api_writes_total{")
                    }
                }
            )
        )
    finally:
        processes.stop()


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--burst", type=int, default=1000, help="VirtualServices created at once (0: skip)")
    parser.add_argument(
        "--services", type=int, default=10000, help="services for the EndpointSlice test (0: skip)"
    )
    parser.add_argument("--changes", type=int, default=20, help="single EndpointSlice changes to time")
    parser.add_argument("--workers", type=int, help="the controller's reconcile workers (default: its own)")
    parser.add_argument("--profile", help="run the controller under cProfile, writing stats to this file")
    parser.add_argument(
        "--profile-server", help="run the API server under cProfile, writing stats to this file"
    )
    asyncio.run(main_async(parser.parse_args()))


if __name__ == "__main__":
    main()
