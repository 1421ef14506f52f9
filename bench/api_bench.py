"""Embedded API server figures: creates per second, list latency with 10,000 objects, and watch fan-out
latency to 10 watchers (p50/p99). The server runs as its own process (`python -m lvs_apiserver`), the
load comes from this process over loopback HTTP with aiohttp.

    .venv/bin/python bench/api_bench.py [--objects 10000] [--concurrency 16] [--watchers 10] [--updates 200]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import aiohttp

NAMESPACE = "bench"
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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--objects", type=int, default=10_000)
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--watchers", type=int, default=10)
    parser.add_argument("--updates", type=int, default=200)
    args = parser.parse_args()
    kubeconfig = Path(tempfile.mkdtemp(prefix="api-bench-")) / "kubeconfig"
    server = subprocess.Popen(
        [sys.executable, "-m", "lvs_apiserver", "--port", "0", "--kubeconfig-out", str(kubeconfig)],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert server.stdout is not None
        base = server.stdout.readline().strip()
        print(f"server: {base} (separate process)")
        asyncio.run(run(base, args.objects, args.concurrency, args.watchers, args.updates))
        print(f"server resident memory after the run: {resident_mib(server.pid):.0f} MiB")
    finally:
        server.terminate()
        server.wait(timeout=10)


if __name__ == "__main__":
    main()
