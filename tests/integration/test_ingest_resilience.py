"""The ingest under failure, as operators run it: `watershed ingest --config` processes, real
mosquitto, real influxd, and a recording proxy in front of influxd's /write.

The proxy is what makes "exactly once" and "mid-batch" observable: it sees every write each
process makes (InfluxDB itself would hide a duplicate, which overwrites its original), and it can
forward a write and then hold the reply, so an ingest can be killed after its points are stored
but before it learned so — the worst moment, when the message is written and still unacked.
"""

from __future__ import annotations

import gzip
import http.server
import signal
import subprocess
import threading
import time
import urllib.error
import urllib.request
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from watershed.contracts.mqtt import ReadingsMessage, encode_readings
from watershed.devservers import Influxd, Mosquitto

from .test_ingest_service import setup  # noqa: F401 (the fixture, shared)
from .test_ingest_service import (Setup, by_identity, expected_rows, readings_message, run_cli,
                                  wait_for, write_cli_config)

pytestmark = pytest.mark.integration


class WriteProxy:
    """HTTP proxy for influxd's /write that records the lines of every write it forwards.

    A write whose lines satisfy ``hold_when`` is forwarded, and then the client is kept
    waiting for the answer until ``release()`` (or until it goes away).
    """

    def __init__(self, upstream: str) -> None:
        self.upstream = upstream.rstrip("/")
        self.writes: list[list[str]] = []
        self.hold_when: Callable[[list[str]], bool] | None = None
        self._released = threading.Event()
        self._lock = threading.Lock()
        proxy = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 (http.server's naming)
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                status, answer, lines = proxy._forward(self.path, body, dict(self.headers))
                hold_when = proxy.hold_when
                if hold_when is not None and hold_when(lines):
                    proxy._released.wait(60)
                try:
                    self.send_response(status)
                    self.send_header("Content-Length", str(len(answer)))
                    self.end_headers()
                    self.wfile.write(answer)
                except OSError:
                    pass  # the client was killed while we held its answer

            def log_message(self, *args: object) -> None:
                pass

        self._server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}"
        threading.Thread(target=self._server.serve_forever, daemon=True).start()

    def _forward(self, path: str, body: bytes, headers: dict[str, str]
                 ) -> tuple[int, bytes, list[str]]:
        request = urllib.request.Request(self.upstream + path, data=body, method="POST",
                                         headers={k: v for k, v in headers.items()
                                                  if k.lower() != "host"})
        try:
            with urllib.request.urlopen(request, timeout=10) as response:
                status, answer = response.status, response.read()
        except urllib.error.HTTPError as e:
            status, answer = e.code, e.read()
        except OSError:
            return 503, b'{"error":"upstream unreachable"}', []
        text = gzip.decompress(body) if headers.get("Content-Encoding") == "gzip" else body
        lines = text.decode().split("\n")
        if status == 204:
            with self._lock:
                self.writes.append(lines)
        return status, answer, lines

    def release(self) -> None:
        self.hold_when = None
        self._released.set()

    def lines(self) -> list[str]:
        with self._lock:
            return [line for write in self.writes for line in write]

    def close(self) -> None:
        self.release()
        self._server.shutdown()
        self._server.server_close()


class IngestProcess:
    """One `watershed ingest --config FILE` subprocess, configured for a test."""

    def __init__(self, setup: Setup, tmp_path: Path, influx_url: str, ingest_id: str) -> None:
        self.config_path = write_cli_config(
            tmp_path / f"{ingest_id}.toml", ingest_id, setup,
            tmp_path / (ingest_id + "-deadletter.jsonl"), influx_url, "timeout_s = 30.0\n")
        self.process: subprocess.Popen[str] | None = None

    def start(self) -> IngestProcess:
        self.process = run_cli(self.config_path)
        return self

    def kill9(self) -> None:
        assert self.process is not None
        self.process.send_signal(signal.SIGKILL)
        self.process.communicate(timeout=10)

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.communicate(timeout=15)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.communicate()


@pytest.fixture
def cleanup() -> Iterator[list[Callable[[], None]]]:
    """Things to stop after the test, last first."""
    todo: list[Callable[[], None]] = []
    yield todo
    for undo in reversed(todo):
        undo()


def publish_all(setup: Setup, msgs: list[ReadingsMessage]) -> None:
    for msg in msgs:
        setup.publish(encode_readings(msg), setup.topics.readings(msg.gateway, msg.station))


def messages(prefix: str, count: int, per_message: int = 4,
             start_ts: int = 1763676900) -> list[ReadingsMessage]:
    """``count`` messages with distinct stations, so every point has its own identity."""
    return [readings_message(f"{prefix}-{i:03d}", start_ts, per_message) for i in range(count)]


def point_lines(lines: list[str]) -> Counter[str]:
    """How often each point (series and time) was written; a write's lines, fields dropped."""
    counts: Counter[str] = Counter()
    for line in lines:
        series, _, rest = line.partition(" ")
        counts[f"{series} {rest.rsplit(' ', 1)[-1]}"] += 1
    return counts


def test_killed_mid_batch_the_messages_are_redelivered_and_overwrite(
        setup: Setup, tmp_path: Path, cleanup: list[Callable[[], None]]) -> None:
    proxy = WriteProxy(setup.influx_url)
    cleanup.append(proxy.close)
    ingest_id = f"{setup.config.ingest.id}-cli"
    first = IngestProcess(setup, tmp_path, proxy.url, ingest_id).start()
    cleanup.append(first.stop)
    warmup = messages("WARM", 1)
    # Until the process has subscribed a publish reaches nobody; resending is harmless.
    wait_for(lambda: publish_all(setup, warmup) or len(setup.rows()) == 4, timeout_s=30,
             what="the first process writing")

    # A write of these reaches InfluxDB; its answer never reaches the ingest.
    proxy.hold_when = lambda lines: any("KILL" in line for line in lines)
    batch = messages("KILL", 6)
    publish_all(setup, batch)
    wait_for(lambda: len(setup.rows()) > 4, what="a held write stored in InfluxDB")
    first.kill9()
    stored_unacked = len(setup.rows()) - 4
    proxy.release()

    second = IngestProcess(setup, tmp_path, proxy.url, ingest_id).start()  # same session
    cleanup.append(second.stop)
    want = [row for msg in warmup + batch for row in expected_rows(msg)]

    def rewritten() -> int:
        return sum(n >= 2 for point, n in point_lines(proxy.lines()).items() if "KILL" in point)
    # What the killed process had stored without acking comes again and overwrites itself.
    assert stored_unacked > 0
    wait_for(lambda: rewritten() >= stored_unacked, timeout_s=30, what="the redelivery written")
    rows = setup.wait_for_points(len(want), timeout_s=30)
    assert by_identity(rows) == by_identity(want)  # nothing lost, no duplicate point


def test_three_processes_on_one_shared_subscription_write_every_point_once(
        setup: Setup, tmp_path: Path, cleanup: list[Callable[[], None]]) -> None:
    proxies = [WriteProxy(setup.influx_url) for _ in range(3)]
    processes = [IngestProcess(setup, tmp_path, proxy.url, f"{setup.config.ingest.id}-{n}")
                 for n, proxy in enumerate(proxies)]
    for proxy, process in zip(proxies, processes):
        cleanup.append(proxy.close)
        cleanup.append(process.stop)
        process.start()
    # Until a first process has subscribed, a publish reaches nobody: resend the first message
    # until it is stored; then warm up until each process has written: all three subscribed.
    published = messages("FIRST", 1, per_message=2)  # published many times, by design
    wait_for(lambda: publish_all(setup, published) or len(setup.rows()) == 2, timeout_s=30,
             what="a first process writing")

    def all_three_writing() -> bool:
        msg = readings_message(f"WARM-{len(published):03d}", 1763676900, 2)  # a new one
        publish_all(setup, [msg])
        published.append(msg)
        time.sleep(0.05)
        return all(proxy.writes for proxy in proxies)
    wait_for(all_three_writing, timeout_s=45, what="all three processes writing")

    stream = messages("SHARE", 90, per_message=3)
    publish_all(setup, stream)
    published += stream
    want = [row for msg in published for row in expected_rows(msg)]
    setup.wait_for_points(len(want), timeout_s=30)
    wait_for(lambda: sum(len(p.lines()) for p in proxies) >= len(want), what="all writes seen")
    counts = point_lines([line for proxy in proxies for line in proxy.lines()
                          if "FIRST" not in line])
    assert len(counts) == len(want) - 2 and set(counts.values()) == {1}  # each point once
    per_process = [len({line.split(",station=")[1].split(" ")[0] for line in p.lines()
                        if "SHARE" in line}) for p in proxies]
    assert sum(per_process) == len(stream) and all(per_process), per_process  # load was split


def test_influxdb_stopped_mid_stream_loses_nothing(
        mosquitto: Mosquitto, influxd_factory: Callable[..., Influxd], tmp_path: Path) -> None:
    influx = influxd_factory()
    influx.query('CREATE DATABASE "watershed"')
    setup = Setup(mosquitto, influx.url, "watershed", tmp_path)
    stream = messages("OUT", 60, per_message=5)
    try:
        ingest = setup.start_ingest()
        published = threading.Event()

        def publisher() -> None:  # a steady stream, before, during and after the outage
            for msg in stream:
                publish_all(setup, [msg])
                time.sleep(0.05)
            published.set()
        thread = threading.Thread(target=publisher, daemon=True)
        thread.start()
        wait_for(lambda: ingest.stats()["messages_written"] >= 5, what="the stream flowing")
        influx.stop()
        wait_for(lambda: ingest.stats()["write_failures"] >= 2, what="writes failing")
        time.sleep(1.0)
        held = ingest.stats()
        assert held["acks_sent"] < held["received"]  # nothing acked while InfluxDB is down
        influx.start()
        assert published.wait(30)
        want = [row for msg in stream for row in expected_rows(msg)]
        rows = setup.wait_for_points(len(want), timeout_s=30)
        assert by_identity(rows) == by_identity(want)
        wait_for(lambda: ingest.stats()["acks_sent"] == len(stream), what="every message acked")
        assert ingest.stats()["invalid"] == 0
    finally:
        setup.close()
