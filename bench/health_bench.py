"""Health-check engine benchmark: checks per second per core, detection latency, CPU per 1,000 members.

Listeners run in a child process on 127.0.0.1 (so the figures count only the engine's CPU); the engine
runs here with the real :class:`NetworkProber`. CPU is this process's user+system time from
``resource.getrusage``; "per core" figures are checks divided by CPU seconds.

    .venv/bin/python bench/health_bench.py            # everything, about a minute
    .venv/bin/python bench/health_bench.py --quick    # shorter windows
    .venv/bin/python bench/health_bench.py --memory 100000        # engine memory only (fresh process)
    .venv/bin/python bench/health_bench.py --memory-trace 100000  # where it goes (tracemalloc)
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import gc
import json
import logging
import os
import resource
import selectors
import socket
import ssl
import statistics
import struct
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from lvs_agent.health import (
    CheckSpec,
    DnsProbe,
    HealthChange,
    HealthEngine,
    HttpProbe,
    NetworkProber,
    SubscriptionRequest,
    TcpProbe,
    Timing,
)

LOOPBACK = "127.0.0.1"
HTTP_RESPONSE = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok"


# --- listener child process ----------------------------------------------------------------------------


def serve_dns(count: int) -> None:
    """Child process: ``count`` UDP sockets answering every DNS query NOERROR with one A record."""
    selector = selectors.DefaultSelector()
    sockets = []
    for _ in range(count):
        sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        sock.bind((LOOPBACK, 0))
        sock.setblocking(False)
        selector.register(sock, selectors.EVENT_READ)
        sockets.append(sock)
    print(json.dumps([sock.getsockname()[1] for sock in sockets]), flush=True)
    answer = b"\xc0\x0c" + struct.pack("!HHIH", 1, 1, 30, 4) + socket.inet_aton("192.0.2.53")
    while True:
        for key, _ in selector.select():
            responder = key.fileobj
            assert isinstance(responder, socket.socket)
            while True:
                try:
                    query, peer = responder.recvfrom(512)
                except BlockingIOError:
                    break
                header = query[:2] + struct.pack("!HHHHH", 0x8180, 1, 1, 0, 0)
                with contextlib.suppress(OSError):
                    responder.sendto(header + query[12:] + answer, peer)


def serve_https(count: int) -> None:
    """Child process: ``count`` TLS listeners (a self-signed certificate made with openssl) answering 200."""
    directory = Path(tempfile.mkdtemp(prefix="health-bench-tls-"))
    cert, key = directory / "cert.pem", directory / "key.pem"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
         "-keyout", str(key), "-out", str(cert), "-days", "1", "-subj", "/CN=member.test"],
        check=True, capture_output=True,
    )  # fmt: skip
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(cert, key)

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        with contextlib.suppress(Exception):
            await reader.readuntil(b"\r\n\r\n")
            writer.write(HTTP_RESPONSE)
            await writer.drain()
        writer.close()

    async def main() -> None:
        servers = [await asyncio.start_server(handle, LOOPBACK, 0, ssl=context) for _ in range(count)]
        print(json.dumps([server.sockets[0].getsockname()[1] for server in servers]), flush=True)
        await asyncio.Event().wait()

    asyncio.run(main())


def serve(kind: str, count: int) -> None:
    """Child process: ``count`` listeners; TCP ones accept and close, HTTP ones answer 200 and close."""
    if kind == "dns":
        serve_dns(count)
        return
    if kind == "https":
        serve_https(count)
        return
    selector = selectors.DefaultSelector()
    listeners = []
    for _ in range(count):
        listener = socket.socket()
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind((LOOPBACK, 0))
        listener.listen(4096)
        listener.setblocking(False)
        selector.register(listener, selectors.EVENT_READ, "listen")
        listeners.append(listener)
    print(json.dumps([listener.getsockname()[1] for listener in listeners]), flush=True)
    buffers: dict[socket.socket, bytes] = {}
    while True:
        for key, _ in selector.select():
            sock = key.fileobj
            assert isinstance(sock, socket.socket)
            if key.data == "listen":
                while True:
                    try:
                        conn, _ = sock.accept()
                    except (BlockingIOError, ConnectionError):
                        break
                    if kind == "tcp":
                        conn.close()
                    else:
                        conn.setblocking(False)
                        buffers[conn] = b""
                        selector.register(conn, selectors.EVENT_READ, "conn")
                continue
            try:
                data = sock.recv(4096)
            except (BlockingIOError, ConnectionError):
                data = b""
            request = buffers.get(sock, b"") + data
            if data and b"\r\n\r\n" not in request:
                buffers[sock] = request
                continue
            selector.unregister(sock)
            buffers.pop(sock, None)
            if data:
                with contextlib.suppress(OSError):
                    sock.send(HTTP_RESPONSE)
            sock.close()


@contextlib.contextmanager
def listeners(kind: str, count: int) -> Iterator[list[int]]:
    child = subprocess.Popen(
        [sys.executable, __file__, "--serve", kind, "--count", str(count)], stdout=subprocess.PIPE, text=True
    )
    try:
        assert child.stdout is not None
        yield json.loads(child.stdout.readline())
    finally:
        child.terminate()
        child.wait()


# --- measurements --------------------------------------------------------------------------------------


def cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def softirq_thread_seconds() -> float:
    """CPU time of the ksoftirqd threads (machine-wide): loopback packet work the kernel may defer there
    instead of doing it in the sending process; reported so that no kernel work hides from the figures."""
    ticks = os.sysconf("SC_CLK_TCK")
    total = 0
    for stat in Path("/proc").glob("[0-9]*/stat"):
        with contextlib.suppress(OSError):
            text = stat.read_text()
            if "(ksoftirqd/" in text:
                fields = text.rsplit(")", 1)[1].split()
                total += int(fields[11]) + int(fields[12])
    return total / ticks


@dataclass
class Throughput:
    label: str
    members: int
    interval: float
    wall: float
    checks: int
    failed: int
    cpu: float
    softirq: float

    @property
    def per_second(self) -> float:
        return self.checks / self.wall

    @property
    def per_cpu_second(self) -> float:
        return self.checks / self.cpu if self.cpu else float("inf")

    def line(self) -> str:
        return (
            f"{self.label:<45} members={self.members:>5} interval={self.interval:<6g} "
            f"checks/s={self.per_second:>6.0f} failed={self.failed:>4} cpu={self.cpu / self.wall:>4.0%} "
            f"ksoftirqd={self.softirq / self.wall:>3.0%} checks/cpu-s={self.per_cpu_second:>6.0f}"
        )


async def run_engine(
    label: str, ports: list[int], check: CheckSpec, warmup: float, window: float, *, tls_sessions: int = 1024
) -> Throughput:
    prober = NetworkProber(tls_sessions=tls_sessions)
    engine = HealthEngine(prober, default_active=True)
    for port in ports:
        engine.subscribe("bench", str(port), LOOPBACK, port, check)
    async with engine:
        await asyncio.sleep(warmup)
        checks0, failed0 = engine.probes_completed, engine.probes_failed
        cpu0, softirq0, wall0 = cpu_seconds(), softirq_thread_seconds(), time.monotonic()
        await asyncio.sleep(window)
        checks, failed = engine.probes_completed - checks0, engine.probes_failed - failed0
        cpu, wall = cpu_seconds() - cpu0, time.monotonic() - wall0
        softirq = softirq_thread_seconds() - softirq0
    prober.close()
    if check.probe.kind == "HTTPS":
        sessions = prober.tls_sessions
        resumed, full = (sessions.resumed, sessions.full) if sessions is not None else (0, checks)
        label = f"{label}, {resumed / max(resumed + full, 1):.0%} resumed"
    return Throughput(label, len(ports), check.timing.interval, wall, checks, failed, cpu, softirq)


def https_check(interval: float) -> CheckSpec:
    probe = HttpProbe(path="/healthz", tls=True)
    return CheckSpec(probe, Timing(interval=interval, timeout=2.0, rise=2, fall=2, jitter=0.1))


def dns_check(interval: float) -> CheckSpec:
    probe = DnsProbe("member.example", expect_answers=frozenset({"192.0.2.53"}))
    return CheckSpec(probe, Timing(interval=interval, timeout=1.0, rise=2, fall=2, jitter=0.1))


def tcp_check(interval: float, timeout: float = 1.0, fall: int = 2) -> CheckSpec:
    return CheckSpec(TcpProbe(), Timing(interval=interval, timeout=timeout, rise=2, fall=fall, jitter=0.1))


def http_check(interval: float) -> CheckSpec:
    return CheckSpec(
        HttpProbe(path="/healthz"), Timing(interval=interval, timeout=1.0, rise=2, fall=2, jitter=0.1)
    )


async def detection_latency(members: int, mode: str) -> list[float]:
    """Interval 1 s, fall 2: close (``refused``) or blackhole (``timeout``: SYNs dropped) each member's
    listener at a spread of moments and time until the engine reports it unhealthy."""
    loop = asyncio.get_running_loop()
    servers = []
    for _ in range(members):
        server = await asyncio.start_server(lambda r, w: w.close(), LOOPBACK, 0)
        servers.append(server)
    ports = [server.sockets[0].getsockname()[1] for server in servers]
    down_at: dict[str, float] = {}
    latencies: list[float] = []
    all_down = asyncio.Event()

    def on_change(change: HealthChange) -> None:
        if change.healthy is False and change.member in down_at:
            latencies.append(loop.time() - down_at[change.member])
            if len(latencies) == members:
                all_down.set()

    timeout = 0.5
    prober = NetworkProber()
    engine = HealthEngine(prober, default_active=True, on_change=on_change)
    blackholes: list[socket.socket] = []
    for port in ports:
        engine.subscribe("bench", str(port), LOOPBACK, port, tcp_check(1.0, timeout=timeout, fall=2))
    async with engine:
        await asyncio.sleep(3.0)  # every member healthy (rise 2)
        assert all(engine.health("bench", str(port)) for port in ports), "members not healthy before the test"
        for index, (server, port) in enumerate(zip(servers, ports, strict=True)):
            await asyncio.sleep(1.0 / members * (1 + index % 3))  # spread over the probe phase
            server.close()
            if mode == "timeout":
                blackholes += blackhole(port)
            down_at[str(port)] = loop.time()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(all_down.wait(), 2.0 * 2 + timeout + 2)
    prober.close()
    for sock in blackholes:
        sock.close()
    return latencies


def blackhole(port: int) -> list[socket.socket]:
    """A listener on ``port`` whose accept queue is full: further SYNs are dropped, connects hang."""
    listener = socket.socket()
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    listener.bind((LOOPBACK, port))
    listener.listen(0)
    filler = socket.socket()
    filler.connect((LOOPBACK, port))
    return [listener, filler]


def resident_bytes() -> int:
    return int(Path("/proc/self/statm").read_text().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def memory_requests(count: int) -> list[SubscriptionRequest]:
    """``count`` members, 10 per service (one VIP group each), each its own probe job: the worst case for
    memory (no two members share a probe loop)."""
    check = http_check(2.0)
    return [
        SubscriptionRequest(
            f"ns/svc{index // 10}",
            f"198.51.{index >> 8 & 255}.{index & 255}:{80 + index % 7}",
            f"198.51.{index >> 8 & 255}.{index & 255}",
            80 + index % 7,
            check,
            f"group{index // 10}",
        )
        for index in range(count)
    ]


class IdleProber:
    def probe(self, address: str, port: int, spec: object, timeout: float) -> asyncio.Future[object]:
        raise NotImplementedError  # never started: measured before the first probe is due


def memory_per_subscription(count: int) -> tuple[float, float, int]:
    """RSS growth per subscription for ``count`` members: after ``sync`` (registered), and after
    ``start`` (every probe loop scheduled, none started yet). The requests exist before the first
    reading: their strings belong to the desired state, not to the engine."""
    requests = memory_requests(count)

    async def measure() -> tuple[float, float, int]:
        gc.collect()
        before = resident_bytes()
        engine = HealthEngine(IdleProber(), default_active=True)  # type: ignore[arg-type]
        engine.sync(requests)
        registered = resident_bytes() - before
        await engine.start()  # no await inside: the scheduler's timer has not fired yet
        scheduled = resident_bytes() - before
        jobs = engine.job_count
        await engine.stop()
        return registered / count, scheduled / count, jobs

    return asyncio.run(measure())


def memory_trace(count: int, top: int = 15) -> None:
    """Where the engine's memory goes (tracemalloc, by source line), registered and scheduled."""
    import tracemalloc

    requests = memory_requests(count)

    async def trace() -> None:
        gc.collect()
        tracemalloc.start()
        start = tracemalloc.take_snapshot()
        engine = HealthEngine(IdleProber(), default_active=True)  # type: ignore[arg-type]
        engine.sync(requests)
        await engine.start()
        gc.collect()
        stats = tracemalloc.take_snapshot().compare_to(start, "lineno")
        total = sum(stat.size_diff for stat in stats)
        print(f"tracemalloc: {total / count:.0f} B per subscription in Python objects, scheduled")
        for stat in stats[:top]:
            frame = stat.traceback[0]
            print(f"  {stat.size_diff / count:7.1f} B  {stat.count_diff / count:5.2f} objects  "
                  f"{Path(frame.filename).name}:{frame.lineno}")
        await engine.stop()

    asyncio.run(trace())


def binding_sync_times(services: int, members: int) -> tuple[float, float, float]:
    """HealthBinding.sync over ``services`` ResolvedServices of ``members`` each: first sync, a pass where
    nothing changed, and a pass where one service changed (seconds)."""
    from lvs_agent.health.convert import HealthBinding
    from lvs_api.models import ResolvedService

    def document(index: int, size: int) -> ResolvedService:
        return ResolvedService.model_validate(
            {
                "metadata": {"name": f"svc{index}", "namespace": "bench"},
                "spec": {
                    "acceptedGeneration": 1,
                    "virtualServiceUid": f"uid{index}",
                    "service": {
                        "vip": f"203.0.{index >> 8 & 255}.{index & 255}",
                        "ports": [{"port": 80}],
                        "poolRef": {"name": "pool"},
                        "healthCheck": {"type": "HTTP", "http": {"path": "/healthz"}},
                    },
                    "members": [
                        {"address": f"198.51.{number >> 8 & 255}.{number & 255}"}
                        for number in range(index * size, index * size + size)
                    ],
                },
            }
        )

    desired = {f"bench/svc{index}": document(index, members) for index in range(services)}
    engine = HealthEngine(NetworkProber(), default_active=True)  # never started: no probes
    binding = HealthBinding(engine, group_of=lambda item: item.spec.service.vip)
    started = time.perf_counter()
    binding.sync(desired)
    first = time.perf_counter() - started
    started = time.perf_counter()
    binding.sync(desired)
    unchanged = time.perf_counter() - started
    desired["bench/svc0"] = document(0, members - 1)
    started = time.perf_counter()
    binding.sync(desired)
    one = time.perf_counter() - started
    return first, unchanged, one


def summary(values: list[float]) -> str:
    if not values:
        return "no samples"
    ordered = sorted(values)
    return (
        f"n={len(ordered)} min={ordered[0]:.3f}s median={statistics.median(ordered):.3f}s "
        f"max={ordered[-1]:.3f}s"
    )


async def main(quick: bool) -> None:
    logging.getLogger("lvs_agent.health").setLevel(logging.ERROR)  # transitions are expected here
    window = 3.0 if quick else 6.0
    warmup = 1.5
    load = ", ".join(f"{value:.1f}" for value in os.getloadavg())
    print(
        f"health bench: python {sys.version.split()[0]}, {os.cpu_count()} cpus, load average {load}, "
        f"window {window:g}s (checks/s is capped by the CPU share this process gets; checks/cpu-s is not)"
    )
    results: list[Throughput] = []

    with listeners("tcp", 1000) as ports:
        # Saturate: interval so short that one core is the limit.
        results.append(
            await run_engine("TCP saturated (1,000 listeners)", ports, tcp_check(0.02), warmup, window)
        )
        results.append(
            await run_engine("TCP 10,000 checks/s requested", ports, tcp_check(0.1), warmup, window)
        )
        results.append(await run_engine("TCP 1,000 members @ 1 s", ports, tcp_check(1.0), warmup, window * 2))
    with listeners("http", 1000) as ports:
        results.append(
            await run_engine("HTTP saturated (1,000 listeners)", ports, http_check(0.1), warmup, window)
        )
        results.append(
            await run_engine("HTTP 1,000 members @ 1 s", ports, http_check(1.0), warmup, window * 2)
        )
    with listeners("https", 200) as ports:
        # The listeners are Python asyncio TLS servers: the client CPU figure (checks/cpu-s) is the one
        # that compares; checks/s is capped by the listener process.
        for sessions in (0, 1024):
            label = "HTTPS sat. 200, full handshakes" if not sessions else "HTTPS sat. 200"
            results.append(
                await run_engine(label, ports, https_check(0.1), warmup, window, tls_sessions=sessions)
            )
    with listeners("dns", 1000) as ports:
        results.append(
            await run_engine("DNS saturated (1,000 responders)", ports, dns_check(0.05), warmup, window)
        )
        results.append(await run_engine("DNS 1,000 members @ 1 s", ports, dns_check(1.0), warmup, window * 2))
    for result in results:
        print(result.line())
    for result in results:
        if result.interval == 1.0:
            print(
                f"CPU per 1,000 members at 1 s interval ({result.label.split()[0]}): "
                f"{result.cpu / result.wall * 1000 / result.members:.1%} of one core"
            )

    first, unchanged, one = binding_sync_times(10_000, 10)
    print(
        f"binding sync, 10,000 services x 10 members: first {first:.2f}s, nothing changed "
        f"{unchanged * 1000:.1f}ms, one service changed {one * 1000:.1f}ms"
    )
    # In a fresh process: RSS of this one would reuse memory freed by the runs above.
    memory = subprocess.run(
        [sys.executable, __file__, "--memory", "100000"], capture_output=True, text=True, check=True
    )
    print(memory.stdout.strip())
    for mode in ("refused", "timeout"):
        latencies = await detection_latency(20, mode)
        print(
            f"detection latency, interval 1 s, fall 2, timeout 0.5 s (bound 2.5 s), listener {mode}: "
            f"{summary(latencies)}"
        )


if __name__ == "__main__":
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--serve", choices=["tcp", "http", "https", "dns"], help=argparse.SUPPRESS)
    parser.add_argument("--count", type=int, default=1000, help=argparse.SUPPRESS)
    parser.add_argument("--memory", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--memory-trace", type=int, metavar="MEMBERS",
                        help="print where the engine's memory goes (tracemalloc) for MEMBERS members")
    arguments = parser.parse_args()
    if arguments.serve:
        serve(arguments.serve, arguments.count)
    elif arguments.memory:
        registered, scheduled, jobs = memory_per_subscription(arguments.memory)
        count = arguments.memory
        print(
            f"memory: {registered:.0f} B per subscription registered, {scheduled:.0f} B scheduled "
            f"({count:,} subscriptions, {jobs:,} probe jobs; {scheduled * count / 1e6:.0f} MB in all)"
        )
    elif arguments.memory_trace:
        memory_trace(arguments.memory_trace)
    else:
        asyncio.run(main(arguments.quick))
