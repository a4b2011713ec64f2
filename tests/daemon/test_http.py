import json
import urllib.error
import urllib.request

from prometheus_client import CollectorRegistry, Counter

from streamssl.daemon.http import HealthServer


def get(port: int, path: str) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=5) as r:
            return r.status, r.read().decode()
    except urllib.error.HTTPError as err:
        return err.code, err.read().decode()


def test_metrics_health_and_readiness_endpoints():
    registry = CollectorRegistry()
    Counter("streamssl_demo", "demo", registry=registry).inc(3)
    state = {"ready": False}
    server = HealthServer(registry, lambda: (True, {}), lambda: (state["ready"], {"reason": "starting"}),
                          port=0).start()
    try:
        status, body = get(server.port, "/metrics")
        assert status == 200 and "streamssl_demo_total 3.0" in body
        assert get(server.port, "/healthz")[0] == 200
        status, body = get(server.port, "/readyz")
        assert status == 503 and json.loads(body) == {"ok": False, "reason": "starting"}
        state["ready"] = True
        assert get(server.port, "/readyz")[0] == 200
        assert get(server.port, "/nope")[0] == 404
    finally:
        server.stop()


def test_a_failing_probe_answers_500_and_the_server_keeps_serving():
    server = HealthServer(CollectorRegistry(), lambda: 1 / 0, lambda: (True, {}), port=0).start()
    try:
        assert get(server.port, "/healthz")[0] == 500
        assert get(server.port, "/readyz")[0] == 200
    finally:
        server.stop()
