"""Guest backends: User-Mode Linux, and qemu (KVM where real hardware virtualisation exists, else TCG).

A backend turns a prepared control directory into the argv of one host process that boots the guest,
runs the job script and powers off. Selection: $LVS_GUEST_BACKEND (uml | qemu) if set; qemu with KVM
when the CPU has real VT-x/SVM (not PVM); otherwise DEFAULT_SOFTWARE_BACKEND, picked by measurement
(see bench/guest_bench.py and the comment on that constant).
"""

from __future__ import annotations

import os
import shutil
from abc import ABC, abstractmethod
from pathlib import Path

from lvs_guest.cache import cache_dir
from lvs_guest.errors import GuestUnavailable
from lvs_guest.initramfs import initramfs
from lvs_guest.kernels import QemuKernel, UmlKernel, qemu_kernel, uml_kernel
from lvs_guest.scripts import UML_MODPROBE_HELPER, uml_init

BACKEND_ENV = "LVS_GUEST_BACKEND"
BACKEND_NAMES = ("uml", "qemu")

# Measured with bench/guest_bench.py on the 2-core workplace machine (shared, so figures move; wall s):
#                      UML     qemu TCG
#   boot to job start  2.3-3.0  4.9-20
#   realistic job      2.6-6.4  30-38    (python start, imports, netns topology, 500 IPVS ops, 100 HTTP)
#   smoke test suite   33       122      (host pytest, 10 tests in one guest)
# UML's syscalls (~70 us) and forks (~30 ms) are slow, but the kernel suite is Python-heavy (pytest,
# pyroute2, in-process servers), and TCG runs Python ~10x slower: UML wins without KVM.
DEFAULT_SOFTWARE_BACKEND = "uml"


def require_root() -> None:
    if os.geteuid() != 0:
        raise GuestUnavailable(
            "root: the guest reads the host's whole / and fetches kernels with apt",
            "run the kernel tests as root (e.g. sudo bash scripts/test.sh kernel)",
        )


def has_hardware_virtualisation() -> bool:
    """KVM that can boot a stock kernel: /dev/kvm usable, vmx/svm in the CPU flags, and not PVM."""
    if not os.access("/dev/kvm", os.R_OK | os.W_OK) or Path("/sys/module/kvm_pvm").exists():
        return False
    try:
        cpuinfo = Path("/proc/cpuinfo").read_text()
    except OSError:
        return False
    flags = {word for line in cpuinfo.splitlines() if line.startswith("flags") for word in line.split()}
    return bool(flags & {"vmx", "svm"})


class Backend(ABC):
    """One way to boot the guest. `prepare` fetches and checks; `argv` writes init files and says how."""

    name: str

    @abstractmethod
    def prepare(self) -> None:
        """Fetch the kernel if needed and check host tools; raise GuestUnavailable with the fix."""

    @abstractmethod
    def argv(self, control_dir: Path, memory_mib: int, debug: bool) -> list[str]:
        """Write whatever init needs into control_dir and return the command that boots the guest."""

    def describe(self) -> str:
        return self.name

    def process_env(self, memory_mib: int) -> dict[str, str] | None:
        """Environment for the guest process (None: inherit ours)."""
        return None

    def boot_failure_hint(self) -> str:
        """What to try when the guest dies before the job reports a status."""
        return "Rerun with `python -m lvs_guest run --debug -- true` to see the kernel's boot messages."


class UmlBackend(Backend):
    """Debian's User-Mode Linux: an ordinary host process; its root is the host's / through hostfs."""

    name = "uml"

    def __init__(self) -> None:
        self._kernel: UmlKernel | None = None

    def prepare(self) -> None:
        require_root()
        for tool, package in (
            ("mount", "mount"),
            ("insmod", "kmod"),
            ("chroot", "coreutils"),
            ("ip", "iproute2"),
        ):
            if shutil.which(tool) is None:
                raise GuestUnavailable(f"the `{tool}` command", f"apt-get install {package}")
        self._kernel = uml_kernel(cache_dir())

    @property
    def kernel(self) -> UmlKernel:
        if self._kernel is None:
            self.prepare()
        assert self._kernel is not None
        return self._kernel

    def argv(self, control_dir: Path, memory_mib: int, debug: bool) -> list[str]:
        kernel = self.kernel
        init = control_dir / "init"
        init.write_text(uml_init(control_dir, kernel.modules_dir, kernel.overlay_module, debug))
        helper = control_dir / "modprobe"
        helper.write_text(UML_MODPROBE_HELPER)
        init.chmod(0o755)
        helper.chmod(0o755)
        # con0=null,fd:1: console to our stdout, no input (no tty needed); ssl=null: no ptys for serial lines.
        return [
            str(kernel.binary),
            f"mem={memory_mib}M",
            "rootfstype=hostfs",
            "rootflags=/",
            "ro",
            f"init={init}",
            "con=null",
            "con0=null,fd:1",
            "ssl=null",
            *(["loglevel=7"] if debug else ["quiet", "loglevel=0"]),
        ]

    def describe(self) -> str:
        return f"uml (User-Mode Linux {self._kernel.version})" if self._kernel else "uml"

    def boot_failure_hint(self) -> str:
        return (
            "User-Mode Linux needs ptrace of its own children (a seccomp filter or Yama ptrace_scope=3 "
            "stops it) and room for its memory in $TMPDIR or /dev/shm; "
            f"{BACKEND_ENV}=qemu is the other backend. " + super().boot_failure_hint()
        )

    def process_env(self, memory_mib: int) -> dict[str, str] | None:
        # UML backs its RAM with a deleted file in $TMPDIR, else /dev/shm. A small /dev/shm (Docker's
        # default is 64 MiB) kills the guest once it touches more: fall back to the cache directory.
        if os.environ.get("TMPDIR"):
            return None
        try:
            stat = os.statvfs("/dev/shm")
            free_mib = stat.f_bavail * stat.f_frsize // 2**20
        except OSError:
            free_mib = 0
        if free_mib >= memory_mib:
            return None
        scratch = cache_dir() / "uml-memory"
        scratch.mkdir(parents=True, exist_ok=True)
        return {**os.environ, "TMPDIR": str(scratch)}


class QemuBackend(Backend):
    """Debian's amd64 kernel under qemu: KVM when real, else TCG; host / and the control dir over 9p."""

    name = "qemu"

    def __init__(self, accel: str | None = None, cpus: int = 2) -> None:
        self.accel = accel or ("kvm" if has_hardware_virtualisation() else "tcg")
        self.cpus = cpus
        self._kernel: QemuKernel | None = None
        self._initramfs: Path | None = None

    def prepare(self) -> None:
        require_root()
        if shutil.which("qemu-system-x86_64") is None:
            raise GuestUnavailable(
                "qemu-system-x86_64", "apt-get install qemu-system-x86 (or bash scripts/setup-system.sh)"
            )
        self._kernel = qemu_kernel(cache_dir())
        self._initramfs = initramfs(self._kernel, cache_dir())

    def argv(self, control_dir: Path, memory_mib: int, debug: bool) -> list[str]:
        if self._kernel is None or self._initramfs is None:
            self.prepare()
        assert self._kernel is not None and self._initramfs is not None
        if self.accel == "kvm":
            accel = ["-accel", "kvm", "-cpu", "host"]
        else:
            accel = ["-accel", "tcg,thread=multi,tb-size=256", "-cpu", "max"]
        append = f"console=ttyS0 panic=-1 rdinit=/init lvsguest.moddir={self._kernel.modules_dir}"
        append += " lvsguest.debug=1 loglevel=7" if debug else " quiet loglevel=1"
        # -nodefaults: no NIC, no VGA; the serial console is our stdout. panic=-1 + -no-reboot: a guest
        # panic ends qemu at once. multidevs=remap: the host / spans several filesystems.
        return [
            "qemu-system-x86_64",
            *accel,
            "-m",
            str(memory_mib),
            "-smp",
            str(self.cpus),
            "-nodefaults",
            "-no-user-config",
            "-display",
            "none",
            "-no-reboot",
            "-chardev",
            "stdio,id=con,signal=off",
            "-serial",
            "chardev:con",
            "-kernel",
            str(self._kernel.vmlinuz),
            "-initrd",
            str(self._initramfs),
            "-append",
            append,
            "-fsdev",
            "local,id=hostroot,path=/,security_model=none,readonly=on,multidevs=remap",
            "-device",
            "virtio-9p-pci,fsdev=hostroot,mount_tag=hostroot",
            "-fsdev",
            f"local,id=control,path={control_dir},security_model=none,multidevs=remap",
            "-device",
            "virtio-9p-pci,fsdev=control,mount_tag=control",
        ]

    def describe(self) -> str:
        version = f" {self._kernel.version}" if self._kernel else ""
        return f"qemu ({self.accel}{version})"


def backend_by_name(name: str) -> Backend:
    if name == "uml":
        return UmlBackend()
    if name == "qemu":
        return QemuBackend()
    raise GuestUnavailable(
        f"a known backend (got {name!r})", f"set {BACKEND_ENV} to one of {', '.join(BACKEND_NAMES)}"
    )


def select_backend(name: str | None = None) -> Backend:
    """The explicit name, else $LVS_GUEST_BACKEND, else KVM-qemu on real hardware, else the default."""
    requested = name or os.environ.get(BACKEND_ENV, "").strip()
    if requested:
        return backend_by_name(requested)
    if has_hardware_virtualisation():
        return QemuBackend(accel="kvm")
    return backend_by_name(DEFAULT_SOFTWARE_BACKEND)
