"""Guest backends side by side: boot time and a realistic kernel-test job, for each backend available.

    python bench/guest_bench.py                  # every backend that can start here, 3 boots each
    python bench/guest_bench.py --backend uml --boots 5
    python bench/guest_bench.py --suite          # also time `pytest tests/kernel/test_guest_smoke.py`

The job (run inside each guest as `python bench/guest_bench.py --inner`): start the venv's python, import
pyroute2 and pytest, build a topology (client, director, 2 real servers on a bridge), 100 IPVS services
with 2 destinations each through pyroute2 (add, dump, delete: 500 netlink operations), 100 HTTP requests
through a NAT VIP, and 20 fork+exec of /bin/true. Prints one table; figures are wall seconds.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PHASES = ("python_start", "imports", "topology", "ipvs_500_ops", "http_100", "fork_exec_20", "job_total")


def inner() -> None:
    """Inside the guest: time each phase of the job and print them as one JSON line."""
    started = time.time()
    launched = float(os.environ.get("BENCH_LAUNCHED", started))
    figures = {"python_start": started - launched}

    mark = time.perf_counter()
    import socket

    import pytest  # noqa: F401  (the suite imports it: part of the realistic cost)
    from lvs_guest.topology import Topology
    from pyroute2 import IPVS, IPVSDest, IPVSService

    figures["imports"] = time.perf_counter() - mark

    mark = time.perf_counter()
    topo = Topology(directors=1, real_servers=2, prefix="bench").build()
    figures["topology"] = time.perf_counter() - mark
    try:
        director = topo.directors[0]
        mark = time.perf_counter()
        with director.entered():
            ipvs = IPVS()
        with ipvs:
            services = []
            for index in range(100):
                service = IPVSService(
                    addr=f"203.0.113.{100 + index}", port=80, protocol=socket.IPPROTO_TCP, sched_name="rr"
                )
                ipvs.service("add", service=service)
                for rs in topo.real_servers:
                    ipvs.dest(
                        "add", service=service, dest=IPVSDest(addr=str(rs.ipv4), port=8080, fwd_method=0)
                    )
                services.append(service)
            dumped = len(list(ipvs.service("dump")))
            for service in services:
                ipvs.service("del", service=service)
        assert dumped == 100, dumped
        figures["ipvs_500_ops"] = time.perf_counter() - mark

        vip = topo.vip(0)
        topo.add_vip(vip)
        topo.serve_http(8080)
        with director.entered():
            ipvs = IPVS()
        with ipvs:
            service = IPVSService(addr=str(vip), port=80, protocol=socket.IPPROTO_TCP, sched_name="rr")
            ipvs.service("add", service=service)
            for rs in topo.real_servers:
                ipvs.dest("add", service=service, dest=IPVSDest(addr=str(rs.ipv4), port=8080, fwd_method=0))
        mark = time.perf_counter()
        names = topo.client.http_get(vip, 80, count=100)
        figures["http_100"] = time.perf_counter() - mark
        assert sorted(set(names)) == ["rs1", "rs2"], names
    finally:
        topo.close()

    mark = time.perf_counter()
    for _ in range(20):
        subprocess.run(["/bin/true"], check=True)
    figures["fork_exec_20"] = time.perf_counter() - mark
    figures["job_total"] = time.time() - launched
    print("BENCH " + json.dumps(figures), flush=True)


def _boot(backend_name: str) -> tuple[float, float]:
    from lvs_guest import run_in_guest, select_backend

    result = run_in_guest("true", backend=select_backend(backend_name), timeout=300).raise_for_guest_failure()
    if result.exit_code != 0 or result.boot_seconds is None:
        raise RuntimeError(f"{backend_name}: `true` failed: {result.output}")
    return result.boot_seconds, result.total_seconds


def _job(backend_name: str) -> dict[str, float]:
    from lvs_guest import run_in_guest, select_backend

    command = (
        f"BENCH_LAUNCHED=$EPOCHREALTIME exec {sys.executable} {ROOT / 'bench' / 'guest_bench.py'} --inner"
    )
    result = run_in_guest(command, backend=select_backend(backend_name), timeout=900, cwd=ROOT)
    result.raise_for_guest_failure()
    for line in result.output.splitlines():
        if line.startswith("BENCH "):
            figures: dict[str, float] = json.loads(line.removeprefix("BENCH "))
            figures["guest_total"] = result.total_seconds
            return figures
    raise RuntimeError(
        f"{backend_name}: the job printed no figures (exit {result.exit_code}):\n{result.output}"
    )


def _suite(backend_name: str) -> float:
    mark = time.perf_counter()
    done = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "tests/kernel/test_guest_smoke.py"],
        cwd=ROOT, env={**os.environ, "LVS_GUEST_BACKEND": backend_name}, capture_output=True, text=True,
        check=False,
    )  # fmt: skip
    if done.returncode != 0:
        raise RuntimeError(f"{backend_name}: smoke suite failed:\n{done.stdout[-3000:]}")
    return time.perf_counter() - mark


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--inner", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--backend", action="append", choices=("uml", "qemu"), help="default: both")
    parser.add_argument("--boots", type=int, default=3, help="boots of `true` per backend (median shown)")
    parser.add_argument("--suite", action="store_true", help="also time the smoke test suite per backend")
    args = parser.parse_args()
    if args.inner:
        inner()
        return 0

    from lvs_guest import GuestUnavailable, select_backend

    rows: dict[str, dict[str, float]] = {}
    for name in args.backend or ["uml", "qemu"]:
        try:
            backend = select_backend(name)
            backend.prepare()
        except GuestUnavailable as error:
            print(f"{name}: not available here: {error}", file=sys.stderr)
            continue
        boots = [_boot(name) for _ in range(args.boots)]
        row = {
            "boot (to job start)": statistics.median(b for b, _ in boots),
            "`true` end to end": statistics.median(t for _, t in boots),
        }
        job = _job(name)
        row |= {f"job: {phase}": job[phase] for phase in PHASES}
        row["job: whole guest run"] = job["guest_total"]
        if args.suite:
            row["smoke suite (host pytest)"] = _suite(name)
        rows[name] = row
        print(f"{backend.describe()}: done", file=sys.stderr)
    if not rows:
        print("no guest backend can start on this machine", file=sys.stderr)
        return 1
    names = list(rows)
    print(f"{'seconds (wall)':<32}" + "".join(f"{n:>12}" for n in names))
    for label in rows[names[0]]:
        print(f"{label:<32}" + "".join(f"{rows[n][label]:>12.2f}" for n in names))
    return 0


if __name__ == "__main__":
    sys.exit(main())
