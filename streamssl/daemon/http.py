"""The daemon's HTTP endpoints: ``/metrics`` (Prometheus), ``/healthz`` (alive), ``/readyz``."""

from __future__ import annotations

import json
import logging
import os
import sys
import threading
import weakref
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Callable

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest

Probe = Callable[[], tuple[bool, dict]]

#: The listening sockets of this process's servers. A forked child (the checkpoint writer)
#: closes its copies at once: else, if the daemon is killed while the child, at the lowest
#: priority, has not yet been scheduled to die with it, the port stays bound and a restarted
#: daemon cannot listen on it ("Address already in use").
_LISTENING: "weakref.WeakSet" = weakref.WeakSet()


def _close_listening_in_child() -> None:
    for sock in list(_LISTENING):
        try:
            sock.close()
        except OSError:
            pass


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_close_listening_in_child)


class HealthServer:
    """Serves the endpoints from a background thread.

    ``alive`` and ``ready`` return ``(ok, details)``; the endpoint answers 200 or 503 with the
    details as JSON. ``port=0`` binds a free port (see :attr:`port`). A connection gets
    ``timeout_s`` to send its request and take the answer; at most ``max_connections`` are
    served at once, and those beyond are closed at once and counted in :attr:`refused`. Errors
    go to ``log`` as one JSON line each; a client that went away is not news.
    """

    def __init__(self, registry: CollectorRegistry, alive: Probe, ready: Probe, host: str = "127.0.0.1",
                 port: int = 9108, timeout_s: float = 10.0, max_connections: int = 32,
                 log: logging.Logger | None = None) -> None:
        routes: dict[str, Callable[[], tuple[int, str, bytes]]] = {
            "/metrics": lambda: (200, CONTENT_TYPE_LATEST, generate_latest(registry)),
            "/healthz": lambda: _probe(alive),
            "/readyz": lambda: _probe(ready),
        }

        class Handler(BaseHTTPRequestHandler):
            timeout = timeout_s  # per socket operation: a half-open connection is dropped

            def do_GET(self) -> None:  # noqa: N802 (http.server's naming)
                route = routes.get(self.path.split("?", 1)[0])
                if route is None:
                    status, ctype, body = 404, "text/plain", b"not found\n"
                else:
                    try:
                        status, ctype, body = route()
                    except Exception as exc:  # a probe must answer, not kill the thread
                        status, ctype, body = 500, "text/plain", f"{type(exc).__name__}\n".encode()
                self.send_response(status)
                self.send_header("Content-Type", ctype)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args) -> None:  # scrapes are not news
                pass

        self.server = _BoundedServer((host, port), Handler, max_connections, log or logging.getLogger("streamssl"))
        _LISTENING.add(self.server.socket)
        self._thread = threading.Thread(target=self.server.serve_forever, name="streamssl-http", daemon=True)

    @property
    def port(self) -> int:
        return self.server.server_address[1]

    @property
    def refused(self) -> int:
        """Connections closed unanswered because ``max_connections`` were being served."""
        return self.server.refused

    def start(self) -> "HealthServer":
        self._thread.start()
        return self

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()


class _BoundedServer(ThreadingHTTPServer):
    """A thread per connection, at most ``max_connections`` threads; errors logged as JSON."""

    daemon_threads = True

    def __init__(self, address, handler, max_connections: int, log: logging.Logger) -> None:
        self._slots = threading.BoundedSemaphore(max_connections)
        self.log = log
        self.refused = 0
        super().__init__(address, handler)

    def process_request(self, request, client_address) -> None:
        if not self._slots.acquire(blocking=False):
            self.refused += 1
            self.shutdown_request(request)
            return
        try:
            super().process_request(request, client_address)
        except BaseException:
            self._slots.release()
            raise

    def process_request_thread(self, request, client_address) -> None:
        try:
            super().process_request_thread(request, client_address)
        finally:
            self._slots.release()

    def handle_error(self, request, client_address) -> None:
        """socketserver prints a traceback to stderr here; a client that hung up or was too
        slow is expected, anything else is one JSON log line."""
        exc = sys.exc_info()[1]
        if isinstance(exc, (ConnectionError, TimeoutError)):
            return
        self.log.warning("http_error", extra={"fields": {"client": client_address[0] if client_address else None,
                                                          "error": f"{type(exc).__name__}: {exc}"}})


def _probe(check: Probe) -> tuple[int, str, bytes]:
    ok, details = check()
    return (200 if ok else 503), "application/json", (json.dumps({"ok": ok, **details}) + "\n").encode()
