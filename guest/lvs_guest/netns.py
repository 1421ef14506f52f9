"""Named network namespaces without forking (forks cost ~30 ms each under User-Mode Linux).

A thread can switch its own network namespace with setns(2); a socket keeps the namespace it was created
in. So servers, clients and netlink sockets for every namespace live in one Python process. Namespaces
are bind-mounted under /run/netns exactly as `ip netns add` does, so `ip netns exec NAME ...` works too.
"""

from __future__ import annotations

import contextlib
import ctypes
import errno
import os
from collections.abc import Iterator
from pathlib import Path

NETNS_RUN_DIR = Path("/run/netns")
CLONE_NEWNET = 0x40000000
MS_BIND = 0x1000
MS_REC = 0x4000
MS_SHARED = 1 << 20
MNT_DETACH = 2

_libc = ctypes.CDLL(None, use_errno=True)


def _check(result: int, what: str) -> None:
    if result != 0:
        code = ctypes.get_errno()
        raise OSError(code, f"{what}: {os.strerror(code)}")


def setns(fd: int) -> None:
    """Move the calling thread into the network namespace open on fd."""
    _check(_libc.setns(fd, CLONE_NEWNET), "setns")


def netns_path(name: str) -> Path:
    return NETNS_RUN_DIR / name


def _share_run_dir() -> None:
    # As iproute2 does: /run/netns is a shared mount so namespaces added later show up in other mount
    # namespaces (`ip netns exec` makes one).
    NETNS_RUN_DIR.mkdir(parents=True, exist_ok=True)
    target = str(NETNS_RUN_DIR).encode()
    if _libc.mount(b"none", target, b"none", MS_SHARED | MS_REC, None) == 0:
        return
    if ctypes.get_errno() != errno.EINVAL:  # EINVAL: not a mount point yet
        _check(-1, "share /run/netns")
    _check(_libc.mount(target, target, b"none", MS_BIND | MS_REC, None), "bind /run/netns")
    _check(_libc.mount(b"none", target, b"none", MS_SHARED | MS_REC, None), "share /run/netns")


def create_netns(name: str) -> Path:
    """Create a named network namespace (like `ip netns add NAME`), without a child process."""
    _share_run_dir()
    path = netns_path(name)
    fd = os.open(path, os.O_RDONLY | os.O_CREAT | os.O_EXCL, 0)
    os.close(fd)
    with open("/proc/thread-self/ns/net", "rb") as home:
        try:
            _check(_libc.unshare(CLONE_NEWNET), "unshare(CLONE_NEWNET)")
            try:
                _check(
                    _libc.mount(b"/proc/thread-self/ns/net", str(path).encode(), b"none", MS_BIND, None),
                    f"bind netns {name}",
                )
            finally:
                setns(home.fileno())
        except BaseException:
            path.unlink(missing_ok=True)
            raise
    return path


def delete_netns(name: str) -> None:
    """Like `ip netns delete NAME`: the namespace dies once no socket or process holds it."""
    path = netns_path(name)
    _libc.umount2(str(path).encode(), MNT_DETACH)
    path.unlink(missing_ok=True)


@contextlib.contextmanager
def entered(name: str) -> Iterator[None]:
    """Run the block (this thread only) inside the named namespace; sockets and child processes created
    here belong to it."""
    with open("/proc/thread-self/ns/net", "rb") as home, open(netns_path(name), "rb") as target:
        setns(target.fileno())
        try:
            yield
        finally:
            setns(home.fileno())
