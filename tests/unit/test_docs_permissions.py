"""docs/install.md's "Permissions, in full" table lists exactly the RBAC rules of deploy/controller and
deploy/agent (which tests/unit/test_chart.py holds identical to the chart's): no rule missing from the
table, none in the table that the roles do not grant."""

from __future__ import annotations

import re
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[2]
VERBS = {"get", "list", "watch", "create", "update", "patch", "delete", "deletecollection"}
Grant = tuple[str, str, str]  # (who, resource[.group][/subresource], verb)


def granted() -> set[Grant]:
    grants: set[Grant] = set()
    for who in ("controller", "agent"):
        for role in yaml.safe_load_all((REPO / "deploy" / who / "rbac.yaml").read_text()):
            if not role or role["kind"] not in ("ClusterRole", "Role"):
                continue
            for rule in role["rules"]:
                for group in rule["apiGroups"]:
                    for resource in rule["resources"]:
                        name, _, sub = resource.partition("/")
                        qualified = f"{name}.{group}" if group else name
                        grants |= {
                            (who, qualified + (f"/{sub}" if sub else ""), verb) for verb in rule["verbs"]
                        }
    return grants


def documented() -> set[Grant]:
    text = (REPO / "docs" / "install.md").read_text()
    table = text[text.index("| who | resource | verbs | why |") :].split("\n\n", 1)[0].splitlines()[2:]
    grants: set[Grant] = set()
    for row in table:
        who, resources, verbs, _ = (cell.strip() for cell in row.strip().strip("|").split("|"))
        names = re.findall(r"`([a-z0-9./]+)`", resources)
        said = {word for word in re.findall(r"[a-z]+", verbs) if word in VERBS}
        grants |= {(who, name, verb) for name in names for verb in said}
    return grants


def test_the_permissions_table_is_the_roles() -> None:
    roles, table = granted(), documented()
    assert len(roles) > 30
    assert sorted(roles - table) == [], "granted but not in docs/install.md's table"
    assert sorted(table - roles) == [], "in docs/install.md's table but not granted"
