"""The HTTP layer: routing of Kubernetes REST paths onto the object service, watch streams,
discovery, OpenAPI, tables, authentication and authorization."""

from __future__ import annotations

import asyncio
import json
import logging
import ssl
import time
from dataclasses import dataclass
from typing import Any
from urllib.parse import unquote

from aiohttp import web

from . import discovery, openapi
from .auth import ADMIN, Authenticator, RbacAuthorizer, RequestAttributes, UserInfo, service_account_user
from .bootstrap import bootstrap_rbac
from .controllers import BackgroundControllers
from .conversion import EVENTS_GROUP
from .encoding import encode_list, encode_object
from .errors import ApiError, bad_request
from .protobuf import decode_object as decode_protobuf
from .resources import ResourceRegistry, ResourceType
from .selectors import (
    BUILTIN_FIELD_LABELS,
    EVENTS_V1_FIELD_LABELS,
    Predicate,
    parse_field_selector,
    parse_label_selector,
)
from .semantics import ObjectService, WriteOptions
from .storage import Store
from .tables import build_table
from .watch import WatchRequest, serve_watch

JsonDict = dict[str, Any]
logger = logging.getLogger(__name__)

VERSION_INFO = {
    "major": "1",
    "minor": "37",
    "gitVersion": "v1.37.0-lvs-emulator",
    "gitCommit": "0000000000000000000000000000000000000000",
    "gitTreeState": "clean",
    "buildDate": "2026-01-01T00:00:00Z",
    "goVersion": "go1.25",
    "compiler": "gc",
    "platform": "linux/amd64",
    "emulationMajor": "1",
    "emulationMinor": "37",
}
_TABLE_MEDIA = "application/json;as=Table;v=v1;g=meta.k8s.io"


@dataclass
class Target:
    rt: ResourceType
    namespace: str | None
    name: str | None
    subresource: str
    watch_path: bool = False


@dataclass
class Accept:
    table: bool = False
    aggregated: str = ""  # "", "v2" or "v2beta1"


def parse_accept(header: str) -> Accept:
    for entry in header.split(","):
        parts = [part.strip() for part in entry.split(";")]
        media = parts[0]
        params = dict(part.split("=", 1) for part in parts[1:] if "=" in part)
        if media not in ("application/json", "*/*", "application/yaml"):
            continue
        if params.get("as") == "Table" and params.get("g") == "meta.k8s.io":
            return Accept(table=True)
        if params.get("as") == "APIGroupDiscoveryList" and params.get("g") == "apidiscovery.k8s.io":
            return Accept(aggregated=params.get("v", "v2"))
        if "as" not in params:
            return Accept()
    return Accept()


def _flag(value: str | None) -> bool:
    return value is not None and value.lower() in ("1", "true", "yes")


class ApiServer:
    def __init__(
        self,
        store: Store | None = None,
        *,
        auth_enabled: bool = False,
        bookmark_interval: float = 5.0,
        history_limit: int = 20000,
        endpoint_slices: bool = False,
    ) -> None:
        self.store = store or Store(history_limit=history_limit)
        self.registry = ResourceRegistry()
        self.objects = ObjectService(self.store, self.registry)
        self.authenticator = Authenticator(enabled=auth_enabled)
        self.authorizer = RbacAuthorizer(self.store)
        self.bookmark_interval = bookmark_interval
        self.controllers = BackgroundControllers(self.objects, endpoint_slices=endpoint_slices)
        self.app = web.Application(client_max_size=64 * 1024 * 1024)
        self.app.router.add_route("*", "/{tail:.*}", self._handle)
        self._runner: web.AppRunner | None = None
        self.url = ""
        self._bootstrap()

    # ---- lifecycle -----------------------------------------------------------------------------------

    def _bootstrap(self) -> None:
        namespaces = self.registry.lookup("", "v1", "namespaces")
        accounts = self.registry.lookup("", "v1", "serviceaccounts")
        assert namespaces is not None and accounts is not None
        for name in ("default", "kube-system", "kube-public", "kube-node-lease"):
            if self.store.get(namespaces.storage_key, "", name) is None:
                self.objects.create(namespaces, None, {"metadata": {"name": name}}, WriteOptions())
            if self.store.get(accounts.storage_key, name, "default") is None:
                self.objects.create(accounts, name, {"metadata": {"name": "default"}}, WriteOptions())
        bootstrap_rbac(self.objects)

    async def start(
        self, host: str = "127.0.0.1", port: int = 0, ssl_context: ssl.SSLContext | None = None
    ) -> str:
        self._runner = web.AppRunner(self.app, access_log=None, handle_signals=False, shutdown_timeout=0.5)
        await self._runner.setup()
        site = web.TCPSite(self._runner, host, port, ssl_context=ssl_context, reuse_address=True)
        await site.start()
        server = site._server
        assert server is not None
        sockets = getattr(server, "sockets", None) or []
        bound_port = sockets[0].getsockname()[1]
        scheme = "https" if ssl_context else "http"
        shown_host = f"[{host}]" if ":" in host else host  # IPv6 literals are bracketed in URLs
        self.url = f"{scheme}://{shown_host}:{bound_port}"
        self.controllers.start()
        return self.url

    async def stop(self) -> None:
        await self.controllers.stop()
        self.store.close_all_subscriptions()  # watch handlers end now instead of at the shutdown timeout
        await asyncio.sleep(0)
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None
        self.store.close()

    # ---- request entry -------------------------------------------------------------------------------

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        try:
            user = self.authenticator.authenticate(request.headers.get("Authorization"))
            impersonated = request.headers.get("Impersonate-User")
            if impersonated:
                user = self.authorizer.impersonate(
                    user, impersonated, request.headers.getall("Impersonate-Group", [])
                )
            return await self._route(request, user)
        except ApiError as error:
            return self._json(error.to_status(), status=error.code)
        except (ConnectionResetError, asyncio.CancelledError):
            raise
        except Exception as error:
            logger.exception("internal error serving %s %s", request.method, request.path)
            return self._json(
                ApiError(500, "InternalError", f"Internal error occurred: {error}").to_status(), status=500
            )

    @staticmethod
    def _json(
        body: Any,
        status: int = 200,
        content_type: str = "application/json",
        warnings: list[str] | None = None,
    ) -> web.Response:
        response = web.Response(body=encode_object(body), status=status)
        response.headers["Content-Type"] = content_type
        for warning in warnings or []:
            quoted = warning.replace("\\", "\\\\").replace(
                '"', '\\"'
            )  # RFC 7234 warn-text is a quoted-string
            response.headers.add("Warning", f'299 - "{quoted}"')
        return response

    async def _route(self, request: web.Request, user: UserInfo) -> web.StreamResponse:
        path = unquote(request.path).rstrip("/") or "/"
        accept = parse_accept(request.headers.get("Accept", "application/json"))
        if request.method == "GET" and not (
            path.startswith(("/api/", "/apis/")) and self._is_resource_path(path)
        ):
            self._authorize(user, RequestAttributes("get", path=path, resource_request=False))
            return self._non_resource(path, accept)
        target = self._parse_target(path)
        if target is None:
            raise ApiError(404, "NotFound", "the server could not find the requested resource")
        return await self._resource_request(request, target, accept, user)

    def _is_resource_path(self, path: str) -> bool:
        segments = path.strip("/").split("/")
        if segments[0] == "api":
            return len(segments) >= 3
        return len(segments) >= 4

    def _non_resource(self, path: str, accept: Accept) -> web.StreamResponse:
        if path in ("/healthz", "/readyz", "/livez"):
            return web.Response(text="ok")
        if path == "/version":
            return self._json(VERSION_INFO)
        if path == "/api":
            if accept.aggregated:
                return self._aggregated(True, accept.aggregated)
            return self._json(discovery.api_versions(self.url.split("://", 1)[-1]))
        if path == "/apis":
            if accept.aggregated:
                return self._aggregated(False, accept.aggregated)
            return self._json(discovery.api_group_list(self.registry))
        if path == "/openapi/v3":
            return self._json(openapi.index(self.registry))
        if path.startswith("/openapi/v3/"):
            key = path[len("/openapi/v3/") :]
            parts = key.split("/")
            doc = None
            if parts[0] == "api" and len(parts) == 2:
                doc = openapi.document(self.registry, "", parts[1])
            elif parts[0] == "apis" and len(parts) == 3:
                doc = openapi.document(self.registry, parts[1], parts[2])
            if doc is None:
                raise ApiError(404, "NotFound", "the server could not find the requested resource")
            return self._json(doc)
        segments = path.strip("/").split("/")
        if segments[0] == "api" and len(segments) == 2:
            doc = discovery.api_resource_list(self.registry, "", segments[1])
            if doc is not None:
                return self._json(doc)
        if segments[0] == "apis" and len(segments) == 2:
            group_doc = discovery.api_group(self.registry, segments[1])
            if group_doc is not None:
                return self._json(group_doc)
        if segments[0] == "apis" and len(segments) == 3:
            doc = discovery.api_resource_list(self.registry, segments[1], segments[2])
            if doc is not None:
                return self._json(doc)
        raise ApiError(404, "NotFound", "the server could not find the requested resource")

    def _aggregated(self, legacy: bool, version: str) -> web.Response:
        api_version = f"apidiscovery.k8s.io/{version}"
        return self._json(
            discovery.aggregated(self.registry, legacy, api_version),
            content_type=f"application/json;g=apidiscovery.k8s.io;v={version};as=APIGroupDiscoveryList",
        )

    def _parse_target(self, path: str) -> Target | None:
        segments = path.strip("/").split("/")
        if segments[0] == "api" and len(segments) >= 3:
            group, version, rest = "", segments[1], segments[2:]
        elif segments[0] == "apis" and len(segments) >= 4:
            group, version, rest = segments[1], segments[2], segments[3:]
        else:
            return None
        watch_path = False
        if rest and rest[0] == "watch":
            watch_path = True
            rest = rest[1:]
        namespace: str | None = None
        if len(rest) >= 3 and rest[0] == "namespaces":
            candidate = self.registry.lookup(group, version, rest[2])
            if candidate is not None and candidate.namespaced:
                namespace, rest = rest[1], rest[2:]
        if not rest:
            return None
        rt = self.registry.lookup(group, version, rest[0])
        if rt is None:
            return None
        name = rest[1] if len(rest) >= 2 else None
        subresource = rest[2] if len(rest) >= 3 else ""
        if len(rest) > 3 or (subresource and subresource not in rt.subresources):
            return None
        if rt.namespaced and name is not None and namespace is None:
            return None
        return Target(rt, namespace, name, subresource, watch_path)

    def _authorize(self, user: UserInfo, attributes: RequestAttributes) -> None:
        # With authentication off everyone is the admin, except a request impersonating someone
        # (kubectl --as=...): RBAC then applies to the impersonated user.
        if self.authenticator.enabled or user is not ADMIN:
            self.authorizer.check(user, attributes)

    # ---- resource requests ---------------------------------------------------------------------------

    async def _resource_request(
        self, request: web.Request, target: Target, accept: Accept, user: UserInfo
    ) -> web.StreamResponse:
        rt = target.rt
        query = request.query
        method = request.method
        watching = target.watch_path or _flag(query.get("watch"))
        verb = {
            "GET": "watch" if watching else ("get" if target.name else "list"),
            "POST": "create",
            "PUT": "update",
            "PATCH": "patch",
            "DELETE": "delete" if target.name else "deletecollection",
        }.get(method)
        if verb is None:
            raise ApiError(
                405, "MethodNotAllowed", "the server does not allow this method on the requested resource"
            )
        if verb not in rt.verbs:
            raise ApiError(
                405, "MethodNotAllowed", "the server does not allow this method on the requested resource"
            )
        if target.subresource == "token" and method == "POST":
            verb = "create"
        self._authorize(
            user,
            RequestAttributes(
                verb,
                rt.group,
                rt.plural,
                target.subresource,
                target.namespace or "",
                target.name or "",
                request.path,
            ),
        )
        options = WriteOptions(
            dry_run=query.get("dryRun") == "All",
            field_manager=query.get("fieldManager", ""),
            field_validation=query.get("fieldValidation", "Warn") or "Warn",
            force=_flag(query.get("force")),
        )
        namespace = target.namespace or ""
        if method == "GET":
            if watching:
                return await self._watch(request, target, accept)
            if target.name:
                obj = self.objects.get(rt, namespace, target.name)
                if accept.table:
                    table = build_table(
                        rt,
                        [obj],
                        obj["metadata"].get("resourceVersion", ""),
                        query.get("includeObject", "Metadata"),
                    )
                    return self._json(table, content_type=_TABLE_MEDIA)
                return self._json(obj)
            return self._list(target, accept, query)
        if method == "POST":
            if target.subresource == "token":
                return self._token_request(target, await self._read_json(request))
            if target.name:
                raise ApiError(405, "MethodNotAllowed", "POST is not allowed on a named resource")
            if rt.group == "authorization.k8s.io":
                if rt.plural == "selfsubjectrulesreviews":
                    return self._rules_review(rt, await self._read_json(request), user)
                return self._access_review(rt, await self._read_json(request), user)
            if not options.field_manager:
                options.field_manager = _default_manager(request)
            created = self.objects.create(rt, target.namespace, await self._read_json(request), options)
            return self._json(created, status=201, warnings=options.warnings)
        if method == "PUT":
            assert target.name is not None
            if not options.field_manager:
                options.field_manager = _default_manager(request)
            updated = self.objects.update(
                rt,
                namespace,
                target.name,
                await self._read_json(request),
                options=options,
                subresource=target.subresource,
            )
            return self._json(updated, warnings=options.warnings)
        if method == "PATCH":
            assert target.name is not None
            content_type = request.headers.get("Content-Type", "application/merge-patch+json")
            if not options.field_manager and not content_type.startswith("application/apply-patch"):
                options.field_manager = _default_manager(request)
            patched, was_created = self.objects.patch(
                rt,
                namespace,
                target.name,
                content_type=content_type,
                raw=await request.read(),
                options=options,
                subresource=target.subresource,
            )
            return self._json(patched, status=201 if was_created else 200, warnings=options.warnings)
        if method == "DELETE":
            body = await request.read()
            delete_options: JsonDict = json.loads(body) if body.strip() else {}
            if delete_options.get("dryRun") == ["All"]:
                options.dry_run = True
            propagation = (
                query.get("propagationPolicy") or delete_options.get("propagationPolicy") or "Background"
            )
            if target.name:
                obj, finished = self.objects.delete(
                    rt,
                    namespace,
                    target.name,
                    options=options,
                    preconditions=delete_options.get("preconditions"),
                    propagation=propagation,
                )
                if (
                    finished
                    and not rt.is_custom
                    and rt.plural not in ("pods", "services", "serviceaccounts", "namespaces")
                ):
                    # Most built-in kinds answer an immediate delete with a success Status, like upstream.
                    details = {
                        "name": target.name,
                        "group": rt.group,
                        "kind": rt.plural,
                        "uid": obj["metadata"].get("uid"),
                    }
                    success = {
                        "kind": "Status",
                        "apiVersion": "v1",
                        "metadata": {},
                        "status": "Success",
                        "details": details,
                    }
                    return self._json(success)
                return self._json(obj)
            listed = self.objects.list(rt, target.namespace, self._predicate(rt, query))
            deleted = []
            for item in listed.items:
                obj, _ = self.objects.delete(
                    rt,
                    item["metadata"].get("namespace", ""),
                    item["metadata"]["name"],
                    options=options,
                    propagation=propagation,
                )
                deleted.append(obj)
            return self._json(
                {"kind": rt.list_kind, "apiVersion": rt.api_version, "metadata": {}, "items": deleted}
            )
        raise ApiError(
            405, "MethodNotAllowed", "the server does not allow this method on the requested resource"
        )

    @staticmethod
    async def _read_json(request: web.Request) -> Any:
        raw = await request.read()
        if request.headers.get("Content-Type", "").startswith("application/vnd.kubernetes.protobuf"):
            return decode_protobuf(raw)
        try:
            return json.loads(raw) if raw else {}
        except ValueError as error:
            raise bad_request(f"invalid JSON in request body: {error}") from error

    @staticmethod
    def _predicate(rt: ResourceType, query: Any) -> Predicate | None:
        checks: list[Predicate] = []
        if query.get("labelSelector"):
            checks.append(parse_label_selector(query["labelSelector"]))
        if query.get("fieldSelector"):
            selectable = (
                frozenset(rt.selectable_fields)
                if rt.is_custom
                else BUILTIN_FIELD_LABELS.get(rt.storage_key, frozenset())
            )
            renamed = EVENTS_V1_FIELD_LABELS if rt.group == EVENTS_GROUP else None
            checks.append(parse_field_selector(query["fieldSelector"], selectable, renamed))
        if not checks:
            return None
        return lambda obj: all(check(obj) for check in checks)

    def _list(self, target: Target, accept: Accept, query: Any) -> web.Response:
        rt = target.rt
        try:
            limit = int(query.get("limit", "0") or 0)
        except ValueError as error:
            raise bad_request("limit must be an integer") from error
        result = self.objects.list(
            rt, target.namespace, self._predicate(rt, query), limit, query.get("continue", "")
        )
        if accept.table:
            table = build_table(
                rt,
                result.items,
                str(result.resource_version),
                query.get("includeObject", "Metadata"),
                result.continue_token,
            )
            return self._json(table, content_type=_TABLE_MEDIA)
        metadata: JsonDict = {"resourceVersion": str(result.resource_version)}
        if result.continue_token:
            metadata["continue"] = result.continue_token
            metadata["remainingItemCount"] = result.remaining
        head = {"kind": rt.list_kind, "apiVersion": rt.api_version, "metadata": metadata}
        return web.Response(body=encode_list(head, result.items), content_type="application/json")

    # ---- watch ---------------------------------------------------------------------------------------

    async def _watch(self, request: web.Request, target: Target, accept: Accept) -> web.StreamResponse:
        rt = target.rt
        query = request.query
        predicate = self._predicate(rt, query)
        if target.name:
            by_name = parse_field_selector(f"metadata.name={target.name}")
            outer = predicate
            predicate = by_name if outer is None else (lambda obj: by_name(obj) and outer(obj))
        watch = WatchRequest(
            rt=rt,
            namespace=target.namespace if rt.namespaced else None,
            predicate=predicate,
            resource_version=query.get("resourceVersion", ""),
            bookmarks=_flag(query.get("allowWatchBookmarks")),
            send_initial_events=_flag(query.get("sendInitialEvents")),
            timeout=float(query.get("timeoutSeconds", "0") or 0),
            table=accept.table,
            include_object=query.get("includeObject", "Metadata"),
        )
        return await serve_watch(request, watch, self.store, self.objects.present, self.bookmark_interval)

    # ---- auth-related resources ----------------------------------------------------------------------

    def _token_request(self, target: Target, body: JsonDict) -> web.Response:
        assert target.name is not None
        self.objects.get(target.rt, target.namespace or "", target.name)
        user = service_account_user(target.namespace or "", target.name)
        token = self.authenticator.issue_token(user)
        spec = body.get("spec") or {}
        expiry = time.strftime(
            "%Y-%m-%dT%H:%M:%SZ", time.gmtime(time.time() + int(spec.get("expirationSeconds") or 3600))
        )
        return self._json(
            {
                "kind": "TokenRequest",
                "apiVersion": "authentication.k8s.io/v1",
                "metadata": {"name": target.name, "namespace": target.namespace},
                "spec": spec,
                "status": {"token": token, "expirationTimestamp": expiry},
            },
            status=201,
        )

    def _access_review(self, rt: ResourceType, body: JsonDict, user: UserInfo) -> web.Response:
        spec = body.get("spec") or {}
        subject = user
        if rt.plural == "subjectaccessreviews":
            subject = UserInfo(spec.get("user", ""), tuple(spec.get("groups") or ()))
        attributes = spec.get("resourceAttributes")
        if attributes is not None:
            request = RequestAttributes(
                attributes.get("verb", ""),
                attributes.get("group", ""),
                attributes.get("resource", ""),
                attributes.get("subresource", ""),
                attributes.get("namespace", ""),
                attributes.get("name", ""),
            )
        else:
            non_resource = spec.get("nonResourceAttributes") or {}
            request = RequestAttributes(
                non_resource.get("verb", ""), path=non_resource.get("path", ""), resource_request=False
            )
        allowed = (
            subject.is_admin
            if not self.authenticator.enabled and subject is ADMIN
            else self.authorizer.allowed(subject, request)
        )
        return self._json(
            {
                "kind": rt.kind,
                "apiVersion": rt.api_version,
                "metadata": {},
                "spec": spec,
                "status": {"allowed": allowed},
            },
            status=201,
        )

    def _rules_review(self, rt: ResourceType, body: JsonDict, user: UserInfo) -> web.Response:
        spec = body.get("spec") or {}
        rules = self.authorizer.rules_for(user, spec.get("namespace", ""))
        resource_rules = [
            {k: rule[k] for k in ("verbs", "apiGroups", "resources", "resourceNames") if k in rule}
            for rule in rules
            if "nonResourceURLs" not in rule
        ]
        non_resource_rules = [
            {"verbs": rule.get("verbs", []), "nonResourceURLs": rule["nonResourceURLs"]}
            for rule in rules
            if "nonResourceURLs" in rule
        ]
        status = {
            "resourceRules": resource_rules,
            "nonResourceRules": non_resource_rules,
            "incomplete": False,
        }
        return self._json(
            {"kind": rt.kind, "apiVersion": rt.api_version, "metadata": {}, "spec": spec, "status": status},
            status=201,
        )


def _default_manager(request: web.Request) -> str:
    """Like the real server: the field manager defaults to the client's user-agent program name."""
    agent = request.headers.get("User-Agent", "unknown")
    return agent.split("/", 1)[0] or "unknown"
