"""Run the embedded API server in a background thread with its own event loop (for tests and demos)."""

from __future__ import annotations

import asyncio
import tempfile
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

from . import kubeconfig
from .server import ApiServer
from .storage import Store

T = TypeVar("T")


class ServerThread:
    """An ApiServer listening on 127.0.0.1 (port 0 by default), driven by a private event loop thread."""

    def __init__(
        self,
        *,
        auth_enabled: bool = False,
        bookmark_interval: float = 5.0,
        history_limit: int = 20000,
        state_path: str | None = None,
        tls: bool | None = None,
        port: int = 0,
        kubeconfig_path: str | Path | None = None,
        endpoint_slices: bool = False,
    ) -> None:
        self._auth_enabled = auth_enabled
        self._bookmark_interval = bookmark_interval
        self._history_limit = history_limit
        self._endpoint_slices = endpoint_slices
        self._state_path = state_path
        # kubectl never sends bearer tokens over plain HTTP, so auth implies TLS unless told otherwise
        self._tls = auth_enabled if tls is None else tls
        self._port = port
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name="lvs-apiserver", daemon=True)
        self.server: ApiServer | None = None
        self.url = ""
        self.ca_pem: bytes | None = None
        self._workdir = Path(tempfile.mkdtemp(prefix="lvs-apiserver-"))
        self.kubeconfig = Path(kubeconfig_path) if kubeconfig_path else self._workdir / "kubeconfig"

    def start(self) -> ServerThread:
        self._thread.start()
        self.url = self.run(self._start())
        assert self.server is not None
        kubeconfig.write(self.kubeconfig, self.url, self.server.authenticator.admin_token, self.ca_pem)
        return self

    async def _start(self) -> str:
        store = Store(history_limit=self._history_limit, sqlite_path=self._state_path)
        self.server = ApiServer(
            store,
            auth_enabled=self._auth_enabled,
            bookmark_interval=self._bookmark_interval,
            endpoint_slices=self._endpoint_slices,
        )
        ssl_context = None
        if self._tls:
            from .tls import self_signed

            ssl_context, self.ca_pem = self_signed(self._workdir / "tls")
        return await self.server.start("127.0.0.1", self._port, ssl_context)

    def run(self, coroutine: Any) -> Any:
        """Run a coroutine on the server's loop and wait for its result."""
        return asyncio.run_coroutine_threadsafe(coroutine, self._loop).result(timeout=30)

    def call(self, function: Callable[[], T]) -> T:
        """Run a plain function on the server's loop thread (safe access to the store)."""

        async def wrapper() -> T:
            return function()

        result: T = self.run(wrapper())
        return result

    def service_account_token(self, namespace: str, name: str) -> str:
        """A bearer token authenticating as system:serviceaccount:<namespace>:<name> (RBAC applies)."""
        from .auth import service_account_user

        assert self.server is not None
        server = self.server
        return self.call(lambda: server.authenticator.issue_token(service_account_user(namespace, name)))

    def write_kubeconfig(self, path: str | Path, token: str) -> Path:
        """A kubeconfig for this server that authenticates with `token`."""
        return kubeconfig.write(path, self.url, token, self.ca_pem)

    def stop(self) -> None:
        if self._loop.is_closed():
            return
        if self.server is not None:
            self.run(self.server.stop())
            self.run(self._cancel_leftovers())
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout=5)
        self._loop.close()

    @staticmethod
    async def _cancel_leftovers() -> None:
        """Finish watch handlers still parked on their queues, so the loop closes cleanly."""
        current = asyncio.current_task()
        leftovers = [task for task in asyncio.all_tasks() if task is not current]
        for task in leftovers:
            task.cancel()
        await asyncio.gather(*leftovers, return_exceptions=True)

    def __enter__(self) -> ServerThread:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
