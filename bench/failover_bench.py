"""Client-observed gap when the active director dies: lvs-operator's agents side by side with keepalived.

Run on the host (root); it boots the kernel guest and runs itself inside:

    .venv/bin/python bench/failover_bench.py                  # 10 runs per setup
    .venv/bin/python bench/failover_bench.py --runs 3 --no-keepalived
    .venv/bin/python bench/failover_bench.py --sigterm         # a graceful stop instead of a crash

Each run, in a fresh topology of network namespaces (lvs_guest.topology: one client, two directors, two
DirectRouting real servers on one bridge): both directors are started, the test waits until exactly one
holds the VIP, a client sends HTTP requests through the VIP in a loop (one connection each, 100 ms
timeout, so a lost SYN is retried at once instead of after TCP's 1 s retransmission; one request every
~10 ms, since the guest has one CPU and a busy client would starve the directors), then the active
director "crashes": its link goes down (its traffic and heartbeats stop at that instant) and its process
is killed with SIGKILL. The gap is the longest time between two successful answers around the crash.

``--sigterm``: the active director is stopped gracefully instead (a rolling update, ``kubectl delete
pod``): its process gets SIGTERM, its link stays up. The agent hands its group over (Lease released, VIP
off lvs0, a "leaving" heartbeat, so the peer takes over without waiting for silence); keepalived sends a
priority-0 advertisement, so its backup takes over without waiting for the master-down timer.

Setups:
- ``lvs-operator``: two ``python -m lvs_agent`` (file Lease store, heartbeats 50 ms, dead after 3 missed).
- ``keepalived defaults``: VRRPv2, advert_int 1 (IPVS programmed with ipvsadm on both directors).
- ``keepalived matched``: VRRPv3, advert_int 0.05 (our heartbeat interval).
keepalived runs only if installed (``apt-get install keepalived``); its absence is printed, not hidden.
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parent.parent


def percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    index = min(len(ordered) - 1, max(0, round(fraction * (len(ordered) - 1))))
    return ordered[index]


# --- inside the guest -----------------------------------------------------------------------------------


def measure(setup: str, run: int, args: argparse.Namespace) -> float:
    from lvs_guest.client import Client
    from lvs_guest.topology import Forwarding, Topology

    topo = Topology(directors=2, real_servers=2, clients=1, prefix=f"fb{run}")
    topo.build()
    workdir = Path(tempfile.mkdtemp(prefix=f"failover-{run}-"))
    processes: list[subprocess.Popen[bytes]] = []
    vip = str(topo.vip(0))
    try:
        topo.configure_forwarding(Forwarding.DR, [topo.vip(0)])
        topo.serve_http(80)
        if setup == "lvs-operator":
            holds = start_agents(topo, workdir, vip, processes, args)
        else:
            holds = start_keepalived(topo, workdir, vip, processes, matched=setup.endswith("matched"))
        ready_mark = "VIP group" if setup == "lvs-operator" else "Entering"
        deadline = time.monotonic() + 60
        while sum(holds(director) for director in topo.directors) != 1 or not all(
            ready_mark in log.read_text(errors="replace") for log in workdir.glob("*.log")
        ):
            if time.monotonic() > deadline:
                raise RuntimeError(f"{setup}: no single active director after 60 s; logs in {workdir}")
            time.sleep(0.05)
        time.sleep(args.settle)
        holders: list[int] = []
        while len(holders) != 1:  # a takeover may be under way (the guest's one CPU can starve a director)
            holders = [index for index, director in enumerate(topo.directors) if holds(director)]
        [active_index] = holders
        if setup == "lvs-operator":
            term = json.loads(next((workdir / "leases").glob("*.json")).read_text())["transitions"]
            if term:
                print(f"  note: {term} takeover(s) before the crash (a starved director was declared dead)")
        client = Client(topo.clients[0], timeout=0.1)
        results: list[tuple[float, bool]] = []
        stop = threading.Event()

        def load() -> None:
            while not stop.is_set():
                try:
                    client.http_get_one(vip, 80)
                    results.append((time.monotonic(), True))
                except OSError:
                    results.append((time.monotonic(), False))
                time.sleep(0.01)  # ~10 ms resolution, and CPU left to the directors

        thread = threading.Thread(target=load, daemon=True)
        thread.start()
        time.sleep(0.5)
        active = topo.directors[active_index]
        if args.sigterm:
            crashed_at, crashed_wall = time.monotonic(), time.time()  # "crash": the stop, here
            processes[active_index].send_signal(signal.SIGTERM)
        else:
            with active.iproute() as ipr:  # netlink, not a forked `ip`: a fork takes up to a second in UML
                ipr.link("set", index=ipr.link_lookup(ifname="eth0")[0], state="down")
                crashed_at = time.monotonic()  # the link is down now: no packet in or out of this director
                crashed_wall = time.time()
        if args.verbose:
            stamp = time.strftime("%H:%M:%S", time.localtime(crashed_wall))
            print(f"{'stop' if args.sigterm else 'crash'} at {stamp}.{int(crashed_wall * 1000) % 1000:03d}")
        if not args.sigterm:
            processes[active_index].send_signal(signal.SIGKILL)
        deadline = time.monotonic() + 30
        while len([t for t, ok in results if ok and t > crashed_at]) < 20 and time.monotonic() < deadline:
            time.sleep(0.05)
        stop.set()
        thread.join(timeout=10)
        successes = [t for t, ok in results if ok and t >= crashed_at - 0.5]
        if args.verbose:
            timeline = [(round(t - crashed_at, 3), ok) for t, ok in results if t >= crashed_at - 0.01]
            print("timeline (s after crash, ok):", timeline[:30])
        if not any(t > crashed_at for t in successes):
            raise RuntimeError(f"{setup}: no traffic after the crash within 30 s; logs in {workdir}")
        if args.sigterm and setup == "lvs-operator":
            processes[active_index].wait(timeout=30)
            old = (workdir / f"agent-{active.name}.log").read_text(errors="replace")
            [peer] = [d for d in topo.directors if d is not active]
            new = (workdir / f"agent-{peer.name}.log").read_text(errors="replace")
            if "stopped: handed over" not in old:
                print(f"  note: {active.name} handed nothing over (it lost the group just before the stop)")
            else:
                off, on = _logged_at(old, "released VIP"), _logged_at(new, "took VIP")
                print(f"  VIP off the old director {(off - crashed_wall) * 1000:.0f} ms after SIGTERM, on "
                      f"the new one {(on - off) * 1000:.0f} ms later (agents' logs)")
        return max(b - a for a, b in itertools.pairwise(successes))
    finally:
        for process in processes:
            if process.poll() is None:
                process.send_signal(signal.SIGKILL)
            process.wait()
        topo.close()
        if args.verbose:
            for log in sorted(workdir.glob("*.log")):
                print(f"--- {log.name}\n{log.read_text(errors='replace')[-3000:]}")
        if not args.keep:
            shutil.rmtree(workdir, ignore_errors=True)


def _logged_at(log: str, marker: str) -> float:
    """Wall time of the last agent log line containing ``marker`` (the logging module's asctime)."""
    import datetime

    line = [line for line in log.splitlines() if marker in line][-1]
    return datetime.datetime.strptime(line[:23], "%Y-%m-%d %H:%M:%S,%f").timestamp()


def _holds_on(device: str, vip: str) -> Callable[..., bool]:
    """Whether a director has the VIP on ``device``, read over netlink: never fork while measuring. Under
    User-Mode Linux a fork stalls the whole guest for tens of milliseconds, long enough to starve the
    directors' heartbeats."""

    def holds(director: object) -> bool:
        with director.iproute() as ipr:  # type: ignore[attr-defined]
            found = ipr.link_lookup(ifname=device)
            if not found:
                return False
            return any(message.get_attr("IFA_ADDRESS") == vip for message in ipr.get_addr(index=found[0]))

    return holds


def start_agents(topo: object, workdir: Path, vip: str, processes: list[subprocess.Popen[bytes]],
                 args: argparse.Namespace) -> Callable[..., bool]:
    directors = topo.directors  # type: ignore[attr-defined]
    real_servers = topo.real_servers  # type: ignore[attr-defined]
    desired = workdir / "desired.yaml"
    desired.write_text(yaml.safe_dump({
        "apiVersion": "lvs.io/v1alpha1", "kind": "ResolvedService",
        "metadata": {"name": "web", "namespace": "bench"},
        "spec": {"acceptedGeneration": 1, "virtualServiceUid": "bench",
                 "service": {"vip": vip, "ports": [{"port": 80}], "poolRef": {"name": "pool"},
                             "scheduler": {"name": "rr"}, "forwarding": "DirectRouting",
                             "healthCheck": {"type": "None"}},
                 "members": [{"address": str(rs.ipv4)} for rs in real_servers]},
    }))
    secret = workdir / "secret"
    secret.write_text("bench secret\n")
    for director in directors:
        argv = [sys.executable, "-m", "lvs_agent", "--node", director.name, "--source", f"file:{desired}",
                "--lease", f"file:{workdir / 'leases'}", "--no-report", "--uplink", "eth0",
                "--record", str(workdir / f"owned-{director.name}.json"), "--secret-file", str(secret),
                "--heartbeat-bind", str(director.ipv4), "--heartbeat-interval", str(args.interval),
                "--missed", str(args.missed)]
        argv += [f"--peer={peer.name}={peer.ipv4}" for peer in directors if peer is not director]
        log = open(workdir / f"agent-{director.name}.log", "wb")  # noqa: SIM115 - the child writes it
        processes.append(director.popen(argv, stdout=log, stderr=subprocess.STDOUT))
    return _holds_on("lvs0", vip)


KEEPALIVED_CONF = """global_defs {{
    router_id {name}
    vrrp_version {version}
    script_user root
}}
vrrp_instance VI_1 {{
    state BACKUP
    interface eth0
    virtual_router_id 51
    priority {priority}
    advert_int {advert_int}
    virtual_ipaddress {{
        {vip}/32 dev eth0
    }}
}}
"""


def start_keepalived(topo: object, workdir: Path, vip: str, processes: list[subprocess.Popen[bytes]],
                     *, matched: bool) -> Callable[..., bool]:
    directors = topo.directors  # type: ignore[attr-defined]
    real_servers = topo.real_servers  # type: ignore[attr-defined]
    for index, director in enumerate(directors):
        director.run(["ipvsadm", "-A", "-t", f"{vip}:80", "-s", "rr"])
        for rs in real_servers:
            director.run(["ipvsadm", "-a", "-t", f"{vip}:80", "-r", f"{rs.ipv4}:80", "-g", "-w", "1"])
        conf = workdir / f"keepalived-{director.name}.conf"
        conf.write_text(KEEPALIVED_CONF.format(
            name=director.name, version=3 if matched else 2, priority=100 - index,
            advert_int="0.05" if matched else "1", vip=vip))
        argv = ["keepalived", "--dont-fork", "--log-console", "--log-detail", "--vrrp", "-f", str(conf),
                "-p", str(workdir / f"{director.name}.pid"), "-r", str(workdir / f"{director.name}.vrrp.pid"),
                "-c", str(workdir / f"{director.name}.checkers.pid")]
        log = open(workdir / f"keepalived-{director.name}.log", "wb")  # noqa: SIM115 - the child writes it
        processes.append(director.popen(argv, stdout=log, stderr=subprocess.STDOUT))
    return _holds_on("eth0", vip)


def inside(args: argparse.Namespace) -> int:
    setups = ["lvs-operator"]
    missing = []
    if args.keepalived:
        if shutil.which("keepalived"):
            setups += ["keepalived defaults", "keepalived matched"]
        else:
            missing.append("keepalived is not installed (apt-get install keepalived): comparison skipped")
    if args.only:
        setups = [args.only]
    gaps: dict[str, list[float]] = {setup: [] for setup in setups}
    counter = itertools.count()
    for _ in range(args.runs):
        for setup in setups:
            gap = measure(setup, next(counter), args)
            gaps[setup].append(gap)
            print(f"  {setup:22s} run {len(gaps[setup]):2d}: gap {gap * 1000:7.0f} ms", flush=True)
    print()
    what = "is stopped with SIGTERM (graceful handover)" if args.sigterm else "dies"
    print(f"Client-observed gap after the active director {what} ({args.runs} runs each, in the guest)")
    print(f"{'setup':22s} {'timers':34s} {'p50':>8s} {'p99':>8s} {'max':>8s}")
    timers = {
        "lvs-operator": f"heartbeat {args.interval * 1000:.0f} ms, dead after {args.missed}",
        "keepalived defaults": "VRRPv2 advert_int 1 s",
        "keepalived matched": "VRRPv3 advert_int 50 ms",
    }
    for setup, values in gaps.items():
        print(f"{setup:22s} {timers[setup]:34s} {percentile(values, 0.5) * 1000:6.0f}ms "
              f"{percentile(values, 0.99) * 1000:6.0f}ms {max(values) * 1000:6.0f}ms")
    if not args.sigterm:
        print("goal (DESIGN.md section 6): p99 < 300 ms with our defaults; no worse than keepalived at the "
              "same interval")
    print("the client's 100 ms timeout sets the granularity: a request sent into the switch waits it out")
    for line in missing:
        print(f"NOT RUN: {line}")
    return 0


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=10)
    parser.add_argument("--interval", type=float, default=0.05, help="agent heartbeat interval (s)")
    parser.add_argument("--missed", type=int, default=None,
                        help="missed heartbeats before a peer is dead (default 3; 10 with --sigterm, "
                             "where no detection is involved and the guest's one CPU, shared by the client "
                             "and both directors, would otherwise cause needless takeovers before the stop)")
    parser.add_argument("--settle", type=float, default=1.0, help="seconds between election and crash")
    parser.add_argument("--no-keepalived", dest="keepalived", action="store_false")
    parser.add_argument("--keep", action="store_true", help="keep the per-run work directories")
    parser.add_argument("--verbose", action="store_true", help="print the directors' logs of each run")
    parser.add_argument("--only", choices=["lvs-operator", "keepalived defaults", "keepalived matched"])
    parser.add_argument("--sigterm", action="store_true",
                        help="stop the active director gracefully (SIGTERM) instead of crashing it")
    args = parser.parse_args()
    if args.missed is None:
        args.missed = 10 if args.sigterm else 3
    if os.environ.get("LVS_IN_GUEST") == "1":
        return inside(args)
    command = [sys.executable, str(Path(__file__).resolve()), *sys.argv[1:]]
    return subprocess.call([sys.executable, "-m", "lvs_guest", "run", "--timeout", "1800",
                            "--module", "ip_vs", "--module", "ip_vs_rr", "--", *command], cwd=ROOT)


if __name__ == "__main__":
    sys.exit(main())
