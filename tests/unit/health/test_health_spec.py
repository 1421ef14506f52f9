"""Check-spec validation and identity (equal specs are what deduplication keys on)."""

from __future__ import annotations

import pytest
from lvs_agent.health.spec import (
    CheckSpec,
    CheckSpecError,
    DnsProbe,
    ExecProbe,
    HttpProbe,
    TcpProbe,
    Timing,
    UdpProbe,
)


def test_equal_specs_are_equal_and_hash_equal() -> None:
    first = CheckSpec(HttpProbe(path="/healthz", expect_status=(200, 204)), Timing(interval=1), port=8080)
    second = CheckSpec(HttpProbe(path="/healthz", expect_status=(200, 204)), Timing(interval=1), port=8080)
    assert first == second
    assert hash(first) == hash(second)
    assert first != CheckSpec(HttpProbe(path="/other"), Timing(interval=1), port=8080)


def test_kinds() -> None:
    assert TcpProbe().kind == "TCP"
    assert HttpProbe().kind == "HTTP"
    assert HttpProbe(tls=True).kind == "HTTPS"
    assert UdpProbe().kind == "UDP"
    assert DnsProbe("example.").kind == "DNS"
    assert ExecProbe(("true",)).kind == "Exec"


def test_port_override() -> None:
    assert CheckSpec(port=9000).target_port(80) == 9000
    assert CheckSpec().target_port(80) == 80


@pytest.mark.parametrize(
    "build",
    [
        lambda: Timing(interval=0),
        lambda: Timing(timeout=-1),
        lambda: Timing(rise=0),
        lambda: Timing(fall=0),
        lambda: Timing(jitter=1.0),
        lambda: CheckSpec(port=0),
        lambda: CheckSpec(port=70000),
        lambda: HttpProbe(path="healthz"),
        lambda: HttpProbe(method="get"),
        lambda: HttpProbe(expect_status=(99,)),
        lambda: HttpProbe(expect_status=()),
        lambda: HttpProbe(host="a\r\nX-Injected: 1"),
        lambda: HttpProbe(body_regex="("),
        lambda: UdpProbe(expect="[a-"),
        lambda: DnsProbe("example.", query_type="BOGUS"),
        lambda: DnsProbe("example.", expect_rcode="WHATEVER"),
        lambda: DnsProbe("bad..name"),
        lambda: ExecProbe(()),
    ],
)
def test_invalid_specs_are_rejected(build: object) -> None:
    with pytest.raises(CheckSpecError):
        build()  # type: ignore[operator]
