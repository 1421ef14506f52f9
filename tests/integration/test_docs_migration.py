"""docs/migration.md walked with the real tools: its `lvs-operator import` command (on the repository's
sample lvs.cf and keepalived.conf instead of /etc), its kubectl commands up to the cutover, against the
embedded API server with the controller running. Every imported service must be accepted and select only
the cutover label, so that nothing is programmed before the cutover."""

from __future__ import annotations

import json
import shlex
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml
from test_docs_examples import Cluster, installed_cluster, sh_lines, wait_until

REPO = Path(__file__).resolve().parents[2]
DOC = REPO / "docs" / "migration.md"
SAMPLES = {
    "lvs.cf": REPO / "tests/data/import/nat-lvs.cf",
    "keepalived": REPO / "tests/data/import/keepalived.conf",
}
CUTOVER_LABEL = ("lvs.io/cutover", "true")

pytestmark = [pytest.mark.integration, pytest.mark.timeout(300)]


def import_commands() -> list[list[str]]:
    """The documented `lvs-operator import` commands, continuation lines joined, as argument lists."""
    joined: list[str] = []
    for line in sh_lines(DOC):
        if joined and joined[-1].endswith("\\"):
            joined[-1] = joined[-1][:-1] + " " + line
        else:
            joined.append(line)
    return [shlex.split(line, comments=True) for line in joined if line.startswith("lvs-operator import ")]


def run_import(words: list[str], sample: Path, out: Path, warnings: Path) -> None:
    """Run a documented import command with the sample in place of the files under /etc."""
    assert words[-2:] == ["2>", "import-warnings.txt"], words  # the shell's redirection: done below
    args = [word for word in words[2:-2] if not word.startswith("/etc/")]
    assert args.count("-o") == 1
    args[args.index("-o") + 1] = str(out)
    with warnings.open("w") as stderr:
        subprocess.run(
            [sys.executable, "-m", "lvs_cli", "import", str(sample), *args],
            stderr=stderr, check=True, cwd=REPO, timeout=120,
        )  # fmt: skip


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    with installed_cluster(tmp_path_factory.mktemp("docs-migration")) as cluster:
        yield cluster


def test_the_documented_import_commands_name_the_cutover_label() -> None:
    commands = import_commands()
    assert len(commands) == 2
    for words in commands:
        assert words[words.index("--director-label") + 1] == "=".join(CUTOVER_LABEL)
        assert words[words.index("-n") + 1] == "lb"
    assert "lvs.io/cutover=true" in [
        line.split()[-1] for line in sh_lines(DOC) if line.startswith("kubectl label")
    ]


@pytest.mark.parametrize(("kind", "words"), list(zip(SAMPLES, import_commands(), strict=True)))
def test_imported_services_are_accepted_and_wait_for_the_cutover_label(
    cluster: Cluster, tmp_path: Path, kind: str, words: list[str]
) -> None:
    out, warnings = tmp_path / "lvs.yaml", tmp_path / "import-warnings.txt"
    run_import(words, SAMPLES[kind], out, warnings)
    assert "warning:" in warnings.read_text()  # the guide tells users to read them: there are some
    documents = [doc for doc in yaml.safe_load_all(out.read_text()) if doc]
    services = [doc for doc in documents if doc["kind"] == "VirtualService"]
    assert services
    for service in services:
        assert service["metadata"]["namespace"] == "lb"
        assert service["spec"]["directorSelector"] == {"matchLabels": dict([CUTOVER_LABEL])}

    cluster.kubectl("create", "namespace", "lb", check=False)  # the second sample finds it there
    for line in sh_lines(DOC):
        if line.startswith("kubectl apply --dry-run=server -f lvs.yaml"):
            dry = cluster.kubectl("apply", "--dry-run=server", "-f", str(out))
            assert dry.stdout.count("(server dry run)") == len(documents)
    cluster.kubectl("apply", "-f", str(out))
    # Several VIPPools covering the same addresses are fine; so is re-applying the same pool.
    jsonpath = next(line for line in sh_lines(DOC) if line.startswith("kubectl get lvsvs -n lb -o jsonpath"))
    names = {service["metadata"]["name"] for service in services}

    last: dict[str, str] = {}

    def accepted() -> bool:
        printed = cluster.run_documented(jsonpath).stdout
        reasons = dict(line.split(": ", 1) for line in printed.splitlines() if ": " in line)
        last.update({name: reasons.get(name, "") for name in names})
        return set(last.values()) == {"Accepted"}

    # The importer prints the VIPPool last, so services created before it are rejected (VIPNotInPool) for
    # a moment, until the controller sees the pool and accepts them.
    try:
        wait_until(accepted, f"{kind}: every imported service accepted")
    except AssertionError as timeout:
        raise AssertionError(f"{timeout}; reasons: {last}") from None

    for name in names:
        vs = json.loads(cluster.kubectl("get", "lvsvs", name, "-n", "lb", "-o", "json").stdout)
        ready = next(c for c in vs["status"]["conditions"] if c["type"] == "Ready")
        assert (ready["status"], ready["reason"]) == ("False", "NotProgrammed"), name
