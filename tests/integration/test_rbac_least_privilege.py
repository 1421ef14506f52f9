"""RBAC proof: the controller and the agent run against the embedded API server with bearer-token auth and
RBAC on, authenticated as their own ServiceAccounts bound by the roles shipped in deploy/.

- Enough: the real controller (``python -m lvs_controller``) and the agent's API side (its desired-state
  watch, node lookup, VIP-group Leases through the failover runner, DirectorReport writer; the kernel and
  the host addresses replaced by the agent's in-memory fakes) drive a VirtualService through publish ->
  program -> report -> delete with finalizer. Every request is recorded by the server's authorizer: none of
  theirs may be denied.
- Nothing more: every permission the roles grant is exercised by that run (an unused grant is excess), and
  requests outside their needs get 403 from the server (real requests, and ``kubectl auth can-i``).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import helm_python as helm
import pytest
import yaml
from lvs_apiserver.auth import RbacAuthorizer, RequestAttributes, UserInfo
from lvs_apiserver.errors import ApiError as ServerApiError
from lvs_apiserver.storage import Store
from lvs_apiserver.testing import ServerThread
from lvs_kube import ApiError, KubeClient, load_kubeconfig
from lvs_kube import resources as res

REPO = Path(__file__).resolve().parents[2]
KUBECTL = str(Path(sys.executable).parent / "kubectl")
NAMESPACE = "lvs-system"
CONTROLLER = f"system:serviceaccount:{NAMESPACE}:lvs-controller"
AGENT = f"system:serviceaccount:{NAMESPACE}:lvs-agent"
NODE = "director-1"
APP_NAMESPACE = "shop"
# The agent's DirectorReport keeps a deleted service listed (its status is merge-patched, and a JSON merge
# patch never removes map keys it omits), so the finalizer is released by its timeout here; keep it short.
FINALIZER_TIMEOUT = "5"

pytestmark = pytest.mark.integration


# ---- the server side: every authorization decision, recorded ----------------------------------------------


@dataclass(frozen=True)
class Decision:
    user: str
    verb: str
    group: str
    resource: str
    subresource: str
    namespace: str
    name: str
    path: str
    allowed: bool

    @property
    def resource_path(self) -> str:
        return f"{self.resource}/{self.subresource}" if self.subresource else self.resource

    def __str__(self) -> str:
        where = f" in {self.namespace}" if self.namespace else ""
        return f"{self.verb} {self.group or 'core'}/{self.resource_path} {self.name}{where}".strip()


class RecordingAuthorizer(RbacAuthorizer):
    """The server's own RBAC authorizer, logging each request it judges (access reviews excepted)."""

    def __init__(self, store: Store, log: list[Decision]) -> None:
        super().__init__(store)
        self.log = log

    def check(self, user: UserInfo, request: RequestAttributes) -> None:
        allowed = True
        try:
            super().check(user, request)
        except ServerApiError:
            allowed = False
            raise
        finally:
            self.log.append(
                Decision(
                    user.name,
                    request.verb,
                    request.group,
                    request.resource,
                    request.subresource,
                    request.namespace,
                    request.name,
                    request.path,
                    allowed,
                )
            )


@dataclass
class RbacCluster:
    server: ServerThread
    workdir: Path
    decisions: list[Decision]
    kubeconfigs: dict[str, Path] = field(default_factory=dict)

    def kubectl(
        self, *args: str, as_user: str = "admin", input: str | None = None, check: bool = True
    ) -> subprocess.CompletedProcess[str]:
        kubeconfig = self.server.kubeconfig if as_user == "admin" else self.kubeconfigs[as_user]
        command = [
            KUBECTL,
            f"--kubeconfig={kubeconfig}",
            f"--cache-dir={self.workdir / ('cache-' + as_user)}",
            *args,
        ]
        result = subprocess.run(command, input=input, capture_output=True, text=True, timeout=60, check=False)
        if check and result.returncode != 0:
            raise AssertionError(
                f"kubectl {' '.join(args)}: {result.returncode}\n{result.stdout}\n{result.stderr}"
            )
        return result

    def apply_documents(self, documents: list[dict[str, Any]]) -> None:
        self.kubectl("apply", "-f", "-", input=yaml.safe_dump_all(documents))

    def decisions_of(self, user: str) -> list[Decision]:
        return [d for d in list(self.decisions) if d.user == user]


def load_documents(*paths: Path) -> list[dict[str, Any]]:
    documents: list[dict[str, Any]] = []
    for path in paths:
        documents.extend(doc for doc in yaml.safe_load_all(path.read_text()) if doc)
    return documents


def agent_rbac_documents() -> tuple[str, list[dict[str, Any]]]:
    """The agent's ServiceAccount and roles: deploy/agent/ when it ships them, else the chart's (which
    tests/unit/test_chart.py holds identical to deploy/)."""
    directory = REPO / "deploy" / "agent"
    if directory.is_dir():
        documents = [
            doc
            for path in sorted(directory.glob("*.yaml"))
            if path.name != "kustomization.yaml"
            for doc in yaml.safe_load_all(path.read_text())
            if doc
            and doc.get("kind")
            in ("ServiceAccount", "ClusterRole", "ClusterRoleBinding", "Role", "RoleBinding")
        ]
        return "deploy/agent", documents
    with helm.Chart.load(REPO / "charts" / "lvs-operator") as chart:
        rendered = chart.render({"fullnameOverride": "lvs"}, name="lvs", namespace=NAMESPACE)
    documents = [doc for doc in yaml.safe_load_all(rendered["lvs-operator/templates/agent-rbac.yaml"]) if doc]
    return "charts/lvs-operator (deploy/agent missing)", documents


def rbac_rules_of(documents: list[dict[str, Any]]) -> list[tuple[str, str, dict[str, Any]]]:
    """(role kind, role namespace, rule) for every rule of every Role/ClusterRole in ``documents``."""
    rules = []
    for doc in documents:
        if doc["kind"] in ("ClusterRole", "Role"):
            for rule in doc.get("rules") or []:
                rules.append((doc["kind"], doc["metadata"].get("namespace", ""), rule))
    return rules


@pytest.fixture(scope="module")
def rbac_cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RbacCluster]:
    server = ServerThread(auth_enabled=True, bookmark_interval=1.0).start()
    workdir = tmp_path_factory.mktemp("rbac")
    decisions: list[Decision] = []
    assert server.server is not None
    api_server = server.server
    server.call(lambda: setattr(api_server, "authorizer", RecordingAuthorizer(api_server.store, decisions)))
    cluster = RbacCluster(server, workdir, decisions)
    try:
        cluster.apply_documents(load_documents(*sorted((REPO / "crds").glob("*.yaml"))))
        deadline = time.monotonic() + 20
        while cluster.kubectl("get", "virtualservices.lvs.io", "-A", check=False).returncode != 0:
            assert time.monotonic() < deadline, "CRDs not served"
            time.sleep(0.2)
        controller_rbac = load_documents(
            REPO / "deploy/controller/namespace.yaml", REPO / "deploy/controller/rbac.yaml"
        )
        cluster.apply_documents(controller_rbac)
        cluster.apply_documents(agent_rbac_documents()[1])
        for user, account in ((CONTROLLER, "lvs-controller"), (AGENT, "lvs-agent")):
            # TokenRequest, as a pod's projected token would be minted.
            token = cluster.kubectl(
                "create", "token", account, "-n", NAMESPACE, "--duration=1h"
            ).stdout.strip()
            cluster.kubeconfigs[user] = server.write_kubeconfig(workdir / f"{account}.kubeconfig", token)
        yield cluster
    finally:
        server.stop()


# ---- driving the real code --------------------------------------------------------------------------------


def free_port(kind: int = socket.SOCK_STREAM) -> int:
    with socket.socket(socket.AF_INET, kind) as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


async def eventually(predicate: Callable[[], Awaitable[Any]], what: str, timeout: float = 30.0) -> Any:
    deadline = time.monotonic() + timeout
    last: Any = None
    while time.monotonic() < deadline:
        last = await predicate()
        if last:
            return last
        await asyncio.sleep(0.2)
    raise AssertionError(f"timed out waiting for {what}; last: {last!r}")


def condition(obj: dict[str, Any] | None, kind: str) -> dict[str, Any]:
    for entry in ((obj or {}).get("status") or {}).get("conditions") or []:
        if entry.get("type") == kind:
            return dict(entry)
    return {}


class FakeVips:
    """The agent's ``VipAddresses`` without the host: VIPs held in memory (no rtnetlink on the test host)."""

    def __init__(self) -> None:
        self.vips: set[str] = set()

    def ensure_interface(self) -> None:
        return None

    def owned(self) -> frozenset[str]:
        return frozenset(self.vips)

    def foreign_holders(self, vip: str) -> list[str]:
        return []

    def add(self, vip: str) -> None:
        self.vips.add(vip)

    def remove(self, vip: str) -> None:
        self.vips.discard(vip)

    def announce(self, vip: str) -> None:
        return None


@contextlib.asynccontextmanager
async def running_agent(kubeconfig: Path, record_path: Path) -> Any:
    """The agent as lvs_agent.__main__.run_agent wires it, with the kernel and the VIP interface faked."""
    from lvs_agent.__main__ import _node_labels
    from lvs_agent.config import AgentConfig
    from lvs_agent.desired import KubeDesiredStateSource
    from lvs_agent.events import HealthEventWriter, KubeEventSink
    from lvs_agent.failover.lease import KubeLeaseStore
    from lvs_agent.failover.machine import FailoverTiming, Role
    from lvs_agent.failover.runner import FailoverRunner
    from lvs_agent.netlink.fake import FakeIpvsKernel
    from lvs_agent.ownership import OwnershipRecord
    from lvs_agent.reconcile import PassResult, ReconcileLoop, Reconciler
    from lvs_agent.report import KubeReportSink, ReportWriter, build_status
    from lvs_api.compiler import compile_resolved
    from lvs_api.planner import plan

    config = AgentConfig(node=NODE, lease_namespace=NAMESPACE)
    client = KubeClient(load_kubeconfig(str(kubeconfig)), user_agent="lvs-agent/test")
    tasks: list[asyncio.Task[Any]] = []
    try:
        labels = await _node_labels(config, client)
        source = KubeDesiredStateSource(client)
        lease_store = KubeLeaseStore(client, config.lease_namespace, 10)
        failovers: dict[str, int] = {}
        writer = ReportWriter(KubeReportSink(client), NODE, min_interval=0.2)

        def on_role(group: str, role: Role, term: int) -> None:
            if role is Role.ACTIVE:
                failovers[group] = failovers.get(group, 0) + 1

        runner = FailoverRunner(
            node=NODE,
            peers=[],
            secret=b"",
            lease_store=lease_store,
            vips=FakeVips(),
            timing=FailoverTiming(interval=0.05, missed=3, lease_duration=10, renew_interval=0.5),
            bind=("127.0.0.1", free_port(socket.SOCK_DGRAM)),
            on_role_change=on_role,
        )

        def on_pass(result: PassResult) -> None:
            writer.update(build_status(result, groups=runner.status(), failovers=failovers))

        reconciler = Reconciler(
            node_labels=labels,
            kernel=FakeIpvsKernel(),
            record=OwnershipRecord(record_path),
            compile_service=compile_resolved,
            plan=plan,
            on_groups=runner.set_groups,
        )
        loop = ReconcileLoop(reconciler, source, resync_interval=1.0, on_pass=on_pass)
        # health Events: the engine's transitions are offered by the scenario (no probes from this test)
        events = HealthEventWriter(KubeEventSink(client, NODE), member_state=lambda _s, _m: True, window=0.0)
        tasks = [
            asyncio.create_task(loop.run()),
            asyncio.create_task(runner.run()),
            asyncio.create_task(writer.run()),
            asyncio.create_task(events.run()),
        ]
        yield writer, events
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        await client.close()


def start_controller(cluster: RbacCluster, log_path: Path) -> subprocess.Popen[bytes]:
    command = [
        sys.executable,
        "-m",
        "lvs_controller",
        "--kubeconfig",
        str(cluster.kubeconfigs[CONTROLLER]),
        "--identity",
        "rbac-test",
        "--lease-name",
        "lvs-controller",
        "--lease-namespace",
        NAMESPACE,
        "--lease-duration",
        "3",
        "--renew-deadline",
        "2",
        "--retry-period",
        "0.5",
        "--metrics-port",
        str(free_port()),
        "--finalizer-timeout",
        FINALIZER_TIMEOUT,
        "--log-format",
        "text",
    ]
    env = {**os.environ, "PYTHONUNBUFFERED": "1", "POD_NAMESPACE": NAMESPACE}
    with open(log_path, "ab") as log:
        return subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, env=env, cwd=REPO)


def app_objects(suffix: str) -> list[dict[str, Any]]:
    return [
        {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": APP_NAMESPACE}},
        {
            "apiVersion": "v1",
            "kind": "Node",
            "metadata": {"name": NODE, "labels": {"lvs.io/director": "true"}},
        },
        {
            "apiVersion": "lvs.io/v1alpha1",
            "kind": "VIPPool",
            "metadata": {"name": f"shop-{suffix}"},
            "spec": {"addresses": ["203.0.113.0/28"], "namespaces": [APP_NAMESPACE]},
        },
        {
            "apiVersion": "lvs.io/v1alpha1",
            "kind": "RealServerPool",
            "metadata": {"name": "web", "namespace": APP_NAMESPACE},
            "spec": {"members": [{"address": "198.51.100.11"}, {"address": "198.51.100.12", "weight": 2}]},
        },
        {
            "apiVersion": "lvs.io/v1alpha1",
            "kind": "VirtualService",
            "metadata": {"name": "web", "namespace": APP_NAMESPACE},
            "spec": {
                "vip": "203.0.113.10",
                "ports": [{"port": 80}],
                "poolRef": {"name": "web"},
                "directorSelector": {"matchLabels": {"lvs.io/director": "true"}},
            },
        },
    ]


def flapping_service(vip: str) -> dict[str, Any]:
    return {
        "apiVersion": "lvs.io/v1alpha1",
        "kind": "VirtualService",
        "metadata": {"name": "flappy", "namespace": APP_NAMESPACE},
        "spec": {"vip": vip, "ports": [{"port": 8080}], "poolRef": {"name": "web"}},
    }


# ---- (a) enough -------------------------------------------------------------------------------------------


def test_controller_and_agent_work_with_exactly_their_roles(
    rbac_cluster: RbacCluster, tmp_path: Path
) -> None:
    cluster = rbac_cluster
    agent_source, agent_documents = agent_rbac_documents()
    cluster.apply_documents(app_objects(uuid.uuid4().hex[:6]))
    admin = KubeClient(load_kubeconfig(str(cluster.server.kubeconfig)))
    controller_log = tmp_path / "controller.log"
    controller = start_controller(cluster, controller_log)

    async def get(resource: res.Resource, name: str, namespace: str | None = None) -> dict[str, Any] | None:
        return await admin.get_or_none(resource, name, namespace)

    async def scenario() -> None:
        async with running_agent(cluster.kubeconfigs[AGENT], tmp_path / "owned.json") as (_, events):
            # publish -> program -> report -> status folded back
            await eventually(lambda: get(res.RESOLVED_SERVICE, "web", APP_NAMESPACE), "ResolvedService web")

            async def programmed() -> bool:
                vs = await get(res.VIRTUAL_SERVICE, "web", APP_NAMESPACE)
                return condition(vs, "Programmed").get("status") == "True" and bool(
                    (vs or {}).get("status", {}).get("activeDirector") == NODE
                )

            await eventually(programmed, "web Programmed=True with activeDirector " + NODE)
            report = await get(res.DIRECTOR_REPORT, NODE)
            assert f"{APP_NAMESPACE}/web" in (report or {}).get("status", {}).get("services", {})
            assert await get(res.LEASE, "lvs-controller", NAMESPACE)
            leases = await admin.list(res.LEASE, NAMESPACE, label_selector="lvs.io/vip-group")
            assert [lease["spec"]["holderIdentity"] for lease in leases.items] == [NODE]

            # A rejection, an acceptance, and the same rejection again: Warning event created, then bumped.
            for vip in ("192.0.2.250", "203.0.113.11", "192.0.2.250"):
                await asyncio.to_thread(cluster.apply_documents, [flapping_service(vip)])

                async def judged(vip: str = vip) -> bool:
                    vs = await get(res.VIRTUAL_SERVICE, "flappy", APP_NAMESPACE)
                    accepted = condition(vs, "Accepted")
                    return accepted.get("observedGeneration") == (vs or {}).get("metadata", {}).get(
                        "generation"
                    ) and (accepted.get("status") == "True") == vip.startswith("203.")

                await eventually(judged, f"flappy judged with VIP {vip}")

            async def warning_bumped() -> bool:
                events = await admin.list(res.CORE_EVENT, APP_NAMESPACE)
                return any(
                    e.get("type") == "Warning"
                    and e["involvedObject"]["name"] == "flappy"
                    and e.get("count", 0) >= 2
                    for e in events.items
                )

            await eventually(warning_bumped, "Warning event on flappy counted twice")

            # The agent's health Event on web, posted and then counted again (create, then patch).
            from lvs_agent.health.engine import HealthEvent

            unhealthy = HealthEvent(f"{APP_NAMESPACE}/web", "198.51.100.12:80", "MemberUnhealthy",
                                    "member 198.51.100.12:80 is unhealthy: 3 TCP checks failed", warning=True)
            for count in (1, 2):
                events.offer(unhealthy)

                async def posted(count: int = count) -> bool:
                    return events.posted + events.failed >= count

                await eventually(posted, f"health Event {count} posted")

            async def health_event_counted() -> bool:
                listed = await admin.list(res.CORE_EVENT, APP_NAMESPACE)
                return any(e.get("reason") == "MemberUnhealthy" and e.get("reportingInstance") == NODE
                           and e["involvedObject"]["name"] == "web" and e.get("count", 0) >= 2
                           for e in listed.items)

            await eventually(health_event_counted, "the agent's MemberUnhealthy event on web counted twice")

            # Delete: the finalizer holds the object until the director stops reporting it.
            await admin.delete(res.VIRTUAL_SERVICE, "web", APP_NAMESPACE)
            await eventually(lambda: _gone(admin, res.VIRTUAL_SERVICE, "web", APP_NAMESPACE), "web deleted")
            assert await get(res.RESOLVED_SERVICE, "web", APP_NAMESPACE) is None

    try:
        asyncio.run(scenario())
    except AssertionError as failure:
        denials = [
            str(d) for d in cluster.decisions_of(CONTROLLER) + cluster.decisions_of(AGENT) if not d.allowed
        ]
        raise AssertionError(f"{failure}\ndenied requests: {denials}") from failure
    finally:
        controller.terminate()
        with contextlib.suppress(subprocess.TimeoutExpired):
            controller.wait(15)
        if controller.poll() is None:
            controller.kill()
        asyncio.run(admin.close())

    denied = [str(d) for d in cluster.decisions_of(CONTROLLER) + cluster.decisions_of(AGENT) if not d.allowed]
    assert denied == [], f"denied requests (log: {controller_log.read_text()[-3000:]})"

    # Every grant is used: a rule verb nobody exercised is excess.
    controller_documents = load_documents(REPO / "deploy/controller/rbac.yaml")
    unused = {
        "controller": unused_grants(controller_documents, cluster.decisions_of(CONTROLLER)),
        f"agent ({agent_source})": unused_grants(agent_documents, cluster.decisions_of(AGENT)),
    }
    assert unused == {key: [] for key in unused}, f"granted but never used by the run: {unused}"


async def _gone(client: KubeClient, resource: res.Resource, name: str, namespace: str) -> bool:
    return await client.get_or_none(resource, name, namespace) is None


def unused_grants(documents: list[dict[str, Any]], decisions: list[Decision]) -> list[str]:
    """Granted (verb, resource) pairs that no allowed request used. ``get`` next to a used ``list`` of the
    same resource counts as used: it discloses nothing the list does not (the controller reads through
    list+watch caches and keeps the conventional get/list/watch triple)."""
    used = {(d.verb, d.group, d.resource_path, d.name) for d in decisions if d.allowed}
    listed = {(d.group, d.resource_path) for d in decisions if d.allowed and d.verb == "list"}
    used |= {("get", group, resource, "") for group, resource in listed}
    unused = []
    for _kind, _namespace, rule in rbac_rules_of(documents):
        for group in rule.get("apiGroups") or []:
            for resource in rule.get("resources") or []:
                for verb in rule.get("verbs") or []:
                    names = rule.get("resourceNames") or [None]
                    if not any(
                        (verb, group, resource) == u[:3] and (name is None or u[3] == name)
                        for u in used
                        for name in names
                    ):
                        unused.append(f"{verb} {group or 'core'}/{resource}")
    return sorted(unused)


# ---- (b) nothing more -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Forbidden:
    user: str
    method: str
    path: str
    body: Any = None
    content_type: str | None = None

    def __str__(self) -> str:
        return f"{self.user.rsplit(':', 1)[-1]} {self.method} {self.path}"


MERGE = "application/merge-patch+json"
VS_PATH = f"/apis/lvs.io/v1alpha1/namespaces/{APP_NAMESPACE}/virtualservices"
FORBIDDEN = [
    # The agent never writes what users or the controller own.
    Forbidden(AGENT, "PATCH", f"{VS_PATH}/web", {"spec": {"vip": "203.0.113.12"}}, MERGE),
    Forbidden(AGENT, "PATCH", f"{VS_PATH}/web/status", {"status": {"activeDirector": "x"}}, MERGE),
    Forbidden(AGENT, "GET", f"{VS_PATH}/web"),
    Forbidden(
        AGENT,
        "POST",
        f"/apis/lvs.io/v1alpha1/namespaces/{APP_NAMESPACE}/resolvedservices",
        {"apiVersion": "lvs.io/v1alpha1", "kind": "ResolvedService", "metadata": {"name": "x"}},
    ),
    Forbidden(AGENT, "DELETE", f"/apis/lvs.io/v1alpha1/namespaces/{APP_NAMESPACE}/resolvedservices/web"),
    Forbidden(
        AGENT, "PATCH", f"/apis/lvs.io/v1alpha1/directorreports/{NODE}", {"spec": {"nodeName": "x"}}, MERGE
    ),
    Forbidden(AGENT, "DELETE", f"/apis/lvs.io/v1alpha1/directorreports/{NODE}"),
    Forbidden(AGENT, "GET", "/api/v1/nodes"),  # its own node by name only, no list
    Forbidden(AGENT, "PATCH", f"/api/v1/nodes/{NODE}", {"metadata": {"labels": {"x": "y"}}}, MERGE),
    Forbidden(AGENT, "GET", "/apis/coordination.k8s.io/v1/namespaces/kube-node-lease/leases"),
    Forbidden(
        AGENT,
        "POST",
        "/apis/coordination.k8s.io/v1/namespaces/default/leases",
        {"apiVersion": "coordination.k8s.io/v1", "kind": "Lease", "metadata": {"name": "x"}},
    ),
    Forbidden(AGENT, "GET", f"/api/v1/namespaces/{NAMESPACE}/secrets"),
    Forbidden(AGENT, "GET", "/api/v1/secrets"),
    Forbidden(AGENT, "GET", f"/api/v1/namespaces/{APP_NAMESPACE}/pods"),
    # The controller reads user objects and writes only status, finalizers, its own kinds and events.
    Forbidden(
        CONTROLLER,
        "PATCH",
        f"/apis/lvs.io/v1alpha1/directorreports/{NODE}/status",
        {"status": {"services": {}}},
        MERGE,
    ),
    Forbidden(
        CONTROLLER,
        "POST",
        "/apis/lvs.io/v1alpha1/directorreports",
        {"apiVersion": "lvs.io/v1alpha1", "kind": "DirectorReport", "metadata": {"name": "x"}},
    ),
    Forbidden(
        CONTROLLER,
        "POST",
        VS_PATH,
        {"apiVersion": "lvs.io/v1alpha1", "kind": "VirtualService", "metadata": {"name": "x"}},
    ),
    Forbidden(CONTROLLER, "DELETE", f"{VS_PATH}/flappy"),
    Forbidden(
        CONTROLLER,
        "PATCH",
        f"/apis/lvs.io/v1alpha1/namespaces/{APP_NAMESPACE}/realserverpools/web",
        {"spec": {"members": []}},
        MERGE,
    ),
    Forbidden(CONTROLLER, "PATCH", "/apis/lvs.io/v1alpha1/vippools/anything", {"spec": {}}, MERGE),
    Forbidden(CONTROLLER, "GET", f"/api/v1/namespaces/{NAMESPACE}/secrets"),
    Forbidden(CONTROLLER, "GET", "/api/v1/secrets"),
    Forbidden(CONTROLLER, "GET", f"/api/v1/namespaces/{APP_NAMESPACE}/configmaps"),
    Forbidden(
        CONTROLLER,
        "POST",
        f"/api/v1/namespaces/{APP_NAMESPACE}/pods",
        {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "x"}},
    ),
    Forbidden(CONTROLLER, "DELETE", f"/api/v1/namespaces/{APP_NAMESPACE}/events/anything"),
    # Leader election: its own Lease only, in its own namespace only.
    Forbidden(CONTROLLER, "GET", f"/apis/coordination.k8s.io/v1/namespaces/{NAMESPACE}/leases/other"),
    Forbidden(
        CONTROLLER,
        "PUT",
        f"/apis/coordination.k8s.io/v1/namespaces/{NAMESPACE}/leases/vip-other",
        {
            "apiVersion": "coordination.k8s.io/v1",
            "kind": "Lease",
            "metadata": {"name": "vip-other", "namespace": NAMESPACE},
        },
    ),
    Forbidden(
        CONTROLLER, "DELETE", f"/apis/coordination.k8s.io/v1/namespaces/{NAMESPACE}/leases/lvs-controller"
    ),
    Forbidden(
        CONTROLLER,
        "POST",
        "/apis/coordination.k8s.io/v1/namespaces/default/leases",
        {"apiVersion": "coordination.k8s.io/v1", "kind": "Lease", "metadata": {"name": "x"}},
    ),
    # Neither can grant itself more.
    Forbidden(
        CONTROLLER,
        "POST",
        "/apis/rbac.authorization.k8s.io/v1/clusterrolebindings",
        {
            "apiVersion": "rbac.authorization.k8s.io/v1",
            "kind": "ClusterRoleBinding",
            "metadata": {"name": "x"},
            "roleRef": {
                "apiGroup": "rbac.authorization.k8s.io",
                "kind": "ClusterRole",
                "name": "cluster-admin",
            },
            "subjects": [{"kind": "ServiceAccount", "name": "lvs-controller", "namespace": NAMESPACE}],
        },
    ),
    Forbidden(
        AGENT,
        "PATCH",
        "/apis/rbac.authorization.k8s.io/v1/clusterroles/lvs-agent",
        {"rules": [{"apiGroups": ["*"], "resources": ["*"], "verbs": ["*"]}]},
        MERGE,
    ),
]


def test_requests_outside_their_needs_are_forbidden(rbac_cluster: RbacCluster) -> None:
    cluster = rbac_cluster
    cluster.apply_documents(app_objects("forbidden")[:4])  # namespace, node, pool, members exist

    async def attempt(case: Forbidden) -> int:
        async with KubeClient(load_kubeconfig(str(cluster.kubeconfigs[case.user]))) as client:
            try:
                await client.request(case.method, case.path, body=case.body, content_type=case.content_type)
            except ApiError as error:
                return error.status
            return 200

    async def attempt_all() -> list[tuple[str, int]]:
        return [(str(case), await attempt(case)) for case in FORBIDDEN]

    statuses = asyncio.run(attempt_all())
    assert [entry for entry in statuses if entry[1] != 403] == []


@pytest.mark.parametrize(
    ("user", "question", "expected"),
    [
        (CONTROLLER, ["patch", "virtualservices.lvs.io", "--subresource=status", "-n", APP_NAMESPACE], "yes"),
        (CONTROLLER, ["patch", "resolvedservices.lvs.io", "-n", APP_NAMESPACE], "yes"),
        (CONTROLLER, ["update", "leases.coordination.k8s.io/lvs-controller", "-n", NAMESPACE], "yes"),
        (CONTROLLER, ["update", "leases.coordination.k8s.io/vip-a", "-n", NAMESPACE], "no"),
        (CONTROLLER, ["patch", "directorreports.lvs.io", "--subresource=status"], "no"),
        (CONTROLLER, ["get", "secrets", "-A"], "no"),
        (AGENT, ["patch", "directorreports.lvs.io", "--subresource=status"], "yes"),
        (AGENT, ["watch", "resolvedservices.lvs.io", "-A"], "yes"),
        (AGENT, ["update", "leases.coordination.k8s.io", "-n", NAMESPACE], "yes"),
        (AGENT, ["update", "leases.coordination.k8s.io", "-n", "kube-system"], "no"),
        (AGENT, ["patch", "virtualservices.lvs.io", "-n", APP_NAMESPACE], "no"),
        (AGENT, ["patch", "virtualservices.lvs.io", "--subresource=status", "-n", APP_NAMESPACE], "no"),
        (AGENT, ["get", "secrets", "-n", NAMESPACE], "no"),
    ],
)
def test_kubectl_auth_can_i_agrees(
    rbac_cluster: RbacCluster, user: str, question: list[str], expected: str
) -> None:
    """What an operator auditing the install sees (SelfSubjectAccessReview through kubectl)."""
    result = rbac_cluster.kubectl("auth", "can-i", *question, as_user=user, check=False)
    assert result.stdout.strip() == expected, result.stderr


def test_roles_grant_no_wildcards_and_no_secrets() -> None:
    documents = load_documents(REPO / "deploy/controller/rbac.yaml") + agent_rbac_documents()[1]
    for _kind, _namespace, rule in rbac_rules_of(documents):
        for key in ("apiGroups", "resources", "verbs"):
            assert "*" not in (rule.get(key) or []), rule
        assert "secrets" not in (rule.get("resources") or []), rule
        assert not rule.get("nonResourceURLs"), rule
        assert not {"escalate", "bind", "impersonate"} & set(rule.get("verbs") or []), rule


def test_recorded_decisions_are_real(rbac_cluster: RbacCluster) -> None:
    """The recorder sees what the server decides: a denied and an allowed request show up as such."""
    before = len(rbac_cluster.decisions)
    rbac_cluster.kubectl("get", "secrets", "-n", NAMESPACE, as_user=AGENT, check=False)
    rbac_cluster.kubectl("get", "resolvedservices.lvs.io", "-A", as_user=AGENT)
    new = [d for d in rbac_cluster.decisions[before:] if d.user == AGENT and d.resource]
    assert ("secrets", False) in {(d.resource, d.allowed) for d in new}
    assert ("resolvedservices", True) in {(d.resource, d.allowed) for d in new}
    json.dumps([str(d) for d in new])  # printable for failure messages


def test_the_agent_run_above_covers_every_resource_the_agent_uses() -> None:
    """The agent's API side is driven in-process (no IPVS on the test host), wired like __main__; if the agent
    starts using another API resource, this fails so that the run above (and its roles) are extended."""
    import ast

    used: set[str] = set()
    for path in (REPO / "agent" / "lvs_agent").rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and node.module in ("lvs_kube.resources", "lvs_kube"):
                used |= {
                    alias.name for alias in node.names if alias.name.isupper() or alias.name == "resources"
                }
    assert used == {"RESOLVED_SERVICE", "NODE", "DIRECTOR_REPORT", "LEASE", "CORE_EVENT"}
