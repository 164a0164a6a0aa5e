"""``watershed gateway op``: one remote operation sent to a gateway over MQTT, and its result.

The same for a person at the gateway (the broker on the uplink is reachable from it) and one in
the office: the command goes to ``<prefix>/v1/<gw>/cmd`` (remote.py runs it on the station's
link) and the answer with the same ``id`` comes on ``…/cmd/result``. Credentials are the
config's ``[mqtt]`` ones unless given (the broker's ACL lets the ``operator`` user write commands
to any gateway and read their results; deploy/mosquitto/watershed.acl).
"""

from __future__ import annotations

import json
import time
import uuid
from typing import Any

from watershed.contracts.mqtt import QOS, Topics
from watershed.mqtt import Handlers
from watershed.mqtt.paho_session import PahoSession
from watershed.mqtt.session import SessionFactory

from .config import GatewayMqttConfig

LOOP_S = 0.1


class OperationTimeout(TimeoutError):
    pass


def command_body(op: str, station: str, **fields: Any) -> dict[str, Any]:
    """The JSON of a remote operation (remote.py), with a fresh id."""
    return {"id": f"op-{uuid.uuid4().hex[:12]}", "op": op, "station": station, **fields}


def send_operation(gateway_id: str, mqtt: GatewayMqttConfig, body: dict[str, Any], timeout_s: float,
                   *, session: SessionFactory = PahoSession) -> dict[str, Any]:
    """Publish ``body`` on the gateway's command topic and wait for its result (matched by id).
    Raises OSError if the broker cannot be reached, OperationTimeout if no result comes."""
    topics = Topics(mqtt.prefix)
    result_topic = topics.command_result(gateway_id)
    state: dict[str, Any] = {"subscribed": False, "result": None, "refused": None}

    def on_connect(_present: bool, refused: str | None) -> None:
        if refused is not None:
            state["refused"] = refused
            return
        client.subscribe(result_topic, QOS)

    def on_subscribe(refused: list[str]) -> None:
        if refused:
            state["refused"] = f"subscription to {result_topic} refused (ACL?)"
            return
        state["subscribed"] = True
        client.publish(topics.command(gateway_id), json.dumps(body).encode(), QOS)

    def on_message(topic: str, payload: bytes, qos: int, retain: bool, mid: int) -> None:
        try:
            answer = json.loads(payload)
        except ValueError:
            return
        if isinstance(answer, dict) and answer.get("id") == body["id"]:
            state["result"] = answer

    client = session(
        mqtt.endpoint(f"watershed-op-{uuid.uuid4().hex[:8]}", keepalive_s=mqtt.keepalive_s,
                      clean_session=True),
        Handlers(on_connect=on_connect, on_subscribe=on_subscribe, on_message=on_message))
    client.connect()
    deadline = time.monotonic() + timeout_s
    try:
        while state["result"] is None:
            if state["refused"] is not None:
                raise OSError(f"the broker refused: {state['refused']}")
            if time.monotonic() > deadline:
                raise OperationTimeout(
                    f"no result from gateway {gateway_id} within {timeout_s:.0f} s"
                    + ("" if state["subscribed"] else " (not even connected to the broker)"))
            lost = client.loop(LOOP_S)
            if lost is not None:
                raise OSError(f"connection to the broker lost: {lost}")
        return dict(state["result"])
    finally:
        client.disconnect()
