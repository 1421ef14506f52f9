"""Where the cluster is and how to authenticate: a kubeconfig file or the in-cluster service account.

The `kubernetes` package does the parsing (contexts, embedded certificates, exec/auth plugins, token
refresh for bound service-account tokens); everything else in lvs_kube speaks HTTP through aiohttp with
the result, so that the controller and the agent stay on one asyncio loop without thread pools.
"""

from __future__ import annotations

import os
import ssl
from dataclasses import dataclass, field

from kubernetes import client as k8s_client
from kubernetes import config as k8s_config

IN_CLUSTER_NAMESPACE_FILE = "/var/run/secrets/kubernetes.io/serviceaccount/namespace"


@dataclass(frozen=True)
class ClusterConfig:
    """Connection facts for one API server; plain values so kopf's login and aiohttp can both use them."""

    server: str
    ca_path: str | None = None
    insecure: bool = False
    certificate_path: str | None = None
    private_key_path: str | None = None
    token: str | None = None
    default_namespace: str = "default"
    # Called before each request batch to refresh a rotating token (in-cluster bound tokens); None if static.
    token_source: k8s_client.Configuration | None = field(default=None, compare=False, repr=False)

    def current_token(self) -> str | None:
        """The bearer token to send now (re-read from the loader so rotated tokens are picked up)."""
        if self.token_source is None:
            return self.token
        refresh_hook = self.token_source.refresh_api_key_hook
        if refresh_hook is not None:
            refresh_hook(self.token_source)
        value = _token_of(self.token_source)
        if not value:
            return self.token
        return str(value).removeprefix("Bearer ").strip()

    def ssl_context(self) -> ssl.SSLContext | bool:
        """An SSL context for https servers (False to skip verification, True for plain http)."""
        if not self.server.startswith("https"):
            return True
        if self.insecure:
            context = ssl.create_default_context()
            context.check_hostname = False
            context.verify_mode = ssl.CERT_NONE
        else:
            context = ssl.create_default_context(cafile=self.ca_path)
        if self.certificate_path and self.private_key_path:
            context.load_cert_chain(self.certificate_path, self.private_key_path)
        return context


def _token_of(configuration: k8s_client.Configuration) -> str | None:
    """The bearer token the loader stored (the key name changed across client versions)."""
    for key in ("BearerToken", "authorization"):
        value = configuration.api_key.get(key)
        if value:
            return str(value)
    return None


def _from_configuration(
    configuration: k8s_client.Configuration, namespace: str, refresh: bool
) -> ClusterConfig:
    token_value = _token_of(configuration)
    token = str(token_value).removeprefix("Bearer ").strip() if token_value else None
    return ClusterConfig(
        server=str(configuration.host).rstrip("/"),
        ca_path=configuration.ssl_ca_cert or None,
        insecure=not configuration.verify_ssl,
        certificate_path=configuration.cert_file or None,
        private_key_path=configuration.key_file or None,
        token=token,
        default_namespace=namespace,
        token_source=configuration if refresh else None,
    )


def load_kubeconfig(path: str | None = None, context: str | None = None) -> ClusterConfig:
    """Read a kubeconfig file (``$KUBECONFIG`` or ``~/.kube/config`` when ``path`` is None)."""
    configuration = k8s_client.Configuration()
    k8s_config.load_kube_config(  # type: ignore[no-untyped-call]
        config_file=path, context=context, client_configuration=configuration, persist_config=False
    )
    _contexts, active = k8s_config.list_kube_config_contexts(config_file=path)  # type: ignore[no-untyped-call]
    chosen = active
    if context is not None:
        chosen = next((c for c in _contexts if c.get("name") == context), active)
    namespace = str((chosen or {}).get("context", {}).get("namespace") or "default")
    return _from_configuration(configuration, namespace, refresh=False)


def load_in_cluster() -> ClusterConfig:
    """Use the pod's service account (token file is re-read when it rotates)."""
    configuration = k8s_client.Configuration()
    k8s_config.load_incluster_config(client_configuration=configuration)  # type: ignore[no-untyped-call]
    namespace = "default"
    if os.path.exists(IN_CLUSTER_NAMESPACE_FILE):
        with open(IN_CLUSTER_NAMESPACE_FILE, encoding="utf-8") as handle:
            namespace = handle.read().strip() or "default"
    return _from_configuration(configuration, namespace, refresh=True)


def load_config(kubeconfig: str | None = None, context: str | None = None) -> ClusterConfig:
    """Kubeconfig when given (or when not running in a pod), the in-cluster service account otherwise."""
    if kubeconfig is None and os.environ.get("KUBERNETES_SERVICE_HOST") and not os.environ.get("KUBECONFIG"):
        return load_in_cluster()
    return load_kubeconfig(kubeconfig, context)
