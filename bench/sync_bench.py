"""Full IPVS sync through our batched netlink codec, side by side with ``ipvsadm --restore``.

Runs inside the kernel guest, as root, with ``ip_vs`` loaded:

    python -m lvs_guest run --timeout 900 -- .venv/bin/python bench/sync_bench.py
    python -m lvs_guest run -- .venv/bin/python bench/sync_bench.py --services 1000   # quick

What it measures, in one guest run (10,000 TCP services x 10 NAT destinations by default):
- full sync into an empty kernel: ``IpvsNetlink`` (dump, plan, apply in batches of 1,000) vs
  ``ipvsadm -R`` of the same table. Each goes into a fresh network namespace of its own: deleted
  destinations linger on a per-namespace kernel trash list that every add scans, so a table that was just
  cleared would make the second run much slower (DESIGN.md section 8). Nothing is ever cleared here.
- a full dump: ``IpvsNetlink.dump()`` vs ``ipvsadm -Sn``, on the same table.
- one member change at that size: one EDIT_DEST, its netlink writes and wall time (median of 21).
- the resident memory of a fresh Python process holding the dumped table (agent imports included).

Prints a table with each figure's ratio to ipvsadm's and the goals (DESIGN.md section 6); exits non-zero
when the kernel tables disagree (a wrong sync is not a fast sync). Goals are reported, not enforced.
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import ParamSpec, TypeVar

from lvs_agent.netlink import IpvsNetlink
from lvs_api.ipvs import (
    DestConfig,
    DestKey,
    Family,
    ForwardMethod,
    Op,
    OpKind,
    Protocol,
    ServiceConfig,
    ServiceKey,
    Table,
    VirtualServer,
)

P = ParamSpec("P")
R = TypeVar("R")

CHANGE_REPEATS = 21
NETNS_NETLINK = "lvsbench-netlink"
NETNS_IPVSADM = "lvsbench-ipvsadm"


def desired_table(services: int, dests: int) -> Table:
    """``services`` TCP services on documentation addresses (250 VIPs x ports), ``dests`` NAT members each."""
    table: dict[ServiceKey, VirtualServer] = {}
    for i in range(services):
        key = ServiceKey(Family.INET, Protocol.TCP, f"203.0.113.{1 + i % 250}", 1000 + i // 250)
        members = {
            DestKey(Family.INET, f"198.51.100.{1 + j}", 8000 + i % 1000): DestConfig(
                ForwardMethod.MASQ, 1 + j % 3
            )
            for j in range(dests)
        }
        table[key] = VirtualServer(ServiceConfig("wlc", 0, 0, 32), members)
    return table


def ops_for_empty_kernel(table: Table) -> list[Op]:
    """What the planner emits for an empty kernel: each service, then its members."""
    ops: list[Op] = []
    for key, server in table.items():
        ops.append(Op(OpKind.ADD_SERVICE, key, server.config))
        ops.extend(Op(OpKind.ADD_DEST, key, None, dest, config) for dest, config in server.dests.items())
    return ops


def ipvsadm_rules(table: Table) -> str:
    forward = {ForwardMethod.MASQ: "-m", ForwardMethod.ROUTE: "-g", ForwardMethod.TUNNEL: "-i"}
    lines: list[str] = []
    for key, server in table.items():
        service = f"-t {key.address}:{key.port}"
        lines.append(f"-A {service} -s {server.config.scheduler}")
        lines.extend(
            f"-a {service} -r {dest.address}:{dest.port} {forward[config.forward]} -w {config.weight}"
            for dest, config in server.dests.items()
        )
    return "\n".join(lines) + "\n"


def sh(*argv: str, stdin: str | None = None) -> str:
    return subprocess.run(argv, input=stdin, capture_output=True, text=True, check=True).stdout


@contextmanager
def fresh_netns(name: str) -> Iterator[str]:
    subprocess.run(["ip", "netns", "del", name], capture_output=True, check=False)
    sh("ip", "netns", "add", name)
    sh("ip", "-n", name, "link", "set", "lo", "up")  # destination adds fail until lo is up
    try:
        yield name
    finally:
        subprocess.run(["ip", "netns", "del", name], capture_output=True, check=False)


def timed(fn: Callable[P, R], *args: P.args, **kwargs: P.kwargs) -> tuple[float, R]:
    start = time.perf_counter()
    result = fn(*args, **kwargs)
    return time.perf_counter() - start, result


def rss_holding_dump(netns: str) -> tuple[int, int]:
    """RSS (bytes) of a fresh Python process that imported the agent's netlink package, before and after
    it dumped the table (and keeps holding it)."""
    code = (
        "import gc\n"
        "from lvs_agent.netlink import IpvsNetlink\n"
        "def rss():\n"
        "    return int([l for l in open('/proc/self/status') if l.startswith('VmRSS')][0].split()[1])\n"
        f"k = IpvsNetlink(netns={netns!r})\n"
        "gc.collect(); before = rss()\n"
        "table = k.dump(); k.close(); gc.collect()\n"
        "print(before * 1024, rss() * 1024)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    before, after = out.split()
    return int(before), int(after)


def normalised_rules(text: str) -> list[str]:
    return sorted(line.strip() for line in text.splitlines() if line.strip())


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--services", type=int, default=10_000)
    parser.add_argument("--dests", type=int, default=10)
    parser.add_argument("--batch-size", type=int, default=1000)
    parser.add_argument("--json", action="store_true", help="also print the figures as one JSON line")
    args = parser.parse_args()
    if os.geteuid() != 0:
        print("sync_bench: needs root inside the kernel guest (see the module docstring)", file=sys.stderr)
        return 2

    table = desired_table(args.services, args.dests)
    entries = len(table) + sum(len(v.dests) for v in table.values())
    rules = ipvsadm_rules(table)
    figures: dict[str, float] = {}
    ok = True
    print(
        f"sync_bench: {len(table)} services x {args.dests} destinations = {entries} objects,"
        f" kernel {os.uname().release}"
    )

    with fresh_netns(NETNS_IPVSADM), fresh_netns(NETNS_NETLINK):
        # -- full sync, ipvsadm --restore
        figures["ipvsadm_restore_s"], _ = timed(
            sh, "ip", "netns", "exec", NETNS_IPVSADM, "ipvsadm", "-R", stdin=rules
        )

        # -- full sync, ours: read the (empty) kernel, plan, apply in batches
        kernel = IpvsNetlink(netns=NETNS_NETLINK, batch_size=args.batch_size)
        gc.collect()
        start = time.perf_counter()
        observed = kernel.dump()
        ops = ops_for_empty_kernel({k: v for k, v in table.items() if k not in observed})
        result = kernel.apply(ops)
        figures["netlink_sync_s"] = time.perf_counter() - start
        figures["netlink_requests"] = result.sent
        if not result.ok:
            print(
                f"sync_bench: {len(result.failures)} failures, first: {result.failures[:3]}", file=sys.stderr
            )
            ok = False

        # -- full dump, ours vs ipvsadm -Sn (same namespace, same table)
        figures["ipvsadm_save_s"], saved = timed(sh, "ip", "netns", "exec", NETNS_NETLINK, "ipvsadm", "-Sn")
        figures["netlink_dump_s"], dumped = timed(kernel.dump)
        if dumped != table:
            print("sync_bench: the dump differs from the table that was applied", file=sys.stderr)
            ok = False
        reference = sh("ip", "netns", "exec", NETNS_IPVSADM, "ipvsadm", "-Sn")
        if normalised_rules(reference) != normalised_rules(saved):
            print("sync_bench: ipvsadm -Sn differs between the two namespaces", file=sys.stderr)
            ok = False

        # -- one member change at that size: one EDIT_DEST, repeated to see the spread
        service = next(reversed(list(table)))
        dest, config = next(iter(table[service].dests.items()))
        times_ms: list[float] = []
        writes_before = kernel.writes
        for i in range(CHANGE_REPEATS):
            change = [
                Op(OpKind.EDIT_DEST, service, None, dest, config._replace(weight=config.weight + 1 + i % 2))
            ]
            elapsed, change_result = timed(kernel.apply, change)
            times_ms.append(elapsed * 1000)
            ok = ok and change_result.ok
        figures["member_change_ms"] = statistics.median(times_ms)
        figures["member_change_max_ms"] = max(times_ms)
        figures["member_change_writes"] = (kernel.writes - writes_before) / CHANGE_REPEATS
        kernel.close()

        rss_before, rss_after = rss_holding_dump(NETNS_NETLINK)
        figures["rss_mb_holding_dump"] = rss_after / 1e6
        figures["rss_mb_before_dump"] = rss_before / 1e6
        figures["table_bytes_per_entry"] = (rss_after - rss_before) / entries

    ratio_sync = figures["netlink_sync_s"] / figures["ipvsadm_restore_s"]
    ratio_dump = figures["netlink_dump_s"] / figures["ipvsadm_save_s"]
    rows = [
        ("full sync, ipvsadm -R", f"{figures['ipvsadm_restore_s']:.2f} s", "1.00x", ""),
        (
            "full sync, IpvsNetlink",
            f"{figures['netlink_sync_s']:.2f} s",
            f"{ratio_sync:.3f}x",
            "goal <= 0.25x",
        ),
        ("full dump, ipvsadm -Sn", f"{figures['ipvsadm_save_s']:.2f} s", "1.00x", ""),
        ("full dump, IpvsNetlink.dump()", f"{figures['netlink_dump_s']:.2f} s", f"{ratio_dump:.2f}x", ""),
        (
            f"one member change (median of {CHANGE_REPEATS})",
            f"{figures['member_change_ms']:.2f} ms",
            f"{figures['member_change_writes']:.0f} netlink write(s)",
            "goal 1 op, < 20 ms",
        ),
        ("  slowest of them", f"{figures['member_change_max_ms']:.2f} ms", "", ""),
        ("RSS holding the dumped table", f"{figures['rss_mb_holding_dump']:.1f} MB", "", "goal < 100 MB"),
        (
            "  of which the table",
            f"{figures['rss_mb_holding_dump'] - figures['rss_mb_before_dump']:.1f} MB",
            f"{figures['table_bytes_per_entry']:.0f} B per entry",
            "",
        ),
    ]
    print(f"{'figure':38} {'value':>12}  {'vs ipvsadm':>22}  goal")
    for name, value, ratio, goal in rows:
        print(f"{name:38} {value:>12}  {ratio:>22}  {goal}")
    figures["sync_ratio"] = ratio_sync
    figures["dump_ratio"] = ratio_dump
    if args.json:
        print(json.dumps({"entries": entries, **figures}))
    if not ok:
        print("sync_bench: FAILED (tables disagree or operations failed)", file=sys.stderr)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
