"""What the ingest's worker holds of each message, and what it tells the network thread to do.

A ``Delivery`` is an MQTT message as received; an ``Entry`` is one converted (or refused), with
whatever InfluxDB refused of it; a ``Batch`` is the entries written together. The worker emits
``Action``s, performed by the network thread in order: an end-to-end confirmation
(``PublishConfirm``), dead letters, then the acks of the messages they concern.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

from ..contracts.confirm import ConfirmationBuilder, encode_confirmation
from ..contracts.mqtt import Topics
from .messages import Converted


@dataclass(frozen=True, slots=True)
class Delivery:
    """One MQTT message as received."""
    mid: int
    qos: int
    session: int  # the MQTT connection it came on; an ack is valid only on that one
    topic: str
    payload: bytes


@dataclass(frozen=True, slots=True)
class Ack:
    mid: int
    qos: int
    session: int


@dataclass(frozen=True, slots=True)
class PublishDeadLetter:
    record: bytes


@dataclass(frozen=True, slots=True)
class PublishConfirm:
    """An end-to-end confirmation for one gateway; published before the acks that follow it."""
    topic: str
    payload: bytes


Action = Ack | PublishDeadLetter | PublishConfirm


@dataclass(slots=True)
class Entry:
    delivery: Delivery
    converted: Converted | None  # None: the message could not be read at all
    reject: str | None = None  # why the message as a whole is not written (then dead-lettered)
    # Readings whose points InfluxDB refused (found by bisection), and the dead letter's words.
    refused: list[tuple[int, str]] = field(default_factory=list)
    refused_reason: str | None = None

    def dead_letter_reason(self) -> str | None:
        parts = [self.reject] if self.reject is not None else []
        if self.converted is not None and self.converted.rejected:
            parts.append(self.converted.reason())
        if self.refused_reason is not None:
            parts.append(self.refused_reason)
        return "; ".join(parts) or None

    @property
    def lines(self) -> list[str]:
        return self.converted.lines if self.converted is not None else []


@dataclass(slots=True)
class Batch:
    entries: list[Entry] = field(default_factory=list)
    number: int = 0  # in the order made: batches are settled in this order
    line_count: int = 0
    started: float = 0.0  # monotonic time of the first entry
    final: bool = False  # made after stop: one write attempt
    body: bytes | None = None  # EncodingWriter.encode(lines()), made when handed over

    def add(self, entry: Entry) -> None:
        if not self.entries:
            self.started = time.monotonic()
        self.entries.append(entry)
        self.line_count += len(entry.lines)

    def age(self) -> float:
        return time.monotonic() - self.started if self.entries else 0.0

    def lines(self) -> list[str]:
        return [line for e in self.entries if e.reject is None for line in e.lines]

    def confirmations(self, ingest_id: str, topics: Topics) -> list[PublishConfirm]:
        """One confirmation per gateway of the batch's messages: which readings are written
        and which were refused (contracts/confirm.py)."""
        builder = ConfirmationBuilder()
        for entry in self.entries:
            c = entry.converted
            if c is None:
                continue  # unreadable: no reading of it can be named
            if c.line_seqs:
                builder.written(c.gateway, c.station, c.line_seqs)
            for seq, reason in [*c.rejected, *entry.refused]:
                if seq is not None:
                    builder.rejected(c.gateway, c.station, seq, reason)
        return [PublishConfirm(topics.confirm(gateway), encode_confirmation(confirmation))
                for gateway, confirmation in builder.confirmations(ingest_id).items()] \
            if builder else []
