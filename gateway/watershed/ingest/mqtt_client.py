"""The ingest's paho client: reads its socket ahead and sends a round's PUBACKs in one write.

paho reads a packet a few bytes at a time: the type byte, each byte of the remaining length, then
the body, so some four ``recv()`` calls a message; and ``ack()`` queues each PUBACK on its own, a
``send()`` apiece plus a wake-up byte to paho's socket pair. Each call lets go of the GIL, and
getting it back from the ingest's busy worker can take a switch interval: the network thread
spent most of a backlog's drain waiting there, and the worker then waited for messages.

It uses two of paho's private methods (paho-mqtt 2.x, pinned below 3): ``_sock_recv``, which it
overrides, and ``_packet_queue``, which queues bytes for paho's writer. The ingest's integration
tests run every message and every ack through them.
"""

from __future__ import annotations

import struct
from collections.abc import Sequence
from typing import Any

import paho.mqtt.client as mqtt

READ_AHEAD = 65536
_PUBACK = struct.Struct("!BBH")  # MQTT 3.1.1 PUBACK: type, remaining length 2, packet id


class IngestClient(mqtt.Client):
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._ahead = b""
        self._ahead_at = 0

    def ack_all(self, mids: Sequence[int]) -> mqtt.MQTTErrorCode:
        """Acknowledge these QoS 1 messages (``manual_ack``), in this order, in one write."""
        if not mids:
            return mqtt.MQTTErrorCode.MQTT_ERR_SUCCESS
        packets = b"".join([_PUBACK.pack(mqtt.PUBACK, 2, mid) for mid in mids])
        return self._packet_queue(mqtt.PUBACK, packets, 0, 1)

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
