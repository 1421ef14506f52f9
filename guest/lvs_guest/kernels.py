"""The two Debian kernels the harness boots: User-Mode Linux, and the amd64 image for qemu."""

from __future__ import annotations

import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

from lvs_guest.cache import cache_lock, download_and_unpack, resolve_kernel_image_package
from lvs_guest.errors import GuestUnavailable

UML_PACKAGE = "user-mode-linux"


@dataclass(frozen=True)
class UmlKernel:
    """`linux.uml` plus its module tree (the package ships modules.dep)."""

    binary: Path
    modules_dir: Path
    version: str

    @property
    def overlay_module(self) -> Path:
        return self.modules_dir / "kernel" / "fs" / "overlayfs" / "overlay.ko"


@dataclass(frozen=True)
class QemuKernel:
    """An unpacked linux-image-*-amd64 package: vmlinuz and its module tree (with our depmod)."""

    vmlinuz: Path
    modules_dir: Path
    version: str

    @property
    def root(self) -> Path:
        """The directory the package was unpacked into (what `modprobe -d` wants)."""
        return self.modules_dir.parents[2]


def _uml_in(root: Path) -> UmlKernel | None:
    binary = root / "usr" / "bin" / "linux.uml"
    module_base = root / "usr" / "lib" / "uml" / "modules"
    versions = (
        sorted(p for p in module_base.glob("*") if (p / "kernel").is_dir()) if module_base.is_dir() else []
    )
    if not binary.is_file() or not versions:
        return None
    kernel = UmlKernel(binary=binary, modules_dir=versions[-1], version=versions[-1].name)
    if not kernel.overlay_module.is_file():
        raise GuestUnavailable(f"overlayfs module at {kernel.overlay_module}", f"reinstall {UML_PACKAGE}")
    return kernel


def uml_kernel(cache: Path, fetch: bool = True) -> UmlKernel:
    """The installed user-mode-linux package if present, else a copy unpacked into the cache."""
    installed = _uml_in(Path("/"))
    if installed is not None:
        return installed
    target = cache / "uml" / UML_PACKAGE
    with cache_lock(cache):
        found = _uml_in(target)
        if found is None and fetch:
            download_and_unpack(UML_PACKAGE, target)
            found = _uml_in(target)
    if found is None:
        raise GuestUnavailable(
            f"the User-Mode Linux kernel (no {target}/usr/bin/linux.uml)",
            "let the harness fetch it (root, Debian apt) or apt-get install user-mode-linux",
        )
    return found


def _qemu_kernel_in(root: Path) -> QemuKernel | None:
    images = sorted(root.glob("boot/vmlinuz-*"))
    if not images:
        return None
    version = images[-1].name.removeprefix("vmlinuz-")
    modules_dir = root / "lib" / "modules" / version
    if not (modules_dir / "kernel").is_dir():
        return None
    return QemuKernel(vmlinuz=images[-1], modules_dir=modules_dir, version=version)


def _ensure_module_index(kernel: QemuKernel) -> None:
    # The .deb ships no modules.dep (its postinst runs depmod); make it once, in the cache.
    index = kernel.modules_dir / "modules.dep"
    if index.is_file() and index.stat().st_size > 0:
        return
    if shutil.which("depmod") is None:
        raise GuestUnavailable(
            "the `depmod` command", "apt-get install kmod (or bash scripts/setup-system.sh)"
        )
    done = subprocess.run(
        ["depmod", "-b", str(kernel.root), kernel.version], capture_output=True, text=True, check=False
    )
    if done.returncode != 0:
        raise GuestUnavailable(
            f"a module index for {kernel.version}", f"depmod failed: {done.stderr.strip()}"
        )


def qemu_kernel(cache: Path, fetch: bool = True) -> QemuKernel:
    """The newest linux-image already unpacked in the cache, else Debian's current one, fetched now."""
    base = cache / "qemu"
    with cache_lock(cache):
        candidates = [k for k in (_qemu_kernel_in(p) for p in sorted(base.glob("linux-image-*"))) if k]
        if not candidates and fetch:
            package = resolve_kernel_image_package()
            download_and_unpack(package, base / package)
            fetched = _qemu_kernel_in(base / package)
            candidates = [fetched] if fetched else []
        if not candidates:
            raise GuestUnavailable(
                f"a Debian amd64 kernel under {base}", "let the harness fetch it (root, Debian apt)"
            )
        kernel = candidates[-1]
        _ensure_module_index(kernel)
    return kernel
