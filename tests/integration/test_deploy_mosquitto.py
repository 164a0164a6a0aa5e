"""deploy/mosquitto/watershed.acl on a real mosquitto: each gateway is confined to its own
subtree, the ingest reads every gateway's readings through its shared subscription, and
nobody connects without a password."""

from __future__ import annotations

import queue
import subprocess
import time
from pathlib import Path

import paho.mqtt.client as mqtt
import pytest

from watershed.devservers import Mosquitto

pytestmark = pytest.mark.integration

ACL = Path(__file__).resolve().parents[2] / "deploy" / "mosquitto" / "watershed.acl"
USERS = {"gw-a": "pa", "gw-b": "pb", "ingest-1": "pi", "operator": "po"}


@pytest.fixture
def broker(tmp_path: Path, mosquitto_factory) -> Mosquitto:
    passwd = tmp_path / "watershed.passwd"
    passwd.touch()
    for user, password in USERS.items():
        subprocess.run(["mosquitto_passwd", "-b", str(passwd), user, password], check=True,
                       capture_output=True, timeout=30)
    return mosquitto_factory(allow_anonymous=False,
                             config_extra=f"password_file {passwd}\nacl_file {ACL}\n")


def connect(broker: Mosquitto, user: str | None, password: str | None = None,
            inbox: queue.Queue | None = None) -> tuple[mqtt.Client, int]:
    client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=f"t-{user}")
    if user:
        client.username_pw_set(user, password)
    result: queue.Queue = queue.Queue()
    client.on_connect = lambda c, u, f, rc, p: result.put(rc.value)
    if inbox is not None:
        client.on_message = lambda c, u, m: inbox.put((m.topic, m.payload))
    client.connect("127.0.0.1", broker.port)
    client.loop_start()
    return client, result.get(timeout=10)


def subscribe(client: mqtt.Client, topic: str) -> list[int]:
    """Subscribe at QoS 1 and wait for the broker's SUBACK (its reason codes): a message
    published before the broker has the subscription would reach nobody."""
    acked: queue.Queue = queue.Queue()
    client.on_subscribe = lambda c, u, mid, rcs, p: acked.put([r.value for r in rcs])
    client.subscribe(topic, qos=1)
    return acked.get(timeout=10)


def publish(client: mqtt.Client, topic: str, payload: bytes) -> None:
    client.publish(topic, payload, qos=1).wait_for_publish(timeout=10)


def test_each_gateway_writes_only_its_own_subtree(broker: Mosquitto) -> None:
    inbox: queue.Queue = queue.Queue()
    ingest, rc = connect(broker, "ingest-1", USERS["ingest-1"], inbox)
    assert rc == 0
    assert subscribe(ingest, "$share/ingest/watershed/v1/+/+/readings") == [1]
    # mosquitto 2.0 drops a denied publish and closes that connection: either way it is gone.
    forger, rc = connect(broker, "gw-a", USERS["gw-a"])
    assert rc == 0
    forger.publish("watershed/v1/gw-b/SAN-01/readings", b"forged", qos=1)
    time.sleep(0.5)
    forger.loop_stop()
    gw_a, rc = connect(broker, "gw-a", USERS["gw-a"])
    assert rc == 0
    try:
        publish(gw_a, "watershed/v1/gw-a/SAN-01/readings", b"own")
        assert inbox.get(timeout=10) == ("watershed/v1/gw-a/SAN-01/readings", b"own")
        publish(gw_a, "watershed/v1/gw-a/SAN-01/readings", b"own again")
        assert inbox.get(timeout=10)[1] == b"own again"
        assert inbox.empty()  # the forged message never reached the ingest
    finally:
        for c in (ingest, gw_a):
            c.loop_stop()
            c.disconnect()


def test_a_gateway_hears_only_its_own_commands(broker: Mosquitto) -> None:
    inbox: queue.Queue = queue.Queue()
    gw_a, _ = connect(broker, "gw-a", USERS["gw-a"], inbox)
    operator, rc = connect(broker, "operator", USERS["operator"])
    assert rc == 0
    try:
        assert subscribe(gw_a, "watershed/v1/+/cmd") == [1]
        publish(operator, "watershed/v1/gw-b/cmd", b"for b")
        publish(operator, "watershed/v1/gw-a/cmd", b"for a")
        assert inbox.get(timeout=10) == ("watershed/v1/gw-a/cmd", b"for a")
        publish(operator, "watershed/v1/gw-a/cmd", b"again")
        assert inbox.get(timeout=10)[1] == b"again"
        assert inbox.empty()
    finally:
        for c in (gw_a, operator):
            c.loop_stop()
            c.disconnect()


def test_an_ingest_confirms_to_a_gateway_and_only_that_gateway_hears_it(broker: Mosquitto
                                                                        ) -> None:
    """End-to-end confirmations (contracts.md 2) pass the shipped ACL: the ingest writes any
    gateway's confirm topic and each gateway reads only its own, and the ingests' statuses."""
    inbox_a: queue.Queue = queue.Queue()
    inbox_b: queue.Queue = queue.Queue()
    gw_a, _ = connect(broker, "gw-a", USERS["gw-a"], inbox_a)
    gw_b, _ = connect(broker, "gw-b", USERS["gw-b"], inbox_b)
    ingest, rc = connect(broker, "ingest-1", USERS["ingest-1"])
    assert rc == 0
    try:
        assert subscribe(gw_a, "watershed/v1/gw-a/confirm") == [1]
        assert subscribe(gw_a, "watershed/v1/ingest/+/status") == [1]
        subscribe(gw_b, "watershed/v1/+/confirm")  # tries to read everyone's
        publish(ingest, "watershed/v1/gw-a/confirm", b"for a")
        publish(ingest, "watershed/v1/ingest/ingest-1/status", b"status")
        assert inbox_a.get(timeout=10) == ("watershed/v1/gw-a/confirm", b"for a")
        assert inbox_a.get(timeout=10) == ("watershed/v1/ingest/ingest-1/status", b"status")
        publish(ingest, "watershed/v1/gw-b/confirm", b"for b")
        assert inbox_b.get(timeout=10) == ("watershed/v1/gw-b/confirm", b"for b")
        assert inbox_b.empty()  # gw-a's confirmation never reached gw-b
    finally:
        for c in (gw_a, gw_b, ingest):
            c.loop_stop()
            c.disconnect()


@pytest.mark.parametrize("user, password", [(None, None), ("gw-a", "wrong")])
def test_no_password_no_connection(broker: Mosquitto, user: str | None,
                                   password: str | None) -> None:
    client, rc = connect(broker, user, password)
    client.loop_stop()
    assert rc != 0  # not authorised / bad user name or password
