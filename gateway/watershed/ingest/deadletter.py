"""Rejected messages, kept in a local JSON-lines file (and published by the service).

The file is the durable copy: a reject is acknowledged on MQTT only after its line is on disk,
so nothing the broker handed us disappears, and the file can be replayed once a fix is in.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

from ..contracts.mqtt import encode_deadletter


class DeadLetterFile:
    def __init__(self, source: str, path: str | Path) -> None:
        self.source = source  # the ingest id: which consumer rejected it
        self.path = Path(path)

    def check_writable(self) -> None:
        """Create the folder and open the file once, so a bad path fails at start, not later."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with open(self.path, "ab"):
            pass

    def encode(self, reason: str, topic: str, payload: bytes) -> bytes:
        """The dead-letter record (contracts.mqtt), the same for the file and the topic."""
        return encode_deadletter(self.source, reason, topic, payload, int(time.time()))

    def append(self, record: bytes) -> None:
        """Append one record as a line, on disk before returning. Raises OSError."""
        with open(self.path, "ab") as f:
            f.write(record + b"\n")
            f.flush()
            os.fsync(f.fileno())
