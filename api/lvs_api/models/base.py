"""Building blocks shared by every kind: the base model, address types, label selectors, conditions.

Python attribute names are snake_case; the wire (and the CRD schema) uses camelCase aliases. Models accept
either spelling on input and always dump camelCase with ``by_alias=True``.
"""

from __future__ import annotations

import enum
import ipaddress
import re
from collections.abc import Mapping
from datetime import datetime
from typing import Annotated, Any, ClassVar, Final

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    ValidationInfo,
    model_validator,
)
from pydantic.alias_generators import to_camel
from pydantic_core import PydanticCustomError

from lvs_api.rules import Rule, register_rules, rules_for

GROUP = "lvs.io"
VERSION = "v1alpha1"
API_VERSION: Final = "lvs.io/v1alpha1"

# Context key for model_validate(..., context={SKIP_RULES: True}): build a model without running the
# cross-field rules (tests use it to compare the python predicate with the CEL expression on bad objects).
SKIP_RULES = "lvs_skip_rules"


class ApiModel(BaseModel):
    """Base of every API model: camelCase on the wire, unknown fields rejected, immutable values.

    Cross-field rules registered for a class in ``lvs_api.rules`` run after field validation; the same
    rules become ``x-kubernetes-validations`` in the generated CRD.
    """

    model_config = ConfigDict(
        alias_generator=to_camel,
        populate_by_name=True,
        extra="forbid",
        frozen=True,
        use_enum_values=False,
        validate_default=False,
    )

    # Extra OpenAPI keys the CRD generator copies onto this model's object schema.
    crd_schema_extra: ClassVar[dict[str, Any]] = {}
    # Set on top-level kinds only: kind, plural resource name and scope.
    kind_name: ClassVar[str] = ""
    plural: ClassVar[str] = ""
    namespaced: ClassVar[bool] = True

    @model_validator(mode="after")
    def _check_cross_field_rules(self, info: ValidationInfo) -> ApiModel:
        if info.context and info.context.get(SKIP_RULES):
            return self
        for rule in rules_for(type(self)):
            if not rule.check(self):
                raise PydanticCustomError(
                    "lvs_rule",
                    "{message}",
                    {
                        "message": rule.message,
                        "fix": rule.fix,
                        "field_path": rule.field_path,
                        "rule": rule.name,
                    },
                )
        return self

    def to_wire(self) -> dict[str, Any]:
        """The JSON-ready dict as the API server stores it (camelCase, no null fields)."""
        return self.model_dump(by_alias=True, exclude_none=True, mode="json")


# --- addresses ------------------------------------------------------------------------------------

_OCTET = r"(25[0-5]|2[0-4][0-9]|1[0-9][0-9]|[1-9]?[0-9])"
IPV4_PATTERN = rf"{_OCTET}(\.{_OCTET}){{3}}"
_H = r"[0-9a-fA-F]{1,4}"
# RFC 4291 text forms, one alternative per position of "::" (no lookahead: RE2 has none).
IPV6_PATTERN = (
    "("
    + "|".join(
        [
            rf"({_H}:){{7}}{_H}",
            rf"({_H}:){{1,7}}:",
            rf"({_H}:){{1,6}}:{_H}",
            rf"({_H}:){{1,5}}(:{_H}){{1,2}}",
            rf"({_H}:){{1,4}}(:{_H}){{1,3}}",
            rf"({_H}:){{1,3}}(:{_H}){{1,4}}",
            rf"({_H}:){{1,2}}(:{_H}){{1,5}}",
            rf"{_H}:(:{_H}){{1,6}}",
            rf":((:{_H}){{1,7}}|:)",
            rf"({_H}:){{6}}{IPV4_PATTERN}",
            rf"({_H}:){{0,5}}:{IPV4_PATTERN}",
            rf"::({_H}:){{0,5}}{IPV4_PATTERN}",
            rf"({_H}:){{1,4}}:({_H}:){{0,3}}{IPV4_PATTERN}",
        ]
    )
    + ")"
)
IP_ADDRESS_PATTERN = rf"^({IPV4_PATTERN}|{IPV6_PATTERN})$"
_IP_RE = re.compile(IP_ADDRESS_PATTERN)


def _canonical_ip(value: str) -> str:
    # The schema pattern and ipaddress must agree; ipaddress also accepts zone ids ("%eth0"), we do not.
    if not _IP_RE.match(value):
        raise PydanticCustomError(
            "lvs_ip",
            "'{value}' is not an IPv4 or IPv6 address",
            {"value": value, "fix": "use an address such as 192.0.2.10 or 2001:db8::10"},
        )
    return str(ipaddress.ip_address(value))


IPAddress = Annotated[
    str,
    AfterValidator(_canonical_ip),
    Field(max_length=45, json_schema_extra={"pattern": IP_ADDRESS_PATTERN}),
]
"""An IPv4 or IPv6 address; stored in canonical text form (``2001:db8::1``, not ``2001:DB8:0::1``)."""


def _check_cidr(value: str) -> str:
    prefix_ok = re.fullmatch(r"(.+)/([0-9]{1,3})", value)
    if not prefix_ok or not _IP_RE.match(prefix_ok.group(1)):
        raise PydanticCustomError(
            "lvs_cidr",
            "'{value}' is not a CIDR block",
            {"value": value, "fix": "use address/prefix, e.g. 203.0.113.0/28 or 2001:db8:1::/64"},
        )
    try:
        network = ipaddress.ip_network(value, strict=True)
    except ValueError as err:
        raise PydanticCustomError(
            "lvs_cidr",
            "'{value}' is not a CIDR block: {err}",
            {
                "value": value,
                "err": str(err),
                "fix": "clear the host bits or fix the prefix length (at most 32 for IPv4, 128 for IPv6)",
            },
        ) from None
    return str(network)


CIDR_PATTERN = (
    rf"^({IPV4_PATTERN}/([0-9]|[12][0-9]|3[0-2])|{IPV6_PATTERN}/([0-9]|[1-9][0-9]|1[01][0-9]|12[0-8]))$"
)
CIDR = Annotated[
    str,
    AfterValidator(_check_cidr),
    Field(max_length=49, json_schema_extra={"pattern": CIDR_PATTERN}),
]
"""A network in CIDR notation with no host bits set."""


def is_ipv6(address: str) -> bool:
    """Family test used by rules: the same test CEL does with ``contains(':')``."""
    return ":" in address


Port = Annotated[int, Field(ge=1, le=65535)]
PortOrZero = Annotated[int, Field(ge=0, le=65535)]

# Kubernetes object names (DNS-1123 subdomain) and label keys/values, as the API server checks them.
DNS1123_SUBDOMAIN = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$"
ObjectName = Annotated[str, Field(min_length=1, max_length=253, pattern=DNS1123_SUBDOMAIN)]


# --- label selectors ------------------------------------------------------------------------------


class SelectorOperator(enum.StrEnum):
    """Operator of a label selector requirement (as in Kubernetes)."""

    IN = "In"
    NOT_IN = "NotIn"
    EXISTS = "Exists"
    DOES_NOT_EXIST = "DoesNotExist"


class LabelSelectorRequirement(ApiModel):
    """One requirement of a label selector: ``key operator values``."""

    key: str = Field(min_length=1, max_length=317, description="Label key the requirement applies to.")
    operator: SelectorOperator = Field(description="In, NotIn, Exists or DoesNotExist.")
    values: list[Annotated[str, Field(max_length=63)]] = Field(
        default_factory=list,
        max_length=64,
        description="Values for In and NotIn (at least one); must be empty for Exists and DoesNotExist.",
    )


register_rules(
    LabelSelectorRequirement,
    Rule(
        name="selector-values-match-operator",
        field_path=".values",
        cel="(self.operator in ['In', 'NotIn']) == (has(self.values) && size(self.values) > 0)",
        message="In and NotIn need values; Exists and DoesNotExist take none",
        fix="list values for In/NotIn, or remove values for Exists/DoesNotExist",
        check=lambda r: (r.operator in (SelectorOperator.IN, SelectorOperator.NOT_IN)) == bool(r.values),
    ),
)


class LabelSelector(ApiModel):
    """A Kubernetes label selector. An empty selector matches everything."""

    match_labels: dict[str, Annotated[str, Field(max_length=63)]] = Field(
        default_factory=dict, description="Labels that must all be present with exactly these values."
    )
    match_expressions: list[LabelSelectorRequirement] = Field(
        default_factory=list, max_length=32, description="Requirements that must all hold."
    )

    def matches(self, labels: Mapping[str, str] | None) -> bool:
        """True when ``labels`` satisfy every label and every requirement (Kubernetes semantics)."""
        labels = labels or {}
        for key, value in self.match_labels.items():
            if labels.get(key) != value:
                return False
        for req in self.match_expressions:
            present = req.key in labels
            if req.operator is SelectorOperator.IN:
                ok = present and labels[req.key] in req.values
            elif req.operator is SelectorOperator.NOT_IN:
                ok = not present or labels[req.key] not in req.values
            elif req.operator is SelectorOperator.EXISTS:
                ok = present
            else:
                ok = not present
            if not ok:
                return False
        return True


# --- object metadata and conditions ---------------------------------------------------------------


class ObjectMeta(BaseModel):
    """The parts of ``metadata`` the operator reads; every other key is kept as is."""

    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True, extra="allow", frozen=True)

    name: str = ""
    namespace: str | None = None
    uid: str | None = None
    generation: int | None = None
    resource_version: str | None = None
    labels: dict[str, str] | None = None
    annotations: dict[str, str] | None = None


class ConditionStatus(enum.StrEnum):
    """Status of a condition."""

    TRUE = "True"
    FALSE = "False"
    UNKNOWN = "Unknown"


class ConditionType(enum.StrEnum):
    """Condition types the controller writes on a VirtualService (kstatus reads ``Ready``)."""

    ACCEPTED = "Accepted"
    PROGRAMMED = "Programmed"
    READY = "Ready"
    DEGRADED = "Degraded"
    CONFLICT = "Conflict"


REASON_PATTERN = r"^[A-Za-z]([A-Za-z0-9_,:]*[A-Za-z0-9_])?$"


class Condition(ApiModel):
    """A status condition (the shape of ``metav1.Condition``)."""

    type: str = Field(
        max_length=316,
        description="Condition type: Accepted, Programmed, Ready, Degraded or Conflict.",
    )
    status: ConditionStatus = Field(description="True, False or Unknown.")
    reason: str = Field(
        min_length=1,
        max_length=1024,
        pattern=REASON_PATTERN,
        description="One CamelCase word saying why the condition has this status, e.g. InvalidSpec.",
    )
    message: str = Field(
        default="", max_length=32768, description="Human-readable detail; names the field and the fix."
    )
    observed_generation: int | None = Field(
        default=None, ge=0, description="metadata.generation of the spec this condition was computed from."
    )
    last_transition_time: datetime = Field(description="When the status last changed (RFC 3339).")


CONDITIONS_LIST_EXTRA: dict[str, Any] = {
    "x-kubernetes-list-type": "map",
    "x-kubernetes-list-map-keys": ["type"],
}
