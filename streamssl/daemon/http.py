"""The daemon's HTTP endpoints: ``/metrics`` (Prometheus), ``/healthz`` (alive), ``/readyz``."""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Callable

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest

Probe = Callable[[], tuple[bool, dict]]


class HealthServer:
    """Serves the endpoints from a background thread.

    ``alive`` and ``ready`` return ``(ok, details)``; the endpoint answers 200 or 503 with the
    details as JSON. ``port=0`` binds a free port (see :attr:`port`).
    """

    def __init__(self, registry: CollectorRegistry, alive: Probe, ready: Probe, host: str = "127.0.0.1",
                 port: int = 9108) -> None:
        routes: dict[str, Callable[[], tuple[int, str, bytes]]] = {
            "/metrics": lambda: (200, CONTENT_TYPE_LATEST, generate_latest(registry)),
            "/healthz": lambda: _probe(alive),
            "/readyz": lambda: _probe(ready),
        }

        class Handler(BaseHTTPRequestHandler):
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

        self.server = ThreadingHTTPServer((host, port), Handler)
        self.server.daemon_threads = True
        self._thread = threading.Thread(target=self.server.serve_forever, name="streamssl-http", daemon=True)

    @property
    def port(self) -> int:
        return self.server.server_address[1]

    def start(self) -> "HealthServer":
        self._thread.start()
        return self

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def _probe(check: Probe) -> tuple[int, str, bytes]:
    ok, details = check()
    return (200 if ok else 503), "application/json", (json.dumps({"ok": ok, **details}) + "\n").encode()
