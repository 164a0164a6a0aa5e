"""What a test consumer does that the ingest does: announce itself to the gateways.

A gateway publishes readings only while the broker holds a retained ingest status under
``<prefix>/v1/ingest/+/status`` (``[mqtt] require_consumer``, contracts.md 2): a broker
acknowledges and drops a message no subscription matches. A test that reads a gateway's readings
with a bare paho subscriber instead of the ingest subscribes first (persistent session) and then
calls ``announce_consumer`` on its broker, as the ingest publishes its status after its SUBACK.
"""

from __future__ import annotations

import json
import time
import uuid

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion

from watershed.contracts.mqtt import DEFAULT_PREFIX, Topics

TEST_CONSUMER = "test-consumer"


def announce_consumer(port: int, *, ingest_id: str = TEST_CONSUMER, state: str = "online",
                      prefix: str = DEFAULT_PREFIX, host: str = "127.0.0.1") -> None:
    """Publish a retained ingest status (QoS 1) and wait for the broker's PUBACK."""
    payload = json.dumps({"v": 1, "ingest": ingest_id, "state": state,
                          "since": int(time.time()), "at": int(time.time())},
                         separators=(",", ":")).encode()
    publish_retained(port, Topics(prefix).ingest_status(ingest_id), payload, host=host)


def clear_consumer(port: int, *, ingest_id: str = TEST_CONSUMER,
                   prefix: str = DEFAULT_PREFIX, host: str = "127.0.0.1") -> None:
    """Delete that retained status (an empty retained message)."""
    publish_retained(port, Topics(prefix).ingest_status(ingest_id), b"", host=host)


def publish_retained(port: int, topic: str, payload: bytes, host: str = "127.0.0.1") -> None:
    client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=f"announce-{uuid.uuid4().hex[:8]}")
    client.connect(host, port, keepalive=5)
    client.loop_start()
    try:
        info = client.publish(topic, payload, qos=1, retain=True)
        info.wait_for_publish(timeout=10)
        if not info.is_published():
            raise RuntimeError(f"the broker on port {port} did not acknowledge {topic}")
    finally:
        client.disconnect()
        client.loop_stop()
