"""Run a directory of pytest tests inside the kernel guest and report them as the host's own.

Host side (`HostBridge`, when $LVS_IN_GUEST is not set): before the normal test loop, the items under the
kernel test directory are taken out; ONE guest boots and runs `python -m pytest` on exactly those node ids
(with the host's options), and every report the inner session makes comes back through a JSON-lines file
in the shared out dir, live, and is replayed into the host's hooks: the terminal, -x, --junitxml and the
exit status see the kernel tests as if they ran here, tracebacks included. A test the guest never reported
(boot failure, crash, timeout, no guest possible on this machine) FAILS on the host with the reason.

LVS_GUEST_WORKERS=N boots N guests at once, each running whole test modules (UML guests have one CPU
each); LVS_GUEST_TIMEOUT bounds each guest.

Hangs: inside, pytest-timeout (the `timeout` ini option, passed on like every host option) fails a test
that runs too long, by name, and the session goes on. If the inner session itself stops making progress
(no report for LVS_GUEST_STALL_TIMEOUT s, default twice the per-test timeout plus a minute), the guest is
killed at once instead of at the suite timeout; either way the test that was running when the guest was
cut off fails saying so, and the tests after it fail as not run because of it.

Guest side (`GuestReportWriter`, when $LVS_IN_GUEST=1 and $LVS_GUEST_REPORTS names a file): writes each
test and collection report as one JSON line, serialised by pytest's own hooks.
"""

from __future__ import annotations

import contextlib
import json
import os
import queue
import shlex
import sys
import time
from collections.abc import Generator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from lvs_guest.backends import select_backend
from lvs_guest.cache import cache_dir
from lvs_guest.errors import GuestError
from lvs_guest.runner import GuestRun, RunStatus
from lvs_guest.scripts import GUEST_OUT_DIR

REPORTS_ENV = "LVS_GUEST_REPORTS"
TIMEOUT_ENV = "LVS_GUEST_TIMEOUT"
STALL_ENV = "LVS_GUEST_STALL_TIMEOUT"  # no report from the inner session for this long: kill the guest
WORKERS_ENV = "LVS_GUEST_WORKERS"  # guests in parallel, whole test modules each (default 1)
DEFAULT_SUITE_TIMEOUT = 1200.0
MIN_STALL_TIMEOUT = 300.0  # also covers boot and collection, before the first report
REPORTS_FILE = "reports.jsonl"
HOST_SIDE_MARKER = "guest_host"  # kernel-dir tests that run on the host (they boot guests themselves)
# Host options that make no sense inside, with whether they take a separate value.
_DROPPED_OPTIONS = {
    "--junitxml": True, "--junit-xml": True, "--junitprefix": True, "--junit-prefix": True,
    "--lfnf": True, "--last-failed-no-failures": True,
    "--lf": False, "--last-failed": False, "--ff": False, "--failed-first": False, "--nf": False,
    "--new-first": False, "--sw": False, "--stepwise": False, "--sw-skip": False, "--stepwise-skip": False,
    "--cache-clear": False,
}  # fmt: skip


def in_guest() -> bool:
    return os.environ.get("LVS_IN_GUEST") == "1"


def install(config: pytest.Config, kernel_dir: Path) -> None:
    """Register the side of the bridge that fits where this pytest runs (called from the conftest)."""
    if in_guest():
        reports = os.environ.get(REPORTS_ENV)
        if reports and not config.pluginmanager.has_plugin("lvs-guest-reports"):
            config.pluginmanager.register(GuestReportWriter(config, Path(reports)), "lvs-guest-reports")
    elif not config.pluginmanager.has_plugin("lvs-guest-host"):
        config.pluginmanager.register(HostBridge(config, kernel_dir.resolve()), "lvs-guest-host")


class GuestReportWriter:
    """Inside the guest: every report as a JSON line, flushed at once so the host sees progress live."""

    def __init__(self, config: pytest.Config, path: Path) -> None:
        self.config = config
        self.file = open(path, "a", encoding="utf-8")  # noqa: SIM115 (open for the whole session)

    def _write(self, kind: str, payload: dict[str, Any]) -> None:
        self.file.write(json.dumps({"kind": kind, **payload}, default=repr) + "\n")
        self.file.flush()

    def pytest_runtest_logstart(self, nodeid: str, location: tuple[str, int | None, str]) -> None:
        # Lets the host name the test that was running if the guest is cut off in the middle of it.
        self._write("start", {"nodeid": nodeid})

    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        self._write(
            "test",
            {"data": self.config.hook.pytest_report_to_serializable(config=self.config, report=report)},
        )

    def pytest_collectreport(self, report: pytest.CollectReport) -> None:
        if report.failed:
            self._write("collect-error", {"nodeid": report.nodeid, "text": str(report.longrepr)})

    def pytest_sessionfinish(self, session: pytest.Session, exitstatus: int) -> None:
        self._write("session", {"exitstatus": int(exitstatus)})
        self.file.close()


def _inner_options(config: pytest.Config) -> list[str]:
    """The host's command-line options, minus file/node arguments and options that only mean something
    on the host (junit output, last-failed cache)."""
    positional = set(config.args)  # the file / node arguments, as given
    options: list[str] = []
    raw = list(config.invocation_params.args)
    skip_next = False
    for arg in raw:
        if skip_next:
            skip_next = False
            continue
        name = arg.split("=", 1)[0]
        if name in _DROPPED_OPTIONS:
            skip_next = _DROPPED_OPTIONS[name] and "=" not in arg
            continue
        if arg in positional:
            continue
        options.append(arg)
    return options


class HostBridge:
    """On the host: runs the kernel items in one guest and replays their reports."""

    def __init__(self, config: pytest.Config, kernel_dir: Path) -> None:
        self.config = config
        self.kernel_dir = kernel_dir

    def _is_kernel_item(self, item: pytest.Item) -> bool:
        """Under the kernel test directory, and not a harness test that runs on the host itself."""
        in_dir = item.path.resolve().is_relative_to(self.kernel_dir)
        return in_dir and item.get_closest_marker(HOST_SIDE_MARKER) is None

    @pytest.hookimpl(wrapper=True)
    def pytest_runtestloop(self, session: pytest.Session) -> Generator[None, object, object]:
        """The host's own tests run first (the default loop); then the kernel items, in one guest. An
        exception from the default loop (collection errors, -x reached) ends the session before the guest."""
        kernel_items = [item for item in session.items if self._is_kernel_item(item)]
        session.items = [item for item in session.items if not self._is_kernel_item(item)]
        outcome = yield
        if kernel_items and not session.config.option.collectonly:
            _GuestSession(session, kernel_items).run()
            if session.shouldfail:
                raise session.Failed(session.shouldfail)
            if session.shouldstop:
                raise session.Interrupted(session.shouldstop)
        return outcome


@dataclass
class _Lane:
    """One guest running a share of the kernel items (several lanes with LVS_GUEST_WORKERS > 1)."""

    name: str
    nodeids: list[str]
    command: list[str] = field(default_factory=list)
    run: GuestRun | None = None
    offset: int = 0
    done: bool = False
    exitstatus: int | None = None  # the inner pytest's, once its session finished
    failure: str = ""  # why its unreported tests fail
    running: str | None = None  # the test the inner session started and has not finished
    progress_at: float = field(default_factory=time.monotonic)  # the last report (or the start)
    stalled: bool = False  # killed by the stall watchdog
    console: queue.SimpleQueue[str] = field(default_factory=queue.SimpleQueue)


def _stall_timeout(config: pytest.Config) -> float:
    """$LVS_GUEST_STALL_TIMEOUT, else twice the per-test timeout (pytest-timeout) plus a minute, at least
    MIN_STALL_TIMEOUT: a stall means the inner session can no longer fail its own hung test."""
    configured = os.environ.get(STALL_ENV)
    if configured:
        return float(configured)
    per_test = 0.0
    with contextlib.suppress(ValueError, TypeError):
        per_test = float(config.getoption("timeout", None) or config.getini("timeout") or 0)
    return max(MIN_STALL_TIMEOUT, 2 * per_test + 60)


def _split_by_module(nodeids: list[str], items: dict[str, pytest.Item], lanes: int) -> list[list[str]]:
    """Whole modules per lane (module fixtures stay in one guest), biggest modules first to balance."""
    modules: dict[Path, list[str]] = {}
    for nodeid in nodeids:
        modules.setdefault(items[nodeid].path, []).append(nodeid)
    shares: list[list[str]] = [[] for _ in range(min(lanes, len(modules)))]
    for members in sorted(modules.values(), key=len, reverse=True):
        min(shares, key=len).extend(members)
    order = {nodeid: index for index, nodeid in enumerate(nodeids)}
    return [sorted(share, key=order.__getitem__) for share in shares]


class _GuestSession:
    def __init__(self, session: pytest.Session, items: list[pytest.Item]) -> None:
        self.session = session
        self.config = session.config
        self.items = {item.nodeid: item for item in items}
        self.started: set[str] = set()
        self.phases: dict[str, set[str]] = {nodeid: set() for nodeid in self.items}
        self.collect_errors: list[str] = []
        self.terminal = self.config.pluginmanager.get_plugin("terminalreporter")
        verbose = int(self.config.option.verbose)
        self.show_console = verbose >= 2 or self.config.option.capture == "no"
        workers = max(1, int(os.environ.get(WORKERS_ENV) or 1))
        self.lanes = [
            _Lane(f"g{index + 1}", share)
            for index, share in enumerate(_split_by_module(list(self.items), self.items, workers))
        ]
        # One log per session (sessions may run at once); "kernel-tests-console.log" links to the latest.
        stamp = time.strftime("%Y%m%d-%H%M%S")
        self.console_log = cache_dir() / "logs" / f"kernel-tests-{stamp}-{os.getpid()}.log"

    def _say(self, text: str) -> None:
        if self.terminal is not None:
            self.terminal.ensure_newline()  # after a row of progress dots
            self.terminal.write_line(text)
        else:
            print(text, file=sys.stderr)

    def run(self) -> None:
        timeout = float(os.environ.get(TIMEOUT_ENV) or DEFAULT_SUITE_TIMEOUT)
        stall = _stall_timeout(self.config)
        rootdir = Path(self.config.rootpath)
        options = _inner_options(self.config)
        for lane in self.lanes:
            lane.command = [sys.executable, "-m", "pytest", f"--rootdir={rootdir}", *options, *lane.nodeids]
        setup_failure = ""
        try:
            backend = select_backend()
            self._prepare_console_log()
            guests = "one guest" if len(self.lanes) == 1 else f"{len(self.lanes)} guests"
            self._say(
                f"kernel tests: {len(self.items)} in {guests} ({backend.name}, timeout {timeout:.0f} s, "
                f"console in {self.console_log})"
            )
            with contextlib.ExitStack() as stack:
                log = stack.enter_context(open(self.console_log, "a", encoding="utf-8"))
                for lane in self.lanes:
                    lane.run = stack.enter_context(
                        GuestRun(
                            lane.command, backend=backend, timeout=timeout, cwd=rootdir,
                            env={REPORTS_ENV: f"{GUEST_OUT_DIR}/{REPORTS_FILE}"}, on_output=lane.console.put,
                        )
                    )  # fmt: skip
                for lane in self.lanes:
                    lane.progress_at = time.monotonic()
                while not all(lane.done for lane in self.lanes):
                    time.sleep(0.2)
                    for lane in self.lanes:
                        self._poll(lane, log)
                        self._watch_for_stall(lane, stall)
        except GuestError as error:
            setup_failure = str(error)
        except KeyboardInterrupt:
            # Ctrl-C, or test.sh's stage cap: say what the guest was doing (the guest is gone by now).
            for lane in self.lanes:
                if not lane.done:
                    self._say(f"kernel tests: interrupted while the guest ran {lane.running or 'no test'}")
            raise
        for lane in self.lanes:
            self._fail_unreported(lane, setup_failure or lane.failure)

    def _watch_for_stall(self, lane: _Lane, stall: float) -> None:
        if lane.done or lane.run is None or time.monotonic() - lane.progress_at < stall:
            return
        lane.stalled = True
        doing = f"running {lane.running}" if lane.running else "before its first report"
        self._say(f"kernel tests: no progress from the guest for {stall:.0f} s ({doing}): killing it")
        lane.run.kill()

    def _poll(self, lane: _Lane, log: Any) -> None:
        if lane.done or lane.run is None:
            return
        finished = lane.run.wait(0)
        self._drain_console(lane, log)
        reports = lane.run.out_dir / REPORTS_FILE
        lane.offset = self._replay(lane, reports, lane.offset)
        if not finished:
            return
        result = lane.run.result()
        self._drain_console(lane, log)
        self._replay(lane, reports, lane.offset, final=True)
        lane.done = True
        boot = f"{result.boot_seconds:.1f} s" if result.boot_seconds is not None else "n/a"
        label = "" if len(self.lanes) == 1 else f" {lane.name}"
        self._say(
            f"kernel tests{label}: {result.backend} guest {result.status.value}, exit {result.exit_code}, "
            f"boot {boot}, total {result.total_seconds:.1f} s"
        )
        if result.status is not RunStatus.EXITED or lane.exitstatus is None:
            if lane.stalled:
                what = f"made no progress for {_stall_timeout(self.config):.0f} s and was killed"
            elif result.status is RunStatus.TIMEOUT:
                what = f"hit the suite timeout ({TIMEOUT_ENV}={result.timeout_seconds:.0f} s)"
            else:
                what = f"{result.status.value} (exit {result.exit_code})"
            lane.failure = (
                f"the {result.backend} guest {what} before reporting this test.\n"
                f"--- last guest console lines ---\n{result.console_tail()}"
                + (f"\n{result.boot_failure_hint}" if result.status is RunStatus.NO_STATUS else "")
            )
        elif lane.exitstatus is not None:
            lane.failure = f"the inner pytest ended (exit status {lane.exitstatus}) without running this test"

    def _prepare_console_log(self, keep: int = 20) -> None:
        logs = self.console_log.parent
        logs.mkdir(parents=True, exist_ok=True)
        for old in sorted(logs.glob("kernel-tests-*-*.log"))[:-keep]:
            old.unlink(missing_ok=True)
        self.console_log.write_text(
            "".join(f"# {lane.name}: {shlex.join(lane.command)}\n" for lane in self.lanes)
        )
        latest = logs / "kernel-tests-console.log"
        latest.unlink(missing_ok=True)
        latest.symlink_to(self.console_log.name)

    def _drain_console(self, lane: _Lane, log: Any) -> None:
        prefix = "guest| " if len(self.lanes) == 1 else f"{lane.name}| "
        while True:
            try:
                line = lane.console.get_nowait()
            except queue.Empty:
                return
            log.write(prefix + line + "\n")
            if self.show_console:
                self._say(prefix + line)

    def _replay(self, lane: _Lane, path: Path, offset: int, final: bool = False) -> int:
        """Replay every complete new line of the reports file; return the new offset."""
        try:
            with open(path, "rb") as handle:
                handle.seek(offset)
                chunk = handle.read()
        except FileNotFoundError:
            return offset
        end = len(chunk) if final else chunk.rfind(b"\n") + 1
        for line in chunk[:end].splitlines():
            if line.strip():
                self._handle(lane, json.loads(line))
        return offset + end

    def _handle(self, lane: _Lane, entry: dict[str, Any]) -> None:
        kind = entry.get("kind")
        lane.progress_at = time.monotonic()
        if kind == "start":
            lane.running = str(entry["nodeid"])
        elif kind == "session":
            lane.exitstatus = int(entry["exitstatus"])
        elif kind == "collect-error":
            self.collect_errors.append(f"{entry['nodeid']}: {entry['text']}")
        elif kind == "test":
            report = self.config.hook.pytest_report_from_serializable(config=self.config, data=entry["data"])
            if isinstance(report, pytest.TestReport):
                if report.skipped and isinstance(report.longrepr, list):
                    # JSON made the (path, line, reason) tuple of a skip a list; the terminal wants a tuple.
                    report.longrepr = tuple(report.longrepr)
                if report.when == "teardown" and report.nodeid == lane.running:
                    lane.running = None
                self._log(report)

    def _log(self, report: pytest.TestReport) -> None:
        item = self.items.get(report.nodeid)
        hook = item.ihook if item is not None else self.config.hook
        if report.nodeid not in self.started:
            self.started.add(report.nodeid)
            hook.pytest_runtest_logstart(nodeid=report.nodeid, location=report.location)
        hook.pytest_runtest_logreport(report=report)
        self.phases.setdefault(report.nodeid, set()).add(report.when or "")
        if report.when == "teardown":
            hook.pytest_runtest_logfinish(nodeid=report.nodeid, location=report.location)

    def _fail_unreported(self, lane: _Lane, failure: str) -> None:
        """Every kernel test the guest did not finish fails here, unless -x/--maxfail stopped the run."""
        if self.session.shouldfail or self.session.shouldstop:
            return
        unfinished = [nodeid for nodeid in lane.nodeids if "teardown" not in self.phases[nodeid]]
        if not unfinished:
            return
        reason = failure or "the guest reported nothing for this test"
        if self.collect_errors:
            reason += "\n--- collection errors inside the guest ---\n" + "\n".join(self.collect_errors)
        for nodeid in unfinished:
            if lane.running is None:
                why = reason
            elif nodeid == lane.running:
                why = f"THIS TEST was running when the guest was cut off (a hang?): {reason}"
            else:
                why = f"not run: the guest was cut off while {lane.running} was running: {reason}"
            self._synthesize_failure(nodeid, why, "teardown" if "call" in self.phases[nodeid] else "call")

    def _synthesize_failure(self, nodeid: str, reason: str, when: str) -> None:
        item = self.items[nodeid]
        now = time.time()
        report = pytest.TestReport(
            nodeid=nodeid, location=item.location, keywords=dict.fromkeys(item.keywords, 1),
            outcome="failed", longrepr=f"kernel guest: {reason}",
            when="call" if when == "call" else "teardown", start=now, stop=now,
        )  # fmt: skip
        self._log(report)
        if report.when == "call":
            self.phases[nodeid].add("teardown")
            item.ihook.pytest_runtest_logfinish(nodeid=nodeid, location=item.location)
