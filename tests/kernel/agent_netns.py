"""Small network-namespace helpers for the agent's kernel tests (VIP, failover, agent), run inside the guest.

Each helper shells out to ``ip``; the guest is throw-away, and every test cleans what it created.
"""

from __future__ import annotations

import contextlib
import os
import subprocess
from collections.abc import Iterator


def sh(*command: str, check: bool = True) -> str:
    """Run a command, return its stdout; raise with its stderr on failure."""
    done = subprocess.run(command, capture_output=True, text=True, check=False)
    if check and done.returncode != 0:
        raise RuntimeError(f"{' '.join(command)} failed ({done.returncode}): {done.stderr.strip()}")
    return done.stdout


def require_root_guest() -> None:
    """Kernel tests need root in a throw-away guest; fail (never skip) with what is missing."""
    if os.geteuid() != 0:
        raise RuntimeError("kernel tests must run as root inside the guest (tests/kernel/conftest.py)")


@contextlib.contextmanager
def netns(name: str) -> Iterator[str]:
    sh("ip", "netns", "add", name)
    try:
        sh("ip", "-n", name, "link", "set", "lo", "up")
        yield name
    finally:
        sh("ip", "netns", "del", name, check=False)


def veth_to_netns(host_side: str, namespace: str, peer: str = "eth0") -> None:
    """A veth pair with ``host_side`` in the current namespace and ``peer`` in ``namespace``."""
    sh("ip", "link", "add", host_side, "type", "veth", "peer", "name", peer, "netns", namespace)
    sh("ip", "link", "set", host_side, "up")
    sh("ip", "-n", namespace, "link", "set", peer, "up")


def link_mac(name: str, namespace: str | None = None) -> str:
    prefix = ["ip", "-n", namespace] if namespace else ["ip"]
    out = sh(*prefix, "-o", "link", "show", name)
    return out.split("link/ether", 1)[1].split()[0]


def neighbour_mac(address: str, device: str, namespace: str) -> str | None:
    out = sh("ip", "-n", namespace, "neigh", "show", address, "dev", device).strip()
    if "lladdr" not in out:
        return None
    return out.split("lladdr", 1)[1].split()[0]
