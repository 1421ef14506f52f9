"""Health checks against real servers in their own network namespaces, driving real IPVS in the guest.

A director namespace runs the health engine with the real prober, bound to the agent's Reconciler
(compiler + planner + netlink) exactly as the agent wires it. Real server rs1 then fails in one of five
ways (listening socket closed, server process stopped with SIGSTOP, HTTP 500, DNS SERVFAIL, every packet
dropped by ``tc netem``); with interval 1 s, fall 2 and timeout 0.4 s it must leave the IPVS table
(quiesced: weight 0) in under interval*fall + timeout = 2.4 s (+0.1 s for the reconcile pass), the client
through the VIP must stop reaching it, and after the fault is undone it must come back.

The director's /metrics is scraped over HTTP too: IPVS counters read from the real kernel per service and
per destination after client traffic, and member health by state.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import functools
import signal
import socket
import struct
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Coroutine, Iterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from lvs_agent.health import HealthEngine, NetworkProber
from lvs_agent.health.convert import HealthBinding
from lvs_agent.metrics import AgentMetrics, InstrumentedKernel, MetricSources, MetricsServer, StatsReader
from lvs_agent.netlink import IpvsNetlink
from lvs_agent.ownership import OwnershipRecord
from lvs_agent.reconcile import Reconciler, vip_group_of
from lvs_api.compiler import compile_resolved
from lvs_api.models import ResolvedService
from lvs_api.planner import plan
from lvs_guest.topology import Host, Topology
from prometheus_client.parser import text_string_to_metric_families

pytestmark = pytest.mark.kernel

TopologyFactory = Callable[..., Topology]
INTERVAL, FALL, RISE, TIMEOUT = 1.0, 2, 2, 0.4
DETECTION_BOUND = INTERVAL * FALL + TIMEOUT + 0.1  # + one reconcile pass
HTTP_PORT = 8080
DNS_PORT = 53


# --- real servers we can break ---------------------------------------------------------------------------


class Members:
    """HTTP and DNS servers on the real servers, served by one asyncio loop on a background thread; each
    listening socket is made in its host's namespace. ``http_status`` and ``dns_rcode`` are per host."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, name="health-members", daemon=True)
        self.thread.start()
        self.http_status: dict[str, int] = collections.defaultdict(lambda: 200)
        self.dns_rcode: dict[str, int] = collections.defaultdict(int)
        self.http: dict[str, asyncio.AbstractServer] = {}
        self.dns: list[asyncio.BaseTransport] = []

    def run(self, coroutine: Coroutine[Any, Any, Any]) -> Any:
        return asyncio.run_coroutine_threadsafe(coroutine, self.loop).result(timeout=30)

    def start_http(self, host: Host) -> None:
        sock = host.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(("0.0.0.0", HTTP_PORT))
        sock.listen(128)
        sock.setblocking(False)

        async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            with contextlib.suppress(Exception):
                await reader.readuntil(b"\r\n\r\n")
                status = self.http_status[host.name]
                body = f"{host.name}\n".encode()
                head = f"HTTP/1.1 {status} X\r\nContent-Length: {len(body)}\r\nConnection: close\r\n\r\n"
                writer.write(head.encode() + body)
                await writer.drain()
            writer.close()

        self.http[host.name] = self.run(asyncio.start_server(handle, sock=sock))

    def stop_http(self, host: Host) -> None:
        server = self.http.pop(host.name)

        async def stop() -> None:
            server.close()
            await server.wait_closed()

        self.run(stop())

    def start_dns(self, host: Host) -> None:
        sock = host.socket(socket.AF_INET, socket.SOCK_DGRAM)
        sock.bind(("0.0.0.0", DNS_PORT))
        members = self

        class Responder(asyncio.DatagramProtocol):
            def connection_made(self, transport: asyncio.BaseTransport) -> None:
                self.transport = transport

            def datagram_received(self, data: bytes, addr: Any) -> None:
                query_id = data[:2]
                end = data.index(b"\x00", 12) + 5
                rcode = members.dns_rcode[host.name]
                answers = b""
                count = 0
                if rcode == 0:  # one A record naming the server: 198.51.100.x of its own
                    answers = b"\xc0\x0c" + struct.pack("!HHIH", 1, 1, 5, 4) + socket.inet_aton("192.0.2.53")
                    count = 1
                header = query_id + struct.pack("!HHHHH", 0x8180 | rcode, 1, count, 0, 0)
                self.transport.sendto(header + data[12:end] + answers, addr)  # type: ignore[attr-defined]

        async def start() -> asyncio.BaseTransport:
            transport, _ = await asyncio.get_running_loop().create_datagram_endpoint(Responder, sock=sock)
            return transport

        self.dns.append(self.run(start()))

    def close(self) -> None:
        async def stop() -> None:
            for server in self.http.values():
                server.close()
            for transport in self.dns:
                transport.close()

        self.run(stop())
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(timeout=5)


STOPPABLE_SERVER = """
import socket, sys
name, port = sys.argv[1], int(sys.argv[2])
listener = socket.socket()
listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
listener.bind(("0.0.0.0", port))
listener.listen(64)
print("ready", flush=True)
body = (name + "\\n").encode()
while True:
    conn, _ = listener.accept()
    conn.settimeout(2)
    try:
        data = b""
        while b"\\r\\n\\r\\n" not in data:
            chunk = conn.recv(4096)
            if not chunk:
                break
            data += chunk
        head = b"HTTP/1.1 200 OK\\r\\nContent-Length: %d\\r\\nConnection: close\\r\\n\\r\\n" % len(body)
        conn.sendall(head + body)
    except OSError:
        pass
    finally:
        conn.close()
"""


# --- the director: engine + reconcile, as the agent wires them -------------------------------------------


class HealthDirector:
    """Runs the engine and a reconcile pass per batch of health changes in ``director``'s namespace, and
    logs the kernel's destination weights (monotonic time, {address: weight}) after every pass."""

    def __init__(
        self,
        director: Host,
        desired: dict[str, ResolvedService],
        record: Path,
        active: bool = True,
        metrics: AgentMetrics | None = None,
    ) -> None:
        self.director = director
        self.metrics = metrics
        self.metrics_port = 0
        self.active = active
        self._engine: HealthEngine | None = None
        self.desired = desired
        self.record = record
        self.weights: list[tuple[float, dict[str, int]]] = []
        self.lock = threading.Lock()
        self.ready = threading.Event()
        self.error: BaseException | None = None
        self._stop: asyncio.Event | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self.thread = threading.Thread(target=self._thread, name="health-director", daemon=True)

    def _thread(self) -> None:
        try:
            with self.director.entered():  # probe sockets are the director's
                asyncio.run(self._main())
        except BaseException as error:  # surfaced by the test
            self.error = error
            self.ready.set()

    async def _main(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._stop = asyncio.Event()
        prober = NetworkProber()
        engine = self._engine = HealthEngine(prober, default_active=self.active)
        binding = HealthBinding(engine, group_of=vip_group_of)
        # Built off the loop, as the agent does (pyroute2 runs a loop of its own while connecting).
        kernel = await asyncio.get_running_loop().run_in_executor(
            None, functools.partial(IpvsNetlink, netns=self.director.netns)
        )
        server: MetricsServer | None = None
        metrics = self.metrics
        with kernel:
            reconciler = Reconciler(
                node_labels={},
                kernel=kernel if metrics is None else InstrumentedKernel(kernel, metrics, stats_time=False),
                record=OwnershipRecord(self.record),
                compile_service=compile_resolved,
                plan=plan,
                health=binding.lookup,
            )
            reader: StatsReader | None = None
            if metrics is not None:  # the agent's endpoint, in the director's namespace
                # counters on a netlink socket of their own, read when scraped, as the agent does
                reader = StatsReader(
                    functools.partial(IpvsNetlink, netns=self.director.netns), metrics, min_interval=0.0
                )
                metrics.sources = MetricSources(
                    health=engine.counts,
                    last_pass=lambda: reconciler.last,
                    ipvs_stats=lambda: reader.stats if reader is not None else None,
                    before_scrape=reader.refresh,
                )
                server = MetricsServer(metrics, lambda: None, address="127.0.0.1", port=0)
                await server.start()
                self.metrics_port = server.port or 0

            def reconcile() -> None:
                binding.sync(self.desired)
                result = reconciler.reconcile_once(self.desired)
                assert result.ok, result
                weights = {
                    dest.address: config.weight
                    for server in kernel.dump().values()
                    for dest, config in server.dests.items()
                }
                with self.lock:
                    self.weights.append((time.monotonic(), weights))

            reconcile()
            async with engine:
                self.ready.set()
                while not self._stop.is_set():
                    with contextlib.suppress(TimeoutError):
                        async with asyncio.timeout(0.5):
                            await engine.changes.get()
                            reconcile()
        if server is not None:
            await server.close()
        if reader is not None:
            reader.close()
        prober.close()

    def __enter__(self) -> HealthDirector:
        self.thread.start()
        self.ready.wait(30)
        if self.error is not None:
            raise self.error
        return self

    def __exit__(self, *exc_info: object) -> None:
        if self._loop is not None and self._stop is not None:
            self._loop.call_soon_threadsafe(self._stop.set)
        self.thread.join(timeout=10)

    def scrape(self) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
        """GET /metrics over HTTP from inside the director's namespace, parsed."""
        assert self._loop is not None and self.metrics_port

        async def get() -> str:
            url = f"http://127.0.0.1:{self.metrics_port}/metrics"
            async with aiohttp.ClientSession() as session, session.get(url) as reply:
                assert reply.status == 200
                return await reply.text()

        text = asyncio.run_coroutine_threadsafe(get(), self._loop).result(timeout=10)
        return {
            (sample.name, tuple(sorted(sample.labels.items()))): sample.value
            for family in text_string_to_metric_families(text)
            for sample in family.samples
        }

    def activate(self, group: str) -> None:
        """Make this director active for ``group`` (what the failover runner does on takeover)."""
        assert self._loop is not None and self._engine is not None
        self._loop.call_soon_threadsafe(self._engine.set_active, group, True)

    def health(self, service: str, member: str) -> bool | None:
        """The engine's own verdict (probed, whether or not it is applied)."""
        assert self._loop is not None and self._engine is not None
        engine = self._engine

        async def ask() -> bool | None:
            return engine.health(service, member)

        return asyncio.run_coroutine_threadsafe(ask(), self._loop).result(timeout=5)

    def kernel_weight(self, address: str) -> int | None:
        with self.lock:
            return self.weights[-1][1].get(address)

    def wait_for_weight(self, address: str, weight: int | None, after: float, timeout: float) -> float:
        """Monotonic time of the first pass since ``after`` that left ``address`` at ``weight``."""
        deadline = time.monotonic() + timeout
        seen = 0
        while time.monotonic() < deadline:
            if self.error is not None:
                raise self.error
            with self.lock:
                log = self.weights[seen:]
                seen = len(self.weights)
            for at, weights in log:
                if at >= after and weights.get(address) == weight:
                    return at
            time.sleep(0.02)
        with self.lock:
            raise AssertionError(f"{address} never reached weight {weight}; log: {self.weights[-5:]}")


def resolved(
    vip: str,
    members: list[str],
    port: int,
    protocol: str,
    check: dict[str, Any],
    *,
    on_failure: str = "Quiesce",
    fallback: tuple[str, ...] = (),
) -> ResolvedService:
    return ResolvedService.model_validate(
        {
            "apiVersion": "lvs.io/v1alpha1",
            "kind": "ResolvedService",
            "metadata": {"name": "web", "namespace": "health"},
            "spec": {
                "acceptedGeneration": 1,
                "virtualServiceUid": "uid-web",
                "service": {
                    "vip": vip,
                    "ports": [{"port": port, "protocol": protocol}],
                    "poolRef": {"name": "pool"},
                    "scheduler": {"name": "rr"},
                    "forwarding": "NAT",
                    "onFailure": on_failure,
                    "healthCheck": {
                        "intervalSeconds": INTERVAL,
                        "timeoutSeconds": TIMEOUT,
                        "rise": RISE,
                        "fall": FALL,
                        "jitterPercent": 0,
                        **check,
                    },
                },
                "members": [{"address": address} for address in members],
                "fallback": [{"address": address} for address in fallback],
            },
        }
    )


CHECKS: dict[str, tuple[str, int, dict[str, Any]]] = {
    "port-closed": ("TCP", HTTP_PORT, {"type": "TCP"}),
    "process-stopped": ("TCP", HTTP_PORT, {"type": "HTTP", "http": {"path": "/healthz"}}),
    "http-500": ("TCP", HTTP_PORT, {"type": "HTTP", "http": {"path": "/healthz"}}),
    "dns-servfail": (
        "UDP",
        DNS_PORT,
        {"type": "DNS", "dns": {"queryName": "member.example", "expectAnswer": "192.0.2.53"}},
    ),
    "packet-drop": ("TCP", HTTP_PORT, {"type": "TCP"}),
}


@contextlib.contextmanager
def stoppable_server(host: Host) -> Iterator[subprocess.Popen[bytes]]:
    process = host.popen(
        [sys.executable, "-c", STOPPABLE_SERVER, host.name, str(HTTP_PORT)], stdout=subprocess.PIPE
    )
    try:
        assert process.stdout is not None
        assert process.stdout.readline().strip() == b"ready"
        yield process
    finally:
        process.send_signal(signal.SIGCONT)
        process.kill()
        process.wait()


@pytest.mark.parametrize("failure", list(CHECKS))
def test_failed_member_leaves_the_table_in_time_and_comes_back(
    topology: TopologyFactory, tmp_path: Path, failure: str
) -> None:
    topo = topology(directors=1, real_servers=2, clients=1)
    director, (rs1, rs2) = topo.directors[0], topo.real_servers
    vip = topo.vip(0)
    topo.add_vip(vip, director)
    protocol, port, check = CHECKS[failure]
    members = Members()
    stack = contextlib.ExitStack()
    stack.callback(members.close)
    with stack:
        if failure == "process-stopped":
            server = stack.enter_context(stoppable_server(rs1))
            members.start_http(rs2)
        elif failure == "dns-servfail":
            members.start_dns(rs1)
            members.start_dns(rs2)
        else:
            members.start_http(rs1)
            members.start_http(rs2)
        desired = {"health/web": resolved(str(vip), [str(rs1.ipv4), str(rs2.ipv4)], port, protocol, check)}
        http_through_vip = protocol == "TCP"

        with HealthDirector(director, desired, tmp_path / "owned.json") as watcher:
            # Both members healthy (rise 2) and serving through the VIP.
            watcher.wait_for_weight(str(rs1.ipv4), 1, after=0.0, timeout=5)
            time.sleep(INTERVAL * RISE + 0.5)
            if http_through_vip:
                assert set(topo.client.http_get(vip, port, count=4)) == {"rs1", "rs2"}

            # Break rs1.
            if failure == "port-closed":
                members.stop_http(rs1)
            elif failure == "process-stopped":
                server.send_signal(signal.SIGSTOP)
            elif failure == "http-500":
                members.http_status["rs1"] = 500
            elif failure == "dns-servfail":
                members.dns_rcode["rs1"] = 2
            else:
                rs1.run(["tc", "qdisc", "add", "dev", "eth0", "root", "netem", "loss", "100%"])
            broken_at = time.monotonic()
            quiesced_at = watcher.wait_for_weight(str(rs1.ipv4), 0, after=broken_at, timeout=10)
            detection = quiesced_at - broken_at
            print(f"\n{failure}: member quiesced in the kernel {detection:.3f}s after the fault")
            assert detection < DETECTION_BOUND, f"{failure}: {detection:.3f}s"
            if http_through_vip:
                assert set(topo.client.http_get(vip, port, count=4)) == {"rs2"}

            # Repair rs1: it comes back after `rise` good checks.
            if failure == "port-closed":
                members.start_http(rs1)
            elif failure == "process-stopped":
                server.send_signal(signal.SIGCONT)
            elif failure == "http-500":
                members.http_status["rs1"] = 200
            elif failure == "dns-servfail":
                members.dns_rcode["rs1"] = 0
            else:
                rs1.run(["tc", "qdisc", "del", "dev", "eth0", "root"])
            repaired_at = time.monotonic()
            restored_at = watcher.wait_for_weight(str(rs1.ipv4), 1, after=repaired_at, timeout=10)
            print(f"{failure}: member restored {restored_at - repaired_at:.3f}s after the repair")
            assert restored_at - repaired_at < INTERVAL * (RISE + 1) + TIMEOUT + 0.1
            if http_through_vip:
                assert set(topo.client.http_get(vip, port, count=4)) == {"rs1", "rs2"}


def test_remove_and_sorry_server_in_and_out(topology: TopologyFactory, tmp_path: Path) -> None:
    """onFailure: Remove takes a failed member out of the table; when no member is left the fallback
    (sorry) server is programmed, and it leaves again as soon as one member recovers."""
    topo = topology(directors=1, real_servers=3, clients=1)
    director, (rs1, rs2, sorry) = topo.directors[0], topo.real_servers
    vip = topo.vip(0)
    topo.add_vip(vip, director)
    members = Members()
    with contextlib.ExitStack() as stack:
        stack.callback(members.close)
        for host in (rs1, rs2, sorry):
            members.start_http(host)
        service = resolved(
            str(vip),
            [str(rs1.ipv4), str(rs2.ipv4)],
            HTTP_PORT,
            "TCP",
            {"type": "TCP"},
            on_failure="Remove",
            fallback=(str(sorry.ipv4),),
        )
        client = topo.client
        with HealthDirector(director, {"health/web": service}, tmp_path / "owned.json") as watcher:
            watcher.wait_for_weight(str(rs1.ipv4), 1, after=0.0, timeout=5)
            time.sleep(INTERVAL * RISE + 0.5)
            assert set(client.http_get(vip, HTTP_PORT, count=4)) == {"rs1", "rs2"}

            members.stop_http(rs1)
            broken_at = time.monotonic()
            removed_at = watcher.wait_for_weight(str(rs1.ipv4), None, after=broken_at, timeout=10)
            assert removed_at - broken_at < DETECTION_BOUND
            assert set(client.http_get(vip, HTTP_PORT, count=4)) == {"rs2"}

            members.stop_http(rs2)
            broken_at = time.monotonic()
            sorry_at = watcher.wait_for_weight(str(sorry.ipv4), 1, after=broken_at, timeout=10)
            print(f"\nsorry server programmed {sorry_at - broken_at:.3f}s after the last member failed")
            assert sorry_at - broken_at < DETECTION_BOUND
            assert set(client.http_get(vip, HTTP_PORT, count=4)) == {"rs3"}

            members.start_http(rs1)
            repaired_at = time.monotonic()
            back_at = watcher.wait_for_weight(str(rs1.ipv4), 1, after=repaired_at, timeout=10)
            with watcher.lock:
                after_back = next(weights for at, weights in watcher.weights if at >= back_at)
            assert str(sorry.ipv4) not in after_back  # the sorry server leaves in the same pass
            print(f"member back and sorry server gone {back_at - repaired_at:.3f}s after the repair")
            assert set(client.http_get(vip, HTTP_PORT, count=4)) == {"rs1"}


def test_standby_probes_warm_and_applies_its_verdicts_at_takeover(
    topology: TopologyFactory, tmp_path: Path
) -> None:
    """Two directors check the same members. Only the active one's verdicts reach its kernel; the standby
    knows rs1 is down but leaves its (pre-programmed) table alone, and applies the verdict the moment it
    becomes active, without waiting for new checks."""
    topo = topology(directors=2, real_servers=2, clients=1)
    (first, second), (rs1, rs2) = topo.directors, topo.real_servers
    vip = str(topo.vip(0))
    members = Members()
    with contextlib.ExitStack() as stack:
        stack.callback(members.close)
        members.start_http(rs1)
        members.start_http(rs2)
        desired = {
            "health/web": resolved(vip, [str(rs1.ipv4), str(rs2.ipv4)], HTTP_PORT, "TCP", {"type": "TCP"})
        }
        active = stack.enter_context(HealthDirector(first, desired, tmp_path / "a.json", active=True))
        standby = stack.enter_context(HealthDirector(second, desired, tmp_path / "b.json", active=False))
        for director in (active, standby):
            director.wait_for_weight(str(rs1.ipv4), 1, after=0.0, timeout=5)
        time.sleep(INTERVAL * RISE + 0.5)

        members.stop_http(rs1)
        broken_at = time.monotonic()
        active.wait_for_weight(str(rs1.ipv4), 0, after=broken_at, timeout=10)
        member = f"{rs1.ipv4}:{HTTP_PORT}"
        deadline = time.monotonic() + 5
        while standby.health("health/web", member) is not False and time.monotonic() < deadline:
            time.sleep(0.05)
        assert standby.health("health/web", member) is False  # warm: it probed too
        assert standby.kernel_weight(str(rs1.ipv4)) == 1  # but did not apply it

        activated_at = time.monotonic()
        standby.activate(vip)
        applied_at = standby.wait_for_weight(str(rs1.ipv4), 0, after=activated_at, timeout=5)
        print(f"\nstandby applied its warm verdict {applied_at - activated_at:.3f}s after becoming active")
        assert applied_at - activated_at < 0.5  # no new checks needed


def test_metrics_count_real_ipvs_traffic_and_member_health(topology: TopologyFactory, tmp_path: Path) -> None:
    """The agent's /metrics over a real table: connections through the VIP show in the service's and each
    destination's counters (read from the kernel over netlink), and member health follows a failure."""
    topo = topology(directors=1, real_servers=2, clients=1)
    director, (rs1, rs2) = topo.directors[0], topo.real_servers
    vip = topo.vip(0)
    topo.add_vip(vip, director)
    members = Members()
    with contextlib.ExitStack() as stack:
        stack.callback(members.close)
        members.start_http(rs1)
        members.start_http(rs2)
        check = {"type": "HTTP", "http": {"path": "/healthz"}}
        desired = {"health/web": resolved(str(vip), [str(rs1.ipv4), str(rs2.ipv4)], HTTP_PORT, "TCP", check)}
        metrics = AgentMetrics("destinations")
        with HealthDirector(director, desired, tmp_path / "owned.json", metrics=metrics) as watcher:
            watcher.wait_for_weight(str(rs1.ipv4), 1, after=0.0, timeout=5)
            deadline = time.monotonic() + 10
            while not all(watcher.health("health/web", f"{rs.ipv4}:{HTTP_PORT}") for rs in (rs1, rs2)):
                assert time.monotonic() < deadline, "members never healthy"
                time.sleep(0.05)
            requests = 10
            answers = collections.Counter(topo.client.http_get(vip, HTTP_PORT, count=requests))
            assert answers == {"rs1": requests // 2, "rs2": requests // 2}  # rr
            service = {"virtualservice": "health/web", "service": f"TCP {vip}:{HTTP_PORT}"}
            connections = ("lvs_agent_ipvs_service_connections_total", tuple(sorted(service.items())))
            # the kernel folds its per-CPU counters into what it reports every 2 s (the rate estimator)
            deadline = time.monotonic() + 10
            while True:
                samples = watcher.scrape()  # each scrape reads the counters (min_interval 0)
                if samples[connections] >= requests or time.monotonic() > deadline:
                    break
                time.sleep(0.2)

            def value(name: str, **labels: str) -> float:
                return samples[(name, tuple(sorted(labels.items())))]

            assert value("lvs_agent_ipvs_service_connections_total", **service) == requests
            assert value("lvs_agent_ipvs_service_packets_total", direction="in", **service) >= requests * 3
            assert value("lvs_agent_ipvs_service_bytes_total", direction="out", **service) > 0  # NAT: replies
            for rs in (rs1, rs2):
                dest = {**service, "destination": f"{rs.ipv4}:{HTTP_PORT}"}
                assert value("lvs_agent_ipvs_destination_connections_total", **dest) == requests // 2
            assert value("lvs_agent_ipvs_connections_total") == requests
            assert value("lvs_agent_ipvs_owned_services") == 1
            assert value("lvs_agent_reconcile_ops_total", op="add-service") == 1
            assert not [key for key in samples if key[0] == "lvs_agent_netlink_errors_total"]
            assert value("lvs_agent_health_members", check="HTTP", state="healthy") == 2
            print(f"\n/metrics: {len(samples)} samples for 1 service with 2 destinations")

            members.http_status["rs1"] = 500
            broken_at = time.monotonic()
            watcher.wait_for_weight(str(rs1.ipv4), 0, after=broken_at, timeout=10)
            samples = watcher.scrape()
            assert value("lvs_agent_health_members", check="HTTP", state="unhealthy") == 1
            assert value("lvs_agent_health_transitions_total", state="unhealthy") == 1
            assert value("lvs_agent_health_check_failures_total", check="HTTP") >= FALL
            assert value("lvs_agent_virtualservice_healthy_members", virtualservice="health/web") == 1
