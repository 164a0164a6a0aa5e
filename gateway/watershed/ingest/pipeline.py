"""The ingest's worker: batch messages, write them, and say in arrival order what to acknowledge.

The MQTT network thread puts the messages of each read (``Delivery`` lists) into the inbox (one
put per round rather than per message: each wakes this thread). This worker
turns each into line protocol and batches them; its write thread writes the batches, one at a
time in the order they were made, and only once a batch is confirmed written emits, message by
message in arrival order, what the network thread must do: publish a dead-letter record if the
message, or some of its readings, was rejected, then acknowledge it. Before a batch's acks it
emits the batch's end-to-end confirmations, one per gateway (contracts/confirm.py): which readings
are now in InfluxDB and which were refused, so the gateways can let go of exactly those. Until a batch is confirmed written its messages stay
unacknowledged, so if we die the broker redelivers them (to us, or another instance of the group).

Converting the next batch (CPU) overlaps writing (mostly waiting on InfluxDB): the worker hands
batches to one write thread per writer given (each writer is one HTTP connection), through a
queue of at most ``ready_batches`` batches, so memory stays bounded (the batches being written,
those ready, the one being filled) and a slow database holds the worker back, and through it the
broker (nothing is acked). With several write threads InfluxDB takes batches side by side (it
parses and indexes each on its own cores); a batch written early waits for its turn to be
settled, so acks still go out in arrival order. The worker also makes each batch's request
body if the writer lets it (``EncodingWriter``): the write thread should do nothing but write,
because each time it lets go of the GIL (compressing, sending) it may wait a switch interval
(5 ms) for the busy worker to give it back.

Each write thread writes through its own ``BatchWrite`` (batch_write.py): retries, and the
points InfluxDB refuses found by bisection.

It never calls paho itself (see service.py for why).
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from typing import Callable, Sequence

from ..backoff import Backoff
from ..contracts.mqtt import PayloadError, Topics
from .batch_write import WRITE_RETRY, BatchWrite
from .batches import Ack, Action, Batch, Delivery, Entry, PublishDeadLetter
from .deadletter import DeadLetterFile
from .messages import Converted, convert_readings
from .stats import Counters
from .writer import EncodingWriter, Writer

log = logging.getLogger(__name__)

# Write as soon as no message has arrived for this long. Besides cutting latency, this is what
# keeps throughput up: the broker sends only a window of unacknowledged messages (mosquitto's
# max_inflight_messages, 20 by default; deploy/mosquitto/watershed.conf raises it to 1000), and
# acks come only after a write, so once the window is full nothing more arrives until we write;
# waiting out flush_interval_s would stall each window.
QUIET_FLUSH_S = 0.05
_IDLE_POLL_S = 0.1  # how often an idle worker checks for stop
_HELD_POLL_S = 0.005
READY_BATCHES = 1  # batches made and waiting for the write thread (besides the one it writes)
# A batch this large (as a share of batch_size) goes at once when the write thread has nothing to
# do: a backlog's first write starts after a quarter of a batch instead of a whole one, and a
# stream the worker cannot keep up with is written in smaller batches instead of waiting.
IDLE_FLUSH_SHARE = 4

COUNTERS = ("invalid", "deadlettered", "deadletter_file_errors", "messages_written",
            "points_written", "points_rejected", "readings_rejected", "batches_written",
            "write_failures", "rejected_batches", "bisect_writes", "abandoned", "confirmations")

class WritePipeline:
    def __init__(self, writer: Writer | Sequence[Writer], deadletters: DeadLetterFile,
                 topics: Topics,
                 emit: Callable[[Action], None], counters: Counters, *, batch_size: int,
                 flush_interval_s: float, backoff: Backoff = WRITE_RETRY,
                 quiet_flush_s: float = QUIET_FLUSH_S,
                 convert: Callable[[str, bytes], Converted] | None = None,
                 observe_write: Callable[[int, float], None] | None = None,
                 settled: Callable[[], None] | None = None,
                 ready_batches: int = READY_BATCHES,
                 idle_flush_lines: int | None = None, ingest_id: str = "ingest") -> None:
        # One write thread per writer; all of one kind, so one writer's body suits them all.
        self._writers = list(writer) if isinstance(writer, (list, tuple)) else [writer]
        # A writer that takes its request body made beforehand gets it from this thread.
        first = self._writers[0]
        self._encoding = first if isinstance(first, EncodingWriter) else None
        self._deadletters = deadletters
        self._topics = topics
        self._emit = emit
        self._counters = counters
        self._batch_size = batch_size
        self._idle_flush_lines = idle_flush_lines or max(1, batch_size // IDLE_FLUSH_SHARE)
        self._flush_interval_s = flush_interval_s
        self._backoff = backoff
        self._quiet_flush_s = min(quiet_flush_s, flush_interval_s)
        self._batch = Batch()  # the worker's, being filled
        self._held = False  # the worker's batch is due but the write thread had no room
        # Made batches for the write thread, in order; None: no more.
        self._ready: queue.Queue[Batch | None] = queue.Queue(maxsize=max(1, ready_batches))
        self._unsettled = 0  # messages taken from the inbox, not yet acked or abandoned
        self.taken = 0  # messages taken from the inbox (the worker writes, others read)
        self._unsettled_lock = threading.Lock()
        self._abandoning = False  # write thread only: stopping and a batch was left unacked
        self._busy = [False] * len(self._writers)  # each write thread's: it has a batch
        self._made = 0  # worker only: batches handed over
        self._turn = threading.Condition()  # write threads: whose batch is settled next
        self._next_to_settle = 0  # guarded by _turn
        self._broken = False  # guarded by _turn: a write thread died; no batch after its settles
        # topic, payload -> Converted (raises PayloadError); the contract alone unless configured
        self._convert = convert or (lambda topic, payload: convert_readings(topics, topic,
                                                                            payload))
        self._ingest_id = ingest_id
        self._observe_write = observe_write  # (points, seconds) of each confirmed write
        self._settled = settled  # called once a batch's actions are all emitted

    @property
    def pending(self) -> int:
        """Messages taken from the inbox and not yet settled (written or dead-lettered)."""
        return self._unsettled

    def run(self, inbox: queue.Queue[list[Delivery]], stopping: threading.Event) -> None:
        """Work until ``stopping`` is set, then make one last attempt with what has arrived;
        returns once the write thread has finished with every batch."""
        name = threading.current_thread().name
        writing = [threading.Thread(target=self._write_loop, args=(n, writer, stopping),
                                    name=f"{name}-post{n or ''}", daemon=True)
                   for n, writer in enumerate(self._writers)]
        for thread in writing:
            thread.start()
        try:
            self._convert_loop(inbox, stopping, writing)
        finally:
            for _ in writing:
                self._hand_over(None, writing)
            for thread in writing:
                thread.join()

    def _convert_loop(self, inbox: queue.Queue[list[Delivery]], stopping: threading.Event,
                      writing: list[threading.Thread]) -> None:
        last_arrival = time.monotonic()
        idle_poll_s = min(self._quiet_flush_s, _IDLE_POLL_S)
        while not stopping.is_set():
            big_enough = self._batch.line_count >= self._idle_flush_lines
            try:
                # A quiet batch the write thread had no room for, or one big enough to go once
                # the write thread is idle: look again soon.
                deliveries = inbox.get(timeout=_HELD_POLL_S if self._held or big_enough
                                       else idle_poll_s)
            except queue.Empty:
                if self._batch.entries and (
                        time.monotonic() - last_arrival >= self._quiet_flush_s
                        or self._batch.age() >= self._flush_interval_s):
                    # A quiet stream: hand over what there is, unless the write thread has
                    # enough to do (then this batch may still grow).
                    self._flush(writing, wait=self._batch.age() >= self._flush_interval_s)
                elif big_enough and self._write_thread_idle():
                    self._flush(writing, wait=False)
                continue
            last_arrival = time.monotonic()
            self._take(len(deliveries))
            for delivery in deliveries:
                self._batch.add(self._entry(delivery))
                if (self._batch.line_count >= self._batch_size
                        or self._batch.age() >= self._flush_interval_s):
                    self._flush(writing)
                elif self._batch.line_count >= self._idle_flush_lines \
                        and self._write_thread_idle():
                    self._flush(writing, wait=False)
        while True:
            try:
                deliveries = inbox.get_nowait()
            except queue.Empty:
                break
            self._take(len(deliveries))
            for delivery in deliveries:
                self._batch.add(self._entry(delivery))
        if self._batch.entries:
            self._batch.final = True
            self._flush(writing)

    def _write_thread_idle(self) -> bool:
        # Seen from here a moment late at worst: then one batch goes a little smaller.
        return not all(self._busy) and self._ready.empty()

    def _take(self, n: int) -> None:
        """``n`` messages taken from the inbox, about to be added to batches."""
        self.taken += n
        with self._unsettled_lock:
            self._unsettled += n

    def _flush(self, writing: list[threading.Thread], wait: bool = True) -> None:
        """Hand the batch to the write thread; with ``wait`` False only if one fits at once (this
        thread is the only one to put, so room seen is room kept)."""
        if not wait and self._ready.full():
            self._held = True
            return
        self._held = False
        lines = self._batch.lines()
        if lines and self._encoding is not None:
            self._batch.body = self._encoding.encode(lines)
        self._batch.number = self._made
        self._made += 1
        self._hand_over(self._batch, writing)
        self._batch = Batch()

    def _hand_over(self, batch: Batch | None, writing: list[threading.Thread]) -> None:
        while True:
            try:
                self._ready.put(batch, timeout=_IDLE_POLL_S)
                return
            except queue.Full:
                alive = [thread.is_alive() for thread in writing]
                if batch is None:  # the end: only for the write threads still there
                    if not any(alive):
                        return
                elif self._broken or not all(alive):
                    # No batch can be settled past a dead write thread's: let the service die
                    # (and be restarted) rather than stall; nothing unwritten was acked.
                    raise RuntimeError("an ingest write thread died") from None

    def _entry(self, delivery: Delivery) -> Entry:
        try:
            converted = self._convert(delivery.topic, delivery.payload)
        except PayloadError as e:
            reason = str(e)
        except Exception as e:  # a bug in conversion must reject one message, not stop the worker
            log.exception("cannot convert a message on %s", delivery.topic)
            reason = f"cannot convert: {e!r}"
        else:
            if converted.rejected:  # refused by validation, in part or whole: dead-lettered
                self._counters.add("invalid")
                self._counters.add("readings_rejected", len(converted.rejected))
            return Entry(delivery, converted)
        self._counters.add("invalid")
        return Entry(delivery, None, reject=reason)

    # -- the write thread ------------------------------------------------------------------------

    def _write_loop(self, n: int, writer: Writer, stopping: threading.Event) -> None:
        writes = BatchWrite(writer, self._counters, self._backoff, self._observe_write)
        try:
            while True:
                self._busy[n] = False
                batch = self._ready.get()
                if batch is None:
                    return
                self._busy[n] = True
                self._write_batch(batch, writes, stopping)
        except BaseException:
            with self._turn:  # the other write threads must not wait for this one's turn
                self._broken = True
                self._turn.notify_all()
            raise

    def _write_batch(self, batch: Batch, writes: BatchWrite, stopping: threading.Event) -> None:
        lines = batch.lines()
        written = not self._abandoning and (
            not lines or writes.write(batch, lines, stopping, batch.final))
        with self._turn:
            while self._next_to_settle != batch.number:
                if self._broken:
                    raise RuntimeError("another ingest write thread died")
                self._turn.wait()
            self._settle_in_turn(batch, written)  # raising: _write_loop marks us broken
            self._next_to_settle += 1
            self._turn.notify_all()

    def _settle_in_turn(self, batch: Batch, written: bool) -> None:
        if self._abandoning or not written:
            # Stopping while InfluxDB is unreachable: leave these unacknowledged; the broker keeps
            # them in our persistent session (or gives them to another instance of the group).
            # So do all the batches after it, so that acks still go out in arrival order.
            self._abandoning = True
            self._counters.add("abandoned", len(batch.entries))
            log.warning("stopping: %d messages left unacknowledged for redelivery",
                        len(batch.entries))
            self._release(batch)
        else:
            self._settle(batch)

    def _release(self, batch: Batch) -> None:
        with self._unsettled_lock:
            self._unsettled -= len(batch.entries)

    def _settle(self, batch: Batch) -> None:
        """Confirm to the gateways, dead-letter the rejects and acknowledge every message, in
        arrival order."""
        # Counted before the acks go out: whoever sees an ack sees the numbers that go with it.
        self._counters.add("messages_written",
                           sum(e.dead_letter_reason() is None for e in batch.entries))
        self._release(batch)
        self._confirm(batch)
        for entry in batch.entries:
            d = entry.delivery
            reason = entry.dead_letter_reason()
            if reason is not None:
                self._deadletter(d, reason)
            self._emit(Ack(d.mid, d.qos, d.session))
        if self._settled is not None:
            self._settled()

    def _confirm(self, batch: Batch) -> None:
        """Tell each gateway which of its readings are now written and which were refused,
        before the broker is told the messages may go (the acks): a crash between the two costs
        a duplicate write, never a reading the gateway let go of unwritten."""
        for action in batch.confirmations(self._ingest_id, self._topics):
            self._emit(action)
            self._counters.add("confirmations")

    def _deadletter(self, d: Delivery, reason: str) -> None:
        record = self._deadletters.encode(reason, d.topic, d.payload)
        try:
            self._deadletters.append(record)
        except OSError as e:
            # Still acked: blocking the stream on a full disk would not save the message either;
            # it is logged, counted and published.
            log.error("cannot append to %s: %s; dead letter was %s", self._deadletters.path, e,
                      record.decode())
            self._counters.add("deadletter_file_errors")
        self._counters.add("deadlettered")
        self._emit(PublishDeadLetter(record))
