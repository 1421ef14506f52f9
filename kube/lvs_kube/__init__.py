"""The one gateway to the Kubernetes API: config, async client, apply/status/events/leases."""

from lvs_kube.client import JsonObject, KubeClient, ListResult, WatchEvent, list_then_watch, object_key
from lvs_kube.config import ClusterConfig, load_config, load_in_cluster, load_kubeconfig
from lvs_kube.errors import ApiError, Conflict, Gone, NotFound
from lvs_kube.events import EventRecorder
from lvs_kube.leases import LeaderElector, LeaseRecord

__all__ = [
    "ApiError",
    "ClusterConfig",
    "Conflict",
    "EventRecorder",
    "Gone",
    "JsonObject",
    "KubeClient",
    "LeaderElector",
    "LeaseRecord",
    "ListResult",
    "NotFound",
    "WatchEvent",
    "list_then_watch",
    "load_config",
    "load_in_cluster",
    "load_kubeconfig",
    "object_key",
]
