"""The HTTP/1.1 side of an HTTP(S) check, without I/O: the request, and an incremental judge of the
response that decides as early as it can (status line and headers; the body only if a regex asks)."""

from __future__ import annotations

import functools
import re

from lvs_agent.health.probe import ProbeResult
from lvs_agent.health.spec import HttpProbe

USER_AGENT = "lvs-operator-health/1"
MAX_HEAD = 65536


@functools.lru_cache(maxsize=65536)
def build_http_request(spec: HttpProbe, address: str, port: int) -> bytes:
    """One ``Connection: close`` request; ``Host`` is ``spec.host`` or the member (with a non-default
    port)."""
    if spec.host is not None:
        host = spec.host
    else:
        host = f"[{address}]" if ":" in address else address
        if port != (443 if spec.tls else 80):
            host = f"{host}:{port}"
    return (
        f"{spec.method} {spec.path} HTTP/1.1\r\nHost: {host}\r\nUser-Agent: {USER_AGENT}\r\n"
        "Accept: */*\r\nConnection: close\r\n\r\n"
    ).encode("ascii", "strict")


@functools.lru_cache(maxsize=4096)
def compiled_regex(pattern: str) -> re.Pattern[bytes]:
    return re.compile(pattern.encode())


class ChunkedBodyError(ValueError):
    pass


def dechunk(data: bytes, limit: int) -> tuple[bytes, bool]:
    """Decode a chunked body as far as it is available: (body so far, complete or limit reached)."""
    body = bytearray()
    offset = 0
    while True:
        line_end = data.find(b"\r\n", offset)
        if line_end < 0:
            return bytes(body), False
        size_text = data[offset:line_end].split(b";", 1)[0].strip()
        try:
            size = int(size_text, 16)
        except ValueError as error:
            raise ChunkedBodyError(f"bad chunk size {size_text!r}") from error
        if size == 0:
            return bytes(body), True
        start = line_end + 2
        chunk = data[start : start + size]
        body += chunk
        if len(body) >= limit:
            return bytes(body[:limit]), True
        if len(chunk) < size:
            return bytes(body), False
        offset = start + size + 2


class HttpResponseJudge:
    """Feed the response bytes as they come; the first non-``None`` answer is the verdict."""

    __slots__ = ("_buffer", "_chunked", "_content_length", "_header_end", "_spec", "_status")

    def __init__(self, spec: HttpProbe) -> None:
        self._spec = spec
        self._buffer = bytearray()
        self._status = 0
        self._header_end = -1
        self._content_length = -1
        self._chunked = False

    def feed(self, data: bytes) -> ProbeResult | None:
        self._buffer += data
        if self._header_end < 0:
            end = self._buffer.find(b"\r\n\r\n")
            if end < 0:
                if len(self._buffer) > MAX_HEAD:
                    return ProbeResult(False, "HTTP response headers larger than 64 KiB")
                return None
            self._header_end = end + 4
            verdict = self._judge_head(bytes(self._buffer[:end]))
            if verdict is not None:
                return verdict
        return self._judge_body(complete=False)

    def eof(self) -> ProbeResult:
        """The server closed the connection."""
        if self._header_end < 0:
            return ProbeResult(False, "connection closed before a complete HTTP response")
        verdict = self._judge_body(complete=True)
        assert verdict is not None
        return verdict

    def lost(self, error: BaseException) -> ProbeResult:
        """The connection failed (reset...) before a verdict."""
        return ProbeResult(False, f"connection lost: {error}")

    def on_timeout(self, timeout: float) -> ProbeResult:
        return ProbeResult(False, f"timeout after {timeout:g}s")

    def _judge_head(self, head: bytes) -> ProbeResult | None:
        lines = head.split(b"\r\n")
        parts = lines[0].split(None, 2)
        if len(parts) < 2 or not parts[0].startswith(b"HTTP/") or not parts[1].isdigit():
            return ProbeResult(False, f"malformed HTTP status line {lines[0][:80]!r}")
        self._status = int(parts[1])
        spec = self._spec
        if self._status not in spec.expect_status:
            expected = ",".join(str(code) for code in spec.expect_status)
            return ProbeResult(False, f"HTTP {self._status}, expected {expected}")
        if spec.body_regex is None or spec.method == "HEAD":
            return ProbeResult(True, f"HTTP {self._status}")
        for line in lines[1:]:
            name, _, value = line.partition(b":")
            name = name.strip().lower()
            if name == b"content-length" and value.strip().isdigit():
                self._content_length = int(value.strip())
            elif name == b"transfer-encoding" and b"chunked" in value.lower():
                self._chunked = True
        return None

    def _judge_body(self, complete: bool) -> ProbeResult | None:
        limit = self._spec.max_body_bytes
        raw = bytes(self._buffer[self._header_end :])
        if self._chunked:
            try:
                body, finished = dechunk(raw, limit)
            except ChunkedBodyError as error:
                return ProbeResult(False, f"malformed chunked body: {error}")
        else:
            body = raw[:limit]
            finished = len(raw) >= limit or (0 <= self._content_length <= len(raw))
        if not (finished or complete):
            return None
        pattern = self._spec.body_regex
        assert pattern is not None
        if compiled_regex(pattern).search(body):
            return ProbeResult(True, f"HTTP {self._status}, body matches")
        return ProbeResult(False, f"HTTP {self._status}, body does not match {pattern!r}")
