"""lvs_api healthCheck -> engine specs; ResolvedServices -> subscriptions; verdicts -> the compiler."""

from __future__ import annotations

import asyncio
import datetime
import itertools
from typing import Any

import pytest
from health_fakes import FakeClock, ScriptedProber
from lvs_agent.health.convert import (
    HealthBinding,
    ReportedHealth,
    check_spec,
    member_label,
    subscription_requests,
)
from lvs_agent.health.engine import HealthEngine
from lvs_agent.health.report import HealthReporter, MemberReport
from lvs_agent.health.spec import CheckSpec, DnsProbe, ExecProbe, HttpProbe, TcpProbe, Timing, UdpProbe
from lvs_api.compiler import compile_resolved
from lvs_api.models import CheckType, HealthCheck, ResolvedService


def resolved(
    name: str = "web",
    members: list[dict[str, Any]] | None = None,
    health_check: dict[str, Any] | None = None,
    fallback: list[dict[str, Any]] | None = None,
    **service: Any,
) -> ResolvedService:
    return ResolvedService.model_validate(
        {
            "apiVersion": "lvs.io/v1alpha1",
            "kind": "ResolvedService",
            "metadata": {"name": name, "namespace": "shop"},
            "spec": {
                "acceptedGeneration": 1,
                "virtualServiceUid": f"uid-{name}",
                "service": {
                    "vip": "203.0.113.10",
                    "ports": [{"port": 80}, {"port": 443}],
                    "poolRef": {"name": "pool"},
                    "healthCheck": health_check or {},
                    **service,
                },
                "members": members
                or [{"address": "198.51.100.11"}, {"address": "198.51.100.12", "weight": 2}],
                "fallback": fallback or [],
            },
        }
    )


def test_defaults_are_a_tcp_check_with_api_timing() -> None:
    assert check_spec(HealthCheck()) == CheckSpec(
        TcpProbe(), Timing(interval=2.0, timeout=1.0, rise=2, fall=3, jitter=0.1)
    )


def test_type_none_is_not_checked() -> None:
    assert check_spec(HealthCheck.model_validate({"type": "None"})) is None
    assert (
        subscription_requests("shop/web", resolved(health_check={"type": "None"}).spec.service, [], "g") == []
    )


@pytest.mark.parametrize(
    ("api", "probe"),
    [
        ({"type": "HTTP"}, HttpProbe()),
        (
            {
                "type": "HTTP",
                "http": {
                    "method": "HEAD",
                    "path": "/healthz",
                    "host": "shop.example",
                    "expectStatus": [200, 204],
                },
            },
            HttpProbe(method="HEAD", path="/healthz", host="shop.example", expect_status=(200, 204)),
        ),
        (
            {"type": "HTTPS", "http": {"bodyRegex": "ok", "tlsVerify": True, "serverName": "member.example"}},
            HttpProbe(body_regex="ok", tls=True, tls_verify=True, sni="member.example"),
        ),
        ({"type": "UDP", "udp": {"send": "PING", "expect": "^PONG"}}, UdpProbe(send=b"PING", expect="^PONG")),
        (
            {
                "type": "DNS",
                "dns": {"queryName": "example.com", "queryType": "AAAA", "expectAnswer": "2001:db8::1"},
            },
            DnsProbe("example.com", query_type="AAAA", expect_answers=frozenset({"2001:db8::1"})),
        ),
        (
            {"type": "DNS", "dns": {"queryName": "example.com", "expectRcode": "NXDOMAIN"}},
            DnsProbe("example.com", expect_rcode="NXDOMAIN"),
        ),
        (
            {"type": "Exec", "exec": {"command": ["/bin/check", "--fast"]}},
            ExecProbe(("/bin/check", "--fast")),
        ),
    ],
)
def test_probe_kinds(api: dict[str, Any], probe: object) -> None:
    spec = check_spec(HealthCheck.model_validate(api))
    assert spec is not None
    assert spec.probe == probe


def test_timing_and_jitter_percent() -> None:
    api = HealthCheck.model_validate(
        {"intervalSeconds": 1, "timeoutSeconds": 0.5, "rise": 1, "fall": 2, "jitterPercent": 25}
    )
    spec = check_spec(api)
    assert spec is not None
    assert spec.timing == Timing(interval=1.0, timeout=0.5, rise=1, fall=2, jitter=0.25)


def test_requests_follow_check_target_and_dedupe_members() -> None:
    item = resolved(
        members=[
            {"address": "198.51.100.11"},
            {"address": "198.51.100.11", "port": 8080},  # same address, other port: its own target
            {"address": "198.51.100.12", "checkPort": 9000},
            {"address": "198.51.100.13", "port": 8081, "checkPort": 9000},
            {"address": "198.51.100.13", "port": 8082, "checkPort": 9000},  # same target as the one above
        ]
    )
    requests = subscription_requests("shop/web", item.spec.service, item.spec.members, "vip-a")
    assert [(r.member, r.address, r.port, r.group) for r in requests] == [
        ("198.51.100.11:80", "198.51.100.11", 80, "vip-a"),
        ("198.51.100.11:8080", "198.51.100.11", 8080, "vip-a"),
        ("198.51.100.12:9000", "198.51.100.12", 9000, "vip-a"),
        ("198.51.100.13:9000", "198.51.100.13", 9000, "vip-a"),
    ]
    with_port = resolved(health_check={"port": 8443})
    requests = subscription_requests("shop/web", with_port.spec.service, with_port.spec.members, "g")
    assert {r.port for r in requests} == {8443}


def test_ipv6_labels() -> None:
    assert member_label("2001:db8::1", 80) == "[2001:db8::1]:80"
    assert member_label("192.0.2.1", 80) == "192.0.2.1:80"


@pytest.mark.looptime
async def test_binding_drives_the_compiler_quiesce_remove_and_fallback() -> None:
    prober = ScriptedProber()
    engine = HealthEngine(prober, clock=FakeClock(), default_active=True)
    binding = HealthBinding(engine, group_of=lambda item: item.spec.service.vip)
    check = {"intervalSeconds": 1, "timeoutSeconds": 0.5, "rise": 1, "fall": 2}
    sorry = [{"address": "198.51.100.99"}]
    quiesce = resolved("web", health_check=check, fallback=sorry)
    remove = resolved("api", health_check=check, fallback=sorry, onFailure="Remove", vip="203.0.113.11")
    services = {"shop/web": quiesce, "shop/api": remove}

    def weights(item: ResolvedService, key: str) -> dict[str, int]:
        table = compile_resolved(item, lambda member: binding.lookup(key, member))
        service = next(iter(table.values()))
        return {dest.address: config.weight for dest, config in service.dests.items()}

    async with engine:
        binding.sync(services)
        assert engine.job_count == 2  # both services check the same two members the same way
        assert weights(quiesce, "shop/web") == {"198.51.100.11": 1, "198.51.100.12": 2}  # unknown = healthy

        prober.up[("198.51.100.11", 80)] = False
        await asyncio.sleep(3)
        assert weights(quiesce, "shop/web") == {"198.51.100.11": 0, "198.51.100.12": 2}
        assert weights(remove, "shop/api") == {"198.51.100.12": 2}

        prober.up[("198.51.100.12", 80)] = False
        await asyncio.sleep(3)
        assert weights(quiesce, "shop/web") == {"198.51.100.11": 0, "198.51.100.12": 0, "198.51.100.99": 1}
        assert weights(remove, "shop/api") == {"198.51.100.99": 1}

        prober.up[("198.51.100.12", 80)] = True
        await asyncio.sleep(2)
        assert weights(remove, "shop/api") == {"198.51.100.12": 2}

        binding.sync({"shop/web": quiesce})
        assert binding.lookup("shop/api", remove.spec.members[0]) is None
        assert engine.job_count == 2


async def test_binding_reports_invalid_checks_without_blocking_others() -> None:
    engine = HealthEngine(ScriptedProber(), clock=FakeClock(), default_active=True)
    good = resolved("web")
    # A DNS check without its dns block (the API refuses it; the agent must survive it anyway).
    service = good.spec.service.model_copy(
        update={"health_check": HealthCheck.model_construct(type=CheckType.DNS)}
    )
    bad = good.model_copy(update={"spec": good.spec.model_copy(update={"service": service})})
    binding = HealthBinding(engine, group_of=lambda item: "g")
    binding.sync({"shop/web": good, "shop/dns": bad})
    assert set(binding.invalid) == {"shop/dns"}
    assert "queryName" in binding.invalid["shop/dns"]
    assert {sub.service for sub in engine.subscriptions()} == {"shop/web"}


@pytest.mark.looptime
async def test_standby_verdicts_do_not_reach_the_compiler_until_the_group_is_active() -> None:
    prober = ScriptedProber(up={("198.51.100.11", 80): False})
    engine = HealthEngine(prober, clock=FakeClock())  # groups start as standby
    binding = HealthBinding(engine, group_of=lambda item: item.spec.service.vip)
    item = resolved(health_check={"intervalSeconds": 1, "timeoutSeconds": 0.5, "rise": 1, "fall": 1})
    failing = item.spec.members[0]
    async with engine:
        binding.sync({"shop/web": item})
        await asyncio.sleep(2)
        assert engine.health("shop/web", "198.51.100.11:80") is False  # probed warm
        assert binding.lookup("shop/web", failing) is None  # but not applied
        engine.set_active("203.0.113.10", True)
        assert binding.lookup("shop/web", failing) is False
        assert sorted((c.member, c.healthy) for c in engine.changes.take()) == [
            ("198.51.100.11:80", False),
            ("198.51.100.12:80", True),
        ]


async def test_reported_health_maps_reports_to_member_health() -> None:
    kicks: list[None] = []
    reported = ReportedHealth(on_update=lambda: kicks.append(None))

    def report(member: str, healthy: bool | None, **extra: Any) -> MemberReport:
        fields: dict[str, Any] = {
            "service": "shop/web",
            "member": member,
            "address": member.split(":", maxsplit=1)[0],
            "port": 80,
            "check": "HTTP",
            "healthy": healthy,
            "reason": "",
            "since": None,
            "flaps": 0,
            "active": True,
        }
        fields.update(extra)
        return MemberReport(**fields)

    await reported.publish(
        [
            report(
                "198.51.100.11:80", False, reason="HTTP 503, expected 200", since=1_700_000_000.0, flaps=3
            ),
            report("198.51.100.12:80", None),
            report("198.51.100.13:80", True, reason="HTTP 200", since=1_700_000_100.0),
        ]
    )
    health = {(m.address, m.healthy, m.reason) for m in reported.member_health()["shop/web"]}
    assert health == {
        ("198.51.100.11", False, "HTTP 503, expected 200 (flapped 3x)"),
        ("198.51.100.12", True, "NotYetChecked"),
        ("198.51.100.13", True, "HTTP 200"),
    }
    down = next(m for m in reported.member_health()["shop/web"] if not m.healthy)
    assert down.since == datetime.datetime(2023, 11, 14, 22, 13, 20, tzinfo=datetime.UTC)
    await reported.publish([report("198.51.100.11:80", None, removed=True)])
    assert {m.address for m in reported.member_health()["shop/web"]} == {"198.51.100.12", "198.51.100.13"}
    assert len(kicks) == 2


@pytest.mark.looptime
async def test_a_flapping_member_changes_the_report_at_most_once_per_min_interval() -> None:
    prober = ScriptedProber()
    snapshots: list[tuple[float, bool]] = []

    def on_update() -> None:
        member = reported.member_health()["shop/web"][0]
        snapshots.append((asyncio.get_running_loop().time(), member.healthy))

    reported = ReportedHealth(on_update=on_update)
    reporter = HealthReporter(reported.publish, clock=FakeClock(), min_interval=10.0, batch_interval=1.0)
    engine = HealthEngine(prober, clock=FakeClock(), default_active=True, reporter=reporter)
    binding = HealthBinding(engine, group_of=lambda item: "g")
    item = resolved(
        members=[{"address": "198.51.100.11"}],
        health_check={"intervalSeconds": 1, "timeoutSeconds": 0.5, "rise": 1, "fall": 1, "jitterPercent": 0},
    )
    async with engine:
        binding.sync({"shop/web": item})
        for _ in range(30):  # flips every second for 30 s: 30 transitions
            await asyncio.sleep(1)
            prober.up[("198.51.100.11", 80)] = not prober.up.get(("198.51.100.11", 80), True)
        await asyncio.sleep(12)
    assert engine.transitions >= 29
    times = [at for at, _ in snapshots]
    assert 3 <= len(times) <= 5
    assert all(later - earlier >= 10.0 - 1e-6 for earlier, later in itertools.pairwise(times))


def test_binding_sync_only_looks_at_services_that_changed() -> None:
    engine = HealthEngine(ScriptedProber(), clock=FakeClock(), default_active=True)
    binding = HealthBinding(engine, group_of=lambda item: "g")
    web, api = resolved("web"), resolved("api", vip="203.0.113.11")
    binding.sync({"shop/web": web, "shop/api": api})
    calls: list[tuple[int, list[str] | None]] = []
    real_sync = engine.sync

    def spy(requests: Any, services: Any = None) -> None:
        requests = list(requests)
        calls.append((len(requests), None if services is None else sorted(services)))
        real_sync(requests, services)

    engine.sync = spy  # type: ignore[method-assign]
    binding.sync({"shop/web": web, "shop/api": api})
    assert calls == []  # same objects: nothing to do

    web2 = resolved("web", members=[{"address": "198.51.100.11"}])  # a member left the pool
    binding.sync({"shop/web": web2, "shop/api": api})
    assert calls == [(1, ["shop/web"])]
    assert sorted(sub.member for sub in engine.subscriptions() if sub.service == "shop/web") == [
        "198.51.100.11:80"
    ]
    assert len(engine.service_health("shop/api")) == 2

    binding.sync({"shop/web": web2})  # api deleted
    assert calls[-1] == (0, ["shop/api"])
    assert engine.service_health("shop/api") == {}
    assert binding.lookup("shop/api", api.spec.members[0]) is None
