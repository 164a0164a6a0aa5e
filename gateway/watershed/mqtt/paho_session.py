"""The one adapter to paho-mqtt (2.x, pinned below 3 in pyproject.toml): a ``Session`` on paho.

Everything here that touches paho's private parts is for the ingest's speed. The ingest's
integration tests run every message and every ack through it, and
tests/integration/test_mqtt_paho_session.py pins each against a real broker:

- read-ahead (``Endpoint.read_ahead``): paho reads a packet a few bytes at a time (the type byte,
  each byte of the remaining length, then the body), some four ``recv()`` calls a message. The
  client overrides paho's private ``_sock_recv`` to read 64 KiB at once and hand paho the pieces.
- batched PUBACKs: ``ack()`` queues every QoS 1 PUBACK of a round as one write through paho's
  private ``_packet_queue``, not a ``send()`` and a wake-up byte apiece. Each of those calls lets
  go of the GIL, and getting it back from the ingest's busy worker can take a switch interval.
- ``wake()`` sends a byte to paho's private ``_sockpairW``, the socket pair paho selects on and
  itself writes to for exactly this. If a paho version lacks it, ``loop()`` returns at its
  timeout instead.
"""

from __future__ import annotations

import struct
from collections.abc import Sequence
from typing import Any

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion, MQTTErrorCode

from .session import NOT_UTF8_TOPIC, Endpoint, Handlers

READ_AHEAD = 65536
_PUBACK = struct.Struct("!BBH")  # MQTT 3.1.1 PUBACK: type, remaining length 2, packet id


class _ReadAheadClient(mqtt.Client):
    """paho's client, reading its socket ahead (module docstring)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._ahead = b""
        self._ahead_at = 0

    def buffered(self) -> bool:
        """Bytes read from the socket and not yet handed to paho: select() cannot see them."""
        return self._ahead_at < len(self._ahead)

    def reconnect(self) -> MQTTErrorCode:
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


class PahoSession:
    """A ``Session`` (session.py) on one paho client."""

    def __init__(self, endpoint: Endpoint, handlers: Handlers) -> None:
        self.endpoint = endpoint
        self._handlers = handlers
        cls = _ReadAheadClient if endpoint.read_ahead else mqtt.Client
        client = cls(CallbackAPIVersion.VERSION2, client_id=endpoint.client_id,
                     clean_session=endpoint.clean_session, protocol=mqtt.MQTTv311,
                     manual_ack=endpoint.manual_ack)
        if endpoint.username:
            client.username_pw_set(endpoint.username, endpoint.password or None)
        if endpoint.tls:
            client.tls_set(ca_certs=endpoint.ca_file or None, certfile=endpoint.cert_file or None,
                           keyfile=endpoint.key_file or None)
        if endpoint.will is not None:
            client.will_set(*endpoint.will)
        if endpoint.max_inflight is not None:
            client.max_inflight_messages_set(endpoint.max_inflight)
        client.on_connect = self._on_connect
        client.on_disconnect = self._on_disconnect
        client.on_subscribe = self._on_subscribe
        client.on_publish = self._on_publish
        # on_message, not message_callback_add: $share filters do not match it (paho #472).
        client.on_message = self._on_message
        self._client = client
        self._read_ahead = client if isinstance(client, _ReadAheadClient) else None
        self._ever_connected = False
        self._arrived = 0  # messages received: does a read bring one?

    def connect(self) -> None:
        if self._ever_connected:
            self._client.reconnect()
        else:
            self._client.connect(self.endpoint.host, self.endpoint.port, self.endpoint.keepalive_s)
            self._ever_connected = True

    def is_open(self) -> bool:
        return self._client.socket() is not None

    def loop(self, timeout: float, read_burst: int = 0) -> str | None:
        client = self._client
        # Bytes read ahead are invisible to loop()'s select(): then do not wait in it.
        if self._read_ahead is not None and self._read_ahead.buffered():
            timeout = 0
        rc = client.loop(timeout=timeout)
        if rc != MQTTErrorCode.MQTT_ERR_SUCCESS:
            return mqtt.error_string(rc)
        # loop() reads one packet (paho's loop_read ignores max_packets), so a backlog would
        # cost a select() and a round of housekeeping per message: read on while reads bring
        # messages or bytes wait read ahead.
        for _ in range(read_burst):
            arrived = self._arrived
            if client.loop_read() != MQTTErrorCode.MQTT_ERR_SUCCESS:
                break
            if self._arrived == arrived and not (self._read_ahead is not None
                                                 and self._read_ahead.buffered()):
                break
        return None

    def publish(self, topic: str, payload: bytes, qos: int, retain: bool = False) -> int:
        return self._client.publish(topic, payload, qos=qos, retain=retain).mid

    def subscribe(self, topic: str, qos: int) -> None:
        self._client.subscribe(topic, qos=qos)

    def ack(self, mids: Sequence[int], qos: int = 1) -> None:
        if not mids:
            return
        if qos != 1:
            for mid in mids:
                self._client.ack(mid, qos)
            return
        packets = b"".join([_PUBACK.pack(mqtt.PUBACK, 2, mid) for mid in mids])
        self._client._packet_queue(mqtt.PUBACK, packets, 0, 1)

    def disconnect(self) -> None:
        self._client.disconnect()

    def wake(self) -> None:
        wake = getattr(self._client, "_sockpairW", None)
        if wake is not None:
            try:
                wake.send(b"\0")
            except OSError:  # full (a wake-up is pending anyway) or closed by a reconnect
                pass

    # --- paho's callbacks, as the Handlers' ------------------------------------------------

    def _on_connect(self, client: mqtt.Client, userdata: object, flags: mqtt.ConnectFlags,
                    reason_code: Any, properties: object) -> None:
        self._handlers.on_connect(bool(flags.session_present),
                                  str(reason_code) if reason_code.is_failure else None)

    def _on_disconnect(self, client: mqtt.Client, userdata: object, flags: object,
                       reason_code: Any, properties: object) -> None:
        self._handlers.on_disconnect(str(reason_code))

    def _on_subscribe(self, client: mqtt.Client, userdata: object, mid: int,
                      reason_codes: list[Any], properties: object) -> None:
        self._handlers.on_subscribe([str(rc) for rc in reason_codes if rc.is_failure])

    def _on_publish(self, client: mqtt.Client, userdata: object, mid: int, reason_code: Any,
                    properties: object) -> None:
        self._handlers.on_publish(mid)

    def _on_message(self, client: mqtt.Client, userdata: object,
                    message: mqtt.MQTTMessage) -> None:
        try:
            topic = message.topic
        except UnicodeDecodeError:
            topic = NOT_UTF8_TOPIC  # refused by the program like any other unexpected topic
        self._arrived += 1
        self._handlers.on_message(topic, bytes(message.payload), message.qos, bool(message.retain),
                                  message.mid)
