"""The Helm chart, rendered offline by Helm's own Go engine (helm-python-sdk): CRDs in sync with crds/,
templates, values.schema.json, lint, and parity with the plain manifests in deploy/."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import helm_python as helm
import pytest
import yaml

REPO = Path(__file__).resolve().parents[2]
CHART = REPO / "charts" / "lvs-operator"
SYNC_SCRIPT = REPO / "scripts" / "sync-chart-crds.sh"
RELEASE_NAMESPACE = "lvs-system"
# With this override the chart names its objects exactly as deploy/ does (lvs-controller, lvs-agent).
DEPLOY_EQUIVALENT = {"fullnameOverride": "lvs"}

Manifest = dict[str, Any]


def render(values: dict[str, Any] | None = None, namespace: str = RELEASE_NAMESPACE) -> list[Manifest]:
    """Every object the chart renders (templates only; CRDs come from crds/, as with `helm install`)."""
    with helm.Chart.load(CHART) as chart:
        rendered = chart.render(values, name="lvs", namespace=namespace, is_install=True)
    objects: list[Manifest] = []
    for path, text in sorted(rendered.items()):
        if path.endswith("NOTES.txt"):
            continue
        objects.extend(doc for doc in yaml.safe_load_all(text) if doc)
    return objects


def notes(values: dict[str, Any] | None = None) -> str:
    with helm.Chart.load(CHART) as chart:
        rendered = chart.render(values, name="lvs", namespace=RELEASE_NAMESPACE, is_install=True)
    return next(text for path, text in rendered.items() if path.endswith("NOTES.txt"))


def find(objects: list[Manifest], kind: str, name: str | None = None) -> Manifest:
    matches = [o for o in objects if o["kind"] == kind and (name is None or o["metadata"]["name"] == name)]
    assert len(matches) == 1, (
        f"expected one {kind} {name or ''}, got {[m['metadata']['name'] for m in matches]}"
    )
    return matches[0]


def container(workload: Manifest) -> Manifest:
    containers = workload["spec"]["template"]["spec"]["containers"]
    assert len(containers) == 1
    result: Manifest = containers[0]
    return result


def env_of(workload: Manifest) -> dict[str, Any]:
    return {e["name"]: e.get("value", e.get("valueFrom")) for e in container(workload).get("env") or []}


def load_yaml_dir(directory: Path) -> list[Manifest]:
    objects: list[Manifest] = []
    for path in sorted(directory.glob("*.yaml")):
        if path.name == "kustomization.yaml":
            continue
        objects.extend(doc for doc in yaml.safe_load_all(path.read_text()) if doc)
    return objects


# ---- CRDs -------------------------------------------------------------------------------------------


@pytest.mark.parametrize("copy_dir", ["charts/lvs-operator/crds", "deploy/crds"])
def test_crd_copies_are_byte_identical_to_crds_dir(copy_dir: str) -> None:
    upstream = {p.name: p.read_bytes() for p in (REPO / "crds").glob("*.yaml")}
    copies = {
        p.name: p.read_bytes() for p in (REPO / copy_dir).glob("*.yaml") if p.name != "kustomization.yaml"
    }
    assert upstream, "crds/ is empty"
    assert sorted(copies) == sorted(upstream), "run scripts/sync-chart-crds.sh"
    for name, content in upstream.items():
        assert copies[name] == content, f"{copy_dir}/{name} drifted: run scripts/sync-chart-crds.sh"


def test_deploy_crds_kustomization_lists_every_crd() -> None:
    kustomization = yaml.safe_load((REPO / "deploy" / "crds" / "kustomization.yaml").read_text())
    assert kustomization["resources"] == sorted(p.name for p in (REPO / "crds").glob("*.yaml"))


def test_sync_script_check_mode_passes_on_the_repository() -> None:
    result = subprocess.run(
        ["bash", str(SYNC_SCRIPT), "--check"], capture_output=True, text=True, check=False
    )
    assert result.returncode == 0, result.stderr


def test_sync_script_detects_and_repairs_drift(tmp_path: Path) -> None:
    """A copy of the layout: an edited, a missing and a stale CRD copy are each reported, then repaired."""
    (tmp_path / "scripts").mkdir()
    shutil.copy(SYNC_SCRIPT, tmp_path / "scripts" / SYNC_SCRIPT.name)
    shutil.copytree(REPO / "crds", tmp_path / "crds")
    chart_crds = tmp_path / "charts" / "lvs-operator" / "crds"
    shutil.copytree(CHART / "crds", chart_crds)
    deploy_crds = tmp_path / "deploy" / "crds"
    shutil.copytree(REPO / "deploy" / "crds", deploy_crds)
    script = tmp_path / "scripts" / SYNC_SCRIPT.name

    def check() -> subprocess.CompletedProcess[str]:
        return subprocess.run(["bash", str(script), "--check"], capture_output=True, text=True, check=False)

    assert check().returncode == 0
    edited = chart_crds / "virtualservices.lvs.io.yaml"
    edited.write_text(edited.read_text().replace("lvsvs", "vs"))
    (chart_crds / "vippools.lvs.io.yaml").unlink()
    (chart_crds / "old.lvs.io.yaml").write_text("kind: CustomResourceDefinition\n")
    (deploy_crds / "kustomization.yaml").write_text("resources: []\n")
    drifted = check()
    assert drifted.returncode == 1
    assert "differs: charts/lvs-operator/crds/virtualservices.lvs.io.yaml" in drifted.stderr
    assert "differs: charts/lvs-operator/crds/vippools.lvs.io.yaml" in drifted.stderr
    assert "stale: charts/lvs-operator/crds/old.lvs.io.yaml" in drifted.stderr
    assert "differs: deploy/crds/kustomization.yaml" in drifted.stderr

    subprocess.run(["bash", str(script)], capture_output=True, text=True, check=True)
    assert check().returncode == 0
    assert not (chart_crds / "old.lvs.io.yaml").exists()
    assert edited.read_bytes() == (REPO / "crds" / edited.name).read_bytes()
    assert (deploy_crds / "kustomization.yaml").read_bytes() == (
        REPO / "deploy/crds/kustomization.yaml"
    ).read_bytes()


def test_chart_crds_match_what_the_models_generate(tmp_path: Path) -> None:
    """The whole chain: pydantic models -> crdgen -> crds/ -> chart. A model change without regenerating
    and syncing fails here too."""
    subprocess.run(
        [sys.executable, "-m", "lvs_api.crdgen", "--out", str(tmp_path)], check=True, capture_output=True
    )
    generated = {p.name: p.read_bytes() for p in tmp_path.glob("*.yaml")}
    in_chart = {p.name: p.read_bytes() for p in (CHART / "crds").glob("*.yaml")}
    assert generated == in_chart, (
        "the chart's CRDs differ from what the models generate: "
        "python -m lvs_api.crdgen --out crds && scripts/sync-chart-crds.sh"
    )


def test_helm_loads_the_crds_from_the_chart() -> None:
    with helm.Chart.load(CHART) as chart:
        loaded = {entry["name"]: yaml.safe_load(entry["data"]) for entry in chart.crds}
    names = {doc["metadata"]["name"] for doc in loaded.values()}
    assert {"virtualservices.lvs.io", "realserverpools.lvs.io", "vippools.lvs.io"} <= names
    virtual_services = next(d for d in loaded.values() if d["metadata"]["name"] == "virtualservices.lvs.io")
    assert "lvsvs" in virtual_services["spec"]["names"]["shortNames"]


# ---- lint and schema ---------------------------------------------------------------------------------


def test_helm_lint_strict_has_no_warnings() -> None:
    report = helm.lint(CHART, strict=True, kube_version="v1.30.0")
    assert report["errors"] == []
    problems = [m for m in report["messages"] if m["severity"] >= 2]
    assert problems == [], problems


def test_defaults_validate_against_the_schema() -> None:
    with helm.Chart.load(CHART) as chart:
        chart.validate_schema(None)
        assert chart.schema is not None
        assert chart.schema == json.loads((CHART / "values.schema.json").read_text())


@pytest.mark.parametrize(
    ("values", "where"),
    [
        ({"unknownKey": 1}, "additional properties 'unknownKey'"),
        ({"controller": {"replicas": 0}}, "/controller/replicas"),
        ({"controller": {"logFormat": "xml"}}, "/controller/logFormat"),
        ({"controller": {"metrics": {"port": 70000}}}, "/controller/metrics/port"),
        ({"logLevel": "LOUD"}, "/logLevel"),
        ({"image": {"pullPolicy": "Sometimes"}}, "/image/pullPolicy"),
        ({"image": {"digest": "latest"}}, "/image/digest"),
        # Helm merges maps with the defaults: a null value is how a user removes the default label.
        ({"agent": {"directorNodeSelector": {"lvs.io/director": None}}}, "/agent/directorNodeSelector"),
        ({"agent": {"directorNodeSelector": None}}, "'directorNodeSelector'"),
        ({"agent": {"heartbeat": {"peers": ["no-address"]}}}, "/agent/heartbeat/peers/0"),
        ({"agent": {"heartbeat": {"intervalSeconds": 0}}}, "/agent/heartbeat/intervalSeconds"),
        ({"agent": {"heartbeat": {"missed": 0}}}, "/agent/heartbeat/missed"),
        ({"agent": {"allowExec": "yes"}}, "/agent/allowExec"),
        ({"agent": {"vipInterface": "a-name-longer-than-15"}}, "/agent/vipInterface"),
        ({"agent": {"connectionSync": {"syncId": 256}}}, "/agent/connectionSync/syncId"),
        ({"agent": {"stateHostPath": "relative/dir"}}, "/agent/stateHostPath"),
        ({"agent": {"tolerations": [{"key": "x", "operator": "Maybe"}]}}, "/agent/tolerations/0/operator"),
    ],
)
def test_schema_rejects_bad_values(values: dict[str, Any], where: str) -> None:
    with helm.Chart.load(CHART) as chart, pytest.raises(helm.HelmValuesError) as error:
        chart.validate_schema(values)
    assert where in str(error.value)


def test_values_file_is_documented() -> None:
    """Every key of values.yaml is described: by a comment in the file or a description in the schema."""
    lines = (CHART / "values.yaml").read_text().splitlines()
    schema = json.loads((CHART / "values.schema.json").read_text())
    undocumented: list[str] = []
    path: list[tuple[int, str]] = []
    for index, line in enumerate(lines):
        stripped = line.strip()
        if not stripped or stripped.startswith(("#", "- ")) or ":" not in stripped:
            continue
        indent = len(line) - len(line.lstrip())
        key = stripped.split(":", 1)[0]
        while path and path[-1][0] >= indent:
            path.pop()
        path.append((indent, key))
        commented = index > 0 and lines[index - 1].strip().startswith("#")
        node: dict[str, Any] = schema
        free_form_parent = False
        for _, part in path:
            free_form_parent = "properties" not in node
            node = node.get("properties", {}).get(part, {})
        if free_form_parent:
            continue  # an entry of a map value (e.g. a node label): its key is documented
        if not commented and "description" not in node and not stripped.endswith(":"):
            # Leaves need a word; sections are documented by their children (or their own comment).
            undocumented.append(".".join(part for _, part in path))
    allowed_self_explanatory = {
        "image.repository",
        "image.pullPolicy",
        "controller.nodeSelector",
        "controller.tolerations",
        "controller.podAnnotations",
        "controller.podLabels",
        "controller.priorityClassName",
        "controller.serviceAccount.annotations",
        "agent.serviceAccount.create",
        "agent.serviceAccount.annotations",
        "agent.podAnnotations",
        "agent.podLabels",
        "controller.resources.requests",
        "controller.resources.limits",
        "agent.resources.requests",
        "agent.resources.limits",
        "agent.updateStrategy.type",
        "agent.updateStrategy.rollingUpdate",
    }
    assert sorted(set(undocumented) - allowed_self_explanatory) == []


# ---- what the templates render ------------------------------------------------------------------------


def test_default_render_has_every_piece() -> None:
    objects = render()
    kinds = sorted((o["kind"], o["metadata"]["name"]) for o in objects)
    assert kinds == sorted(
        [
            ("ClusterRole", "lvs-lvs-operator-agent"),
            ("ClusterRole", "lvs-lvs-operator-controller"),
            ("ClusterRoleBinding", "lvs-lvs-operator-agent"),
            ("ClusterRoleBinding", "lvs-lvs-operator-controller"),
            ("DaemonSet", "lvs-lvs-operator-agent"),
            ("Deployment", "lvs-lvs-operator-controller"),
            ("Role", "lvs-lvs-operator-agent-vip-leases"),
            ("Role", "lvs-lvs-operator-controller-leader-election"),
            ("RoleBinding", "lvs-lvs-operator-agent-vip-leases"),
            ("RoleBinding", "lvs-lvs-operator-controller-leader-election"),
            ("ServiceAccount", "lvs-lvs-operator-agent"),
            ("ServiceAccount", "lvs-lvs-operator-controller"),
        ]
    )
    for obj in objects:
        if obj["kind"] not in ("ClusterRole", "ClusterRoleBinding"):
            assert obj["metadata"]["namespace"] == RELEASE_NAMESPACE
        assert obj["metadata"]["labels"]["app.kubernetes.io/part-of"] == "lvs-operator"


@pytest.mark.parametrize("release_values", [None, {"fullnameOverride": "edge-lb"}])
def test_lease_the_controller_campaigns_for_is_the_one_its_role_names(
    release_values: dict[str, Any] | None,
) -> None:
    objects = render(release_values)
    args = container(find(objects, "Deployment"))["args"]
    lease = next(arg.split("=", 1)[1] for arg in args if arg.startswith("--lease-name="))
    role = next(
        o for o in objects if o["kind"] == "Role" and o["metadata"]["name"].endswith("-leader-election")
    )
    assert [rule.get("resourceNames") for rule in role["rules"] if rule.get("resourceNames")] == [[lease]]


def test_controller_deployment_two_replicas_with_leader_election() -> None:
    objects = render(DEPLOY_EQUIVALENT)
    deployment = find(objects, "Deployment", "lvs-controller")
    assert deployment["spec"]["replicas"] == 2
    args = container(deployment)["args"]
    assert "--lease-name=lvs-controller" in args
    # The lease the controller campaigns for is the one, and the only one, its Role lets it update.
    role = find(objects, "Role", "lvs-controller-leader-election")
    named = [rule for rule in role["rules"] if rule.get("resourceNames")]
    assert named == [
        {
            "apiGroups": ["coordination.k8s.io"],
            "resources": ["leases"],
            "resourceNames": ["lvs-controller"],
            "verbs": ["get", "update"],
        }
    ]
    pod = deployment["spec"]["template"]["spec"]
    assert pod["serviceAccountName"] == "lvs-controller"
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert container(deployment)["securityContext"]["capabilities"] == {"drop": ["ALL"]}
    assert env_of(deployment)["POD_NAMESPACE"] == {"fieldRef": {"fieldPath": "metadata.namespace"}}


def test_controller_options_follow_values() -> None:
    objects = render(
        {
            "controller": {
                "replicas": 3,
                "metrics": {"port": 9100},
                "logLevel": "DEBUG",
                "workers": 4,
                "leaderElection": {"leaseDuration": 30},
            }
        }
    )
    deployment = find(objects, "Deployment")
    args = container(deployment)["args"]
    assert deployment["spec"]["replicas"] == 3
    assert {"--metrics-port=9100", "--log-level=DEBUG", "--workers=4", "--lease-duration=30"} <= set(args)
    assert container(deployment)["ports"] == [{"name": "metrics", "containerPort": 9100, "protocol": "TCP"}]
    assert deployment["spec"]["template"]["metadata"]["annotations"]["prometheus.io/port"] == "9100"


def test_controller_without_leader_election_needs_one_replica() -> None:
    with pytest.raises(helm.HelmError, match=r"needs controller\.replicas=1"):
        render({"controller": {"leaderElection": {"enabled": False}}})
    objects = render({"controller": {"replicas": 1, "leaderElection": {"enabled": False}}})
    assert "--no-leader-election" in container(find(objects, "Deployment"))["args"]
    assert not [
        o for o in objects if o["kind"] in ("Role", "RoleBinding") and "leader" in o["metadata"]["name"]
    ]


@pytest.mark.parametrize(
    "timing",
    [{"renewDeadline": 15}, {"retryPeriod": 10}, {"leaseDuration": 5, "renewDeadline": 10}],
)
def test_leader_election_timers_must_nest(timing: dict[str, int]) -> None:
    with pytest.raises(helm.HelmError, match="retryPeriod < renewDeadline < leaseDuration"):
        render({"controller": {"leaderElection": timing}})


def test_agent_daemonset_on_director_nodes_with_net_admin_and_net_raw() -> None:
    daemonset = find(render(DEPLOY_EQUIVALENT), "DaemonSet", "lvs-agent")
    pod = daemonset["spec"]["template"]["spec"]
    assert pod["hostNetwork"] is True
    assert pod["dnsPolicy"] == "ClusterFirstWithHostNet"
    assert pod["nodeSelector"] == {"lvs.io/director": "true"}
    assert {"key": "lvs.io/director", "operator": "Exists"} in pod["tolerations"]
    assert pod["serviceAccountName"] == "lvs-agent"
    security = container(daemonset)["securityContext"]
    assert security["privileged"] is False
    assert security["allowPrivilegeEscalation"] is False
    assert security["capabilities"] == {"drop": ["ALL"], "add": ["NET_ADMIN", "NET_RAW"]}
    args = container(daemonset)["args"]
    assert "--node=$(NODE_NAME)" in args
    assert "--lease-namespace=$(POD_NAMESPACE)" in args
    assert env_of(daemonset)["NODE_NAME"] == {"fieldRef": {"fieldPath": "spec.nodeName"}}
    # The ownership record survives pod restarts on the host.
    volumes = {v["name"]: v for v in pod["volumes"]}
    assert volumes["state"]["hostPath"] == {"path": "/run/lvs-agent", "type": "DirectoryOrCreate"}
    assert "--record=/run/lvs-agent/owned.json" in args
    assert "--secret-file=/etc/lvs-agent/heartbeat/secret" not in args


def test_agent_options_follow_values() -> None:
    values = {
        "logLevel": "WARNING",
        "agent": {
            # Maps merge with the defaults in Helm: null drops the default label.
            "directorNodeSelector": {"lvs.io/director": None, "node-role.example/lb": ""},
            "tolerations": [{"key": "dedicated", "operator": "Equal", "value": "lb", "effect": "NoSchedule"}],
            "allowExec": True,
            "heartbeat": {"port": 7000, "intervalSeconds": 0.02, "missed": 5},
            "uplink": "eth1",
            "connectionSync": {"interface": "eth2", "syncId": 7},
        },
    }
    daemonset = find(render(values), "DaemonSet")
    pod = daemonset["spec"]["template"]["spec"]
    assert pod["nodeSelector"] == {"node-role.example/lb": ""}
    assert pod["tolerations"] == values["agent"]["tolerations"]  # type: ignore[index]
    args = container(daemonset)["args"]
    assert {
        "--heartbeat-port=7000",
        "--heartbeat-interval=0.02",
        "--missed=5",
        "--uplink=eth1",
        "--sync-interface=eth2",
        "--sync-id=7",
    } <= set(args)
    assert container(daemonset)["ports"] == [
        {"name": "heartbeat", "containerPort": 7000, "protocol": "UDP"},
        {"name": "metrics", "containerPort": 9478, "protocol": "TCP"},  # agent.metrics.port (default)
    ]
    env = env_of(daemonset)
    assert env["LVS_AGENT_ALLOW_EXEC"] == "true"
    assert env["LVS_AGENT_LOG_LEVEL"] == "WARNING"


def test_peers_need_a_heartbeat_secret() -> None:
    peers = {"agent": {"heartbeat": {"peers": ["node-b=192.0.2.2", "node-c=[2001:db8::3]:7946"]}}}
    with pytest.raises(helm.HelmError, match="heartbeats must be authenticated"):
        render(peers)


def test_heartbeat_secret_created_from_value_and_mounted() -> None:
    objects = render({"agent": {"heartbeat": {"peers": ["node-b=192.0.2.2"], "secret": "s3cret"}}})
    secret = find(objects, "Secret")
    assert secret["stringData"] == {"secret": "s3cret"}
    daemonset = find(objects, "DaemonSet")
    args = container(daemonset)["args"]
    assert "--peer=node-b=192.0.2.2" in args
    assert "--secret-file=/etc/lvs-agent/heartbeat/secret" in args
    volumes = {v["name"]: v for v in daemonset["spec"]["template"]["spec"]["volumes"]}
    assert volumes["heartbeat-secret"]["secret"]["secretName"] == secret["metadata"]["name"]
    assert "checksum/heartbeat-secret" in daemonset["spec"]["template"]["metadata"]["annotations"]


def test_existing_heartbeat_secret_is_used_not_created() -> None:
    objects = render({"agent": {"heartbeat": {"peers": ["node-b=192.0.2.2"], "existingSecret": "hb"}}})
    assert not [o for o in objects if o["kind"] == "Secret"]
    daemonset = find(objects, "DaemonSet")
    volumes = {v["name"]: v for v in daemonset["spec"]["template"]["spec"]["volumes"]}
    assert volumes["heartbeat-secret"]["secret"]["secretName"] == "hb"


def test_image_tag_defaults_to_app_version_and_digest_wins() -> None:
    default = container(find(render(), "Deployment"))["image"]
    assert default == "ghcr.io/lvs-operator/lvs-operator:0.1.0"
    digest = "sha256:" + "a" * 64
    objects = render({"image": {"repository": "registry.example/lvs", "tag": "9.9", "digest": digest}})
    for kind in ("Deployment", "DaemonSet"):
        assert container(find(objects, kind))["image"] == f"registry.example/lvs@{digest}"


def test_existing_service_accounts_are_bound_not_created() -> None:
    objects = render(
        {
            "controller": {"serviceAccount": {"create": False, "name": "ctl"}},
            "agent": {"serviceAccount": {"create": False, "name": "agt"}},
        }
    )
    assert not [o for o in objects if o["kind"] == "ServiceAccount"]
    subjects = {
        o["metadata"]["name"]: o["subjects"]
        for o in objects
        if o["kind"] in ("ClusterRoleBinding", "RoleBinding")
    }
    assert subjects["lvs-lvs-operator-controller"] == [
        {"kind": "ServiceAccount", "name": "ctl", "namespace": RELEASE_NAMESPACE}
    ]
    assert subjects["lvs-lvs-operator-agent"] == [
        {"kind": "ServiceAccount", "name": "agt", "namespace": RELEASE_NAMESPACE}
    ]
    assert find(objects, "Deployment")["spec"]["template"]["spec"]["serviceAccountName"] == "ctl"
    assert find(objects, "DaemonSet")["spec"]["template"]["spec"]["serviceAccountName"] == "agt"


def test_render_is_deterministic() -> None:
    """GitOps tools re-render on every sync: the same values must give the same bytes."""
    with helm.Chart.load(CHART) as chart:
        first = chart.render(
            {"agent": {"heartbeat": {"peers": ["b=192.0.2.2"], "secret": "x"}}},
            name="lvs",
            namespace=RELEASE_NAMESPACE,
        )
        second = chart.render(
            {"agent": {"heartbeat": {"peers": ["b=192.0.2.2"], "secret": "x"}}},
            name="lvs",
            namespace=RELEASE_NAMESPACE,
        )
    assert first == second


def test_notes_name_the_install_and_the_istio_clash() -> None:
    text = notes(DEPLOY_EQUIVALENT)
    assert "DaemonSet lvs-agent" in text
    assert "kubectl label node <node> lvs.io/director=true" in text
    assert "virtualservices.lvs.io" in text and "lvsvs" in text
    assert "--ipvs-exclude-cidrs" in text
    with_peers = notes({"agent": {"heartbeat": {"peers": ["b=192.0.2.2"], "secret": "x"}}})
    assert "No heartbeat peers configured" not in with_peers


# ---- parity with deploy/ -------------------------------------------------------------------------------


def rbac_view(objects: list[Manifest]) -> dict[tuple[str, str, str], Manifest]:
    """RBAC objects keyed by (kind, namespace, name), without labels and annotations."""
    view: dict[tuple[str, str, str], Manifest] = {}
    for obj in objects:
        if obj["kind"] not in ("ServiceAccount", "ClusterRole", "ClusterRoleBinding", "Role", "RoleBinding"):
            continue
        meta = obj["metadata"]
        body = {k: v for k, v in obj.items() if k not in ("metadata", "apiVersion")}
        view[(obj["kind"], meta.get("namespace", ""), meta["name"])] = body
    return view


def deploy_component(component: str) -> list[Manifest]:
    directory = REPO / "deploy" / component
    if not directory.is_dir():
        pytest.fail(f"deploy/{component}/ is missing: the chart cannot be compared with it")
    return load_yaml_dir(directory)


def component_objects(objects: list[Manifest], component: str) -> list[Manifest]:
    prefix = f"lvs-{component}"
    return [o for o in objects if o["metadata"]["name"].startswith(prefix)]


@pytest.mark.parametrize("component", ["controller", "agent"])
def test_rbac_is_the_same_as_deploy(component: str) -> None:
    chart = rbac_view(component_objects(render(DEPLOY_EQUIVALENT), component))
    plain = rbac_view(deploy_component(component))
    assert sorted(chart) == sorted(plain)
    for key, body in plain.items():
        assert chart[key] == body, f"{key}: chart and deploy/{component} differ"


@pytest.mark.parametrize(("component", "kind"), [("controller", "Deployment"), ("agent", "DaemonSet")])
def test_workload_is_in_line_with_deploy(component: str, kind: str) -> None:
    chart = find(render(DEPLOY_EQUIVALENT), kind, f"lvs-{component}")
    plain = find(deploy_component(component), kind, f"lvs-{component}")
    assert chart["metadata"]["namespace"] == plain["metadata"]["namespace"]
    assert chart["spec"]["selector"] == plain["spec"]["selector"]
    chart_pod, plain_pod = chart["spec"]["template"]["spec"], plain["spec"]["template"]["spec"]
    for field in ("serviceAccountName", "hostNetwork", "securityContext", "nodeSelector"):
        assert chart_pod.get(field) == plain_pod.get(field), field
    if kind == "Deployment":
        assert chart["spec"]["replicas"] == plain["spec"]["replicas"]
    chart_container, plain_container = container(chart), container(plain)
    assert chart_container["command"] == plain_container["command"]
    assert chart_container["securityContext"] == plain_container["securityContext"]
    # The chart may spell out more defaults, but every flag deploy/ passes is passed the same way.
    flag_names = {arg.split("=", 1)[0] for arg in plain_container.get("args") or []}
    chart_flags = {arg for arg in chart_container.get("args") or [] if arg.split("=", 1)[0] in flag_names}
    assert chart_flags == set(plain_container.get("args") or [])


# ---- the programs accept what the chart passes -----------------------------------------------------------


def expand_env(args: list[str], env: dict[str, str]) -> list[str]:
    """Kubernetes' $(VAR) expansion in container args."""
    expanded = []
    for arg in args:
        text = arg
        for name, value in env.items():
            text = text.replace(f"$({name})", value)
        expanded.append(text)
    return expanded


FULL_VALUES: dict[str, Any] = {
    "controller": {"logLevel": "DEBUG", "logFormat": "text", "resyncSeconds": 0},
    "agent": {
        "heartbeat": {"peers": ["node-b=192.0.2.2", "node-c=[2001:db8::3]:7946"], "existingSecret": "hb"},
        "uplink": "eth1",
        "connectionSync": {"interface": "eth2", "syncId": 3},
    },
}


def test_controller_accepts_every_rendered_argument() -> None:
    from lvs_controller.__main__ import parse_args

    for values in (None, FULL_VALUES, {"controller": {"replicas": 1, "leaderElection": {"enabled": False}}}):
        deployment = find(render(values), "Deployment")
        options, args = parse_args(container(deployment)["args"])  # argparse exits on an unknown flag
        if values is None:
            assert (options.lease_name, options.lease_duration, options.metrics_port) == (
                "lvs-lvs-operator-controller",
                15,
                8080,
            )
            assert options.leader_election is True
            assert args.log_level == "INFO"


def test_agent_accepts_every_rendered_argument() -> None:
    from lvs_agent.config import build_parser

    for values in (None, FULL_VALUES):
        daemonset = find(render(values), "DaemonSet")
        args = expand_env(
            container(daemonset)["args"], {"NODE_NAME": "node-a", "POD_NAMESPACE": RELEASE_NAMESPACE}
        )
        parsed = build_parser().parse_args(args)  # argparse exits on an unknown flag
        assert parsed.node == "node-a"
        assert parsed.lease_namespace == RELEASE_NAMESPACE
        if values is FULL_VALUES:
            assert [peer.node for peer in parsed.peer] == ["node-b", "node-c"]
            assert parsed.secret_file == "/etc/lvs-agent/heartbeat/secret"
            assert (parsed.uplink, parsed.sync_interface, parsed.sync_id) == ("eth1", "eth2", 3)


@pytest.mark.parametrize(("allow_exec", "level"), [(True, "WARNING"), (False, "DEBUG")])
def test_agent_takes_log_level_and_allow_exec_from_the_rendered_environment(
    monkeypatch: pytest.MonkeyPatch, allow_exec: bool, level: str
) -> None:
    from lvs_agent.config import build_parser

    daemonset = find(render({"agent": {"allowExec": allow_exec, "logLevel": level}}), "DaemonSet")
    settings = {name: value for name, value in env_of(daemonset).items() if name.startswith("LVS_AGENT_")}
    assert sorted(settings) == ["LVS_AGENT_ALLOW_EXEC", "LVS_AGENT_LOG_LEVEL"]
    for name, value in settings.items():
        monkeypatch.setenv(name, value)
    args = expand_env(
        container(daemonset)["args"], {"NODE_NAME": "node-a", "POD_NAMESPACE": RELEASE_NAMESPACE}
    )
    parsed = build_parser().parse_args(args)
    assert (parsed.allow_exec, parsed.log_level) == (allow_exec, level)


def test_values_named_in_the_install_guide_exist() -> None:
    """docs/install.md's values table names real keys (a renamed value must be renamed there too)."""
    import re

    values = yaml.safe_load((CHART / "values.yaml").read_text())
    text = (REPO / "docs" / "install.md").read_text()
    table = text[text.index("| value | default | what |") :]
    table = table[: table.index("\n\n")]
    named: list[str] = []
    for row in table.splitlines()[2:]:
        first_cell = row.split("|")[1]
        for token in re.findall(r"`([^`]+)`", first_cell):
            expanded = re.match(r"^(.*)\{(.*)\}$", token)
            if expanded:
                named += [expanded.group(1) + leaf for leaf in expanded.group(2).split(",")]
            else:
                named.append(token)
    assert len(named) > 15
    missing = []
    for path in named:
        node: Any = values
        for part in path.split("."):
            if not isinstance(node, dict) or part not in node:
                missing.append(path)
                break
            node = node[part]
    assert missing == []


def test_optional_pod_settings_land_where_kubernetes_reads_them() -> None:
    affinity = {
        "nodeAffinity": {
            "requiredDuringSchedulingIgnoredDuringExecution": {
                "nodeSelectorTerms": [
                    {"matchExpressions": [{"key": "pool", "operator": "In", "values": ["system"]}]}
                ]
            }
        }
    }
    objects = render(
        {
            "imagePullSecrets": [{"name": "regcred"}],
            "commonLabels": {"team": "netops"},
            "controller": {
                "podAnnotations": {"a": "1"},
                "podLabels": {"b": "2"},
                "nodeSelector": {"pool": "system"},
                "tolerations": [{"key": "x", "operator": "Exists"}],
                "affinity": affinity,
                "priorityClassName": "high",
                "metrics": {"podAnnotations": False},
                "serviceAccount": {"annotations": {"iam": "role"}},
            },
            "agent": {
                "podAnnotations": {"c": "3"},
                "podLabels": {"d": "4"},
                "priorityClassName": "",
                "updateStrategy": {"type": "OnDelete"},
            },
        }
    )
    deployment, daemonset = find(objects, "Deployment"), find(objects, "DaemonSet")
    pod, agent_pod = deployment["spec"]["template"], daemonset["spec"]["template"]
    assert pod["metadata"]["annotations"] == {"a": "1"}
    assert pod["metadata"]["labels"]["b"] == "2" and pod["metadata"]["labels"]["team"] == "netops"
    assert pod["spec"]["nodeSelector"] == {"pool": "system"}
    assert pod["spec"]["tolerations"] == [{"key": "x", "operator": "Exists"}]
    assert pod["spec"]["affinity"] == affinity
    assert pod["spec"]["priorityClassName"] == "high"
    assert pod["spec"]["imagePullSecrets"] == [{"name": "regcred"}]
    assert agent_pod["spec"]["imagePullSecrets"] == [{"name": "regcred"}]
    assert agent_pod["metadata"]["annotations"] == {"c": "3"}
    assert agent_pod["metadata"]["labels"]["d"] == "4"
    assert "priorityClassName" not in agent_pod["spec"]
    assert daemonset["spec"]["updateStrategy"] == {"type": "OnDelete"}
    controller_account = find(objects, "ServiceAccount", "lvs-lvs-operator-controller")
    assert controller_account["metadata"]["annotations"] == {"iam": "role"}
    assert all(o["metadata"]["labels"]["team"] == "netops" for o in objects)


def test_the_documented_helm_install_command_renders() -> None:
    """The `helm install ... --set ...` of docs/install.md, parsed by Helm's own --set parser, validates
    against the schema and renders the peers and the secret mount it promises."""
    import shlex

    text = (REPO / "docs" / "install.md").read_text()
    block = text[text.index("helm install lvs charts/lvs-operator") :]
    command = block[: block.index("\n```")].split("\nkubectl")[0].replace("\\\n", " ")
    words = shlex.split(command)
    settings = [words[i + 1] for i, word in enumerate(words) if word == "--set"]
    assert len(settings) >= 3
    values: dict[str, Any] = {}

    def merge(into: dict[str, Any], update: dict[str, Any]) -> None:
        for key, value in update.items():
            if isinstance(value, dict) and isinstance(into.get(key), dict):
                merge(into[key], value)
            else:
                into[key] = value

    for setting in settings:
        merge(values, helm.parse_set_string(setting))
    objects = render(values)
    daemonset = find(objects, "DaemonSet", "lvs-agent")
    args = container(daemonset)["args"]
    assert [a for a in args if a.startswith("--peer=")] == ["--peer=lb-1=192.0.2.1", "--peer=lb-2=192.0.2.2"]
    assert "--secret-file=/etc/lvs-agent/heartbeat/secret" in args
    assert "--namespace lvs-system" in command
