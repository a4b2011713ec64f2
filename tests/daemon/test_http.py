import json
import socket
import struct
import threading
import time
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


def wait_until(condition, timeout_s: float = 60.0) -> bool:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.05)
    return False


def test_half_open_connections_are_bounded_and_time_out():
    server = HealthServer(CollectorRegistry(), lambda: (True, {}), lambda: (True, {}), port=0, timeout_s=1.0,
                          max_connections=4).start()
    threads = threading.active_count()
    sockets = [socket.create_connection(("127.0.0.1", server.port)) for _ in range(50)]  # never send a request
    try:
        assert wait_until(lambda: server.refused > 0), "no connection was refused"
        peak = 0
        for _ in range(40):  # while the 50 are open and silent
            peak = max(peak, threading.active_count() - threads)
            time.sleep(0.05)
        assert peak <= 4  # one thread per connection served, no more
        assert wait_until(lambda: _answers(server.port))  # the silent ones time out and free their slots
    finally:
        for s in sockets:
            s.close()
        server.stop()


def _answers(port: int) -> bool:
    try:
        return get(port, "/healthz")[0] == 200
    except OSError:
        return False


def test_a_client_that_hangs_up_leaves_no_traceback_and_no_log(capfd, caplog):
    def slow_alive():
        time.sleep(0.3)  # the client is gone by the time the answer is written
        return True, {}

    server = HealthServer(CollectorRegistry(), slow_alive, lambda: (True, {}), port=0).start()
    try:
        for _ in range(5):
            s = socket.create_connection(("127.0.0.1", server.port))
            s.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
            s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))  # reset, not FIN
            s.close()
        time.sleep(1.0)
        assert get(server.port, "/readyz")[0] == 200
    finally:
        server.stop()
    assert "Traceback" not in capfd.readouterr().err
    assert not [r for r in caplog.records if r.getMessage() == "http_error"]


def test_a_forked_child_does_not_hold_the_port_once_the_server_is_closed():
    # The checkpoint writer is a forked child: if it outlives a killed daemon for a moment, the
    # port must be free for the restarted one.
    import os

    server = HealthServer(CollectorRegistry(), lambda: (True, {}), lambda: (True, {}), port=0).start()
    port = server.port
    read_end, write_end = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: waits until told to go, as a starved writer would
        os.close(write_end)
        os.read(read_end, 1)
        os._exit(0)
    os.close(read_end)
    try:
        assert get(port, "/healthz")[0] == 200  # the parent still serves
        server.stop()
        again = HealthServer(CollectorRegistry(), lambda: (True, {}), lambda: (True, {}), port=port).start()
        try:
            assert get(port, "/healthz")[0] == 200
        finally:
            again.stop()
    finally:
        os.write(write_end, b"x")
        os.close(write_end)
        os.waitpid(pid, 0)
