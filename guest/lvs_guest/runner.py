"""Run one command as root in a fresh guest: boot, stream the console, collect the exit status, tear down.

    result = run_in_guest(["cat", "/proc/net/ip_vs"], timeout=60)
    result.exit_code, result.output

The guest's / is the host's (read-only) with a RAM overlay: the venv, the checkout and every tool are the
host's own. Writes vanish with the guest, except under $LVS_GUEST_OUT (GUEST_OUT_DIR), which is the host
directory `GuestRun.out_dir` while the run is open.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import shlex
import shutil
import signal
import subprocess
import tempfile
import threading
import time
from collections import deque
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from enum import Enum
from pathlib import Path
from types import TracebackType

from lvs_guest.backends import Backend, select_backend
from lvs_guest.errors import GuestBootFailed, GuestTimeout
from lvs_guest.scripts import JOB_FILE, RC_FILE, STARTED_FILE, job_script

EXIT_TIMEOUT = 124
EXIT_NO_STATUS = 125
DEFAULT_MODULES = ("ip_vs",)
CONSOLE_TAIL_LINES = 40

OutputSink = Callable[[str], None]


class RunStatus(Enum):
    EXITED = "exited"  # the job finished and the guest reported its exit status
    TIMEOUT = "timeout"  # killed at the deadline
    NO_STATUS = "no-status"  # the guest ended without reporting one (boot failure, crash, panic)


@dataclass(frozen=True)
class GuestResult:
    backend: str
    status: RunStatus
    exit_code: int  # the job's status; 124 on timeout; 125 when the guest reported none
    output: str  # the guest console: the job's stdout and stderr (plus init's complaints)
    boot_seconds: float | None  # from process start until the job script began
    total_seconds: float
    timeout_seconds: float
    boot_failure_hint: str = ""  # what to try when the guest ends without a status

    def console_tail(self, lines: int = CONSOLE_TAIL_LINES) -> str:
        return "\n".join(self.output.splitlines()[-lines:])

    def raise_for_guest_failure(self) -> GuestResult:
        """Raise when the guest itself failed (timeout, no status); a non-zero job status is returned."""
        if self.status is RunStatus.TIMEOUT:
            raise GuestTimeout(self.timeout_seconds, self.console_tail())
        if self.status is RunStatus.NO_STATUS:
            raise GuestBootFailed(
                f"the {self.backend} guest ended without an exit status. {self.boot_failure_hint}",
                self.console_tail(),
            )
        return self


PR_SET_CHILD_SUBREAPER = 36


def _become_subreaper() -> None:
    """Orphans of the guest (UML's per-process helpers killed with it) become our children, so we can reap
    them: otherwise they wait as zombies for the host's PID 1, which may be slow to collect them."""
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL(None, use_errno=True).prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0)


def _group_members(group: int) -> list[tuple[int, str, int]]:
    """(pid, state, parent pid) of every process in the group, zombies included."""
    found: list[tuple[int, str, int]] = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            stat = Path(f"/proc/{entry}/stat").read_text()
        except OSError:
            continue
        # Fields after the parenthesised command name (which may contain spaces): state, ppid, pgrp, ...
        fields = stat[stat.rfind(")") + 2 :].split()
        if len(fields) > 2 and int(fields[2]) == group:
            found.append((int(entry), fields[0], int(fields[1])))
    return found


def _kill_group(group: int, grace_seconds: float = 5.0) -> list[int]:
    """SIGKILL the whole process group (UML runs one host process per guest process), reap what became
    ours, and return the pids still alive after the grace period (none, normally)."""
    deadline = time.monotonic() + grace_seconds
    me = os.getpid()
    while True:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(group, signal.SIGKILL)
        alive: list[int] = []
        for pid, state, parent in _group_members(group):
            if state != "Z":
                alive.append(pid)
            elif parent == me and pid != group:  # the leader is Popen's to reap
                with contextlib.suppress(ChildProcessError):
                    os.waitpid(pid, os.WNOHANG)
        if not alive or time.monotonic() > deadline:
            return alive
        time.sleep(0.05)


class GuestRun:
    """One guest boot running one job. Use as a context manager; `close()` always tears it down."""

    def __init__(
        self,
        command: str | Sequence[str],
        *,
        backend: Backend | None = None,
        timeout: float = 600.0,
        cwd: Path | None = None,
        env: Mapping[str, str] | None = None,
        modules: Sequence[str] = DEFAULT_MODULES,
        memory_mib: int = 1536,
        on_output: OutputSink | None = None,
        debug: bool = False,
    ) -> None:
        self.backend = backend or select_backend()
        self.command = command if isinstance(command, str) else shlex.join(command)
        self.timeout = timeout
        self.cwd = (cwd or Path.cwd()).resolve()
        self.env = dict(env or {})
        self.modules = tuple(modules)
        self.memory_mib = memory_mib
        self.on_output = on_output
        self.debug = debug
        self._control_dir: Path | None = None
        self._process: subprocess.Popen[bytes] | None = None
        self._reader: threading.Thread | None = None
        self._lines: deque[str] = deque(maxlen=20000)
        self._started_at = 0.0
        self._boot_seconds: float | None = None
        self._result: GuestResult | None = None

    # -- lifecycle ---------------------------------------------------------------------------------------
    def start(self) -> GuestRun:
        self.backend.prepare()
        self._control_dir = Path(tempfile.mkdtemp(prefix="lvs-guest-"))
        try:
            self.out_dir.mkdir(mode=0o777)
            (self._control_dir / JOB_FILE).write_text(
                job_script(
                    self.command,
                    cwd=self.cwd,
                    env={"LVS_GUEST_BACKEND": self.backend.name, **self.env},
                    modules=self.modules,
                    host_env=os.environ,
                )
            )
            argv = self.backend.argv(self._control_dir, self.memory_mib, self.debug)
            _become_subreaper()
            self._started_at = time.monotonic()
            # Own session: the whole guest (UML forks a host process per guest process) is one group.
            self._process = subprocess.Popen(
                argv,
                stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT,
                start_new_session=True,
                cwd=self._control_dir,
                env=self.backend.process_env(self.memory_mib),
            )
        except BaseException:
            self.close()
            raise
        self._reader = threading.Thread(target=self._pump_console, name="guest-console", daemon=True)
        self._reader.start()
        return self

    def __enter__(self) -> GuestRun:
        return self.start() if self._process is None else self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    @property
    def control_dir(self) -> Path:
        if self._control_dir is None:
            raise RuntimeError("guest run not started")
        return self._control_dir

    @property
    def out_dir(self) -> Path:
        """Host side of $LVS_GUEST_OUT: what the job writes there is readable here until close()."""
        return self.control_dir / "out"

    @property
    def boot_seconds(self) -> float | None:
        self._notice_start()
        return self._boot_seconds

    def _notice_start(self) -> None:
        if self._boot_seconds is None and self._control_dir and (self._control_dir / STARTED_FILE).exists():
            self._boot_seconds = time.monotonic() - self._started_at

    def _pump_console(self) -> None:
        assert self._process is not None and self._process.stdout is not None
        for raw in self._process.stdout:
            line = raw.decode("utf-8", errors="replace").rstrip("\r\n")
            self._lines.append(line)
            if self.on_output is not None:
                self.on_output(line)

    def wait(self, seconds: float) -> bool:
        """Wait up to `seconds`; True once the guest has ended (by itself or at the deadline)."""
        if self._process is None:
            raise RuntimeError("guest run not started")
        end = time.monotonic() + seconds
        while True:
            self._notice_start()
            if self._process.poll() is not None:
                return True
            now = time.monotonic()
            if now - self._started_at > self.timeout:
                self._terminate()
                return True
            if now >= end:
                return False
            time.sleep(min(0.05, end - now))

    def kill(self) -> None:
        """End the guest now (a watchdog gave up on it); result() then reports what happened."""
        if self._process is not None and self._process.poll() is None:
            self._terminate()

    def _terminate(self) -> None:
        if self._process is not None:
            survivors = _kill_group(self._process.pid)
            with contextlib.suppress(subprocess.TimeoutExpired):
                self._process.wait(timeout=5)
            if survivors:
                self._lines.append(f"lvs-guest: processes {survivors} survived SIGKILL")

    def result(self) -> GuestResult:
        """Wait for the end (at most until the deadline), tear the guest down, return what happened."""
        if self._result is not None:
            return self._result
        while not self.wait(1.0):
            pass
        assert self._process is not None
        timed_out = time.monotonic() - self._started_at > self.timeout and not self._rc_file().exists()
        total = time.monotonic() - self._started_at
        # The console reader ends when every holder of the pipe (the whole group) is gone.
        self._terminate()
        if self._reader is not None:
            self._reader.join(timeout=5)
        rc_text = self._rc_file().read_text().strip() if self._rc_file().exists() else ""
        if rc_text.isdigit():
            status, code = RunStatus.EXITED, int(rc_text)
        elif timed_out:
            status, code = RunStatus.TIMEOUT, EXIT_TIMEOUT
        else:
            status, code = RunStatus.NO_STATUS, EXIT_NO_STATUS
        self._notice_start()
        self._result = GuestResult(
            backend=self.backend.describe(),
            status=status,
            exit_code=code,
            output="\n".join(self._lines),
            boot_seconds=self._boot_seconds,
            total_seconds=total,
            timeout_seconds=self.timeout,
            boot_failure_hint=self.backend.boot_failure_hint(),
        )
        return self._result

    def _rc_file(self) -> Path:
        return self.control_dir / RC_FILE

    def close(self) -> None:
        """Kill whatever is left of the guest and remove the control directory. Safe to call twice."""
        if self._process is not None and self._process.poll() is None:
            self._terminate()
        elif self._process is not None:
            _kill_group(self._process.pid, grace_seconds=1.0)
        if self._control_dir is not None:
            shutil.rmtree(self._control_dir, ignore_errors=True)
            self._control_dir = None


def run_in_guest(
    command: str | Sequence[str],
    *,
    backend: Backend | None = None,
    timeout: float = 600.0,
    cwd: Path | None = None,
    env: Mapping[str, str] | None = None,
    modules: Sequence[str] = DEFAULT_MODULES,
    on_output: OutputSink | None = None,
    debug: bool = False,
    collect_to: Path | None = None,
) -> GuestResult:
    """Boot a guest, run `command` (argv list, or one shell string) as root in it, return the result.
    With `collect_to`, what the job wrote under $LVS_GUEST_OUT is copied there (a host directory)."""
    with GuestRun(
        command,
        backend=backend,
        timeout=timeout,
        cwd=cwd,
        env=env,
        modules=modules,
        on_output=on_output,
        debug=debug,
    ) as run:
        result = run.result()
        if collect_to is not None:
            shutil.copytree(run.out_dir, collect_to, dirs_exist_ok=True)
        return result
