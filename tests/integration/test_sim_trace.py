"""The simulator's trace (watershed_sim/trace.py), with which a scenario explains a reading
missing from InfluxDB: every MQTT message that carried it, as the broker delivered it, and every
line the ingest wrote for it, confirmed or refused, against a real mosquitto and influxd. The
hops are recorded as they came and read only when a reading is explained."""

from __future__ import annotations

import time
import uuid

import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion

from watershed.contracts.influx import message_lines
from watershed.contracts.mqtt import MessageReading, ReadingsMessage, Topics, encode_readings
from watershed.ingest.config import InfluxConfig
from watershed.ingest.writer import make_writer
from watershed_sim.trace import MqttTap, RecordingWriter

pytestmark = pytest.mark.integration

T0 = 1763676900


def message(station: str, *seqs: int, mantissa: int = 1234) -> ReadingsMessage:
    return ReadingsMessage("gw-1", station, "santiago",
                           tuple(MessageReading(seq, "stage_m", T0 + 900 * seq, mantissa, -3, 0)
                                 for seq in seqs))


def test_a_reading_is_traced_through_every_message_that_carried_it(mosquitto) -> None:
    prefix = f"trace{uuid.uuid4().hex[:8]}"
    topics = Topics(prefix)
    tap = MqttTap("127.0.0.1", mosquitto.port, prefix=prefix)
    tap.start()
    sender = mqtt.Client(CallbackAPIVersion.VERSION2, client_id="")
    sender.connect("127.0.0.1", mosquitto.port)
    sender.loop_start()
    try:
        sent = [(topics.readings("gw-1", "SAN-01"), encode_readings(message("SAN-01", 5, 6))),
                (topics.readings("gw-1", "SAN-01"), b"{not json"),
                (topics.readings("gw-1", "SAN-01"), encode_readings(message("SAN-01", 6, 7))),
                (topics.deadletter("ingest-1"), b"a refused payload"),
                (topics.readings("gw-1", "ZAM-01"), encode_readings(message("ZAM-01", 6)))]
        for topic, payload in sent:
            sender.publish(topic, payload, qos=1).wait_for_publish(10)
        deadline = time.monotonic() + 10
        while len(tap.carried) < 4 and time.monotonic() < deadline:
            time.sleep(0.02)
    finally:
        sender.loop_stop()
        sender.disconnect()
        tap.stop()

    assert [payload for _, _, payload in tap.carried] == [p for t, p in sent if "readings" in t]
    assert tap.deadletters == [b"a refused payload"]
    twice = tap.messages("SAN-01", 6)
    assert [(topic, r["seq"], r["value"]) for _, topic, r in twice] == [
        (topics.readings("gw-1", "SAN-01"), 6, 1.234)] * 2
    assert twice[0][0] <= twice[1][0]
    assert len(tap.messages("SAN-01", 5)) == len(tap.messages("ZAM-01", 6)) == 1
    assert tap.messages("SAN-01", 8) == []


def test_a_reading_is_traced_through_every_line_the_ingest_wrote(influxd) -> None:
    database = f"trace_{uuid.uuid4().hex[:8]}"
    influxd.query(f'CREATE DATABASE "{database}"')
    writer = RecordingWriter(make_writer(InfluxConfig(url=influxd.url, database=database)))
    refusing = RecordingWriter(make_writer(InfluxConfig(url=influxd.url,
                                                        database=f"{database}_absent")))
    try:
        first, again = message_lines(message("SAN-01", 5, 6)), message_lines(message("SAN-01", 6))
        writer.write(first)
        writer.write(again)
        with pytest.raises(Exception):
            refusing.write(message_lines(message("SAN-01", 6, mantissa=99)))
    finally:
        writer.close()
        refusing.close()

    assert [line for _, line in writer.written("SAN-01", 6)] == [first[1], again[0]]
    assert [line for _, line in writer.written("SAN-01", 5)] == [first[0]]
    assert writer.failed("SAN-01", 6) == [] and writer.written("SAN-01", 7) == []
    [(_, line, error)] = refusing.failed("SAN-01", 6)
    assert "seq=6i" in line and "database not found" in error
    assert refusing.written("SAN-01", 6) == []
