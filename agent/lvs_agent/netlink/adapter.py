"""``IpvsNetlink``: kernel IPVS over generic netlink, pyroute2 for the socket, our codec for the bytes.

Batching: requests go out ``batch_size`` (about 1,000) per ``sendmsg``. Only the last request of each batch
carries ``NLM_F_ACK``; the kernel still answers every *failed* request with an ``NLMSG_ERROR``, so reading
until the last request's ack collects every failure of the batch, each mapped back to its operation by
sequence number. Generic netlink handles a whole ``sendmsg`` synchronously, so by the time ``send`` returns
all answers are queued: the receive buffer is made large enough (``SO_RCVBUFFORCE``) and error answers
small (``NETLINK_CAP_ACK``: the request is not echoed) so that a batch of failures cannot overrun it.

Blocking and not thread-safe: one call at a time. From asyncio code, call it through
``asyncio.to_thread`` (a full dump of 110,000 entries takes about a second); it may be created inside a
running event loop.
"""

from __future__ import annotations

import asyncio
import errno
import select
import socket
import threading
from collections.abc import Callable, Sequence
from typing import Any, Final, NamedTuple

from lvs_api.ipvs import DestConfig, DestKey, Op, ServiceConfig, ServiceKey, Table, VirtualServer
from pyroute2.netlink.exceptions import NetlinkError
from pyroute2.netlink.generic.ipvs import IPVSSocket

from lvs_agent.netlink import uapi
from lvs_agent.netlink.codec import (
    Buffer,
    Counters,
    DaemonState,
    DestStats,
    DumpFormatError,
    IpvsDecoder,
    IpvsEncoder,
    SyncDaemon,
    daemon_reply,
    dest_stats,
    error_of,
    iter_messages,
    service_counters,
)
from lvs_agent.netlink.kernel import ApplyResult, IpvsError, OpFailure, ServiceStats, StatsTable
from lvs_agent.netlink.layout import NLMSG_HEADER

DEFAULT_BATCH_SIZE: Final = 1000
DEFAULT_RCVBUF: Final = 32 << 20  # room for a whole batch of failures, and large dump chunks
DEFAULT_SNDBUF: Final = 4 << 20
RECV_CHUNK: Final = 1 << 20
SEQ_MODULO: Final = 1 << 32

# called with (buffer, payload offset, message end) for each reply of a dump
MessageHandler = Callable[[Buffer, int, int], None]


class _Batch(NamedTuple):
    sent: int  # requests handed to the kernel
    next_index: int  # first op of the next batch
    complete: bool  # every answer of this batch was read


def _set_buffer(sock: socket.socket, force_option: int, option: int, size: int) -> None:
    """Set a socket buffer above ``net.core.[rw]mem_max`` when we have CAP_NET_ADMIN (we need it for
    IPVS anyway); otherwise fall back to the capped option."""
    try:
        sock.setsockopt(socket.SOL_SOCKET, force_option, size)
    except PermissionError:
        sock.setsockopt(socket.SOL_SOCKET, option, size)


def _open_pyroute2(kwargs: dict[str, Any]) -> IPVSSocket:
    """pyroute2's synchronous socket sets itself up by running an event loop, which it cannot do in a
    thread whose loop is already running (the agent's): then open it from a short-lived thread. After
    that we only use the plain socket underneath, from any thread."""
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return IPVSSocket(**kwargs)
    opened: list[IPVSSocket] = []
    failed: list[BaseException] = []

    def open_socket() -> None:
        try:
            opened.append(IPVSSocket(**kwargs))
        except BaseException as exc:
            failed.append(exc)

    thread = threading.Thread(target=open_socket, name="ipvs-netlink-open")
    thread.start()
    thread.join()
    if failed:
        raise failed[0]
    return opened[0]


class IpvsNetlink:
    """Kernel IPVS through generic netlink (implements ``IpvsKernel`` and ``SyncDaemonControl``).

    ``netns``: name of a network namespace (``ip netns``) whose IPVS table to use; default the caller's.
    Raises :class:`IpvsError` (``errno`` ENOENT) when the kernel has no IPVS at all, and ``OSError`` when
    the namespace does not exist. Without CAP_NET_ADMIN dumps raise ``IpvsError`` EPERM and every
    operation fails with EPERM. ``apply`` never raises for a kernel answer: failures are in its result.
    """

    def __init__(
        self,
        *,
        netns: str | None = None,
        batch_size: int = DEFAULT_BATCH_SIZE,
        rcvbuf: int = DEFAULT_RCVBUF,
        sndbuf: int = DEFAULT_SNDBUF,
        timeout: float = 30.0,
    ) -> None:
        self.batch_size = batch_size
        self.timeout = timeout
        kwargs: dict[str, Any] = {}
        if netns is not None:
            kwargs.update(netns=netns, flags=0)  # flags=0: a missing namespace is an error, not created
        try:
            # pyroute2 creates the socket (in the namespace if asked) and resolves the "IPVS" family;
            # the kernel loads ip_vs on that lookup when it is a module
            self._pyroute: IPVSSocket = _open_pyroute2(kwargs)
        except NetlinkError as exc:
            raise IpvsError(exc.code, f"generic netlink family {uapi.GENL_NAME}: {exc}") from exc
        try:
            self._setup_socket(rcvbuf, sndbuf)
        except BaseException:
            self._pyroute.close()
            raise
        self._buf = bytearray(RECV_CHUNK)
        self._view = memoryview(self._buf)
        self._seq = 0
        self.writes = 0  # requests sent by apply(), for tests that count netlink writes
        self._skipped: list[str] = []

    def _setup_socket(self, rcvbuf: int, sndbuf: int) -> None:
        self._sock: socket.socket = self._pyroute.asyncore.socket
        self._sock.setblocking(False)
        _set_buffer(self._sock, uapi.SO_RCVBUFFORCE, socket.SO_RCVBUF, rcvbuf)
        _set_buffer(self._sock, uapi.SO_SNDBUFFORCE, socket.SO_SNDBUF, sndbuf)
        self._sock.setsockopt(uapi.SOL_NETLINK, uapi.NETLINK_CAP_ACK, 1)
        # the kernel reports the doubled value; keep a margin for its skb overhead
        self._max_send = self._sock.getsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF) // 2
        self.family_id: int = self._pyroute.prid
        self.port_id: int = self._sock.getsockname()[0]
        self._encoder = IpvsEncoder(self.family_id, self.port_id)

    # --------------------------------------------------------------------------------------------- I/O

    def _next_seq(self) -> int:
        self._seq = self._seq + 1 if self._seq < SEQ_MODULO - 1 else 1
        return self._seq

    def _recv(self) -> int:
        while True:
            try:
                return self._sock.recv_into(self._buf)
            except BlockingIOError:
                readable, _, _ = select.select([self._sock], [], [], self.timeout)
                if not readable:
                    raise IpvsError(errno.ETIMEDOUT, "no answer from the kernel's IPVS") from None

    def _drain(self) -> None:
        """Drop answers still queued (after an overrun) so that the next request starts clean."""
        while True:
            try:
                self._sock.recv_into(self._buf)
            except (BlockingIOError, InterruptedError):
                return
            except OSError as exc:
                if exc.errno != errno.ENOBUFS:
                    return

    # -------------------------------------------------------------------------------------------- apply

    def apply(self, ops: Sequence[Op]) -> ApplyResult:
        failures: list[OpFailure] = []
        complete = True
        sent = 0
        start = 0
        while start < len(ops):
            batch = self._apply_batch(ops, start, failures)
            sent += batch.sent
            start = batch.next_index
            complete = complete and batch.complete
        self.writes += sent
        failures.sort(key=lambda f: f.position)
        return ApplyResult(sent=sent, failures=tuple(failures), complete=complete)

    def _apply_batch(self, ops: Sequence[Op], start: int, failures: list[OpFailure]) -> _Batch:
        """Encode and send up to ``batch_size`` ops from ``start`` in one ``sendmsg``; collect failures."""
        encode = self._encoder.op
        request = uapi.NLM_F_REQUEST
        messages: list[bytes] = []
        seqs: dict[int, int] = {}  # sequence number -> index in ops
        size = 0
        index = start
        end = min(len(ops), start + self.batch_size)
        seq = self._seq
        while index < end:
            seq = seq + 1 if seq < SEQ_MODULO - 1 else 1
            try:
                message = encode(ops[index], request, seq)
            except (ValueError, OSError, KeyError):
                # not representable (bad address text, missing config): refuse this op only
                failures.append(OpFailure(index, ops[index], errno.EINVAL))
                index += 1
                end = min(len(ops), end + 1)  # keep the batch at batch_size requests
                continue
            size += len(message)
            if messages and size > self._max_send:
                break
            messages.append(message)
            seqs[seq] = index
            index += 1
        self._seq = seq
        if not messages:
            return _Batch(0, index, complete=True)
        # the last request asks for an ack: its answer marks the end of the batch's answers
        last_seq = next(reversed(seqs))
        messages[-1] = encode(ops[seqs[last_seq]], request | uapi.NLM_F_ACK, last_seq)
        try:
            self._sock.send(b"".join(messages))
        except OSError as exc:
            code = exc.errno or errno.EIO
            failures.extend(OpFailure(i, ops[i], code) for i in seqs.values())
            return _Batch(0, index, complete=True)
        return _Batch(len(messages), index, self._collect_errors(ops, seqs, last_seq, failures))

    def _collect_errors(
        self, ops: Sequence[Op], seqs: dict[int, int], last_seq: int, failures: list[OpFailure]
    ) -> bool:
        """Read the batch's answers up to the last request's ack. False when some were lost: ENOBUFS
        (receive buffer overrun), or no ack in time; the caller is told to read the kernel back."""
        while True:
            try:
                length = self._recv()
            except OSError:
                self._drain()
                return False
            for header, payload in iter_messages(self._view, length):
                if header.type != uapi.NLMSG_ERROR:
                    continue
                code, seq = error_of(self._view, payload)
                index = seqs.get(seq)
                if index is None:
                    continue  # a late answer to an earlier, abandoned request
                if code:
                    failures.append(OpFailure(index, ops[index], code))
                if seq == last_seq:
                    return True

    # -------------------------------------------------------------------------------------------- dumps

    def _dump(self, request: bytes, seq: int, handle: MessageHandler) -> None:
        """Send one dump request and feed each reply to ``handle``. The dump is always read to its end
        before an error from ``handle`` is raised, so that the socket is ready for the next request."""
        try:
            self._sock.send(request)
        except OSError as exc:
            raise IpvsError(exc.errno or errno.EIO, f"IPVS dump request: {exc.strerror}") from exc
        handler_error: Exception | None = None
        while True:
            try:
                length = self._recv()
            except IpvsError:
                raise
            except OSError as exc:
                self._drain()
                raise IpvsError(exc.errno or errno.EIO, f"IPVS dump: {exc.strerror}") from exc
            for header, payload in iter_messages(self._view, length):
                if header.seq != seq:
                    continue  # a late answer to an earlier request
                if header.type == uapi.NLMSG_DONE:
                    if handler_error is not None:
                        raise handler_error
                    return
                if header.type == uapi.NLMSG_ERROR:
                    code, _ = error_of(self._view, payload)
                    if code:  # an error ends the dump: nothing else follows
                        raise IpvsError(code, "IPVS dump refused")
                    continue
                if header.type == self.family_id and handler_error is None:
                    try:
                        handle(self._view, payload, payload - NLMSG_HEADER.size + header.length)
                    except Exception as exc:
                        handler_error = exc

    def _services(
        self, decoder: IpvsDecoder, with_counters: bool
    ) -> list[tuple[ServiceKey, ServiceConfig, Counters]]:
        services: list[tuple[ServiceKey, ServiceConfig, Counters]] = []
        no_counters = Counters()

        def on_service(buf: Buffer, payload: int, end: int) -> None:
            # offsets point into a buffer the next read overwrites: take everything needed now
            try:
                offsets = decoder.service_attrs(buf, payload, end)
                key, config = decoder.service(buf, offsets)
            except DumpFormatError as exc:
                self._skipped.append(f"service: {exc}")
                return
            services.append((key, config, service_counters(buf, offsets) if with_counters else no_counters))

        seq = self._next_seq()
        self._dump(self._encoder.get_services(seq), seq, on_service)
        return services

    def _dests(self, service: ServiceKey, handle: MessageHandler) -> None:
        seq = self._next_seq()
        try:
            self._dump(self._encoder.get_dests(service, seq), seq, handle)
        except IpvsError as exc:
            # ESRCH: the service went away between the two dumps; it is simply not there any more
            if exc.errno != errno.ESRCH:
                raise

    def dump(self) -> Table:
        self._skipped = []
        decoder = IpvsDecoder()
        table: dict[ServiceKey, VirtualServer] = {}
        for key, config, _ in self._services(decoder, with_counters=False):
            dests: dict[DestKey, DestConfig] = {}
            self._dests(key, _config_collector(decoder, key, dests, self._skipped))
            table[key] = VirtualServer(config, dests)
        return table

    def dump_stats(self) -> StatsTable:
        self._skipped = []
        decoder = IpvsDecoder()
        stats: dict[ServiceKey, ServiceStats] = {}
        for key, _, counters in self._services(decoder, with_counters=True):
            dests: dict[DestKey, DestStats] = {}
            self._dests(key, _stats_collector(decoder, key, dests, self._skipped))
            stats[key] = ServiceStats(counters, dests)
        return stats

    # ------------------------------------------------------------------------------------- sync daemons

    def _command(self, request: bytes, seq: int, what: str) -> None:
        """Send one acknowledged request; raise :class:`IpvsError` with the kernel's errno if refused."""
        try:
            self._sock.send(request)
        except OSError as exc:
            raise IpvsError(exc.errno or errno.EIO, f"{what}: {exc.strerror}") from exc
        while True:
            try:
                length = self._recv()
            except IpvsError:
                raise
            except OSError as exc:
                self._drain()
                raise IpvsError(exc.errno or errno.EIO, f"{what}: {exc.strerror}") from exc
            for header, payload in iter_messages(self._view, length):
                if header.type != uapi.NLMSG_ERROR:
                    continue
                code, answered = error_of(self._view, payload)
                if answered != seq:
                    continue  # a late answer to an earlier request
                if code:
                    raise IpvsError(code, f"{what}: {errno.errorcode.get(code, code)}")
                return

    def daemons(self) -> list[SyncDaemon]:
        found: list[SyncDaemon] = []

        def on_daemon(buf: Buffer, payload: int, end: int) -> None:
            try:
                found.append(daemon_reply(buf, payload, end))
            except DumpFormatError as exc:
                self._skipped.append(f"sync daemon: {exc}")

        seq = self._next_seq()
        self._dump(self._encoder.get_daemons(seq), seq, on_daemon)
        return found

    def start_daemon(self, daemon: SyncDaemon) -> None:
        seq = self._next_seq()
        flags = uapi.NLM_F_REQUEST | uapi.NLM_F_ACK
        try:
            request = self._encoder.new_daemon(daemon, flags=flags, seq=seq)
        except ValueError as exc:
            raise IpvsError(errno.EINVAL, f"start {daemon.state.label} sync daemon: {exc}") from exc
        self._command(request, seq, f"start {daemon.state.label} sync daemon on {daemon.interface}")

    def stop_daemon(self, state: DaemonState) -> None:
        seq = self._next_seq()
        request = self._encoder.del_daemon(state, flags=uapi.NLM_F_REQUEST | uapi.NLM_F_ACK, seq=seq)
        self._command(request, seq, f"stop {state.label} sync daemon")

    @property
    def skipped_entries(self) -> tuple[str, ...]:
        """Entries the last dump left out because this vocabulary cannot represent them (say, a tunnel
        type from a newer kernel): always foreign, never ours; worth a line in the node report."""
        return tuple(self._skipped)

    def close(self) -> None:
        self._pyroute.close()

    def __enter__(self) -> IpvsNetlink:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()


def _config_collector(
    decoder: IpvsDecoder, service: ServiceKey, into: dict[DestKey, DestConfig], skipped: list[str]
) -> MessageHandler:
    def on_dest(buf: Buffer, payload: int, end: int) -> None:
        try:
            dest, config = decoder.dest_reply(buf, payload, end, service.family)
        except DumpFormatError as exc:
            skipped.append(f"destination of {service}: {exc}")
            return
        into[dest] = config

    return on_dest


def _stats_collector(
    decoder: IpvsDecoder, service: ServiceKey, into: dict[DestKey, DestStats], skipped: list[str]
) -> MessageHandler:
    def on_dest(buf: Buffer, payload: int, end: int) -> None:
        try:
            offsets = decoder.dest_attrs(buf, payload, end)
            dest, _ = decoder.dest(buf, offsets, service.family)
        except DumpFormatError as exc:
            skipped.append(f"destination of {service}: {exc}")
            return
        into[dest] = dest_stats(buf, offsets)

    return on_dest
