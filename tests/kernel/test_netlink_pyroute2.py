"""The pyroute2 IPVS fixes in contrib/pyroute2, proven against the guest kernel.

Their regression tests (contrib/pyroute2/tests/test_ipvs_fixes.py) must fail on the installed pyroute2 0.9.7
(the bugs are real) and pass on a copy of it with the patch series applied (the fixes fix them).
Each run happens in a fresh network namespace, in a subprocess that imports the pyroute2 under test.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pyroute2
import pytest

pytestmark = pytest.mark.kernel

CONTRIB = Path(__file__).resolve().parents[2] / "contrib" / "pyroute2"
PATCHES = sorted((CONTRIB / "patches").glob("*.patch"))
FIX_TESTS = CONTRIB / "tests" / "test_ipvs_fixes.py"
INSTALLED = Path(pyroute2.__file__).parent


def run_fix_tests(pythonpath: Path | None, netns: str) -> tuple[int, int, str]:
    """Run the regression tests in ``netns``; return (passed, failed, output)."""
    env = dict(os.environ)
    if pythonpath is not None:
        env["PYTHONPATH"] = str(pythonpath)
    done = subprocess.run(
        ["ip", "netns", "exec", netns, sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider",
         "--rootdir", str(FIX_TESTS.parent), "-c", os.devnull, str(FIX_TESTS)],
        capture_output=True, text=True, env=env, check=False, timeout=300,
    )  # fmt: skip
    output = done.stdout + done.stderr
    passed = int(m.group(1)) if (m := re.search(r"(\d+) passed", output)) else 0
    failed = int(m.group(1)) if (m := re.search(r"(\d+) failed", output)) else 0
    return passed, failed, output


@pytest.fixture
def netns() -> Iterator[str]:
    name = f"lvspr2{os.getpid()}"
    subprocess.run(["ip", "netns", "add", name], check=True)
    subprocess.run(["ip", "-n", name, "link", "set", "lo", "up"], check=True)
    yield name
    subprocess.run(["ip", "netns", "del", name], check=False)


def test_patches_apply_and_fix_every_bug(tmp_path: Path, netns: str) -> None:
    assert pyroute2.__version__ == "0.9.7", "the patches are against pyroute2 0.9.7"
    shutil.copytree(INSTALLED, tmp_path / "pyroute2", ignore=shutil.ignore_patterns("__pycache__"))
    for patch in PATCHES:
        subprocess.run(["patch", "-p1", "--quiet", "-i", str(patch)], cwd=tmp_path, check=True)
    passed, failed, output = run_fix_tests(tmp_path, netns)
    assert failed == 0 and passed == 7, output


def test_installed_pyroute2_has_every_bug(netns: str) -> None:
    passed, failed, output = run_fix_tests(None, netns)
    assert passed == 0 and failed == 7, output
