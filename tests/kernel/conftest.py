"""Kernel-guest tests: real IPVS, real packets, in a Debian kernel guest booted once per pytest session.

How it runs
    `pytest tests/kernel` on the HOST (root) boots ONE guest (User-Mode Linux by default here, qemu with
    KVM on machines with real VT-x/SVM; LVS_GUEST_BACKEND=uml|qemu overrides) and runs these tests inside
    it with the same options (LVS_IN_GUEST=1). Their reports come back live and count as the host's own:
    a failing test inside fails the host run under its own name, with its traceback. If no guest can
    start (not root, a package missing), every kernel test FAILS saying what is missing and how to fix it.
    Hangs: each test has pytest-timeout's 120 s (pyproject.toml), applied inside the guest, so a hung test
    fails by name and the rest go on; if the guest stops reporting altogether for LVS_GUEST_STALL_TIMEOUT
    (default 300 s) the host kills it, and the test that was running fails as the one cut off.
    Environment: LVS_GUEST_TIMEOUT (whole suite, default 1200 s), LVS_GUEST_CACHE (kernel cache dir,
    default .cache/guest), LVS_GUEST_BACKEND, LVS_GUEST_WORKERS (N guests at once, whole modules each;
    default 1). `-s` or `-vv` also shows the guest console live; it is
    always written to .cache/guest/logs/kernel-tests-console.log.
    Tests marked `guest_host` run on the host instead (they drive guests themselves: harness tests).

Fixtures (inside the guest, as root; see lvs_guest.topology for the address plan)
    topology   factory -> lvs_guest.topology.Topology, built and torn down after the test:
                   topo = topology(directors=1, real_servers=2, clients=1)
                   topo.client, topo.directors[0], topo.real_servers, Topology.vip(0) / vip(0, version=6)
                   topo.add_vip(vip, director), topo.configure_forwarding(Forwarding.DR, [vip])
                   topo.serve_http(port) / serve_tcp / serve_udp  (servers answer their host name)
                   topo.client.http_get(vip, 80, count=8) -> ["rs1", "rs2", ...]
                   host.run(argv), host.popen(argv), host.sysctl(name, value), host.iproute(),
                   host.entered() (this thread inside the host's netns)
    ipvsadm    runner: ipvsadm(host, "-A", "-t", "203.0.113.10:80", "-s", "rr") -> CompletedProcess[str]
               (in the host's namespace; raises IpvsadmError with stderr unless check=False)

Running other code in a guest (benches, the demo): `python -m lvs_guest run -- CMD ARGS` (see lvs_guest).
"""

from __future__ import annotations

import itertools
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from lvs_guest.ipvsadm import ipvsadm as run_ipvsadm
from lvs_guest.pytest_bridge import in_guest, install
from lvs_guest.topology import Topology

KERNEL_DIR = Path(__file__).parent
_prefixes = itertools.count(1)


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "guest_host: a harness test that runs on the host and boots guests")
    install(config, KERNEL_DIR)


def pytest_itemcollected(item: pytest.Item) -> None:
    item.add_marker(pytest.mark.kernel)


@pytest.fixture(autouse=True)
def _inside_the_guest(request: pytest.FixtureRequest) -> None:
    if request.node.get_closest_marker("guest_host") is None and not in_guest():
        pytest.fail("kernel tests run inside the guest: run pytest on the host and the harness boots one")


@pytest.fixture
def topology() -> Iterator[Callable[..., Topology]]:
    """Factory: topology(directors=1, real_servers=2, clients=1) -> a built Topology, removed afterwards."""
    built: list[Topology] = []

    def build(directors: int = 1, real_servers: int = 2, clients: int = 1) -> Topology:
        topo = Topology(
            directors=directors, real_servers=real_servers, clients=clients, prefix=f"t{next(_prefixes)}"
        )
        built.append(topo.build())
        return topo

    yield build
    for topo in reversed(built):
        topo.close()


@pytest.fixture
def ipvsadm() -> Callable[..., subprocess.CompletedProcess[str]]:
    """ipvsadm(host, *args, input=None, check=True): the reference tool in a host's namespace."""
    return run_ipvsadm
