"""A paho client that reads its socket ahead.

paho reads a packet a few bytes at a time: the type byte, each byte of the remaining length, then
the body, so some four ``recv()`` calls a message. Each lets go of the GIL, and getting it back
from the ingest's busy worker can take a switch interval: the network thread spent most of a
backlog's drain waiting there, and the worker then waited for messages. Read ahead in large
chunks, paho's small reads are served from memory.

It overrides paho's one private read method, ``_sock_recv`` (paho-mqtt 2.x); the ingest's
integration tests run every message through it.
"""

from __future__ import annotations

from typing import Any

import paho.mqtt.client as mqtt

READ_AHEAD = 65536


class ReadAheadClient(mqtt.Client):
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._ahead = b""
        self._ahead_at = 0

    def buffered(self) -> bool:
        """Bytes read from the socket and not yet handed to paho: select() cannot see them, so
        call loop_read() until this is false."""
        return self._ahead_at < len(self._ahead)

    def reconnect(self) -> mqtt.MQTTErrorCode:
        # A new connection: nothing read on the old one may be parsed on it.
        self._ahead, self._ahead_at = b"", 0
        return super().reconnect()

    def _sock_recv(self, bufsize: int) -> bytes:
        if self._ahead_at >= len(self._ahead):
            data = super()._sock_recv(max(bufsize, READ_AHEAD))  # raises as paho expects
            if len(data) <= bufsize:  # all of it fits, or b"": the connection closed
                return data
            self._ahead, self._ahead_at = data, 0
        at = self._ahead_at
        chunk = self._ahead[at:at + bufsize]
        self._ahead_at = at + len(chunk)
        return chunk
