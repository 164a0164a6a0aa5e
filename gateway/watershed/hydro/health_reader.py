"""The gateways' retained health (``<prefix>/v1/<gateway>/health``, docs/contracts.md), read
once from the broker: their loss ledgers, quarantine and queues, for ``watershed audit``."""

from __future__ import annotations

import json
import logging
import time
import uuid
from typing import Any

from ..contracts.mqtt import QOS, Topics
from ..mqtt import Handlers
from ..mqtt.config import MqttConfig
from ..mqtt.paho_session import PahoSession
from ..mqtt.session import SessionFactory

log = logging.getLogger(__name__)
LOOP_S = 0.05


def retained_health(config: MqttConfig, timeout_s: float = 10.0, quiet_s: float = 0.5, *,
                    session: SessionFactory = PahoSession) -> dict[str, dict[str, Any]]:
    """gateway id -> its last health. The broker sends retained messages right after the
    SUBACK; this waits until ``quiet_s`` passes without one. Raises OSError when the broker
    cannot be reached or refuses."""
    found: dict[str, dict[str, Any]] = {}
    state: dict[str, Any] = {"subscribed": False, "refused": None, "last": time.monotonic()}
    topic = Topics(config.prefix).health("+")

    def on_connect(_present: bool, refused: str | None) -> None:
        if refused is not None:
            state["refused"] = refused
        else:
            client.subscribe(topic, QOS)

    def on_subscribe(refused: list[str]) -> None:
        if refused:
            state["refused"] = f"subscription to {topic} refused (ACL?)"
        state["subscribed"], state["last"] = True, time.monotonic()

    def on_message(topic_: str, payload: bytes, _qos: int, _retain: bool, _mid: int) -> None:
        state["last"] = time.monotonic()
        gateway = topic_.split("/")[-2]
        try:
            found[gateway] = json.loads(payload)
        except ValueError as e:
            log.warning("health of %s is not JSON (%s); left out of the audit", gateway, e)

    client = session(config.endpoint(f"audit-{uuid.uuid4().hex[:12]}", clean_session=True),
                     Handlers(on_connect=on_connect, on_subscribe=on_subscribe,
                              on_message=on_message))
    client.connect()
    deadline = time.monotonic() + timeout_s
    try:
        while time.monotonic() < deadline:
            if state["refused"] is not None:
                raise OSError(f"{config.host}:{config.port}: the broker refused: "
                              f"{state['refused']}")
            if state["subscribed"] and time.monotonic() - state["last"] >= quiet_s:
                return found
            lost = client.loop(LOOP_S)
            if lost is not None:
                raise OSError(f"{config.host}:{config.port}: connection lost: {lost}")
        if not state["subscribed"]:
            raise OSError(f"{config.host}:{config.port}: no SUBACK for {topic} "
                          f"within {timeout_s:g} s")
        return found
    finally:
        client.disconnect()
