"""Bearer tokens + RBAC from stored Roles/Bindings, TLS, the sqlite store, and the command line."""

from __future__ import annotations

import json
import os
import signal
import ssl
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Any

import kubernetes
import pytest
import yaml
from kubernetes.client import ApiException
from lvs_apiserver.testing import ServerThread

from .widgets import GROUP as W_GROUP
from .widgets import PLURAL as W_PLURAL
from .widgets import VERSION as W_VERSION
from .widgets import widget, widget_crd

KUBECTL = str(Path(sys.executable).parent / "kubectl")

pytestmark = pytest.mark.integration


def client_for(server: ServerThread, token: str, tmp_path: Path, name: str) -> Any:
    config = server.write_kubeconfig(tmp_path / f"{name}.kubeconfig", token)
    return kubernetes.config.new_client_from_config(config_file=str(config)), config


def test_rbac_from_stored_roles(make_apiserver: Callable[..., ServerThread], tmp_path: Path) -> None:
    server = make_apiserver(auth_enabled=True)
    admin = kubernetes.config.new_client_from_config(config_file=str(server.kubeconfig))
    core = kubernetes.client.CoreV1Api(admin)
    rbac = kubernetes.client.RbacAuthorizationV1Api(admin)
    core.create_namespace({"metadata": {"name": "team"}})
    core.create_namespaced_service_account("team", {"metadata": {"name": "robot"}})
    rbac.create_namespaced_role(
        "team",
        {
            "metadata": {"name": "reader"},
            "rules": [
                {"apiGroups": [""], "resources": ["configmaps"], "verbs": ["get", "list", "watch"]},
                {
                    "apiGroups": ["coordination.k8s.io"],
                    "resources": ["leases"],
                    "verbs": ["*"],
                    "resourceNames": ["mine"],
                },
            ],
        },
    )
    rbac.create_namespaced_role_binding(
        "team",
        {
            "metadata": {"name": "robot-reader"},
            "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": "reader"},
            "subjects": [{"kind": "ServiceAccount", "name": "robot", "namespace": "team"}],
        },
    )
    rbac.create_cluster_role(
        {
            "metadata": {"name": "node-reader"},
            "rules": [{"apiGroups": [""], "resources": ["nodes"], "verbs": ["list"]}],
        }
    )
    rbac.create_cluster_role_binding(
        {
            "metadata": {"name": "robot-nodes"},
            "roleRef": {
                "apiGroup": "rbac.authorization.k8s.io",
                "kind": "ClusterRole",
                "name": "node-reader",
            },
            "subjects": [{"kind": "ServiceAccount", "name": "robot", "namespace": "team"}],
        }
    )
    core.create_namespaced_config_map("team", {"metadata": {"name": "c"}})

    token = core.create_namespaced_service_account_token(
        "robot", "team", {"spec": {"expirationSeconds": 600}}
    ).status.token
    robot_client, robot_config = client_for(server, token, tmp_path, "robot")
    robot = kubernetes.client.CoreV1Api(robot_client)
    assert [cm.metadata.name for cm in robot.list_namespaced_config_map("team").items] == ["c"]
    robot.list_node()
    with pytest.raises(ApiException) as denied:
        robot.list_namespaced_config_map("default")
    assert denied.value.status == 403
    assert json.loads(denied.value.body)["message"] == (
        'configmaps is forbidden: User "system:serviceaccount:team:robot" cannot list resource "configmaps" '
        'in API group "" in the namespace "default"'
    )
    with pytest.raises(ApiException) as denied_create:
        robot.create_namespaced_config_map("team", {"metadata": {"name": "d"}})
    assert denied_create.value.status == 403
    leases = kubernetes.client.CoordinationV1Api(robot_client)
    with pytest.raises(ApiException) as wrong_name:
        leases.read_namespaced_lease("other", "team")
    assert wrong_name.value.status == 403

    can_i = subprocess.run(
        [
            KUBECTL,
            f"--kubeconfig={robot_config}",
            f"--cache-dir={tmp_path / 'c'}",
            "auth",
            "can-i",
            "list",
            "configmaps",
            "-n",
            "team",
        ],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert can_i.stdout.strip() == "yes"
    cannot = subprocess.run(
        [
            KUBECTL,
            f"--kubeconfig={robot_config}",
            f"--cache-dir={tmp_path / 'c'}",
            "auth",
            "can-i",
            "delete",
            "configmaps",
            "-n",
            "team",
        ],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert cannot.stdout.strip() == "no"

    assert server.ca_pem is not None
    trust = ssl.create_default_context(cadata=server.ca_pem.decode())
    anonymous = urllib.request.Request(f"{server.url}/api/v1/namespaces/team/configmaps")
    with pytest.raises(urllib.error.HTTPError) as anonymous_error:
        urllib.request.urlopen(anonymous, timeout=5, context=trust)
    assert anonymous_error.value.code == 403
    bad = urllib.request.Request(f"{server.url}/api/v1/namespaces", headers={"Authorization": "Bearer nope"})
    with pytest.raises(urllib.error.HTTPError) as bad_error:
        urllib.request.urlopen(bad, timeout=5, context=trust)
    assert bad_error.value.code == 401
    admin.close()
    robot_client.close()


def test_tls_serving(make_apiserver: Callable[..., ServerThread], tmp_path: Path) -> None:
    server = make_apiserver(tls=True)
    assert server.url.startswith("https://127.0.0.1:")
    client = kubernetes.config.new_client_from_config(config_file=str(server.kubeconfig))
    assert kubernetes.client.CoreV1Api(client).read_namespace("default").metadata.name == "default"
    client.close()
    out = subprocess.run(
        [
            KUBECTL,
            f"--kubeconfig={server.kubeconfig}",
            f"--cache-dir={tmp_path}",
            "get",
            "ns",
            "default",
            "-o",
            "name",
        ],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert out.stdout.strip() == "namespace/default", out.stderr


def test_sqlite_state_survives_restart(make_apiserver: Callable[..., ServerThread], tmp_path: Path) -> None:
    state = str(tmp_path / "state.db")
    first = make_apiserver(state_path=state)
    client = kubernetes.config.new_client_from_config(config_file=str(first.kubeconfig))
    created = kubernetes.client.CoreV1Api(client).create_namespaced_config_map(
        "default", {"metadata": {"name": "kept"}, "data": {"a": "1"}}
    )
    kubernetes.client.ApiextensionsV1Api(client).create_custom_resource_definition(widget_crd())
    time.sleep(0.2)
    kubernetes.client.CustomObjectsApi(client).create_namespaced_custom_object(
        W_GROUP, W_VERSION, "default", W_PLURAL, widget("persisted", size=4)
    )
    client.close()
    first.stop()
    second = make_apiserver(state_path=state)
    client = kubernetes.config.new_client_from_config(config_file=str(second.kubeconfig))
    kept = kubernetes.client.CoreV1Api(client).read_namespaced_config_map("kept", "default")
    assert kept.data == {"a": "1"} and kept.metadata.uid == created.metadata.uid
    newer = kubernetes.client.CoreV1Api(client).create_namespaced_config_map(
        "default", {"metadata": {"name": "later"}}
    )
    assert int(newer.metadata.resource_version) > int(created.metadata.resource_version)
    # CRDs are served again after the restart, with their objects
    persisted = kubernetes.client.CustomObjectsApi(client).get_namespaced_custom_object(
        W_GROUP, W_VERSION, "default", W_PLURAL, "persisted"
    )
    assert persisted["spec"]["size"] == 4
    client.close()


def test_command_line_writes_a_kubeconfig_every_client_accepts(tmp_path: Path) -> None:
    kubeconfig = tmp_path / "kubeconfig"
    process = subprocess.Popen(
        [sys.executable, "-m", "lvs_apiserver", "--port", "0", "--kubeconfig-out", str(kubeconfig)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert process.stdout is not None
        url = process.stdout.readline().strip()
        assert url.startswith("http://127.0.0.1:")
        config = yaml.safe_load(kubeconfig.read_text())
        assert config["clusters"][0]["cluster"]["server"] == url
        out = subprocess.run(
            [
                KUBECTL,
                f"--kubeconfig={kubeconfig}",
                f"--cache-dir={tmp_path / 'c'}",
                "get",
                "ns",
                "-o",
                "name",
            ],
            capture_output=True,
            text=True,
            timeout=30,
            check=False,
        )
        assert "namespace/default" in out.stdout.split()
        client = kubernetes.config.new_client_from_config(config_file=str(kubeconfig))
        assert kubernetes.client.VersionApi(client).get_code().minor == "37"
        client.close()
        # kopf's own login reads the same kubeconfig
        check = (
            "import asyncio, kopf\n"
            "from kopf._core.intents.piggybacking import login_via_client\n"
            "import logging\n"
            "info = login_via_client(logger=logging.getLogger('x'), settings=kopf.OperatorSettings())\n"
            "print(info.server)\n"
        )
        login = subprocess.run(
            [sys.executable, "-c", check],
            env={**os.environ, "KUBECONFIG": str(kubeconfig)},
            capture_output=True,
            text=True,
            timeout=30,
            check=False,
        )
        assert login.stdout.strip() == url, login.stderr
    finally:
        process.send_signal(signal.SIGTERM)
        process.wait(timeout=10)
    assert process.returncode == 0
    time.sleep(0)


def test_impersonation_checks_stored_rbac_even_with_auth_off(
    kubectl: Callable[..., subprocess.CompletedProcess[str]], namespace: str
) -> None:
    """`kubectl --as=<serviceaccount>` evaluates the stored RBAC objects: how deploy/ manifests get proven."""
    kubectl("create", "serviceaccount", "robot", "-n", namespace)
    kubectl("create", "role", "reader", "-n", namespace, "--verb=get,list,watch", "--resource=configmaps")
    kubectl(
        "create",
        "rolebinding",
        "robot-reader",
        "-n",
        namespace,
        "--role=reader",
        f"--serviceaccount={namespace}:robot",
    )
    robot = f"--as=system:serviceaccount:{namespace}:robot"
    assert kubectl("auth", "can-i", "list", "configmaps", "-n", namespace, robot).stdout.strip() == "yes"
    assert (
        kubectl("auth", "can-i", "delete", "configmaps", "-n", namespace, robot, check=False).stdout.strip()
        == "no"
    )
    rules = kubectl("auth", "can-i", "--list", "-n", namespace, robot).stdout
    assert "configmaps" in rules and "[get list watch]" in rules
    denied = kubectl("get", "configmaps", "-n", "default", robot, check=False)
    assert denied.returncode != 0
    assert (
        f'User "system:serviceaccount:{namespace}:robot" cannot list resource "configmaps"' in denied.stderr
    )
    assert kubectl("get", "configmaps", "-n", namespace, robot).returncode == 0
    # the bootstrap aggregated ClusterRoles exist: `view` through a RoleBinding
    kubectl(
        "create",
        "rolebinding",
        "robot-view",
        "-n",
        namespace,
        "--clusterrole=view",
        f"--serviceaccount={namespace}:robot",
    )
    assert kubectl("auth", "can-i", "list", "pods", "-n", namespace, robot).stdout.strip() == "yes"
    assert (
        kubectl("auth", "can-i", "create", "pods", "-n", namespace, robot, check=False).stdout.strip() == "no"
    )
