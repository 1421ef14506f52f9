"""Where the guest kernels live on the host, and how they get there (Debian's apt, no other source)."""

from __future__ import annotations

import contextlib
import fcntl
import os
import shutil
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

from lvs_guest.errors import GuestUnavailable

CACHE_ENV = "LVS_GUEST_CACHE"
# apt retries each download itself; a fetch that still fails (a registry hiccup) is tried again this many
# times, after a pause, before the kernel tests fail for want of a kernel.
FETCH_ATTEMPTS = 3
APT_OPTIONS = ["-o", "Acquire::Retries=3"]


def project_root() -> Path | None:
    """The checkout this package runs from (editable install), or None when installed elsewhere."""
    candidate = Path(__file__).resolve().parents[2]
    return candidate if (candidate / "pyproject.toml").is_file() else None


def cache_dir() -> Path:
    """$LVS_GUEST_CACHE, else <checkout>/.cache/guest, else ~/.cache/lvs-guest."""
    configured = os.environ.get(CACHE_ENV)
    if configured:
        path = Path(configured)
    else:
        root = project_root()
        path = root / ".cache" / "guest" if root else Path.home() / ".cache" / "lvs-guest"
    path = path.resolve()
    if any(ch.isspace() for ch in str(path)):
        # The path goes onto kernel command lines and into shell scripts unquoted by the kernel.
        raise GuestUnavailable(f"a cache path without spaces (got {path!r})", f"set {CACHE_ENV}=/some/dir")
    return path


@contextlib.contextmanager
def cache_lock(directory: Path) -> Iterator[None]:
    """Serialise fetches: a test session and a bench may both start on a cold cache."""
    directory.mkdir(parents=True, exist_ok=True)
    with open(directory / ".lock", "w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _require_tool(name: str, package: str) -> str:
    found = shutil.which(name)
    if found is None:
        raise GuestUnavailable(
            f"the `{name}` command", f"apt-get install {package} (or bash scripts/setup-system.sh)"
        )
    return found


def _run(argv: list[str], cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(argv, cwd=cwd, capture_output=True, text=True, check=False)


def _apt_update() -> None:
    if os.geteuid() != 0:
        raise GuestUnavailable("apt package lists (apt-get update was never run)", "sudo apt-get update")
    done = _run(["apt-get", *APT_OPTIONS, "update", "-qq"])
    for attempt in range(1, FETCH_ATTEMPTS):
        if done.returncode == 0:
            break
        time.sleep(10 * attempt)
        done = _run(["apt-get", *APT_OPTIONS, "update", "-qq"])
    if done.returncode != 0:
        raise GuestUnavailable("apt package lists", f"apt-get update failed: {done.stderr.strip()[-400:]}")


def resolve_kernel_image_package() -> str:
    """linux-image-amd64 is a meta package; its dependency names the current versioned image."""
    _require_tool("apt-cache", "apt")
    for attempt in range(2):
        done = _run(["apt-cache", "depends", "linux-image-amd64"])
        for line in done.stdout.splitlines():
            parts = line.split()
            if len(parts) == 2 and parts[0] == "Depends:" and parts[1].startswith("linux-image-"):
                return parts[1]
        if attempt == 0:
            _apt_update()
    raise GuestUnavailable(
        "the package linux-image-amd64 in the apt lists", "a Debian apt source with the kernel"
    )


def download_and_unpack(package: str, destination: Path) -> None:
    """`apt-get download` the package into a scratch dir, then `dpkg-deb -x` it into destination."""
    _require_tool("apt-get", "apt")
    _require_tool("dpkg-deb", "dpkg")
    destination.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=destination.parent, prefix=".download-") as scratch:
        scratch_dir = Path(scratch)
        # apt drops to the _apt user for downloads; let it write here, or it warns and runs unsandboxed.
        os.chmod(scratch_dir, 0o777)
        download = ["apt-get", *APT_OPTIONS, "download", "-q", package]
        done = _run(download, cwd=scratch_dir)
        if done.returncode != 0 and "Unable to locate" in done.stderr:
            _apt_update()
            done = _run(download, cwd=scratch_dir)
        for attempt in range(1, FETCH_ATTEMPTS):
            if done.returncode == 0:
                break
            time.sleep(10 * attempt)
            done = _run(download, cwd=scratch_dir)
        debs = sorted(scratch_dir.glob("*.deb"))
        if done.returncode != 0 or not debs:
            raise GuestUnavailable(
                f"the Debian package {package}",
                f"check the apt sources; `apt-get download {package}` said: {done.stderr.strip()[-400:]}",
            )
        unpack_dir = scratch_dir / "root"
        unpacked = _run(["dpkg-deb", "-x", str(debs[0]), str(unpack_dir)])
        if unpacked.returncode != 0:
            raise GuestUnavailable(f"an unpackable {debs[0].name}", unpacked.stderr.strip()[-400:])
        if destination.exists():
            shutil.rmtree(destination)
        # Appears whole or not at all: a killed fetch leaves only the scratch dir behind.
        unpack_dir.rename(destination)
