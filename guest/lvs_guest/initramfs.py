"""The qemu guest's initramfs: static busybox, /init and the few modules needed to mount the host root.

Written in Python (newc cpio + gzip) so the host needs no cpio; cached by a hash of everything in it.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import os
import shutil
import struct
import subprocess
from pathlib import Path

from lvs_guest.errors import GuestUnavailable
from lvs_guest.kernels import QemuKernel
from lvs_guest.scripts import QEMU_INIT

# virtio-pci for the devices, 9p for the host root and the control dir, overlay for a writable root.
BOOT_MODULES = ("virtio_pci", "9pnet_virtio", "9p", "overlay")
_PT_INTERP = 3


def is_static_elf(path: Path) -> bool:
    """True when the ELF has no program interpreter (so it runs in an initramfs with no libc)."""
    with open(path, "rb") as handle:
        header = handle.read(64)
        if header[:4] != b"\x7fELF" or header[4] != 2:  # 64-bit only
            return False
        endian = "<" if header[5] == 1 else ">"
        (phoff,) = struct.unpack_from(endian + "Q", header, 0x20)
        phentsize, phnum = struct.unpack_from(endian + "HH", header, 0x36)
        handle.seek(phoff)
        table = handle.read(phentsize * phnum)
    return all(struct.unpack_from(endian + "I", table, i * phentsize)[0] != _PT_INTERP for i in range(phnum))


def static_busybox() -> Path:
    for candidate in (Path("/bin/busybox"), Path("/usr/bin/busybox")):
        if candidate.is_file() and is_static_elf(candidate):
            return candidate
    raise GuestUnavailable(
        "a static busybox for the qemu initramfs (Debian's `busybox` is dynamic)",
        "apt-get install busybox-static (or bash scripts/setup-system.sh)",
    )


def boot_module_files(kernel: QemuKernel) -> list[Path]:
    """The boot modules and their dependencies, in load order, as modprobe resolves them."""
    if shutil.which("modprobe") is None:
        raise GuestUnavailable(
            "the `modprobe` command", "apt-get install kmod (or bash scripts/setup-system.sh)"
        )
    ordered: list[Path] = []
    for module in BOOT_MODULES:
        done = subprocess.run(
            ["modprobe", "-d", str(kernel.root), "-S", kernel.version, "--show-depends", module],
            capture_output=True,
            text=True,
            check=False,
        )
        if done.returncode != 0:
            raise GuestUnavailable(f"module {module} in {kernel.modules_dir}", done.stderr.strip())
        for line in done.stdout.splitlines():
            words = line.split()
            if len(words) >= 2 and words[0] == "insmod" and Path(words[1]) not in ordered:
                ordered.append(Path(words[1]))
    return ordered


class _NewcWriter:
    """Minimal cpio "newc" archive writer (the format the kernel unpacks)."""

    def __init__(self) -> None:
        self._buffer = io.BytesIO()
        self._inode = 1

    def _entry(self, name: str, mode: int, data: bytes) -> None:
        encoded = name.encode() + b"\0"
        fields = (self._inode, mode, 0, 0, 1, 0, len(data), 0, 0, 0, 0, len(encoded), 0)
        self._inode += 1
        header = b"070701" + b"".join(b"%08X" % value for value in fields)
        self._buffer.write(header + encoded)
        self._buffer.write(b"\0" * (-(len(header) + len(encoded)) % 4))
        self._buffer.write(data)
        self._buffer.write(b"\0" * (-len(data) % 4))

    def directory(self, name: str) -> None:
        self._entry(name, 0o040755, b"")

    def file(self, name: str, data: bytes, executable: bool = False) -> None:
        self._entry(name, 0o100755 if executable else 0o100644, data)

    def finish(self) -> bytes:
        self._entry("TRAILER!!!", 0, b"")
        return self._buffer.getvalue()


def initramfs(kernel: QemuKernel, cache: Path) -> Path:
    """Build (or reuse) the initramfs for this kernel, init text and busybox."""
    busybox = static_busybox()
    modules = boot_module_files(kernel)
    digest = hashlib.sha256()
    digest.update(kernel.version.encode() + QEMU_INIT.encode() + busybox.read_bytes())
    for module in modules:
        digest.update(module.name.encode())
    target = cache / "qemu" / f"initramfs-{digest.hexdigest()[:16]}.cpio.gz"
    if target.is_file():
        return target
    archive = _NewcWriter()
    for directory in ("bin", "dev", "proc", "sys", "modules"):
        archive.directory(directory)
    archive.file("bin/busybox", busybox.read_bytes(), executable=True)
    archive.file("init", QEMU_INIT.encode(), executable=True)
    for module in modules:
        archive.file(f"modules/{module.name}", module.read_bytes())
    archive.file("modules/order", "".join(f"{m.name}\n" for m in modules).encode())
    scratch = target.with_suffix(f".{os.getpid()}.tmp")
    scratch.write_bytes(gzip.compress(archive.finish(), compresslevel=1))
    scratch.rename(target)
    return target
