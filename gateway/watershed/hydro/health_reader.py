"""The gateways' retained health (``<prefix>/v1/<gateway>/health``, docs/contracts.md), read
once from the broker: their loss ledgers, quarantine and queues, for ``watershed audit``."""

from __future__ import annotations

import json
import logging
import threading
import time
import uuid
from typing import Any

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion

from ..contracts.mqtt import Topics
from ..mqtt.config import MqttConfig

log = logging.getLogger(__name__)


def retained_health(config: MqttConfig, timeout_s: float = 10.0, quiet_s: float = 0.5
                    ) -> dict[str, dict[str, Any]]:
    """gateway id -> its last health. The broker sends retained messages right after the
    SUBACK; this waits until ``quiet_s`` passes without one. Raises OSError when the broker
    cannot be reached."""
    found: dict[str, dict[str, Any]] = {}
    subscribed = threading.Event()
    last = [time.monotonic()]
    topic = Topics(config.prefix).health("+")

    def on_connect(client: mqtt.Client, _u: object, _f: object, reason: Any, _p: object) -> None:
        if not reason.is_failure:
            client.subscribe(topic, qos=1)

    def on_subscribe(*_args: object) -> None:
        last[0] = time.monotonic()
        subscribed.set()

    def on_message(_c: mqtt.Client, _u: object, message: mqtt.MQTTMessage) -> None:
        last[0] = time.monotonic()
        gateway = message.topic.split("/")[-2]
        try:
            found[gateway] = json.loads(message.payload)
        except ValueError as e:
            log.warning("health of %s is not JSON (%s); left out of the audit", gateway, e)

    client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=f"audit-{uuid.uuid4().hex[:12]}")
    if config.username:
        client.username_pw_set(config.username, config.password)
    client.on_connect, client.on_subscribe, client.on_message = on_connect, on_subscribe, on_message
    client.connect(config.host, config.port)
    client.loop_start()
    try:
        deadline = time.monotonic() + timeout_s
        if not subscribed.wait(timeout_s):
            raise OSError(f"{config.host}:{config.port}: no SUBACK for {topic} "
                          f"within {timeout_s:g} s")
        while time.monotonic() < deadline and time.monotonic() - last[0] < quiet_s:
            time.sleep(0.05)
    finally:
        client.loop_stop()
        client.disconnect()
    return found
