"""Planner figures: one member change among 10,000 services x 10 members, and a cold plan of 100,000
destinations (10,000 services x 10 into an empty kernel). Medians of several runs.

    .venv/bin/python bench/plan_bench.py [--runs 7]
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable

from lvs_api.compiler import compile_service
from lvs_api.ipvs import DestConfig, DestKey, Family, Protocol, ServiceConfig, ServiceKey, VirtualServer
from lvs_api.models import ResolvedMember, VirtualServiceSpec
from lvs_api.planner import Plan, plan

SERVICES = 10_000
MEMBERS = 10


def build_table(services: int, members: int) -> dict[ServiceKey, VirtualServer]:
    """services x members NAT destinations, as the compiler would produce them."""
    table: dict[ServiceKey, VirtualServer] = {}
    for i in range(services):
        vip = f"10.{i // 65536 % 256}.{i // 256 % 256}.{i % 256}"
        dests = {
            DestKey(Family.INET, f"10.{100 + i // 65536 % 100}.{i // 256 % 256}.{m + 1}", 8080): DestConfig(
                weight=1
            )
            for m in range(members)
        }
        table[ServiceKey(Family.INET, Protocol.TCP, vip, 80)] = VirtualServer(ServiceConfig("wlc"), dests)
    return table


def as_dumped(table: dict[ServiceKey, VirtualServer]) -> dict[ServiceKey, VirtualServer]:
    """The same table rebuilt from scratch, as a kernel dump yields it (equal values, new objects)."""
    return {
        ServiceKey(*key): VirtualServer(
            ServiceConfig(*server.config), {DestKey(*d): DestConfig(*c) for d, c in server.dests.items()}
        )
        for key, server in table.items()
    }


def median_seconds(runs: int, action: Callable[[], Plan]) -> tuple[float, Plan]:
    timings = []
    result = action()
    for _ in range(runs):
        started = time.perf_counter()
        result = action()
        timings.append(time.perf_counter() - started)
    return statistics.median(timings), result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--runs", type=int, default=7)
    runs = parser.parse_args().runs

    previous = build_table(SERVICES, MEMBERS)  # what was planned and applied last time
    dumped = as_dumped(previous)  # the kernel's table read back by a dump: equal values, new objects
    owned = frozenset(dumped)
    desired = dict(previous)  # the compiler's output shares unchanged services with the last one
    changed = list(desired)[SERVICES // 2]
    server = desired[changed]
    first = next(iter(server.dests))
    desired[changed] = VirtualServer(server.config, {**server.dests, first: DestConfig(weight=0)})

    full_s, full = median_seconds(runs, lambda: plan(desired, dumped, owned))
    carried_s, carried = median_seconds(runs, lambda: plan(desired, previous, owned))
    inc_s, inc = median_seconds(runs, lambda: plan(desired, dumped, owned, only=[changed]))
    noop_s, noop = median_seconds(runs, lambda: plan(previous, dumped, owned))
    cold_s, cold = median_seconds(runs, lambda: plan(desired, {}, frozenset()))

    spec = VirtualServiceSpec.model_validate(
        {"vip": "203.0.113.10", "ports": [{"port": 80}], "poolRef": {"name": "p"}}
    )
    members = [ResolvedMember(address=f"198.51.100.{m + 1}") for m in range(MEMBERS)]
    compile_timings = []
    for _ in range(runs):
        started = time.perf_counter()
        for _ in range(100):
            compile_service(spec, members)
        compile_timings.append((time.perf_counter() - started) / 100)

    destinations = sum(len(s.dests) for s in desired.values())
    kinds = [op.kind.value for op in full]
    compile_us = statistics.median(compile_timings) * 1e6
    rows = [
        (
            "one member change, full plan vs dumped table",
            f"{full_s * 1e3:8.2f} ms",
            f"{len(full)} op(s) {kinds}",
        ),
        (
            "one member change, full plan vs carried-over table",
            f"{carried_s * 1e3:8.2f} ms",
            f"{len(carried)} op(s)",
        ),
        ("one member change, plan(only=[changed key])", f"{inc_s * 1e3:8.3f} ms", f"{len(inc)} op(s)"),
        ("nothing changed, full plan vs dumped table", f"{noop_s * 1e3:8.2f} ms", f"{len(noop)} op(s)"),
        (
            f"cold plan, {destinations:,} destinations, empty kernel",
            f"{cold_s * 1e3:8.1f} ms",
            f"{len(cold):,} ops",
        ),
        (f"compile one VirtualService ({MEMBERS} members, 1 port)", f"{compile_us:8.1f} us", ""),
    ]
    print(f"plan_bench: {SERVICES:,} services x {MEMBERS} members, median of {runs} runs")
    for label, figure, detail in rows:
        print(f"  {label:<52} {figure}  {detail}".rstrip())


if __name__ == "__main__":
    main()
