"""Watch semantics: event stream, resume from a resourceVersion, bookmarks, 410 Gone, selectors."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable
from typing import Any

import kubernetes
import pytest
from kubernetes.client import ApiException
from lvs_apiserver.testing import ServerThread

pytestmark = pytest.mark.integration


def collect(stream: Any, count: int, timeout: float = 5.0) -> list[tuple[str, str]]:
    events: list[tuple[str, str]] = []
    deadline = time.monotonic() + timeout
    for event in stream:
        name = (
            event["object"].metadata.name
            if hasattr(event["object"], "metadata")
            else event["raw_object"]["metadata"].get("name", "")
        )
        events.append((event["type"], name))
        if len(events) >= count or time.monotonic() > deadline:
            break
    return events


def test_watch_streams_changes_and_resumes(kube_api: Any, namespace: str) -> None:
    core = kubernetes.client.CoreV1Api(kube_api)
    core.create_namespaced_config_map(namespace, {"metadata": {"name": "before"}})
    listed = core.list_namespaced_config_map(namespace)
    start_rv = listed.metadata.resource_version

    def produce() -> None:
        time.sleep(0.2)
        core.create_namespaced_config_map(namespace, {"metadata": {"name": "w1"}})
        core.patch_namespaced_config_map("w1", namespace, {"data": {"a": "b"}})
        core.delete_namespaced_config_map("w1", namespace)

    producer = threading.Thread(target=produce)
    producer.start()
    watch = kubernetes.watch.Watch()
    events = collect(
        watch.stream(
            core.list_namespaced_config_map, namespace, resource_version=start_rv, timeout_seconds=5
        ),
        3,
    )
    watch.stop()
    producer.join()
    assert events == [("ADDED", "w1"), ("MODIFIED", "w1"), ("DELETED", "w1")]

    # resume from the original rv replays the same history
    watch = kubernetes.watch.Watch()
    replay = collect(
        watch.stream(
            core.list_namespaced_config_map, namespace, resource_version=start_rv, timeout_seconds=2
        ),
        3,
    )
    watch.stop()
    assert replay == events

    # without a resourceVersion the watch starts with synthetic ADDED events for what exists
    watch = kubernetes.watch.Watch()
    initial = collect(watch.stream(core.list_namespaced_config_map, namespace, timeout_seconds=1), 1)
    watch.stop()
    assert initial == [("ADDED", "before")]


def test_watch_with_label_selector_sees_objects_leave(kube_api: Any, namespace: str) -> None:
    core = kubernetes.client.CoreV1Api(kube_api)
    rv = core.list_namespaced_config_map(namespace).metadata.resource_version
    core.create_namespaced_config_map(namespace, {"metadata": {"name": "m", "labels": {"app": "web"}}})
    core.create_namespaced_config_map(namespace, {"metadata": {"name": "other", "labels": {"app": "db"}}})
    core.patch_namespaced_config_map("m", namespace, {"metadata": {"labels": {"app": "db"}}})
    watch = kubernetes.watch.Watch()
    events = collect(
        watch.stream(
            core.list_namespaced_config_map,
            namespace,
            label_selector="app=web",
            resource_version=rv,
            timeout_seconds=1,
        ),
        2,
    )
    watch.stop()
    assert events == [("ADDED", "m"), ("DELETED", "m")]


def test_watch_too_old_resource_version_is_gone(make_apiserver: Callable[..., ServerThread]) -> None:
    server = make_apiserver()
    client = kubernetes.config.new_client_from_config(config_file=str(server.kubeconfig))
    core = kubernetes.client.CoreV1Api(client)
    core.create_namespaced_config_map("default", {"metadata": {"name": "x"}})
    old_rv = core.list_namespaced_config_map("default").metadata.resource_version
    core.create_namespaced_config_map("default", {"metadata": {"name": "y"}})
    assert server.server is not None
    server.call(server.server.store.compact)
    watch = kubernetes.watch.Watch()
    with pytest.raises(ApiException) as error:
        for _ in watch.stream(
            core.list_namespaced_config_map, "default", resource_version=old_rv, timeout_seconds=2
        ):
            pass
    assert error.value.status == 410
    # a list still works and its rv can be watched from
    fresh_rv = core.list_namespaced_config_map("default").metadata.resource_version
    watch = kubernetes.watch.Watch()
    assert (
        collect(
            watch.stream(
                core.list_namespaced_config_map, "default", resource_version=fresh_rv, timeout_seconds=1
            ),
            1,
        )
        == []
    )
    client.close()


def test_history_window_bounded(make_apiserver: Callable[..., ServerThread]) -> None:
    server = make_apiserver(history_limit=5)
    client = kubernetes.config.new_client_from_config(config_file=str(server.kubeconfig))
    core = kubernetes.client.CoreV1Api(client)
    first = core.create_namespaced_config_map(
        "default", {"metadata": {"name": "c0"}}
    ).metadata.resource_version
    for index in range(1, 10):
        core.create_namespaced_config_map("default", {"metadata": {"name": f"c{index}"}})
    watch = kubernetes.watch.Watch()
    with pytest.raises(ApiException) as error:
        for _ in watch.stream(
            core.list_namespaced_config_map, "default", resource_version=first, timeout_seconds=2
        ):
            pass
    assert error.value.status == 410
    client.close()


def test_bookmarks(make_apiserver: Callable[..., ServerThread]) -> None:
    server = make_apiserver(bookmark_interval=0.2)
    import urllib.request

    rv = (
        kubernetes.client.CoreV1Api(
            kubernetes.config.new_client_from_config(config_file=str(server.kubeconfig))
        )
        .list_namespaced_config_map("default")
        .metadata.resource_version
    )
    url = (
        f"{server.url}/api/v1/namespaces/default/configmaps"
        f"?watch=1&allowWatchBookmarks=true&resourceVersion={rv}&timeoutSeconds=1"
    )
    started = time.monotonic()
    with urllib.request.urlopen(url, timeout=5) as response:
        lines = [json.loads(line) for line in response.read().splitlines() if line.strip()]
    assert time.monotonic() - started < 3  # timeoutSeconds ends the stream
    bookmarks = [line for line in lines if line["type"] == "BOOKMARK"]
    assert len(bookmarks) >= 2
    assert bookmarks[0]["object"]["kind"] == "ConfigMap"
    assert int(bookmarks[0]["object"]["metadata"]["resourceVersion"]) >= int(rv)


def test_watch_list_initial_events_end_bookmark(
    apiserver: ServerThread, namespace: str, kube_api: Any
) -> None:
    import urllib.request

    kubernetes.client.CoreV1Api(kube_api).create_namespaced_config_map(
        namespace, {"metadata": {"name": "seed"}}
    )
    url = (
        f"{apiserver.url}/api/v1/namespaces/{namespace}/configmaps?watch=1&sendInitialEvents=true"
        "&allowWatchBookmarks=true&resourceVersionMatch=NotOlderThan&timeoutSeconds=1"
    )
    with urllib.request.urlopen(url, timeout=5) as response:
        lines = [json.loads(line) for line in response.read().splitlines() if line.strip()]
    assert lines[0]["type"] == "ADDED" and lines[0]["object"]["metadata"]["name"] == "seed"
    assert lines[1]["type"] == "BOOKMARK"
    assert lines[1]["object"]["metadata"]["annotations"] == {"k8s.io/initial-events-end": "true"}


def test_watch_ends_when_its_crd_is_deleted(make_apiserver: Callable[..., ServerThread]) -> None:
    from .widgets import GROUP, PLURAL, VERSION, widget, widget_crd

    server = make_apiserver()
    client = kubernetes.config.new_client_from_config(config_file=str(server.kubeconfig))
    extensions = kubernetes.client.ApiextensionsV1Api(client)
    extensions.create_custom_resource_definition(widget_crd())
    custom = kubernetes.client.CustomObjectsApi(client)
    custom.create_namespaced_custom_object(GROUP, VERSION, "default", PLURAL, widget("w"))
    rv = custom.list_namespaced_custom_object(GROUP, VERSION, "default", PLURAL)["metadata"][
        "resourceVersion"
    ]

    def remove_crd() -> None:
        time.sleep(0.3)
        extensions.delete_custom_resource_definition(f"{PLURAL}.{GROUP}")

    remover = threading.Thread(target=remove_crd)
    remover.start()
    started = time.monotonic()
    watch = kubernetes.watch.Watch()
    events = [
        (event["type"], event["object"]["metadata"]["name"])
        for event in watch.stream(
            custom.list_namespaced_custom_object,
            GROUP,
            VERSION,
            "default",
            PLURAL,
            resource_version=rv,
            timeout_seconds=20,
        )
    ]
    remover.join()
    assert events == [("DELETED", "w")]
    assert time.monotonic() - started < 5  # the stream ended with the CRD, not at the timeout
    client.close()


def test_slow_watcher_is_cut_off_and_resumes_without_loss(
    make_apiserver: Callable[..., ServerThread], monkeypatch: pytest.MonkeyPatch
) -> None:
    import lvs_apiserver.storage
    from lvs_apiserver.semantics import WriteOptions

    monkeypatch.setattr(lvs_apiserver.storage, "MAX_PENDING_EVENTS", 5)
    server = make_apiserver()
    assert server.server is not None
    objects = server.server.objects
    configmaps = objects.registry.lookup("", "v1", "configmaps")
    assert configmaps is not None
    client = kubernetes.config.new_client_from_config(config_file=str(server.kubeconfig))
    core = kubernetes.client.CoreV1Api(client)
    start_rv = core.list_namespaced_config_map("default").metadata.resource_version
    received: list[str] = []
    last_rv = start_rv
    watch = kubernetes.watch.Watch()
    stream = watch.stream(
        core.list_namespaced_config_map, "default", resource_version=start_rv, timeout_seconds=5
    )

    def burst() -> None:
        time.sleep(0.3)
        # 30 writes in one turn of the server's loop: the watcher's queue overflows
        server.call(
            lambda: [
                objects.create(configmaps, "default", {"metadata": {"name": f"b{i:02d}"}}, WriteOptions())
                for i in range(30)
            ]
        )

    producer = threading.Thread(target=burst)
    producer.start()
    started = time.monotonic()
    for event in stream:
        received.append(event["object"].metadata.name)
        last_rv = event["object"].metadata.resource_version
    producer.join()
    assert time.monotonic() - started < 4  # cut off, not ended by timeoutSeconds
    assert 0 < len(received) < 30
    watch = kubernetes.watch.Watch()
    for event in watch.stream(
        core.list_namespaced_config_map, "default", resource_version=last_rv, timeout_seconds=1
    ):
        received.append(event["object"].metadata.name)
    assert received == [f"b{i:02d}" for i in range(30)]
    client.close()
