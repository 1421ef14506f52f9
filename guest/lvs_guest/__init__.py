"""lvs_guest: boot Debian's kernel (User-Mode Linux or qemu) as a throw-away guest and run commands in it.

Host side: `run_in_guest`, `GuestRun`, `select_backend`; the CLI is `python -m lvs_guest run -- CMD`.
Guest side (inside, as root): `lvs_guest.topology` builds client / director / real-server namespaces.
"""

from lvs_guest.backends import Backend, QemuBackend, UmlBackend, select_backend
from lvs_guest.errors import GuestBootFailed, GuestError, GuestTimeout, GuestUnavailable
from lvs_guest.runner import GuestResult, GuestRun, RunStatus, run_in_guest

__all__ = [
    "Backend",
    "GuestBootFailed",
    "GuestError",
    "GuestResult",
    "GuestRun",
    "GuestTimeout",
    "GuestUnavailable",
    "QemuBackend",
    "RunStatus",
    "UmlBackend",
    "run_in_guest",
    "select_backend",
]
