"""A broker that crashes loses what it acknowledged since its last save (every 5 s, as deployed):
the gateway publishes the readings acknowledged within ``replay_window_s`` again after the
reconnect, so they still reach the ingest's session. Real mosquitto, killed with SIGKILL."""

from __future__ import annotations

import queue
from pathlib import Path

import pytest

from tests.fixtures.mqtt import MqttClientFactory, wait_until
from tests.fixtures.servers import MosquittoFactory
from tests.integration.consumer_status import announce_consumer
from watershed.contracts.mqtt import MessageReading, Topics, decode_readings
from watershed.gateway.config import MqttConfig
from watershed.gateway.forwarder import Forwarder
from watershed.gateway.store import Store

pytestmark = pytest.mark.integration

T0 = 1763676900
SEQS = set(range(1, 21))


@pytest.mark.parametrize("window_s", [30.0, 0.0])
def test_readings_a_crashed_broker_had_not_saved_are_published_again(
        mosquitto_factory: MosquittoFactory, mqtt_clients: MqttClientFactory, tmp_path: Path,
        window_s: float) -> None:
    broker = mosquitto_factory(autosave_s=3600)  # saved only when the test asks
    ingest = mqtt_clients(broker.port, "ingest-t", clean_session=False).connect()
    ingest.subscribe(Topics().all_readings(), qos=1)
    ingest.disconnect()  # its session queues what the gateway publishes
    announce_consumer(broker.port)
    broker.save()  # the session and the consumer status are on disk; the readings never are

    with Store(tmp_path / "gw.db") as store:
        store.add("SAN-01", "santiago",
                  [MessageReading(s, "stage_m", T0 + 900 * s, 1000 + s, -3, 0) for s in SEQS])
        config = MqttConfig(port=broker.port, reconnect_min_s=0.05, reconnect_max_s=0.2,
                            replay_window_s=window_s)
        forwarder = Forwarder("gw-t", config, store)
        forwarder.start()
        try:
            wait_until(lambda: not store.unsent(100), "the broker's PUBACKs")
            broker.kill()
            broker.restart()  # from the last save: without the readings
            wait_until(lambda: forwarder.stats()["connects"] == 2, "the gateway to reconnect")
            wait_until(lambda: not store.unsent(100), "the replay's PUBACKs")
            replayed = forwarder.stats()["readings_replayed_after_reconnect"]
        finally:
            forwarder.stop(2)

    ingest = mqtt_clients(broker.port, "ingest-t", clean_session=False).connect()
    assert ingest.session_present is True
    received: set[int] = set()
    try:
        while received != SEQS:
            message = ingest.messages.get(timeout=1.0)
            received |= {r.seq for r in decode_readings(bytes(message.payload)).readings}
    except queue.Empty:
        pass
    if window_s:
        assert (replayed, received) == (len(SEQS), SEQS)
    else:  # the loss the replay prevents
        assert (replayed, received) == (0, set())
