"""The commands of deploy/examples (its README and each file's header) run literally with the real kubectl
against the embedded API server, with the controller running as a real process: every example object is
accepted, the documented `kubectl wait --for=condition=Ready` commands end once a director reports the
service, and the Argo CD health check of docs/install.md, run under Lua 5.1 on the live objects, says
Progressing / Healthy / Degraded as the documentation promises.

The only stand-in is the director: there is no kernel IPVS on this host, so the DirectorReport an agent
would write (the documented contract, built with the shared pydantic models) is written with kubectl.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import shlex
import subprocess
import sys
import textwrap
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import celpy
import pytest
import yaml
from lupa import lua51
from lvs_api.models import DirectorReportStatus, ServiceReport, VIPGroupReport, VIPGroupRole
from lvs_apiserver.testing import ServerThread

REPO = Path(__file__).resolve().parents[2]
KUBECTL = str(Path(sys.executable).parent / "kubectl")
EXAMPLES = REPO / "deploy" / "examples"
EXAMPLE_FILES = sorted(EXAMPLES.glob("*.yaml"))
ARGOCD_KEY = "resource.customizations.health.lvs.io_VirtualService: |"

pytestmark = [pytest.mark.integration, pytest.mark.timeout(300)]


def wait_until(predicate: Callable[[], Any], what: str, timeout: float = 60.0) -> Any:
    deadline = time.monotonic() + timeout
    last: Any = None
    while time.monotonic() < deadline:
        last = predicate()
        if last:
            return last
        time.sleep(0.2)
    raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}; last: {last!r}")


@dataclass
class Cluster:
    server: ServerThread
    cache: Path

    def kubectl(
        self, *args: str, input: str | None = None, check: bool = True
    ) -> subprocess.CompletedProcess[str]:
        command = [KUBECTL, f"--kubeconfig={self.server.kubeconfig}", f"--cache-dir={self.cache}", *args]
        result = subprocess.run(
            command, input=input, capture_output=True, text=True, timeout=150, check=False, cwd=REPO
        )
        if check and result.returncode != 0:
            raise AssertionError(
                f"kubectl {shlex.join(args)}: {result.returncode}\n{result.stdout}{result.stderr}"
            )
        return result

    def run_documented(self, line: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        """A `kubectl ...` line of the docs as a user types it (comment dropped), run from the repo root."""
        words = shlex.split(line, comments=True)
        assert words[0] == "kubectl", line
        return self.kubectl(*words[1:], check=check)

    def get(self, resource: str, name: str, namespace: str | None = None) -> dict[str, Any]:
        args = ["get", resource, name, "-o", "json"] + (["-n", namespace] if namespace else [])
        parsed: dict[str, Any] = json.loads(self.kubectl(*args).stdout)
        return parsed


def condition(obj: dict[str, Any], kind: str) -> dict[str, Any]:
    for entry in (obj.get("status") or {}).get("conditions") or []:
        if entry.get("type") == kind:
            return dict(entry)
    return {}


def current_condition(cluster: Cluster, resource: str, name: str, namespace: str | None, kind: str) -> Any:
    """The condition once the controller has observed the object's current generation (kstatus), else None."""
    obj = cluster.get(resource, name, namespace)
    found = condition(obj, kind)
    status = obj.get("status") or {}
    if status.get("observedGeneration") != obj["metadata"]["generation"]:
        return None
    return found or None


def sh_block(markdown: Path, index: int = 0) -> list[str]:
    blocks = re.findall(r"```sh\n(.*?)```", markdown.read_text(), flags=re.S)
    return [line for line in blocks[index].splitlines() if line.strip()]


def sh_block_after(text: str, heading: str) -> list[str]:
    """The lines of the first sh block after a heading."""
    rest = text[text.index(heading) :]
    block = rest[rest.index("```sh\n") + len("```sh\n") :]
    return [line.strip() for line in block[: block.index("```")].splitlines() if line.strip()]


def sh_lines(markdown: Path) -> list[str]:
    """Every line of every sh block of a document."""
    blocks = re.findall(r"```sh\n(.*?)```", markdown.read_text(), flags=re.S)
    return [line.strip() for block in blocks for line in block.splitlines() if line.strip()]


def header_commands(example: Path) -> list[str]:
    """The `#   kubectl ...` lines of an example's leading comment block."""
    commands = []
    for line in example.read_text().splitlines():
        if not line.startswith("#"):
            break
        text = line.lstrip("#").strip()
        if text.startswith("kubectl "):
            commands.append(text)
    return commands


def example_objects() -> list[dict[str, Any]]:
    return [doc for path in EXAMPLE_FILES for doc in yaml.safe_load_all(path.read_text()) if doc]


# Argo CD runs health checks in gopher-lua (Lua 5.1) with the live object as the global `obj`.
def argocd_script() -> str:
    text = (REPO / "docs" / "install.md").read_text()
    start = text.index(ARGOCD_KEY) + len(ARGOCD_KEY)
    return textwrap.dedent(text[start : text.index("```", start)]).strip("\n")


def _to_lua(runtime: Any, value: Any) -> Any:
    if isinstance(value, dict):
        return runtime.table_from({key: _to_lua(runtime, item) for key, item in value.items()})
    if isinstance(value, list):
        return runtime.table_from([_to_lua(runtime, item) for item in value])
    return value


def argocd_health(obj: dict[str, Any]) -> tuple[str, str]:
    runtime = lua51.LuaRuntime(unpack_returned_tuples=True)
    runtime.globals().obj = _to_lua(runtime, obj)
    result = runtime.execute(argocd_script())
    return str(result["status"]), str(result["message"])


def flux_health_expressions() -> dict[str, str]:
    """The `healthCheckExprs` entry for VirtualService of docs/install.md's Flux Kustomization."""
    text = (REPO / "docs" / "install.md").read_text()
    flux = text[text.index("## Flux") :]
    block = flux[flux.index("```yaml\n") + len("```yaml\n") :]
    block = block[: block.index("```")]
    entries = [
        entry
        for doc in yaml.safe_load_all(block)
        if doc and doc["kind"] == "Kustomization"
        for entry in doc["spec"].get("healthCheckExprs", [])
    ]
    (entry,) = [e for e in entries if (e["apiVersion"], e["kind"]) == ("lvs.io/v1alpha1", "VirtualService")]
    return {key: entry[key] for key in ("current", "failed", "inProgress") if key in entry}


def kstatus_generic(obj: dict[str, Any]) -> str:
    """cli-utils' kstatus for a custom resource without health expressions (Flux before 2.5 or without
    healthCheckExprs, `kubectl`-side tools built on cli-utils): an unobserved generation, then the
    abnormal-true conditions Reconciling (InProgress) and Stalled (Failed); otherwise Current."""
    status = obj.get("status") or {}
    if "observedGeneration" in status and status["observedGeneration"] != obj["metadata"]["generation"]:
        return "InProgress"
    found = {entry.get("type"): entry.get("status") for entry in status.get("conditions") or []}
    if found.get("Reconciling") == "True":
        return "InProgress"
    if found.get("Stalled") == "True":
        return "Failed"
    return "Current"


def flux_health(obj: dict[str, Any]) -> str:
    """What Flux's kustomize-controller concludes from those expressions: the object's top-level fields are
    the CEL variables; inProgress, then failed, then current; none true means InProgress. docs/install.md
    says kstatus alone, from the controller's Reconciling and Stalled conditions, concludes the same: held
    here on every object the tests judge."""
    verdict = _flux_expressions_verdict(obj)
    assert kstatus_generic(obj) == verdict, (obj.get("status"), verdict)
    return verdict


def _flux_expressions_verdict(obj: dict[str, Any]) -> str:
    activation = {key: celpy.json_to_cel(value) for key, value in obj.items()}
    environment = celpy.Environment()
    results = {
        key: bool(environment.program(environment.compile(expression)).evaluate(activation))
        for key, expression in flux_health_expressions().items()
    }
    if results.get("inProgress"):
        return "InProgress"
    if results.get("failed"):
        return "Failed"
    return "Current" if results["current"] else "InProgress"


def director_report_status(
    services: dict[str, ServiceReport], groups: list[VIPGroupReport]
) -> dict[str, Any]:
    status = DirectorReportStatus(
        heartbeat_time="2026-01-01T00:00:00Z", agent_version="0.1.0", services=services, vip_groups=groups
    )
    dumped: dict[str, Any] = status.model_dump(by_alias=True, exclude_none=True, mode="json")
    return dumped


@contextlib.contextmanager
def running_controller(server: ServerThread, log: Path) -> Iterator[subprocess.Popen[bytes]]:
    """`python -m lvs_controller` against the server (its Lease in lvs-system), stopped with SIGTERM."""
    command = [
        sys.executable, "-m", "lvs_controller", "--kubeconfig", str(server.kubeconfig),
        "--identity", "docs-test", "--lease-namespace", "lvs-system", "--metrics-port", "0",
        "--lease-duration", "3", "--renew-deadline", "2", "--retry-period", "0.5",
    ]  # fmt: skip
    with log.open("ab") as output:
        controller = subprocess.Popen(
            command, stdout=output, stderr=subprocess.STDOUT, cwd=REPO,
            env={**os.environ, "PYTHONUNBUFFERED": "1"},
        )  # fmt: skip
    try:
        yield controller
    finally:
        controller.terminate()
        try:
            controller.wait(15)
        except subprocess.TimeoutExpired:
            controller.kill()
            controller.wait(5)
        if controller.returncode not in (0, -15):
            print(log.read_text()[-4000:])


@contextlib.contextmanager
def installed_cluster(workdir: Path) -> Iterator[Cluster]:
    """A fresh API server, `kubectl apply -k deploy/` (as docs/install.md), and the controller running."""
    with ServerThread(bookmark_interval=1.0) as server:
        cluster = Cluster(server, workdir / "kubectl-cache")
        cluster.run_documented("kubectl apply -k deploy/")
        wait_until(
            lambda: "virtualservices.lvs.io" in cluster.kubectl("get", "crd", "-o", "name").stdout, "the CRDs"
        )
        with running_controller(server, workdir / "controller.log"):
            yield cluster


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    """The install, the controller, then every documented command of deploy/examples/README.md up to the
    `kubectl wait` (which needs a director) and the header commands of the other examples."""
    readme = sh_block(EXAMPLES / "README.md")
    assert readme[0].startswith("kubectl apply -k deploy/"), readme[0]
    with installed_cluster(tmp_path_factory.mktemp("docs-examples")) as cluster:
        for line in readme[1:]:
            if line.startswith("kubectl wait"):
                break
            cluster.run_documented(line)
        for example in EXAMPLE_FILES:
            if example.name != "nat-web.yaml":  # the README's commands applied that one
                for line in header_commands(example):
                    cluster.run_documented(line)
        yield cluster


def test_every_example_file_says_how_to_apply_itself() -> None:
    for example in EXAMPLE_FILES:
        commands = header_commands(example)
        assert f"kubectl apply -f deploy/examples/{example.name}" in commands, example.name
        namespaces = {
            doc["metadata"].get("namespace") for doc in yaml.safe_load_all(example.read_text()) if doc
        }
        for namespace in namespaces - {None}:
            assert f"kubectl create namespace {namespace}" in commands, (example.name, namespace)


def test_the_controller_accepts_every_example_object(cluster: Cluster) -> None:
    objects = example_objects()
    assert {o["kind"] for o in objects} == {"VIPPool", "RealServerPool", "VirtualService"}
    for obj in objects:
        resource = f"{obj['kind'].lower()}s.lvs.io"
        name, namespace = obj["metadata"]["name"], obj["metadata"].get("namespace")
        accepted = wait_until(
            lambda: current_condition(cluster, resource, name, namespace, "Accepted"),  # noqa: B023
            f"{obj['kind']} {namespace}/{name} to be observed",
        )
        assert (accepted["status"], accepted["reason"]) == ("True", "Accepted"), (name, accepted)
        if obj["kind"] == "VirtualService":
            assert condition(cluster.get(resource, name, namespace), "Conflict")["status"] == "False"
            # What the controller hands the agents: one ResolvedService per accepted VirtualService.
            published = cluster.get("resolvedservices.lvs.io", name, namespace)
            assert published["spec"]["service"]["vip"] == obj["spec"]["vip"]


def test_without_a_director_ready_is_false_and_argocd_says_progressing(cluster: Cluster) -> None:
    wait_until(
        lambda: current_condition(cluster, "virtualservices.lvs.io", "api", "api", "Ready"), "api status"
    )
    vs = cluster.get("virtualservices.lvs.io", "api", "api")
    ready = condition(vs, "Ready")
    assert (ready["status"], ready["reason"]) == ("False", "NotProgrammed")
    status, message = argocd_health(vs)
    assert status == "Progressing"
    assert message.startswith("NotProgrammed: ")
    assert flux_health(vs) == "InProgress"
    waited = cluster.run_documented(
        "kubectl wait --for=condition=Ready lvsvs/api -n api --timeout=1s", check=False
    )
    assert waited.returncode != 0
    assert "timed out" in waited.stderr


def test_a_namespace_without_the_tenant_label_is_rejected_and_argocd_says_degraded(cluster: Cluster) -> None:
    wait_until(
        lambda: current_condition(cluster, "virtualservices.lvs.io", "dns", "infra", "Accepted"),
        "dns accepted",
    )
    cluster.kubectl("label", "namespace", "infra", "lvs.io/tenant-")
    try:
        rejected = wait_until(
            lambda: (
                condition(cluster.get("virtualservices.lvs.io", "dns", "infra"), "Accepted").get("reason")
                == "NamespaceNotAllowed"
                and cluster.get("virtualservices.lvs.io", "dns", "infra")
            ),
            "dns rejected",
        )
        assert condition(rejected, "Ready")["reason"] == "SpecRejected"
        status, message = argocd_health(rejected)
        assert status == "Degraded"
        assert message.startswith("NamespaceNotAllowed: spec.vip: ")
        assert flux_health(rejected) == "Failed"
        events = json.loads(cluster.kubectl("get", "events", "-n", "infra", "-o", "json").stdout)["items"]
        assert any(e["reason"] == "NamespaceNotAllowed" and e["type"] == "Warning" for e in events)
    finally:
        cluster.kubectl("label", "namespace", "infra", "lvs.io/tenant=infra")
    wait_until(
        lambda: (
            condition(cluster.get("virtualservices.lvs.io", "dns", "infra"), "Accepted").get("status")
            == "True"
        ),
        "dns accepted again",
    )


def test_documented_kubectl_wait_ends_once_a_director_reports_the_service(cluster: Cluster) -> None:
    """docs: deploy/examples/README.md (`lvsvs/web`) and docs/install.md (`--all`, the Flux check by hand)."""
    wait_until(lambda: current_condition(cluster, "virtualservices.lvs.io", "web", "shop", "Accepted"), "web")
    published = cluster.get("resolvedservices.lvs.io", "web", "shop")
    generation = published["spec"]["acceptedGeneration"]
    members = len(published["spec"]["members"])
    node = "lb-1"
    cluster.kubectl(
        "apply", "-f", "-",
        input=json.dumps({
            "apiVersion": "lvs.io/v1alpha1", "kind": "DirectorReport",
            "metadata": {"name": node}, "spec": {"nodeName": node},
        }),
    )  # fmt: skip
    report = director_report_status(
        {
            "shop/web": ServiceReport(
                programmed=True, reason="Programmed", accepted_generation=generation, active=True,
                healthy_members=members, total_members=members,
            )
        },
        [VIPGroupReport(name="shop-web", vips=["203.0.113.10"], role=VIPGroupRole.ACTIVE, failovers=1)],
    )  # fmt: skip
    cluster.kubectl(
        "patch", "directorreports.lvs.io", node, "--subresource=status", "--type=merge",
        "-p", json.dumps({"status": report}),
    )  # fmt: skip

    readme_wait = next(line for line in sh_block(EXAMPLES / "README.md") if line.startswith("kubectl wait"))
    assert "lvsvs/web -n shop" in readme_wait
    waited = cluster.run_documented(readme_wait)
    assert "condition met" in waited.stdout

    install_wait = next(
        line for line in sh_lines(REPO / "docs" / "install.md") if line.startswith("kubectl wait")
    )
    assert "--all -n shop" in install_wait
    assert cluster.run_documented(install_wait).stdout.count("condition met") == 1

    vs = cluster.get("virtualservices.lvs.io", "web", "shop")
    assert vs["status"]["activeDirector"] == node
    assert argocd_health(vs) == ("Healthy", condition(vs, "Ready")["message"])
    assert flux_health(vs) == "Current"
    # The same object one generation ahead of the controller (what Flux sees right after an apply).
    assert flux_health(
        vs | {"metadata": vs["metadata"] | {"generation": vs["metadata"]["generation"] + 1}}
    ) == ("InProgress")

    # One member fails: Degraded=True, still Ready, and Argo CD keeps it Healthy (as docs/install.md says).
    degraded = report["services"]["shop/web"] | {"healthyMembers": members - 1}
    cluster.kubectl(
        "patch", "directorreports.lvs.io", node, "--subresource=status", "--type=merge",
        "-p", json.dumps({"status": {"services": {"shop/web": degraded}}}),
    )  # fmt: skip
    vs = wait_until(
        lambda: (
            condition(cluster.get("virtualservices.lvs.io", "web", "shop"), "Degraded").get("status")
            == "True"
            and cluster.get("virtualservices.lvs.io", "web", "shop")
        ),
        "web degraded",
    )
    assert condition(vs, "Degraded")["reason"] == "MembersUnhealthy"
    assert argocd_health(vs)[0] == "Healthy"
    assert flux_health(vs) == "Current"


def test_a_port_conflict_is_degraded_for_argocd_and_failed_for_flux(cluster: Cluster) -> None:
    """A second VirtualService on web's VIP and port: the first keeps it, the newcomer is rejected."""
    wait_until(lambda: current_condition(cluster, "virtualservices.lvs.io", "web", "shop", "Accepted"), "web")
    newcomer = {
        "apiVersion": "lvs.io/v1alpha1",
        "kind": "VirtualService",
        "metadata": {"name": "web-copy", "namespace": "shop"},
        "spec": {"vip": "203.0.113.10", "ports": [{"port": 80}], "poolRef": {"name": "web-backends"}},
    }
    cluster.kubectl("apply", "-f", "-", input=json.dumps(newcomer))
    try:
        vs = wait_until(
            lambda: (
                current_condition(cluster, "virtualservices.lvs.io", "web-copy", "shop", "Conflict")
                and cluster.get("virtualservices.lvs.io", "web-copy", "shop")
            ),
            "web-copy observed",
        )
        assert (condition(vs, "Conflict")["status"], condition(vs, "Conflict")["reason"]) == (
            "True",
            "PortConflict",
        )
        status, message = argocd_health(vs)
        assert status == "Degraded"
        assert message.startswith("PortConflict: ") and "shop/web" in message
        assert flux_health(vs) == "Failed"
        owner = cluster.get("virtualservices.lvs.io", "web", "shop")
        assert condition(owner, "Accepted")["status"] == "True"
    finally:
        cluster.kubectl("delete", "virtualservices.lvs.io", "web-copy", "-n", "shop", "--wait=false")


def ensure_director_report(cluster: Cluster, node: str) -> None:
    cluster.kubectl(
        "apply", "-f", "-",
        input=json.dumps({
            "apiVersion": "lvs.io/v1alpha1", "kind": "DirectorReport",
            "metadata": {"name": node}, "spec": {"nodeName": node},
        }),
    )  # fmt: skip


def test_the_troubleshooting_commands_run(cluster: Cluster) -> None:
    """docs/troubleshooting.md's "Where to look" (pod logs aside: the embedded server runs no pods)."""
    ensure_director_report(cluster, "lb-1")
    cluster.kubectl("create", "namespace", "lvs-system", check=False)
    commands = [line for line in sh_block(REPO / "docs" / "troubleshooting.md") if " logs " not in line]
    assert len(commands) >= 6
    outputs = {line: cluster.run_documented(line).stdout for line in commands}
    conditions = next(out for line, out in outputs.items() if "jsonpath" in line)
    assert {line.split("=")[0] for line in conditions.splitlines()} == {
        "Accepted", "Conflict", "Programmed", "Ready", "Stalled", "Reconciling", "Degraded",
    }  # fmt: skip


def test_the_upgrade_commands_run(cluster: Cluster, tmp_path: Path) -> None:
    """docs/upgrade.md: the record of the CRDs, the CRD apply on top of a client-side install (both forms),
    and the checks; nothing of the served API changes when the CRDs are the same."""
    ensure_director_report(cluster, "lb-1")
    lines = sh_lines(REPO / "docs" / "upgrade.md")
    record = next(line for line in lines if line.startswith("kubectl get crd -l"))
    words = shlex.split(record, comments=True)
    assert words[-2] == ">"
    saved = cluster.kubectl(*words[1:-2]).stdout
    assert {item["metadata"]["name"] for item in yaml.safe_load(saved)["items"]} == {
        f"{plural}.lvs.io"
        for plural in (
            "virtualservices",
            "realserverpools",
            "vippools",
            "resolvedservices",
            "directorreports",
        )
    }
    web = cluster.get("virtualservices.lvs.io", "web", "shop")
    before = (web["metadata"]["generation"], web["spec"])
    crd_applies = [line for line in lines if line.startswith("kubectl apply --server-side --force-conflicts")]
    assert len(crd_applies) == 2
    for line in crd_applies:
        assert cluster.run_documented(line).stdout.count("serverside-applied") == 5
    web = cluster.get("virtualservices.lvs.io", "web", "shop")
    assert (web["metadata"]["generation"], web["spec"]) == before  # the objects keep their spec

    wait_all = next(line for line in lines if line.startswith("kubectl wait"))
    quick = re.sub(r"--timeout=\S+", "--timeout=1s", wait_all)  # not every example has a director here
    waited = cluster.run_documented(quick, check=False)
    assert "timed out" in waited.stderr or "condition met" in waited.stdout, waited.stderr
    columns = next(line for line in lines if "custom-columns" in line)
    table = cluster.run_documented(columns).stdout.splitlines()
    assert table[0].split() == ["NODE", "VERSION", "HEARTBEAT"]
    assert any(row.split()[0] == "lb-1" for row in table[1:])


def test_the_readme_first_virtual_service_is_accepted(tmp_path: Path) -> None:
    """README.md's "A first VirtualService", with the VIPPool and pool of nat-web.yaml it refers to."""
    text = (REPO / "README.md").read_text()
    start = text.index("## A first VirtualService")
    block = text[text.index("```yaml\n", start) + len("```yaml\n") :]
    first = yaml.safe_load(block[: block.index("```")])
    assert (first["kind"], first["metadata"]["namespace"]) == ("VirtualService", "shop")
    nat_web = [doc for doc in yaml.safe_load_all((EXAMPLES / "nat-web.yaml").read_text()) if doc]
    supporting = [doc for doc in nat_web if doc["kind"] in ("VIPPool", "RealServerPool")]
    assert first["spec"]["poolRef"]["name"] in {doc["metadata"]["name"] for doc in supporting}
    with installed_cluster(tmp_path) as cluster:
        cluster.kubectl("create", "namespace", "shop")
        cluster.kubectl("apply", "-f", "-", input=yaml.safe_dump_all([*supporting, first]))
        accepted = wait_until(
            lambda: current_condition(cluster, "virtualservices.lvs.io", "web", "shop", "Accepted"),
            "accepted",
        )
        assert (accepted["status"], accepted["reason"]) == ("True", "Accepted"), accepted


def test_the_documented_uninstall_order_leaves_nothing(tmp_path: Path) -> None:
    """docs/install.md "Uninstall" with plain manifests: the services first, while a director still lists
    one (the controller keeps its finalizer until the director's report drops it, as an agent does once the
    kernel state is gone), then `kubectl delete -k deploy/`, which removes the CRDs too."""
    text = (REPO / "docs" / "install.md").read_text()
    uninstall = sh_block_after(text, "## Uninstall")
    delete_services = next(line for line in uninstall if line.startswith("kubectl delete virtualservices"))
    with installed_cluster(tmp_path) as cluster:
        cluster.run_documented("kubectl create namespace shop")
        cluster.run_documented("kubectl apply -f deploy/examples/nat-web.yaml")
        wait_until(
            lambda: current_condition(cluster, "virtualservices.lvs.io", "web", "shop", "Accepted"), "web"
        )
        ensure_director_report(cluster, "lb-1")
        listed = director_report_status({"shop/web": ServiceReport(programmed=True, reason="Programmed")}, [])
        cluster.kubectl(
            "patch", "directorreports.lvs.io", "lb-1", "--subresource=status", "--type=merge",
            "-p", json.dumps({"status": listed}),
        )  # fmt: skip
        wait_until(
            lambda: "lvs.io/cleanup" in (cluster.get("virtualservices.lvs.io", "web", "shop")["metadata"].get(
                "finalizers") or []),
            "the controller's finalizer",
        )  # fmt: skip
        words = shlex.split(delete_services, comments=True)
        command = [
            KUBECTL,
            f"--kubeconfig={cluster.server.kubeconfig}",
            f"--cache-dir={cluster.cache}",
            *words[1:],
        ]
        deleting = subprocess.Popen(
            command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=REPO
        )
        try:
            # The controller withdraws the ResolvedService at once; the object waits for the director.
            wait_until(
                lambda: (
                    not cluster.kubectl("get", "resolvedservices.lvs.io", "-A", "-o", "name").stdout.strip()
                ),
                "the ResolvedService withdrawn",
            )
            assert deleting.poll() is None, "deleted while a director still lists it"
            assert cluster.get("virtualservices.lvs.io", "web", "shop")["metadata"].get("deletionTimestamp")
            cluster.kubectl(
                "patch", "directorreports.lvs.io", "lb-1", "--subresource=status", "--type=merge",
                "-p", json.dumps({"status": {"services": {"shop/web": None}}}),
            )  # fmt: skip
            out, err = deleting.communicate(timeout=60)
        finally:
            if deleting.poll() is None:
                deleting.kill()
                deleting.wait()
        assert deleting.returncode == 0, err
        assert "deleted" in out
        assert cluster.kubectl("get", "virtualservices.lvs.io", "-A", "-o", "name").stdout.strip() == ""
        # `helm uninstall` is not available here; its plain-manifest equivalent from the same line:
        plain = uninstall[1][uninstall[1].index("kubectl delete -k deploy/") :].split("(")[0]
        cluster.run_documented(plain)
        wait_until(
            lambda: (
                not [
                    name
                    for name in cluster.kubectl("get", "crd", "-o", "name").stdout.split()
                    if name.endswith(".lvs.io")
                ]
            ),
            "the CRDs to go",
        )


def test_the_chart_notes_commands_run(tmp_path: Path) -> None:
    """The commands `helm install` prints (NOTES.txt) for trying a service, run as printed."""
    import helm_python as helm

    with helm.Chart.load(REPO / "charts" / "lvs-operator") as chart:
        rendered = chart.render(
            {"fullnameOverride": "lvs"}, name="lvs", namespace="lvs-system", is_install=True
        )
    notes = next(text for path, text in rendered.items() if path.endswith("NOTES.txt"))
    commands = [line.strip() for line in notes.splitlines() if line.strip().startswith("kubectl ")]
    runnable = [
        line for line in commands if line.split()[1] not in ("label", "wait") and "rollout" not in line
    ]
    assert "kubectl apply -f deploy/examples/nat-web.yaml" in [
        line.split("#")[0].strip() for line in runnable
    ]
    with installed_cluster(tmp_path) as cluster:
        for line in runnable:
            cluster.run_documented(line)
        accepted = wait_until(
            lambda: current_condition(cluster, "virtualservices.lvs.io", "web", "shop", "Accepted"),
            "accepted",
        )
        assert accepted["status"] == "True"
