"""The HTTP response judge fed in arbitrary pieces (as a socket delivers them)."""

from __future__ import annotations

import pytest
from lvs_agent.health.httpcheck import HttpResponseJudge, build_http_request
from lvs_agent.health.probe import ProbeResult
from lvs_agent.health.spec import HttpProbe

CHUNKED = (
    b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
    b"4\r\nstat\r\n7;x=y\r\nus: gre\r\n2\r\nen\r\n0\r\n\r\n"
)


def judge_in_pieces(spec: HttpProbe, response: bytes, size: int, close: bool = True) -> ProbeResult | None:
    judge = HttpResponseJudge(spec)
    for offset in range(0, len(response), size):
        verdict = judge.feed(response[offset : offset + size])
        if verdict is not None:
            return verdict
    return judge.eof() if close else None


@pytest.mark.parametrize("size", [1, 2, 3, 7, 64, 4096])
def test_verdict_does_not_depend_on_how_bytes_arrive(size: int) -> None:
    assert judge_in_pieces(HttpProbe(body_regex="status: green"), CHUNKED, size) == ProbeResult(
        True, "HTTP 200, body matches"
    )
    assert judge_in_pieces(HttpProbe(body_regex="red"), CHUNKED, size) == ProbeResult(
        False, "HTTP 200, body does not match 'red'"
    )
    plain = b"HTTP/1.0 503 Service Unavailable\r\nContent-Length: 4\r\n\r\nbusy"
    assert judge_in_pieces(HttpProbe(), plain, size) == ProbeResult(False, "HTTP 503, expected 200")


def test_decides_on_the_head_without_waiting_for_the_body() -> None:
    judge = HttpResponseJudge(HttpProbe())
    assert judge.feed(b"HTTP/1.1 200 OK\r\nContent-Length: 100000\r\n") is None
    assert judge.feed(b"\r\n") == ProbeResult(True, "HTTP 200")


def test_content_length_body_completes_before_close() -> None:
    judge = HttpResponseJudge(HttpProbe(body_regex="^ok$"))
    assert judge.feed(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\no") is None
    assert judge.feed(b"k") == ProbeResult(True, "HTTP 200, body matches")


def test_body_without_length_is_judged_at_close() -> None:
    judge = HttpResponseJudge(HttpProbe(body_regex="ready"))
    assert judge.feed(b"HTTP/1.1 200 OK\r\n\r\nrea") is None
    assert judge.feed(b"dy") is None
    assert judge.eof() == ProbeResult(True, "HTTP 200, body matches")


def test_oversized_head_and_bad_chunks_fail() -> None:
    judge = HttpResponseJudge(HttpProbe())
    assert judge.feed(b"HTTP/1.1 200 OK\r\nX: " + b"a" * 70000) == ProbeResult(
        False, "HTTP response headers larger than 64 KiB"
    )
    bad = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n"
    verdict = HttpResponseJudge(HttpProbe(body_regex="x")).feed(bad)
    assert verdict is not None
    assert not verdict.ok
    assert "malformed chunked body" in verdict.reason


def test_close_before_head_and_reset() -> None:
    judge = HttpResponseJudge(HttpProbe())
    assert judge.feed(b"HTTP/1.1 20") is None
    assert judge.eof() == ProbeResult(False, "connection closed before a complete HTTP response")
    assert judge.lost(ConnectionResetError("reset by peer")) == ProbeResult(
        False, "connection lost: reset by peer"
    )


def test_request_host_header() -> None:
    assert b"Host: 192.0.2.1\r\n" in build_http_request(HttpProbe(), "192.0.2.1", 80)
    assert b"Host: 192.0.2.1:8080\r\n" in build_http_request(HttpProbe(), "192.0.2.1", 8080)
    assert b"Host: [2001:db8::1]\r\n" in build_http_request(HttpProbe(tls=True), "2001:db8::1", 443)
    assert build_http_request(
        HttpProbe(method="HEAD", path="/x", host="h.example"), "192.0.2.1", 80
    ).startswith(b"HEAD /x HTTP/1.1\r\nHost: h.example\r\n")
