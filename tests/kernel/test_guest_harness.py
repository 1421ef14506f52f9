"""The guest harness itself, driven from the host (marked guest_host: these boot their own guests)."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
from lvs_guest import GuestBootFailed, GuestRun, QemuBackend, RunStatus, run_in_guest
from lvs_guest.runner import _group_members

# These boot whole guests, some several in a row: longer than the 120 s per-test default.
pytestmark = [pytest.mark.guest_host, pytest.mark.timeout(600)]

KERNEL_DIR = Path(__file__).parent
PROJECT_ROOT = KERNEL_DIR.parents[1]


def test_command_runs_as_root_with_host_files_env_and_a_shared_out_dir(tmp_path: Path) -> None:
    marker = tmp_path / "written-inside"
    script = (
        "id -u; pwd; echo value=$LVS_HARNESS_CHECK; cat host-file.txt; "
        f"echo scratch > {marker}; echo result > $LVS_GUEST_OUT/answer.txt; exit 7"
    )
    (tmp_path / "host-file.txt").write_text("seen from the guest\n")
    with GuestRun(script, cwd=tmp_path, env={"LVS_HARNESS_CHECK": "42"}, timeout=120) as run:
        result = run.result()
        answer = (run.out_dir / "answer.txt").read_text()
    assert result.status is RunStatus.EXITED
    assert result.exit_code == 7
    assert result.output.splitlines()[:4] == ["0", str(tmp_path), "value=42", "seen from the guest"]
    assert answer == "result\n"
    assert not marker.exists(), "a write inside the guest reached the host's files"
    assert result.boot_seconds is not None and 0 < result.boot_seconds < result.total_seconds


def test_timeout_kills_the_whole_guest(tmp_path: Path) -> None:
    run = GuestRun("sleep 300", cwd=tmp_path, timeout=8)
    with run:
        leader = run._process.pid if run._process else 0
        result = run.result()
    assert result.status is RunStatus.TIMEOUT
    assert result.exit_code == 124
    # Ended by the deadline, not by `sleep 300`; the margin covers a slow kill on a loaded machine.
    assert result.total_seconds < 120, result.total_seconds
    assert _group_members(leader) == [], "guest processes left behind"


def test_kernel_modules_autoload_inside_the_guest() -> None:
    # request_module() from inside the chroot (IPVS asking for a scheduler) must find modprobe.
    result = run_in_guest(
        "ipvsadm -A -t 203.0.113.1:80 -s sh && grep -q '^ip_vs_sh ' /proc/modules && echo autoloaded",
        timeout=120,
    )
    assert (result.exit_code, result.output.strip().splitlines()[-1]) == (0, "autoloaded"), result.output


def _inner_project(tmp_path: Path, tests: str) -> Path:
    (tmp_path / "conftest.py").write_text(
        textwrap.dedent(
            """
            from pathlib import Path
            from lvs_guest.pytest_bridge import install

            def pytest_configure(config):
                install(config, Path(__file__).parent)
            """
        )
    )
    (tmp_path / "test_inner.py").write_text(textwrap.dedent(tests))
    return tmp_path


def _host_pytest(project: Path, *options: str, **env: str) -> subprocess.CompletedProcess[str]:
    environment = {k: v for k, v in os.environ.items() if k != "LVS_IN_GUEST"} | env
    return subprocess.run(
        [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-rA", *options, str(project)],
        cwd=project, capture_output=True, text=True, env=environment, timeout=300, check=False,
    )  # fmt: skip


def test_inner_reports_come_back_by_name_and_a_hang_fails_the_test_that_hung(tmp_path: Path) -> None:
    project = _inner_project(
        tmp_path,
        """
        import os, signal, time, pytest

        def test_runs_in_the_guest():
            assert os.environ["LVS_IN_GUEST"] == "1"
            assert open("/proc/sys/kernel/hostname").read().strip() == "lvs-guest"

        def test_fails():
            assert 1 + 1 == 3, "arithmetic inside the guest"

        @pytest.mark.skip(reason="shown as skipped on the host")
        def test_skipped():
            pass

        def test_hangs():
            time.sleep(600)  # the per-test timeout (--timeout, passed on) fails it; the session goes on

        def test_runs_after_a_hang():
            pass

        def test_hangs_where_the_per_test_timeout_cannot_reach():
            signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGALRM})  # pytest-timeout's signal
            time.sleep(600)

        def test_after_the_guest_is_cut_off():
            pass

        def test_deselected():
            raise AssertionError("deselected on the host: never runs")
        """,
    )
    # The host's options reach the inner run, except host-only ones (--junitxml and its value). The
    # stall watchdog kills the guest a minute after its last report, long before the suite timeout.
    junit = tmp_path / "host-junit.xml"
    started = time.monotonic()
    done = _host_pytest(
        project, "--timeout", "10", "--junitxml", str(junit), "-k", "not test_deselected",
        LVS_GUEST_TIMEOUT="600", LVS_GUEST_STALL_TIMEOUT="60",
    )  # fmt: skip
    elapsed = time.monotonic() - started
    assert done.returncode == 1, done.stdout + done.stderr
    assert "PASSED test_inner.py::test_runs_in_the_guest" in done.stdout, done.stdout
    assert "FAILED test_inner.py::test_fails" in done.stdout
    assert "arithmetic inside the guest" in done.stdout  # the inner traceback, replayed
    assert "SKIPPED [1] test_inner.py" in done.stdout
    assert "FAILED test_inner.py::test_hangs" in done.stdout
    assert "Timeout (>10.0s) from pytest-timeout" in done.stdout  # failed inside, by name
    assert "PASSED test_inner.py::test_runs_after_a_hang" in done.stdout
    assert "FAILED test_inner.py::test_hangs_where_the_per_test_timeout_cannot_reach" in done.stdout
    assert "THIS TEST was running when the guest was cut off" in done.stdout
    assert "made no progress for 60 s" in done.stdout
    assert "FAILED test_inner.py::test_after_the_guest_is_cut_off" in done.stdout
    not_run = "not run: the guest was cut off while test_inner.py::test_hangs_where_the_per_test_timeout"
    assert not_run in done.stdout
    assert "4 failed, 2 passed, 1 skipped, 1 deselected" in done.stdout
    assert elapsed < 400, f"{elapsed:.0f} s: the watchdog did not stop the guest, the suite timeout did"
    # the replayed reports feed the host's own plugins, junit output included
    xml = junit.read_text()
    assert 'name="test_fails"' in xml and "arithmetic inside the guest" in xml


def test_no_guest_means_failed_tests_that_say_why(tmp_path: Path) -> None:
    project = _inner_project(tmp_path, "def test_needs_the_kernel():\n    pass\n")
    done = _host_pytest(project, LVS_GUEST_BACKEND="no-such-backend")
    assert done.returncode == 1, done.stdout + done.stderr
    assert "FAILED test_inner.py::test_needs_the_kernel" in done.stdout
    assert "kernel guest unavailable" in done.stdout


def test_a_guest_that_dies_reports_no_status_and_says_what_to_try(tmp_path: Path) -> None:
    result = run_in_guest("echo c > /proc/sysrq-trigger; sleep 60", cwd=tmp_path, timeout=60)
    assert (result.status, result.exit_code) == (RunStatus.NO_STATUS, 125), result.output
    with pytest.raises(GuestBootFailed, match="ended without an exit status") as failure:
        result.raise_for_guest_failure()
    assert "--debug" in str(failure.value)


def test_the_qemu_backend_boots_debians_kernel_with_ipvs(tmp_path: Path) -> None:
    # The default here is UML; this keeps the other backend (the KVM path on real hardware) working.
    if shutil.which("qemu-system-x86_64") is None:
        pytest.skip("qemu is not installed: LVS_SETUP_ALL_BACKENDS=1 bash scripts/setup-system.sh")
    result = run_in_guest(
        "uname -r; grep -c . /proc/net/ip_vs; exit 3", backend=QemuBackend(), cwd=tmp_path, timeout=300
    )
    assert result.exit_code == 3, result.output
    release, ipvs_lines = result.output.split()[-2:]
    assert release.endswith("-amd64") and int(ipvs_lines) >= 3, result.output
