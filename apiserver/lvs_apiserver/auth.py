"""Bearer-token authentication and RBAC authorization evaluated from the stored RBAC objects.

Off by default: with auth disabled every request acts as the cluster admin.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass, field
from typing import Any

from .errors import ApiError, forbidden
from .storage import Store

JsonDict = dict[str, Any]

ADMIN_GROUP = "system:masters"
_RBAC = "rbac.authorization.k8s.io"


@dataclass(frozen=True)
class UserInfo:
    name: str
    groups: tuple[str, ...] = ()
    uid: str = ""

    @property
    def is_admin(self) -> bool:
        return ADMIN_GROUP in self.groups


ADMIN = UserInfo("kubernetes-admin", (ADMIN_GROUP, "system:authenticated"))
ANONYMOUS = UserInfo("system:anonymous", ("system:unauthenticated",))


def service_account_user(namespace: str, name: str) -> UserInfo:
    return UserInfo(
        f"system:serviceaccount:{namespace}:{name}",
        ("system:serviceaccounts", f"system:serviceaccounts:{namespace}", "system:authenticated"),
    )


@dataclass
class RequestAttributes:
    verb: str
    group: str = ""
    resource: str = ""
    subresource: str = ""
    namespace: str = ""
    name: str = ""
    path: str = ""
    resource_request: bool = True


@dataclass
class Authenticator:
    enabled: bool = False
    tokens: dict[str, UserInfo] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.admin_token = secrets.token_urlsafe(24)
        self.tokens[self.admin_token] = ADMIN

    def issue_token(self, user: UserInfo) -> str:
        token = secrets.token_urlsafe(24)
        self.tokens[token] = user
        return token

    def add_token(self, token: str, user: UserInfo) -> None:
        self.tokens[token] = user

    def authenticate(self, authorization_header: str | None) -> UserInfo:
        if not self.enabled:
            return ADMIN
        if authorization_header and authorization_header.startswith("Bearer "):
            user = self.tokens.get(authorization_header[len("Bearer ") :].strip())
            if user is not None:
                return user
            raise ApiError(401, "Unauthorized", "Unauthorized")
        return ANONYMOUS


class RbacAuthorizer:
    def __init__(self, store: Store) -> None:
        self.store = store

    def allowed(self, user: UserInfo, request: RequestAttributes) -> bool:
        if user.is_admin:
            return True
        if (
            not request.resource_request
            and request.path.startswith(
                ("/api", "/apis", "/version", "/openapi", "/healthz", "/readyz", "/livez")
            )
            and request.verb == "get"
        ):
            return "system:authenticated" in user.groups
        if request.group == "authorization.k8s.io" and request.resource in (
            "selfsubjectaccessreviews",
            "selfsubjectrulesreviews",
        ):
            return True
        for binding in self.store.list((_RBAC, "clusterrolebindings")):
            if self._binds(binding, user) and self._role_allows(binding.get("roleRef") or {}, "", request):
                return True
        if request.namespace:
            for binding in self.store.list((_RBAC, "rolebindings"), request.namespace):
                role_ref = binding.get("roleRef") or {}
                if self._binds(binding, user) and self._role_allows(role_ref, request.namespace, request):
                    return True
        return False

    def rules_for(self, user: UserInfo, namespace: str) -> list[JsonDict]:
        """Every RBAC rule that applies to `user` in `namespace` (for SelfSubjectRulesReview)."""
        if user.is_admin:
            return [
                {"verbs": ["*"], "apiGroups": ["*"], "resources": ["*"]},
                {"verbs": ["*"], "nonResourceURLs": ["*"]},
            ]
        rules: list[JsonDict] = []
        for binding in self.store.list((_RBAC, "clusterrolebindings")):
            if self._binds(binding, user):
                rules.extend(self._role_rules(binding.get("roleRef") or {}, ""))
        if namespace:
            for binding in self.store.list((_RBAC, "rolebindings"), namespace):
                if self._binds(binding, user):
                    rules.extend(self._role_rules(binding.get("roleRef") or {}, namespace))
        return rules

    def impersonate(self, user: UserInfo, target: str, groups: list[str]) -> UserInfo:
        """The user `user` asks to act as (Impersonate-User / Impersonate-Group headers)."""
        if target.startswith("system:serviceaccount:"):
            _, _, namespace, name = target.split(":", 3)
            attributes = RequestAttributes(
                "impersonate", "", "serviceaccounts", namespace=namespace, name=name
            )
            assumed = service_account_user(namespace, name)
            assumed = UserInfo(assumed.name, tuple(dict.fromkeys([*assumed.groups, *groups])))
        else:
            attributes = RequestAttributes("impersonate", "", "users", name=target)
            assumed = UserInfo(target, tuple(dict.fromkeys([*groups, "system:authenticated"])))
        if not self.allowed(user, attributes):
            raise forbidden(denial_message(user, attributes))
        return assumed

    def check(self, user: UserInfo, request: RequestAttributes) -> None:
        if self.allowed(user, request):
            return
        raise forbidden(
            denial_message(user, request),
            {"name": request.name, "group": request.group, "kind": request.resource},
        )

    @staticmethod
    def _binds(binding: JsonDict, user: UserInfo) -> bool:
        for subject in binding.get("subjects") or []:
            kind = subject.get("kind")
            if kind == "User" and subject.get("name") == user.name:
                return True
            if kind == "Group" and subject.get("name") in user.groups:
                return True
            if kind == "ServiceAccount":
                namespace = subject.get("namespace") or binding.get("metadata", {}).get("namespace", "")
                if user.name == f"system:serviceaccount:{namespace}:{subject.get('name')}":
                    return True
        return False

    def _role_allows(self, role_ref: JsonDict, namespace: str, request: RequestAttributes) -> bool:
        return any(rule_matches(rule, request) for rule in self._role_rules(role_ref, namespace))

    def _role_rules(self, role_ref: JsonDict, namespace: str) -> list[JsonDict]:
        if role_ref.get("kind") == "ClusterRole":
            role = self.store.get((_RBAC, "clusterroles"), "", role_ref.get("name", ""))
        else:
            role = self.store.get((_RBAC, "roles"), namespace, role_ref.get("name", ""))
        if role is None:
            return []
        rules = list(role.get("rules") or [])
        aggregation = role.get("aggregationRule") or {}
        if aggregation:
            from .selectors import parse_label_selector

            for selector in aggregation.get("clusterRoleSelectors") or []:
                labels = ",".join(f"{k}={v}" for k, v in (selector.get("matchLabels") or {}).items())
                predicate = parse_label_selector(labels)
                for other in self.store.list((_RBAC, "clusterroles")):
                    if predicate(other):
                        rules.extend(other.get("rules") or [])
        return rules


def rule_matches(rule: JsonDict, request: RequestAttributes) -> bool:
    verbs = rule.get("verbs") or []
    if "*" not in verbs and request.verb not in verbs:
        return False
    if not request.resource_request:
        urls = rule.get("nonResourceURLs") or []
        return any(
            url in (request.path, "*") or (url.endswith("*") and request.path.startswith(url[:-1]))
            for url in urls
        )
    groups = rule.get("apiGroups") or []
    if "*" not in groups and request.group not in groups:
        return False
    resources = rule.get("resources") or []
    wanted = f"{request.resource}/{request.subresource}" if request.subresource else request.resource
    if "*" not in resources and wanted not in resources and f"*/{request.subresource}" not in resources:
        return False
    names = rule.get("resourceNames") or []
    return not names or request.name in names


def denial_message(user: UserInfo, request: RequestAttributes) -> str:
    if not request.resource_request:
        return f'forbidden: User "{user.name}" cannot {request.verb} path "{request.path}"'
    qualified = f"{request.resource}.{request.group}" if request.group else request.resource
    subject = f'{qualified} "{request.name}"' if request.name else qualified
    shown = f"{request.resource}/{request.subresource}" if request.subresource else request.resource
    scope = f'in the namespace "{request.namespace}"' if request.namespace else "at the cluster scope"
    return (
        f'{subject} is forbidden: User "{user.name}" cannot {request.verb} resource "{shown}" '
        f'in API group "{request.group}" {scope}'
    )
