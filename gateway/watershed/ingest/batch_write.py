"""One write thread's writes to InfluxDB: a batch retried for as long as the failure is
retryable (holding the acks is what makes the broker keep the messages), and when InfluxDB
refuses it, halved until each bad message is alone and then its bad points are found, so the
good readings are written and only the refused ones dead-lettered."""

from __future__ import annotations

import logging
import threading
import time
from typing import Callable

from ..backoff import Backoff
from .batches import Batch, Entry
from .stats import Counters
from .writer import EncodingWriter, RejectedWriteError, RetryableWriteError, Writer

log = logging.getLogger(__name__)

# Retries of a failed write: doubling, with jitter so that several ingest instances do not hammer
# a recovering database in step.
WRITE_RETRY = Backoff(initial_s=0.25, max_s=15.0, jitter=0.5)


# What a write attempt came to: written, rejected by InfluxDB (the error), or given up (stopping).
_GAVE_UP = object()


class BatchWrite:
    """Writes through one writer (one HTTP connection), on the thread that owns it."""

    def __init__(self, writer: Writer, counters: Counters, backoff: Backoff = WRITE_RETRY,
                 observe_write: Callable[[int, float], None] | None = None) -> None:
        self._writer = writer
        self._counters = counters
        self._backoff = backoff
        self._observe_write = observe_write  # (points, seconds) of each confirmed write

    def write(self, batch: Batch, lines: list[str], stopping: threading.Event,
              final: bool) -> bool:
        """True once the batch is settled (written, its bad points found and the rest written);
        False if given up because we are stopping."""
        outcome = self._attempt(lines, stopping, final, batch.body)
        if outcome is _GAVE_UP:
            return False
        if outcome is None:
            self._counters.add("batches_written")
            return True
        assert isinstance(outcome, RejectedWriteError)
        log.error("InfluxDB rejected a batch of %d messages (%s); bisecting for the bad points",
                  len(batch.entries), outcome)
        self._counters.add("rejected_batches")
        return self._bisect([e for e in batch.entries if e.reject is None], outcome, stopping,
                            final)

    def _bisect(self, entries: list[Entry], error: RejectedWriteError,
                stopping: threading.Event, final: bool) -> bool:
        """``entries`` were rejected together: write halves until each bad message is alone,
        then find its bad points. InfluxDB 1.x may have stored the good points of a rejected
        write already; writing them again is harmless (same identity, same point)."""
        if len(entries) == 1:
            return self._bisect_points(entries[0], error, stopping, final)
        middle = len(entries) // 2
        for half in (entries[:middle], entries[middle:]):
            lines = [line for e in half for line in e.lines]
            self._counters.add("bisect_writes")
            outcome = self._attempt(lines, stopping, final)
            if outcome is _GAVE_UP:
                return False
            if isinstance(outcome, RejectedWriteError) and \
                    not self._bisect(half, outcome, stopping, final):
                return False
        return True

    def _bisect_points(self, entry: Entry, error: RejectedWriteError,
                       stopping: threading.Event, final: bool) -> bool:
        """Write the message's good points; dead-letter the message naming the bad ones."""
        bad: list[tuple[str, str]] = []  # (line, InfluxDB's message)
        pending: list[tuple[list[str], RejectedWriteError]] = [(entry.lines, error)]
        while pending:
            lines, why = pending.pop()
            if len(lines) == 1:
                bad.append((lines[0], why.message))
                continue
            middle = len(lines) // 2
            for half in (lines[:middle], lines[middle:]):
                self._counters.add("bisect_writes")
                outcome = self._attempt(half, stopping, final)
                if outcome is _GAVE_UP:
                    return False
                if isinstance(outcome, RejectedWriteError):
                    pending.append((half, outcome))
        if not bad:
            return True  # every part went through on its own: the message is written
        self._counters.add("points_rejected", len(bad))
        # The readings whose points InfluxDB refused are rejected (dead-lettered, and refused in
        # the confirmation); the rest of the message is written.
        converted = entry.converted
        assert converted is not None
        seq_of = dict(zip(converted.lines, converted.line_seqs))
        entry.refused = [(seq_of[line], f"influx rejected {line!r}: {why}") for line, why in bad]
        self._counters.add("readings_rejected", len({seq for seq, _ in entry.refused}))
        written = len(entry.lines) - len(bad)
        details = "; ".join(f"{line!r}: {why}" for line, why in bad[:5])
        entry.refused_reason = (f"influx rejected {len(bad)} of {len(entry.lines)} points "
                                f"({written} written): {details}")
        return True

    def _attempt(self, lines: list[str], stopping: threading.Event, final: bool,
                 body: bytes | None = None) -> RejectedWriteError | None | object:
        """Write ``lines`` (``body``: their EncodingWriter.encode, if made), retrying for as long
        as the failure is retryable (holding the acks is what makes the broker keep the
        messages). None when written, the RejectedWriteError when InfluxDB refused the data,
        _GAVE_UP when stopping."""
        attempt = 0
        while True:
            started = time.monotonic()
            try:
                writer = self._writer
                if body is not None and isinstance(writer, EncodingWriter):
                    writer.write(lines, body)
                else:
                    writer.write(lines)
            except RejectedWriteError as e:
                return e
            except RetryableWriteError as e:
                error = e
            except Exception as e:  # a writer bug must not kill the worker (and stall the stream)
                log.exception("unexpected error writing to InfluxDB")
                error = RetryableWriteError(repr(e))
            else:
                self._counters.add("points_written", len(lines))
                if self._observe_write is not None:
                    self._observe_write(len(lines), time.monotonic() - started)
                return None
            self._counters.add("write_failures")
            self._counters.set("last_write_error", error.message)
            if final or stopping.is_set():
                return _GAVE_UP
            delay = self._backoff.delay(attempt, error.retry_after)
            attempt += 1
            log.warning("write of %d points failed (%s); retry %d in %.2f s",
                        len(lines), error, attempt, delay)
            if stopping.wait(delay):
                return _GAVE_UP
