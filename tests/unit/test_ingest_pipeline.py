"""The ingest worker with a scripted writer: ack order, retries, rejects, dead letters, stop."""

from __future__ import annotations

import json
import queue
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from unittest.mock import ANY

from watershed.contracts.mqtt import Topics
from watershed.ingest.deadletter import DeadLetterFile
from watershed.contracts.confirm import decode_confirmation, seq_runs
from watershed.backoff import Backoff
from watershed.ingest.batches import Ack, Action, Delivery, PublishConfirm, PublishDeadLetter
from watershed.ingest.pipeline import WritePipeline
from watershed.ingest.stats import Counters
from watershed.ingest.writer import RejectedWriteError, RetryableWriteError

VECTOR = json.loads((Path(__file__).parents[1] / "vectors" / "mqtt_v1.json").read_text()
                    )["messages"][0]
TOPIC: str = VECTOR["topic"]
PAYLOAD: bytes = VECTOR["payload"].encode()
LINES: list[str] = VECTOR["lines"]
SEQS: list[int] = [r["seq"] for r in json.loads(PAYLOAD)["readings"]]
FAST = Backoff(initial_s=0.01, max_s=0.02)


class ScriptedWriter:
    """Raises the scripted outcomes in turn (None = success), then succeeds."""

    def __init__(self, *outcomes: Exception | None) -> None:
        self.outcomes = list(outcomes)
        self.calls: list[list[str]] = []
        self.bodies: list[bytes | None] = []  # the body each write was given

    def encode(self, lines: list[str]) -> bytes:
        return "\n".join(lines).encode()

    def write(self, lines: list[str], body: bytes | None = None) -> None:
        self.calls.append(list(lines))
        self.bodies.append(body)
        outcome = self.outcomes.pop(0) if self.outcomes else None
        if outcome is not None:
            raise outcome

    def close(self) -> None:
        pass


class Harness:
    def __init__(self, writer: ScriptedWriter | PlainWriter | list[ScriptedWriter],
                 tmp_path: Path, **options: object) -> None:
        self.writer: Any = writer  # a list when there are several write threads
        self.actions: list[Action] = []
        self.counters = Counters()
        self.deadletters = DeadLetterFile("ingest-t", tmp_path / "dl" / "deadletter.jsonl")
        self.deadletters.check_writable()
        settings: dict = {"batch_size": 5000, "flush_interval_s": 1.0, "backoff": FAST}
        settings.update(options)
        self.pipeline = WritePipeline(writer, self.deadletters, Topics(), self.actions.append,
                                      self.counters, **settings)
        self.inbox: queue.Queue[list[Delivery]] = queue.Queue()
        self.stopping = threading.Event()
        self.thread = threading.Thread(target=self.pipeline.run, args=(self.inbox, self.stopping))
        self.thread.start()
        self.next_mid = 1

    def deliver(self, payload: bytes = PAYLOAD, topic: str = TOPIC) -> int:
        mid, self.next_mid = self.next_mid, self.next_mid + 1
        self.inbox.put([Delivery(mid, 1, 1, topic, payload)])
        return mid

    def acked(self) -> list[int]:
        return [a.mid for a in self.actions if isinstance(a, Ack)]

    def deadletter_lines(self) -> list[dict]:
        return [json.loads(line) for line in self.deadletters.path.read_text().splitlines()]

    def stop(self) -> None:
        self.stopping.set()
        self.thread.join(5)
        assert not self.thread.is_alive()


@pytest.fixture
def harness(tmp_path: Path) -> Iterator[Callable[..., Harness]]:
    made: list[Harness] = []

    def make(writer: ScriptedWriter | PlainWriter | list[ScriptedWriter],
             **options: object) -> Harness:
        made.append(Harness(writer, tmp_path, **options))
        return made[-1]

    yield make
    for h in made:
        h.stop()


def wait_for(condition: Callable[[], bool], timeout_s: float = 3.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.005)


def test_written_then_acked_in_arrival_order_with_rejects_in_place(
        harness: Callable[..., Harness]) -> None:
    h = harness(ScriptedWriter())
    h.deliver()
    h.deliver(b'{"v":1,"gateway":"gw-zamora"')  # not JSON
    h.deliver(PAYLOAD.replace(b"SAN-01", b"SAN-02"))  # topic says SAN-01
    h.deliver()
    wait_for(lambda: len(h.acked()) == 4)
    assert h.writer.calls == [LINES + LINES]  # one batch: the quiet stream flushed it
    kinds = [type(a).__name__ for a in h.actions]
    # The gateway's confirmation first, then the acks: a crash between costs a rewrite only.
    assert kinds == ["PublishConfirm", "Ack", "PublishDeadLetter", "Ack", "PublishDeadLetter",
                     "Ack", "Ack"]
    [confirm] = [a for a in h.actions if isinstance(a, PublishConfirm)]
    assert confirm.topic == "watershed/v1/gw-zamora/confirm"
    assert decode_confirmation(confirm.payload).written == {"SAN-01": seq_runs(SEQS)}
    assert h.acked() == [1, 2, 3, 4]
    published = [json.loads(a.record) for a in h.actions if isinstance(a, PublishDeadLetter)]
    assert published == h.deadletter_lines()  # the same records in the file and on MQTT
    assert [d["reason"].split(":")[0] for d in published] == ["not JSON", "topic"]
    assert published[1]["payload"] == PAYLOAD.replace(b"SAN-01", b"SAN-02").decode()
    assert all(d["source"] == "ingest-t" and d["topic"] == TOPIC for d in published)
    stats = h.counters.snapshot()
    assert (stats["invalid"], stats["deadlettered"], stats["messages_written"],
            stats["points_written"]) == (2, 2, 2, 10)


def test_retryable_failure_holds_acks_and_retries_the_same_batch(
        harness: Callable[..., Harness]) -> None:
    writer = ScriptedWriter(RetryableWriteError("HTTP 503"), RetryableWriteError("refused"))
    h = harness(writer)
    h.deliver()
    h.deliver()
    wait_for(lambda: len(writer.calls) >= 2)
    assert h.acked() == []  # not written yet: not acked
    wait_for(lambda: len(h.acked()) == 2)
    assert writer.calls == [LINES + LINES] * 3
    # Encoded once, by the worker, not in the write thread; every retry sends it.
    assert writer.bodies == [writer.encode(LINES + LINES)] * 3
    assert h.counters.snapshot()["write_failures"] == 2


class GatedWriter(ScriptedWriter):
    """Each write waits until the test opens the gate."""

    def __init__(self) -> None:
        super().__init__()
        self.gate = threading.Event()

    def write(self, lines: list[str], body: bytes | None = None) -> None:
        super().write(lines, body)
        assert self.gate.wait(5)


class PickyWriter(ScriptedWriter):
    """Rejects, like InfluxDB, any write containing a line with ``poison`` in it."""

    def write(self, lines: list[str], body: bytes | None = None) -> None:
        self.calls.append(list(lines))
        self.bodies.append(body)
        bad = [line for line in lines if "poison" in line]
        if bad:
            raise RejectedWriteError(f"HTTP 400: partial write: {bad[0]}", 400)


def poisoned(payload: bytes, seq: int) -> bytes:
    """The vector with reading ``seq``'s channel made unwritable, as the writer sees it."""
    message = json.loads(payload)
    message["readings"] = [dict(r, channel="poison") if r["seq"] == seq else r
                           for r in message["readings"]]
    return json.dumps(message).encode()


def test_rejected_batch_is_bisected_bad_points_dead_lettered_rest_written(
        harness: Callable[..., Harness]) -> None:
    writer = PickyWriter()
    h = harness(writer, flush_interval_s=30, quiet_flush_s=30, batch_size=8 * len(LINES),
                idle_flush_lines=8 * len(LINES))  # one batch of all 8
    bad_payload = poisoned(PAYLOAD, 43)
    for i in range(8):
        h.deliver(bad_payload if i == 5 else PAYLOAD)
    wait_for(lambda: len(h.acked()) == 8)
    assert h.acked() == list(range(1, 9))
    [dead] = h.deadletter_lines()
    assert dead["payload"] == bad_payload.decode()
    assert dead["reason"].startswith("influx rejected 1 of 5 points (4 written): ")
    assert "channel=poison" in dead["reason"]
    # One reading refused, not the message: its other readings are written and confirmed.
    confirmations = [decode_confirmation(a.payload) for a in h.actions
                     if isinstance(a, PublishConfirm)]
    assert [c.rejected for c in confirmations] == [{"SAN-01": [(43, 44, ANY)]}]
    assert confirmations[0].written == {"SAN-01": seq_runs(set(SEQS) - {43})}
    # Every good point reached a successful write (the poisoned message's other 4 points are
    # the vector's own lines); the bad one never did.
    written = [line for call in writer.calls if not any("poison" in x for x in call)
               for line in call]
    assert set(written) == set(LINES)
    stats = h.counters.snapshot()
    assert (stats["rejected_batches"], stats["points_rejected"], stats["deadlettered"],
            stats["messages_written"], stats["readings_rejected"]) == (1, 1, 1, 7, 1)
    # Bisection costs about 2·log2 writes, not one per message.
    assert int(stats["bisect_writes"] or 0) <= 2 * (3 + 3)
    # The batch went with the body the worker made; its parts are encoded by the writer.
    assert writer.bodies[0] == writer.encode(writer.calls[0])
    assert len(writer.bodies) > 1 and all(body is None for body in writer.bodies[1:])


def test_a_rejected_write_that_goes_through_in_parts_is_written(
        harness: Callable[..., Harness]) -> None:
    # Rejected once, then every part succeeds: nothing is bad, nothing dead-lettered.
    h = harness(ScriptedWriter(RejectedWriteError("HTTP 400: partial write: conflict", 400)))
    h.deliver()
    wait_for(lambda: h.acked() == [1])
    assert h.deadletter_lines() == []
    assert h.counters.snapshot()["messages_written"] == 1


def test_batch_size_flushes_before_the_stream_goes_quiet(
        harness: Callable[..., Harness]) -> None:
    writer = GatedWriter()
    h = harness(writer, batch_size=len(LINES) * 2, flush_interval_s=30, quiet_flush_s=30)
    h.deliver()
    wait_for(lambda: len(writer.calls) == 1)  # the write thread was idle: at once
    for _ in range(4):  # while it writes, two full batches: handed over by size alone
        h.deliver()
    wait_for(lambda: h.pipeline.pending == 5)
    writer.gate.set()
    wait_for(lambda: len(h.acked()) == 5)
    assert writer.calls == [LINES, LINES * 2, LINES * 2]  # a message's lines are never split
    assert h.acked() == [1, 2, 3, 4, 5]


def test_flush_interval_bounds_latency_of_a_steady_stream(
        harness: Callable[..., Harness]) -> None:
    h = harness(ScriptedWriter(), flush_interval_s=0.15, quiet_flush_s=30)
    h.deliver()
    wait_for(lambda: h.acked() == [1], timeout_s=1.0)


def test_stop_while_failing_leaves_messages_unacked(harness: Callable[..., Harness]) -> None:
    h = harness(ScriptedWriter(*[RetryableWriteError("down")] * 1000))
    h.deliver()
    h.deliver()
    wait_for(lambda: len(h.writer.calls) >= 2)
    h.stop()
    assert h.actions == []
    assert h.counters.snapshot()["abandoned"] == 2


def test_a_quarter_batch_goes_at_once_to_an_idle_write_thread_a_busy_one_gets_full_batches(
        harness: Callable[..., Harness]) -> None:
    writer = GatedWriter()
    # 8 messages of 5 lines fill a batch; no time-based flush within the test.
    h = harness(writer, batch_size=40, flush_interval_s=30.0, quiet_flush_s=30.0)
    h.deliver()
    time.sleep(0.1)
    assert writer.calls == []  # 5 lines: less than a quarter, waits to grow
    h.deliver()
    wait_for(lambda: len(writer.calls) == 1)  # 10 lines: a quarter, and nothing being written
    assert len(writer.calls[0]) == 10
    for _ in range(12):  # while that write waits: one full batch handed over, 4 messages left
        h.deliver()
    wait_for(lambda: h.pipeline.pending == 14)
    time.sleep(0.1)
    assert len(writer.calls) == 1
    writer.gate.set()
    wait_for(lambda: len(h.acked()) == 14)
    assert [len(call) for call in writer.calls] == [10, 40, 20]
    assert h.acked() == list(range(1, 15))


class SlowOnWriter(ScriptedWriter):
    """Writes that contain ``slow`` wait until the gate opens; the others go through at once.
    Several instances may share one gate (one per write thread)."""

    def __init__(self, gate: threading.Event, slow: str) -> None:
        super().__init__()
        self.gate = gate
        self.slow = slow

    def write(self, lines: list[str], body: bytes | None = None) -> None:
        if any(self.slow in line for line in lines):
            assert self.gate.wait(5)
        super().write(lines, body)


OTHER_PAYLOAD = PAYLOAD.replace(b'"value":1.234', b'"value":1.235')


def test_batches_written_side_by_side_are_acked_in_arrival_order(
        harness: Callable[..., Harness]) -> None:
    gate = threading.Event()
    writers = [SlowOnWriter(gate, "value=1.234"), SlowOnWriter(gate, "value=1.234")]
    # Two messages to a batch, handed over only when full.
    h = harness(writers, batch_size=2 * len(LINES), idle_flush_lines=2 * len(LINES),
                flush_interval_s=30, quiet_flush_s=30)
    h.deliver()
    h.deliver()  # the first batch: its write waits
    h.deliver(OTHER_PAYLOAD)
    h.deliver(OTHER_PAYLOAD)  # the second: written at once, by the other write thread
    wait_for(lambda: sum(len(w.calls) for w in writers) == 1)
    [done] = [w for w in writers if w.calls]
    assert done.calls[0][0].endswith("value=1.235 1763676900")
    time.sleep(0.1)
    assert h.acked() == []  # written, but its turn comes after the first batch
    gate.set()
    wait_for(lambda: len(h.acked()) == 4)
    assert h.acked() == [1, 2, 3, 4]
    assert h.counters.snapshot()["batches_written"] == 2


def test_stopping_while_an_earlier_batch_cannot_be_written_leaves_later_ones_unacked(
        harness: Callable[..., Harness]) -> None:
    class Down(ScriptedWriter):
        def write(self, lines: list[str], body: bytes | None = None) -> None:
            super().write(lines, body)
            if any("value=1.234" in line for line in lines):
                raise RetryableWriteError("refused")

    writers = [Down(), Down()]
    h = harness(writers, batch_size=2 * len(LINES), idle_flush_lines=2 * len(LINES),
                flush_interval_s=30, quiet_flush_s=30)
    for payload in (PAYLOAD, PAYLOAD, OTHER_PAYLOAD, OTHER_PAYLOAD):
        h.deliver(payload)
    wait_for(lambda: sum(len(w.calls) for w in writers) >= 3)  # the second written, first retried
    h.stop()
    assert h.acked() == []  # the second batch was written, but acks never jump the first
    assert h.counters.snapshot()["abandoned"] == 4


@pytest.mark.filterwarnings("ignore::pytest.PytestUnhandledThreadExceptionWarning")
def test_a_dead_write_thread_ends_the_worker_instead_of_stalling_it(tmp_path: Path) -> None:
    """Batches after a dead write thread's can never be settled: the worker must end (the
    service then exits and is restarted; nothing unwritten was acked), not wait forever."""
    emitted: list[Action] = []

    def emit(action: Action) -> None:
        if not emitted:
            emitted.append(action)
            raise RuntimeError("a bug in settling")
        emitted.append(action)

    deadletters = DeadLetterFile("ingest-t", tmp_path / "deadletter.jsonl")
    pipeline = WritePipeline([ScriptedWriter(), ScriptedWriter()], deadletters, Topics(), emit,
                             Counters(), batch_size=len(LINES), flush_interval_s=30,
                             quiet_flush_s=30)
    inbox: queue.Queue[list[Delivery]] = queue.Queue()
    failure: list[BaseException] = []

    def work() -> None:
        try:
            pipeline.run(inbox, threading.Event())
        except BaseException as e:  # noqa: BLE001 - what the test looks for
            failure.append(e)

    worker = threading.Thread(target=work)
    worker.start()
    for mid in range(1, 6):  # a batch per message; the first settle kills its write thread
        inbox.put([Delivery(mid, 1, 1, TOPIC, PAYLOAD)])
    worker.join(5)
    assert not worker.is_alive()
    assert [str(e) for e in failure] == ["an ingest write thread died"]
    assert len(emitted) == 1  # no ack after the batch whose settling failed


def test_stop_writes_what_has_arrived(harness: Callable[..., Harness]) -> None:
    h = harness(ScriptedWriter(), flush_interval_s=30, quiet_flush_s=30)
    h.deliver()
    h.deliver()
    time.sleep(0.05)
    h.stop()
    assert h.acked() == [1, 2]


class PlainWriter:
    """A Writer without encode(), as a wrapper of the ingest's writer may be."""

    def __init__(self) -> None:
        self.calls: list[list[str]] = []

    def write(self, lines: list[str]) -> None:
        self.calls.append(list(lines))

    def close(self) -> None:
        pass


def test_a_writer_that_cannot_take_a_body_gets_the_lines(
        harness: Callable[..., Harness]) -> None:
    h = harness(PlainWriter())
    h.deliver()
    h.deliver()
    wait_for(lambda: h.acked() == [1, 2])
    assert h.writer.calls == [LINES + LINES]


def test_a_writer_bug_does_not_kill_the_worker(harness: Callable[..., Harness]) -> None:
    h = harness(ScriptedWriter(KeyError("oops")))
    h.deliver()
    wait_for(lambda: h.acked() == [1])
    assert h.thread.is_alive()


def test_backoff_grows_with_jitter_and_honours_retry_after() -> None:
    b = Backoff(initial_s=1, max_s=8, jitter=0.5, max_retry_after_s=60)
    for attempt, ceiling in [(0, 1), (1, 2), (2, 4), (3, 8), (10, 8)]:
        delays = {b.delay(attempt) for _ in range(50)}
        assert all(ceiling / 2 <= d <= ceiling for d in delays) and len(delays) > 1
    assert b.delay(0, retry_after=30) == 30
    assert b.delay(0, retry_after=3600) == 60
    assert 0.5 <= b.delay(0, retry_after=0) <= 1
