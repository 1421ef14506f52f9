"""Embedded API server figures: creates per second, list latency with 10,000 objects, watch fan-out
latency to 10 watchers (p50/p99), and the server's CPU per VirtualService in a controller-like burst.
The server runs as its own process (`python -m lvs_apiserver`), the load comes from this process over
loopback HTTP with aiohttp.

    .venv/bin/python bench/api_bench.py [--objects 10000] [--concurrency 16] [--watchers 10] [--updates 200]
        [--burst 1000] [--burst-only] [--profile server.prof]

The burst replays what the controller does per VirtualService (bench/controller_bench.py): the create,
a finalizer merge patch, a server-side apply of its ResolvedService (labels, owner reference, resolved
spec), a merge patch of its status (conditions) and one Event, while watches on VirtualServices,
ResolvedServices and Events are open. The figure is the server process's CPU time (user + system, from
/proc) divided by the number of VirtualServices. `--profile FILE` runs the server under cProfile and
writes its profile there (read it with `python -m pstats FILE`).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import aiohttp
import yaml

NAMESPACE = "bench"
BURST_NAMESPACE = "burst"
CRDS = Path(__file__).resolve().parents[1] / "crds"
LVS = "/apis/lvs.io/v1alpha1"
WIDGET_CRD: dict[str, Any] = {
    "apiVersion": "apiextensions.k8s.io/v1",
    "kind": "CustomResourceDefinition",
    "metadata": {"name": "gadgets.bench.lvs.io"},
    "spec": {
        "group": "bench.lvs.io",
        "scope": "Namespaced",
        "names": {"plural": "gadgets", "kind": "Gadget"},
        "versions": [
            {
                "name": "v1",
                "served": True,
                "storage": True,
                "subresources": {"status": {}},
                "schema": {
                    "openAPIV3Schema": {
                        "type": "object",
                        "properties": {
                            "spec": {
                                "type": "object",
                                "x-kubernetes-validations": [
                                    {"rule": "self.port > 0 && self.port < 65536", "message": "port"}
                                ],
                                "properties": {
                                    "vip": {"type": "string", "format": "ipv4"},
                                    "port": {"type": "integer", "minimum": 1, "maximum": 65535},
                                    "scheduler": {"type": "string", "enum": ["rr", "wlc"], "default": "wlc"},
                                },
                            }
                        },
                    }
                },
            }
        ],
    },
}


def percentile(samples: list[float], fraction: float) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, round(fraction * (len(ordered) - 1)))]


async def create_many(
    session: aiohttp.ClientSession, url: str, bodies: list[dict[str, Any]], concurrency: int
) -> float:
    queue: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
    for body in bodies:
        queue.put_nowait(body)

    async def worker() -> None:
        while not queue.empty():
            body = queue.get_nowait()
            async with session.post(url, json=body) as response:
                if response.status != 201:
                    raise RuntimeError(f"create failed: {response.status} {await response.text()}")
                await response.read()

    started = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    return time.perf_counter() - started


def server_cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process so far."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


async def _send(
    session: aiohttp.ClientSession,
    method: str,
    url: str,
    body: Any,
    expected: tuple[int, ...],
    *,
    content_type: str = "application/json",
    params: dict[str, str] | None = None,
) -> dict[str, Any]:
    async with session.request(
        method, url, data=json.dumps(body), headers={"Content-Type": content_type}, params=params
    ) as response:
        payload = await response.read()
        if response.status not in expected:
            raise RuntimeError(f"{method} {url}: {response.status} {payload[:500]!r}")
        result: dict[str, Any] = json.loads(payload)
        return result


async def _drain_watch(session: aiohttp.ClientSession, url: str, opened: asyncio.Event) -> None:
    params = {"watch": "1", "allowWatchBookmarks": "true", "timeoutSeconds": "600"}
    async with session.get(url, params=params, timeout=aiohttp.ClientTimeout(total=None)) as response:
        opened.set()
        async for _ in response.content:
            pass


async def controller_burst(
    session: aiohttp.ClientSession, base: str, pid: int, count: int, concurrency: int
) -> None:
    """The server's CPU per VirtualService while a controller-like client writes `count` of them."""
    for path in sorted(CRDS.glob("*.yaml")):
        for crd in yaml.safe_load_all(path.read_text()):
            if crd and crd.get("kind") == "CustomResourceDefinition":
                await _send(
                    session,
                    "POST",
                    f"{base}/apis/apiextensions.k8s.io/v1/customresourcedefinitions",
                    crd,
                    (201, 409),
                )
    await _send(session, "POST", f"{base}/api/v1/namespaces", {"metadata": {"name": BURST_NAMESPACE}}, (201,))
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:  # the CRDs are served once established
        async with session.get(f"{base}{LVS}/virtualservices") as response:
            if response.status == 200:
                break
        await asyncio.sleep(0.05)
    namespaced = f"{base}{LVS}/namespaces/{BURST_NAMESPACE}"
    pool = {
        "apiVersion": "lvs.io/v1alpha1",
        "kind": "RealServerPool",
        "metadata": {"name": "web-backends"},
        "spec": {"members": [{"address": "2001:db8::11"}, {"address": "2001:db8::12", "weight": 2}]},
    }
    await _send(session, "POST", f"{namespaced}/realserverpools", pool, (201,))
    # What a controller and a client watch: every VirtualService (twice: controller and kopf-style
    # peer), every ResolvedService (controller and an agent) and Events.
    watched = [f"{base}{LVS}/virtualservices"] * 2 + [f"{base}{LVS}/resolvedservices"] * 2
    watched.append(f"{base}/apis/events.k8s.io/v1/events")
    openings = [asyncio.Event() for _ in watched]
    watch_tasks = [
        asyncio.create_task(_drain_watch(session, url, opened))
        for url, opened in zip(watched, openings, strict=True)
    ]
    async with asyncio.timeout(10):
        for opened in openings:
            await opened.wait()

    async def one(index: int) -> None:
        name = f"vs-{index:05d}"
        body = {
            "apiVersion": "lvs.io/v1alpha1",
            "kind": "VirtualService",
            "metadata": {"name": name},
            "spec": {
                "vip": f"2001:db8:1::{index + 1:x}",
                "ports": [{"name": "http", "port": 80}, {"name": "https", "port": 443}],
                "poolRef": {"name": "web-backends"},
            },
        }
        created = await _send(session, "POST", f"{namespaced}/virtualservices", body, (201,))
        meta = created["metadata"]
        finalizer = {
            "metadata": {"finalizers": ["lvs.io/controller"], "resourceVersion": meta["resourceVersion"]}
        }
        await _send(
            session,
            "PATCH",
            f"{namespaced}/virtualservices/{name}",
            finalizer,
            (200,),
            content_type="application/merge-patch+json",
        )
        resolved = {
            "apiVersion": "lvs.io/v1alpha1",
            "kind": "ResolvedService",
            "metadata": {
                "name": name,
                "namespace": BURST_NAMESPACE,
                "labels": {"app.kubernetes.io/managed-by": "lvs-controller", "lvs.io/virtual-service": name},
                "ownerReferences": [
                    {
                        "apiVersion": "lvs.io/v1alpha1",
                        "kind": "VirtualService",
                        "name": name,
                        "uid": meta["uid"],
                        "controller": True,
                        "blockOwnerDeletion": True,
                    }
                ],
            },
            "spec": {
                "acceptedGeneration": meta["generation"],
                "virtualServiceUid": meta["uid"],
                "service": created["spec"],
                "members": [
                    {"address": "2001:db8::11", "port": 80, "weight": 1},
                    {"address": "2001:db8::12", "port": 80, "weight": 2},
                ],
            },
        }
        await _send(
            session,
            "PATCH",
            f"{namespaced}/resolvedservices/{name}",
            resolved,
            (200, 201),
            content_type="application/apply-patch+yaml",
            params={"fieldManager": "lvs-controller", "force": "true"},
        )
        now = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
        conditions = [
            {
                "type": kind,
                "status": "True",
                "reason": reason,
                "message": message,
                "observedGeneration": meta["generation"],
                "lastTransitionTime": now,
            }
            for kind, reason, message in (
                ("Accepted", "Valid", "spec accepted"),
                ("Programmed", "Published", "resolved state published"),
                ("Ready", "MembersReady", "2 of 2 members ready"),
            )
        ]
        status = {
            "status": {
                "observedGeneration": meta["generation"],
                "conditions": conditions,
                "totalMembers": 2,
                "readyMembers": "2/2",
            }
        }
        await _send(
            session,
            "PATCH",
            f"{namespaced}/virtualservices/{name}/status",
            status,
            (200,),
            content_type="application/merge-patch+json",
        )
        event = {
            "apiVersion": "events.k8s.io/v1",
            "kind": "Event",
            "metadata": {"generateName": f"{name}.", "namespace": BURST_NAMESPACE},
            "eventTime": time.strftime("%Y-%m-%dT%H:%M:%S.000000Z", time.gmtime()),
            "reportingController": "lvs.io/controller",
            "reportingInstance": "controller-0",
            "action": "Reconcile",
            "reason": "Accepted",
            "note": "generation 1 accepted and published",
            "type": "Normal",
            "regarding": {
                "apiVersion": "lvs.io/v1alpha1",
                "kind": "VirtualService",
                "name": name,
                "namespace": BURST_NAMESPACE,
                "uid": meta["uid"],
            },
        }
        await _send(
            session,
            "POST",
            f"{base}/apis/events.k8s.io/v1/namespaces/{BURST_NAMESPACE}/events",
            event,
            (201,),
        )

    queue: asyncio.Queue[int] = asyncio.Queue()
    for index in range(count):
        queue.put_nowait(index)

    async def worker() -> None:
        while not queue.empty():
            await one(queue.get_nowait())

    cpu_before = server_cpu_seconds(pid)
    started = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    elapsed = time.perf_counter() - started
    cpu = server_cpu_seconds(pid) - cpu_before
    for task in watch_tasks:
        task.cancel()
    await asyncio.gather(*watch_tasks, return_exceptions=True)
    print(
        f"controller-like burst of {count} VirtualServices (create, finalizer patch, ResolvedService "
        f"apply, status patch, Event; {len(watched)} watches open; concurrency {concurrency}): "
        f"server CPU {cpu * 1000 / count:.1f} ms per VirtualService, {elapsed:.1f} s wall"
    )


async def run(base: str, objects: int, concurrency: int, watchers: int, updates: int) -> None:
    connector = aiohttp.TCPConnector(limit=concurrency + watchers + 4)
    async with aiohttp.ClientSession(connector=connector) as session:
        async with session.post(
            f"{base}/api/v1/namespaces", json={"metadata": {"name": NAMESPACE}}
        ) as response:
            assert response.status == 201, await response.text()
        async with session.post(
            f"{base}/apis/apiextensions.k8s.io/v1/customresourcedefinitions", json=WIDGET_CRD
        ) as response:
            assert response.status == 201, await response.text()

        configmaps = f"{base}/api/v1/namespaces/{NAMESPACE}/configmaps"
        bodies = [
            {"metadata": {"name": f"cm-{i:05d}", "labels": {"shard": str(i % 10)}}, "data": {"k": "v" * 64}}
            for i in range(objects)
        ]
        elapsed = await create_many(session, configmaps, bodies, concurrency)
        print(
            f"creates/s (ConfigMap, {objects} objects, concurrency {concurrency}): {objects / elapsed:,.0f}"
        )

        gadgets = f"{base}/apis/bench.lvs.io/v1/namespaces/{NAMESPACE}/gadgets"
        crs = [
            {
                "apiVersion": "bench.lvs.io/v1",
                "kind": "Gadget",
                "metadata": {"name": f"g-{i:05d}"},
                "spec": {"vip": f"198.51.100.{i % 250 + 1}", "port": 80 + i % 1000},
            }
            for i in range(min(objects, 2000))
        ]
        elapsed = await create_many(session, gadgets, crs, concurrency)
        print(f"creates/s (custom resource with schema + CEL, {len(crs)} objects): {len(crs) / elapsed:,.0f}")

        received: list[float] = []
        decoded: list[float] = []
        size = 0
        for _ in range(5):
            started = time.perf_counter()
            async with session.get(configmaps) as response:
                raw = await response.read()
            received.append(time.perf_counter() - started)
            payload = json.loads(raw)
            decoded.append(time.perf_counter() - started)
            size = len(raw)
            assert len(payload["items"]) == objects
        print(
            f"list {objects} objects (one request, {size / 1e6:.1f} MB): median "
            f"{statistics.median(received) * 1000:.0f} ms to receive, "
            f"{statistics.median(decoded) * 1000:.0f} ms with JSON decoding"
        )

        selected: list[float] = []
        for _ in range(5):
            started = time.perf_counter()
            async with session.get(configmaps, params={"labelSelector": "shard=3"}) as response:
                payload = await response.json()
            selected.append(time.perf_counter() - started)
        print(
            f"list with labelSelector (1/10 match) over {objects}: "
            f"median {statistics.median(selected) * 1000:.0f} ms"
        )

        started = time.perf_counter()
        token, pages = "", 0
        while True:
            params = {"limit": "500", **({"continue": token} if token else {})}
            async with session.get(configmaps, params=params) as response:
                payload = await response.json()
            pages += 1
            token = payload["metadata"].get("continue", "")
            if not token:
                break
        print(
            f"paginated list of {objects} (limit 500, {pages} pages): "
            f"{(time.perf_counter() - started) * 1000:.0f} ms"
        )

        async with session.get(configmaps, params={"limit": "1"}) as response:
            rv = (await response.json())["metadata"]["resourceVersion"]
        target = f"{configmaps}/cm-00000"
        sent_at: dict[str, float] = {}
        latencies: list[float] = []
        ready = asyncio.Event()
        opened = 0

        async def watcher() -> None:
            nonlocal opened
            params = {
                "watch": "1",
                "resourceVersion": rv,
                "fieldSelector": "metadata.name=cm-00000",
                "timeoutSeconds": "120",
            }
            async with session.get(
                configmaps, params=params, timeout=aiohttp.ClientTimeout(total=None)
            ) as response:
                opened += 1
                if opened == watchers:
                    ready.set()
                seen = 0
                async for line in response.content:
                    if not line.strip():
                        continue
                    event = json.loads(line)
                    marker = event["object"].get("data", {}).get("seq")
                    if marker in sent_at:
                        latencies.append(time.perf_counter() - sent_at[marker])
                        seen += 1
                        if seen == updates:
                            return

        tasks = [asyncio.create_task(watcher()) for _ in range(watchers)]
        await asyncio.wait_for(ready.wait(), 10)
        await asyncio.sleep(0.2)
        for sequence in range(updates):
            marker = str(sequence)
            sent_at[marker] = time.perf_counter()
            patch = json.dumps({"data": {"seq": marker}})
            async with session.patch(
                target, data=patch, headers={"Content-Type": "application/merge-patch+json"}
            ) as response:
                await response.read()
            await asyncio.sleep(0.005)
        await asyncio.wait_for(asyncio.gather(*tasks), 60)
        print(
            f"watch fan-out to {watchers} watchers ({updates} updates, {len(latencies)} deliveries): "
            f"p50 {percentile(latencies, 0.5) * 1000:.1f} ms, "
            f"p99 {percentile(latencies, 0.99) * 1000:.1f} ms "
            f"(from sending the PATCH to the event at each watcher)"
        )


def resident_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


async def run_burst(base: str, pid: int, count: int, concurrency: int) -> None:
    connector = aiohttp.TCPConnector(limit=concurrency + 10)
    async with aiohttp.ClientSession(connector=connector) as session:
        await controller_burst(session, base, pid, count, concurrency)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--objects", type=int, default=10_000)
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--watchers", type=int, default=10)
    parser.add_argument("--updates", type=int, default=200)
    parser.add_argument(
        "--burst", type=int, default=1000, help="VirtualServices in the controller-like burst"
    )
    parser.add_argument("--burst-only", action="store_true", help="run only the controller-like burst")
    parser.add_argument("--profile", help="run the server under cProfile, writing the profile to this file")
    args = parser.parse_args()
    kubeconfig = Path(tempfile.mkdtemp(prefix="api-bench-")) / "kubeconfig"
    profiler = ["-m", "cProfile", "-o", str(Path(args.profile).resolve())] if args.profile else []
    server = subprocess.Popen(
        [
            sys.executable,
            *profiler,
            "-m",
            "lvs_apiserver",
            "--port",
            "0",
            "--kubeconfig-out",
            str(kubeconfig),
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert server.stdout is not None
        base = server.stdout.readline().strip()
        print(f"server: {base} (separate process{', under cProfile' if args.profile else ''})")
        if not args.burst_only:
            asyncio.run(run(base, args.objects, args.concurrency, args.watchers, args.updates))
        if args.burst:
            asyncio.run(run_burst(base, server.pid, args.burst, args.concurrency))
        print(f"server resident memory after the run: {resident_mib(server.pid):.0f} MiB")
    finally:
        server.terminate()  # SIGTERM: the server stops cleanly (and cProfile writes its file)
        server.wait(timeout=30)


if __name__ == "__main__":
    main()
