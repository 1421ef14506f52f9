"""The README's demo, end to end, in the kernel guest: ``lvs-operator demo`` (or ``bash scripts/demo.sh``).

On the host it boots the guest (``python -m lvs_guest run``) and runs itself inside. Inside, everything is
real: network namespaces for a client, two directors and three real servers on one bridge (lvs_guest's
topology); the embedded API server and the kopf controller in the bridge's namespace; one
``python -m lvs_agent`` per director, reading ResolvedServices, Leases and Nodes from the API server and
writing DirectorReports; ``kubectl apply`` of ``deploy/examples/nat-web.yaml`` and of a DirectRouting
service; HTTP requests from the client through the VIPs; ``ipvsadm -Ln`` of what the agent programmed; and
the active director killed (link down + SIGKILL) to show the standby take over.

Every step prints what it does and checks its outcome; the first failed step stops the demo with a
non-zero exit status. What is not built yet is printed as such, never simulated.
"""

from __future__ import annotations

import argparse
import collections
import contextlib
import itertools
import os
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
API_ADDRESS = "192.0.2.250"  # on the bridge, in the LAN namespace: reachable from every director
NAT_VIP = "203.0.113.10"  # deploy/examples/nat-web.yaml
DR_VIP = "203.0.113.11"
NAT_GATEWAY = "198.51.100.1"  # the real servers' default gateway: natGateway in nat-web.yaml
NOT_BUILT: list[str] = []

DR_MANIFEST = f"""
apiVersion: lvs.io/v1alpha1
kind: RealServerPool
metadata: {{name: demo-dr-servers, namespace: shop}}
spec:
  members:
    - {{address: 198.51.100.11}}
    - {{address: 198.51.100.12}}
    - {{address: 198.51.100.13}}
---
apiVersion: lvs.io/v1alpha1
kind: VirtualService
metadata: {{name: demo-dr, namespace: shop}}
spec:
  vip: {DR_VIP}
  ports: [{{name: http, port: 80, protocol: TCP}}]
  scheduler: {{name: rr}}
  forwarding: DirectRouting
  healthCheck: {{type: None}}
  poolRef: {{name: demo-dr-servers}}
"""

NODES = """
apiVersion: v1
kind: Node
metadata:
  name: {name}
  labels: {{lvs.io/director: "true", kubernetes.io/hostname: {name}}}
"""


class StepFailed(RuntimeError):
    pass


def say(text: str) -> None:
    print(text, flush=True)


@contextlib.contextmanager
def step(title: str) -> Iterator[None]:
    say(f"\n== {title}")
    started = time.monotonic()
    try:
        yield
    except StepFailed:
        raise
    except Exception as error:  # every failure of a step is reported as that step's failure
        raise StepFailed(f"{title}: {type(error).__name__}: {error}") from error
    say(f"   ok ({time.monotonic() - started:.1f} s)")


def wait(predicate: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if predicate():
                return
        except (OSError, subprocess.SubprocessError, ValueError):
            pass
        time.sleep(0.2)
    raise StepFailed(f"timed out after {timeout:.0f} s waiting for {what}")


class Demo:
    def __init__(self, workdir: Path) -> None:
        from lvs_guest.topology import Topology

        self.workdir = workdir
        self.topo = Topology(directors=2, real_servers=3, clients=1, prefix="demo")
        self.kubeconfig = workdir / "kubeconfig"
        self.processes: dict[str, subprocess.Popen[bytes]] = {}
        self.logs: dict[str, Path] = {}

    # --- processes ------------------------------------------------------------------------------------

    def start(self, name: str, argv: Sequence[str], netns: str, env: dict[str, str] | None = None) -> None:
        from lvs_guest import netns as namespaces

        log = self.workdir / f"{name}.log"
        self.logs[name] = log
        with namespaces.entered(netns), open(log, "wb") as output:
            self.processes[name] = subprocess.Popen(
                list(argv), stdout=output, stderr=subprocess.STDOUT, env={**os.environ, **(env or {})}
            )

    def tail(self, name: str, lines: int = 15) -> str:
        text = self.logs[name].read_text(errors="replace") if name in self.logs else ""
        return "\n".join(text.splitlines()[-lines:])

    def kubectl(self, *args: str, stdin: str | None = None, check: bool = True) -> str:
        from lvs_guest import netns as namespaces

        command = [str(ROOT / ".venv/bin/kubectl"), f"--kubeconfig={self.kubeconfig}", *args]
        with namespaces.entered(self.topo.lan):
            done = subprocess.run(
                command, input=stdin, capture_output=True, text=True, timeout=60, check=False
            )
        if check and done.returncode != 0:
            raise StepFailed(f"kubectl {' '.join(args)}: {done.stderr.strip()}")
        return done.stdout

    def stop_all(self) -> None:
        for process in self.processes.values():
            if process.poll() is None:
                process.send_signal(signal.SIGTERM)
        for process in self.processes.values():
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()

    # --- helpers --------------------------------------------------------------------------------------

    def drop_topology_gateway(self) -> None:
        """The topology puts the real servers' gateway on dir1's eth0 (for tests without agents): take it
        off, so that only the agents (natGateway) place it."""
        from lvs_guest.topology import BACK_V4, BACK_V6, NAT_GATEWAY_V4, NAT_GATEWAY_V6

        director = self.topo.gateway_director
        if director is None:
            return
        with director.iproute() as ipr:
            eth0 = ipr.link_lookup(ifname="eth0")[0]
            ipr.addr("del", index=eth0, address=str(NAT_GATEWAY_V4), prefixlen=BACK_V4.prefixlen)
            ipr.addr("del", index=eth0, address=str(NAT_GATEWAY_V6), prefixlen=BACK_V6.prefixlen)
        self.topo.gateway_director = None

    def holder(self, vip: str, exclude: Any = None) -> Any:
        for director in self.topo.directors:
            if director is exclude:
                continue
            with director.iproute() as ipr:
                found = ipr.link_lookup(ifname="lvs0")
                if found and any(m.get_attr("IFA_ADDRESS") == vip for m in ipr.get_addr(index=found[0])):
                    return director
        return None

    def dest_weight(self, director: Any, address: str) -> int | None:
        from lvs_agent.netlink import IpvsNetlink
        from lvs_api.ipvs import DestKey, Family, Protocol, ServiceKey

        with IpvsNetlink(netns=director.netns) as kernel:
            service = kernel.dump().get(ServiceKey(Family.INET, Protocol.TCP, NAT_VIP, 80))
        if service is None:
            return None
        config = service.dests.get(DestKey(Family.INET, address, 8080))
        return None if config is None else config.weight

    def ipvs_services(self, director: Any) -> int:
        from lvs_agent.netlink import IpvsNetlink

        with IpvsNetlink(netns=director.netns) as kernel:
            return len(kernel.dump())

    # --- the story ------------------------------------------------------------------------------------

    def run(self) -> None:
        from lvs_guest.client import Client
        from lvs_guest.topology import Forwarding

        say("lvs-operator demo: real kernel IPVS in a guest, real API server, controller and agents.")
        if NOT_BUILT:
            say("Not built yet (so not shown):")
            for line in NOT_BUILT:
                say(f"  - {line}")
        with step("network: a client, two directors (dir1, dir2), three real servers on one bridge"):
            self.topo.build()
            self.topo.serve_http(8080)  # NAT: the web service's targetPort
            self.topo.serve_http(80)  # DirectRouting: the real servers answer on the VIP's port
            from lvs_guest import netns as namespaces

            with namespaces.entered(self.topo.lan):
                subprocess.run(["ip", "addr", "add", f"{API_ADDRESS}/24", "dev", "br0"], check=True)
            self.drop_topology_gateway()
            for host in self.topo.hosts:
                say(f"   {host.name:8s} {host.ipv4}")
            say(f"   real servers' default gateway: {NAT_GATEWAY}, on no director yet (the agents move it)")
        with step(f"embedded Kubernetes API server on {API_ADDRESS}:6443 (lvs_apiserver)"):
            self.start("apiserver", [sys.executable, "-m", "lvs_apiserver", "--host", API_ADDRESS, "--port",
                                     "6443", "--kubeconfig-out", str(self.kubeconfig)], self.topo.lan)
            wait(lambda: self.kubeconfig.exists()
                 and "default" in self.kubectl("get", "namespaces", check=False), 60, "the API server")
        with step("CRDs, namespaces and the director Nodes (kubectl apply)"):
            say(self.kubectl("apply", "-f", str(ROOT / "crds")).rstrip())
            self.kubectl("create", "namespace", "lvs-system")
            self.kubectl("create", "namespace", "shop")
            nodes = "---".join(NODES.format(name=d.name) for d in self.topo.directors)
            say(self.kubectl("apply", "-f", "-", stdin=nodes).rstrip())
            wait(lambda: "virtualservices.lvs.io" in self.kubectl("get", "crd"), 30, "CRDs established")
        with step("controller (lvs_controller, kopf)"):
            self.start("controller", [sys.executable, "-m", "lvs_controller", "--kubeconfig",
                                      str(self.kubeconfig), "--no-leader-election", "--log-format", "text"],
                       self.topo.lan)
            wait(lambda: self.processes["controller"].poll() is None
                 and self.logs["controller"].stat().st_size > 0, 60, "the controller to start")
        with step("two director agents (python -m lvs_agent), heartbeating each other every 100 ms"):
            secret = self.workdir / "heartbeat-secret"
            secret.write_text(os.urandom(16).hex())
            for director in self.topo.directors:
                peers = [f"--peer={p.name}={p.ipv4}" for p in self.topo.directors if p is not director]
                self.start(f"agent-{director.name}", [
                    sys.executable, "-m", "lvs_agent", "--node", director.name,
                    "--lease-namespace", "lvs-system",
                    "--uplink", "eth0", "--heartbeat-bind", str(director.ipv4), "--secret-file", str(secret),
                    "--record", str(self.workdir / f"owned-{director.name}.json"),
                    "--sync-interface", "eth0", "--sync-id", "1", *peers,
                    # The guest has one CPU shared by the API server, the controller, both agents and
                    # kubectl, and a fork stalls it for tens of ms: with the default 150 ms detection a
                    # starved director would be declared dead. Real directors have their own CPUs.
                    "--heartbeat-interval", "0.1", "--missed", "5",
                ], director.netns, env={"KUBECONFIG": str(self.kubeconfig)})
            time.sleep(3)
            for director in self.topo.directors:
                process = self.processes[f"agent-{director.name}"]
                if process.poll() is not None:
                    log = self.tail(f"agent-{director.name}")
                    raise StepFailed(f"agent on {director.name} exited:\n{log}")
        with step("kubectl apply -f deploy/examples/nat-web.yaml, and a DirectRouting service"):
            say(self.kubectl("apply", "-f", str(ROOT / "deploy/examples/nat-web.yaml")).rstrip())
            say(self.kubectl("apply", "-f", "-", stdin=DR_MANIFEST).rstrip())
            wait(lambda: len(self.kubectl("get", "resolvedservices.lvs.io", "-n", "shop", "-o", "name")
                             .split()) >= 2, 90, "the controller to resolve both services")
            wait(lambda: all(self.ipvs_services(d) >= 3 for d in self.topo.directors), 90,
                 "both directors to program IPVS (the standby is pre-programmed too)")
            wait(lambda: self.holder(NAT_VIP) is not None and self.holder(DR_VIP) is not None, 60,
                 "a director to take each VIP")
            say(self.kubectl("get", "virtualservices.lvs.io", "-n", "shop").rstrip())
        with step("kubectl wait --for=condition=Ready lvsvs/web -n shop (what GitOps tools wait on)"):
            # Ready: accepted, programmed on the directors, a director holds the VIP, a member is healthy
            ready = self.kubectl("wait", "--for=condition=Ready", "lvsvs/web", "-n", "shop", "--timeout=50s")
            say(ready.rstrip())
        nat_director = self.holder(NAT_VIP)
        with step(f"natGateway: {nat_director.name}, active for {NAT_VIP}, holds the real servers' gateway "
                  f"{NAT_GATEWAY} too (put on lvs0 and announced by gratuitous ARP by its agent)"):
            wait(lambda: self.holder(NAT_GATEWAY) is nat_director, 30, "the agent to take the gateway")
            took = [line for line in self.tail(f"agent-{nat_director.name}", 400).splitlines()
                    if f"took VIP {NAT_GATEWAY}" in line]
            say(f"   {nat_director.name}'s agent log: {took[-1].strip() if took else '(line rotated out)'}")
            elsewhere = self.holder(NAT_GATEWAY, exclude=nat_director)
            say(f"   {NAT_GATEWAY} on the other director: {'yes' if elsewhere else 'no'}")
            if elsewhere:
                raise StepFailed(f"{NAT_GATEWAY} is on both directors")
        with step(f"health checks on {nat_director.name}: rs3 is checked on port 9100 (its checkPort), "
                  "where nothing listens: after 3 failed checks it is quiesced (weight 0)"):
            wait(lambda: self.dest_weight(nat_director, "198.51.100.13") == 0, 60, "rs3 to be quiesced")
            say(f"   weights on {NAT_VIP}:80 now: "
                + ", ".join(f"{a}={self.dest_weight(nat_director, a)}" for a in
                            ("198.51.100.11", "198.51.100.12", "198.51.100.13")))
        client = Client(self.topo.clients[0], timeout=2)
        with step(f"requests through the NAT VIP {NAT_VIP}:80 (wlc; persistence 300 s per client /24)"):
            answers = collections.Counter(client.http_get(NAT_VIP, 80, count=6))
            say(f"   answered by: {dict(sorted(answers.items()))} "
                "(one client: one real server, as persistence promises)")
            if len(answers) != 1 or "rs3" in answers:
                raise StepFailed(f"one healthy real server expected (persistence): {dict(answers)}")
        with step("real servers set up for DirectRouting (VIP on lo, arp_ignore/announce, direct return)"):
            # after this the real servers answer clients directly, which NAT cannot share: NAT is done above
            self.topo.configure_forwarding(Forwarding.DR, [self.topo.vip(1)])
        with step(f"requests through the DirectRouting VIP {DR_VIP}:80 (rr)"):
            answers = collections.Counter(client.http_get(DR_VIP, 80, count=9))
            say(f"   answered by: {dict(sorted(answers.items()))}")
            if sorted(answers.values()) != [3, 3, 3]:
                raise StepFailed(f"round robin over three real servers expected: {dict(answers)}")
        active = self.holder(DR_VIP)
        with step(f"ipvsadm -Ln on {active.name} (what the agent programmed)"):
            say(active.run(["ipvsadm", "-Ln"]).stdout.rstrip())
            say(active.run(["ipvsadm", "-L", "--daemon"]).stdout.rstrip())
        with step("DirectorReports and the VIP-group Leases"):
            say(self.kubectl("get", "directorreports.lvs.io").rstrip())
            say(self.kubectl("get", "leases", "-n", "lvs-system").rstrip())
        with step(f"failover: {active.name} dies (link down + agent SIGKILL) under load on {DR_VIP}"):
            fast = Client(self.topo.clients[0], timeout=0.1)
            results: list[tuple[float, bool]] = []
            stop = threading.Event()

            def load() -> None:
                while not stop.is_set():
                    try:
                        fast.http_get_one(DR_VIP, 80)
                        results.append((time.monotonic(), True))
                    except OSError:
                        results.append((time.monotonic(), False))
                    time.sleep(0.01)

            thread = threading.Thread(target=load, daemon=True)
            thread.start()
            time.sleep(1.0)
            with active.iproute() as ipr:
                ipr.link("set", index=ipr.link_lookup(ifname="eth0")[0], state="down")
                crashed = time.monotonic()
            self.processes[f"agent-{active.name}"].send_signal(signal.SIGKILL)
            wait(lambda: self.holder(DR_VIP, exclude=active) is not None, 30, "the standby to take the VIP")
            wait(lambda: len([t for t, ok in results if ok and t > crashed]) >= 20, 30, "traffic to resume")
            stop.set()
            thread.join(timeout=10)
            successes = [t for t, ok in results if ok]
            gap = max(b - a for a, b in itertools.pairwise(successes) if b > crashed)
            survivor = self.holder(DR_VIP, exclude=active)
            say(f"   {survivor.name} holds {DR_VIP} now; the client saw a gap of {gap * 1000:.0f} ms "
                f"({len([1 for _, ok in results if not ok])} request(s) timed out at 100 ms)")
            say(self.tail(f"agent-{survivor.name}", 4))
            if nat_director is active:  # the NAT group failed over too, and its gateway with it
                wait(lambda: self.holder(NAT_GATEWAY, exclude=active) is survivor, 30,
                     "the standby to take the NAT gateway")
                say(f"   the NAT group moved too: {survivor.name} holds {NAT_VIP} and the real servers' "
                    f"gateway {NAT_GATEWAY}, taken by its agent")
            say(self.kubectl("get", "leases", "-n", "lvs-system").rstrip())
        with step("status as users see it (folded by the controller from the DirectorReports)"):
            def active_director(name: str) -> str:
                return self.kubectl("get", "virtualservices.lvs.io", name, "-n", "shop",
                                    "-o", "jsonpath={.status.activeDirector}").strip()

            wait(lambda: active_director("demo-dr") == survivor.name, 30,
                 f"the controller to report {survivor.name} as demo-dr's active director")
            say(self.kubectl("get", "virtualservices.lvs.io", "-n", "shop").rstrip())
        say("\nDemo complete." + (" Not built yet:" if NOT_BUILT else ""))
        for line in NOT_BUILT:
            say(f"  - {line}")


def inside(args: argparse.Namespace) -> int:
    workdir = Path(tempfile.mkdtemp(prefix="lvs-demo-"))
    demo = Demo(workdir)
    try:
        demo.run()
        return 0
    except StepFailed as failure:
        say(f"\nDEMO FAILED: {failure}")
        with contextlib.suppress(Exception):
            for director in demo.topo.directors:
                say(f"--- {director.name}: ipvsadm -Ln, addresses")
                say(director.run(["ipvsadm", "-Ln"], check=False).stdout)
                say(director.run(["ip", "-br", "addr"], check=False).stdout)
        for name in demo.logs:
            say(f"--- last lines of {name}.log\n{demo.tail(name)}")
        return 1
    finally:
        demo.stop_all()
        demo.topo.close()
        out = os.environ.get("LVS_GUEST_OUT")
        if out:  # the host's --collect directory: keep the logs
            for log in demo.logs.values():
                with contextlib.suppress(OSError):
                    (Path(out) / log.name).write_bytes(log.read_bytes())


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--timeout", type=int, default=900, help="seconds before the guest is stopped")
    parser.add_argument("--logs", type=Path, help="copy every process's log to this host directory")


def run(args: argparse.Namespace) -> int:
    if os.environ.get("LVS_IN_GUEST") == "1":
        return inside(args)
    command = [sys.executable, "-m", "lvs_cli.demo"]
    collect = ["--collect", str(args.logs)] if args.logs else []
    return subprocess.call(
        [sys.executable, "-m", "lvs_guest", "run", "--timeout", str(args.timeout), *collect, "--", *command],
        cwd=ROOT,
    )


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="lvs-operator demo", description=__doc__)
    add_arguments(parser)
    return run(parser.parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())
