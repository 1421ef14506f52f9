"""Run the reference tool `ipvsadm` in a host's network namespace (tests compare the agent against it)."""

from __future__ import annotations

import shutil
import subprocess
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from lvs_guest.hosts import Host


class IpvsadmError(RuntimeError):
    def __init__(self, args: tuple[str, ...], host: str, code: int, stderr: str) -> None:
        super().__init__(f"ipvsadm {' '.join(args)} (in {host}) exited {code}: {stderr.strip()}")
        self.code = code
        self.stderr = stderr


def ipvsadm(
    host: Host, *args: str, input: str | None = None, check: bool = True
) -> subprocess.CompletedProcess[str]:
    """`ipvsadm ARGS` inside `host`'s namespace; raises IpvsadmError (with its stderr) unless check=False.
    Use `input=` with "--restore" to load many rules in one process."""
    if shutil.which("ipvsadm") is None:
        raise IpvsadmError(args, host.name, 127, "ipvsadm is not installed (bash scripts/setup-system.sh)")
    done = host.run(["ipvsadm", *args], input=input, check=False)
    if check and done.returncode != 0:
        raise IpvsadmError(args, host.name, done.returncode, done.stderr)
    return done
