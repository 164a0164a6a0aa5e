"""Poison and hostile messages against real mosquitto and influxd: each one is dead-lettered with
its original text, the stream goes on, and the good points around it are stored exactly — no
other point, series, tag or field ever appears."""

from __future__ import annotations

import json

import pytest

from watershed.contracts.mqtt import encode_readings
from watershed.devservers import Influxd

from .test_ingest_service import setup  # noqa: F401 (the fixture, shared)
from .test_ingest_service import Setup, by_identity, expected_rows, readings_message, wait_for

pytestmark = pytest.mark.integration

TS = 1763676900


def payload(gateway: str = "gw-zamora", station: str = "SAN-01", basin: str = "santiago",
            channel: str = "stage_m", value: object = 1.25, **reading: object) -> bytes:
    """A readings payload with any field set to anything (json.dumps escapes it as JSON must)."""
    item = {"seq": 1, "channel": channel, "ts": TS, "value": value, "flags": 0, **reading}
    return json.dumps({"v": 1, "gateway": gateway, "station": station, "basin": basin,
                       "readings": [item]}).encode()


POISON = {
    "not UTF-8": b"\xff\xfe\x00garbage",
    "truncated": b'{"v":1,"gateway":"gw-zamora","station":"SAN-01","readings":[{"seq"',
    "nested 100k deep": b"[" * 100_000 + b"]" * 100_000,  # RecursionError in the parser
    "NaN value": payload(value=float("nan")),
    "huge number": payload().replace(b"1.25", b"1e999999"),
    "value as text": payload(value="1.25"),
    "version 2": payload().replace(b'"v": 1', b'"v": 2'),
    "empty": b"",
    "negative ts": payload(ts=-1),
}

HOSTILE_NAMES = ["SAN 01", "SAN,01", "SAN=01", 'SAN"01', "SAN'01", "SAN\\01", "SAN\n01",
                 "SAN\r\n01", "SAÑ-01", "测站", "SAN-01\u200b", "a" * 33, "", " readings",
                 "x value=9 1", "SAN-01\nreadings,station=EVIL value=666 1763676900"]


def hostile_messages(setup: Setup) -> list[tuple[str, bytes]]:
    """(topic, payload) with a hostile name in each place a name travels."""
    out = []
    for name in HOSTILE_NAMES:
        # In the topic as well where MQTT allows it (mosquitto drops a client that publishes
        # control characters), so the rejection is the name's own, not a topic mismatch.
        topic_safe = name and not any(c in "/+#" or ord(c) < 32 for c in name)
        out.append((setup.topics.readings("gw-zamora", name if topic_safe else "SAN-01"),
                    payload(station=name)))
        out.append((setup.topics.readings(name if topic_safe else "gw-zamora", "SAN-01"),
                    payload(gateway=name)))
        out.append((setup.topics.readings("gw-zamora", "SAN-01"), payload(basin=name)))
        out.append((setup.topics.readings("gw-zamora", "SAN-01"), payload(channel=name)))
        out.append((setup.topics.readings("gw-zamora", "SAN-01"), payload(value=name)))
    return out


def assert_only(setup: Setup, influxd: Influxd, want: list[dict]) -> None:
    """The database holds exactly ``want``: same points, and no stray series, tag or field."""
    assert by_identity(setup.rows()) == by_identity(want)
    db = setup.database
    [measurements] = influxd.query("SHOW MEASUREMENTS", db=db)[0]["series"]
    assert measurements["values"] == [["readings"]]
    [fields] = influxd.query("SHOW FIELD KEYS", db=db)[0]["series"]
    assert sorted(v[0] for v in fields["values"]) == ["flags", "gateway", "seq", "value"]
    [tags] = influxd.query("SHOW TAG KEYS", db=db)[0]["series"]
    assert sorted(v[0] for v in tags["values"]) == ["basin", "channel", "station"]
    [series] = influxd.query("SHOW SERIES", db=db)[0]["series"]
    assert len(series["values"]) == len({(r["station"], r["basin"], r["channel"]) for r in want})


def test_poison_messages_are_dead_lettered_and_the_stream_goes_on(
        setup: Setup, influxd: Influxd) -> None:
    ingest = setup.start_ingest()
    deadletters = setup.subscribe_deadletters()
    good = [readings_message(f"GOOD-{i:02d}", TS, 3) for i in range(len(POISON) + 1)]
    for msg, bad in zip(good, [*POISON.values(), None]):
        setup.publish(encode_readings(msg), setup.topics.readings(msg.gateway, msg.station))
        if bad is not None:
            setup.publish(bad)
    want = [row for msg in good for row in expected_rows(msg)]
    setup.wait_for_points(len(want))
    wait_for(lambda: len(deadletters) == len(POISON), what="every poison dead-lettered")
    assert_only(setup, influxd, want)
    stats = ingest.stats()
    assert (stats["invalid"], stats["messages_written"]) == (len(POISON), len(good))
    wait_for(lambda: ingest.stats()["acks_sent"] == len(good) + len(POISON), what="all acked")
    # The original bytes are kept: as text, or as hex when they are not UTF-8.
    kept = {d["payload"]["hex"] if isinstance(d["payload"], dict) else d["payload"]
            for d in deadletters}
    assert POISON["not UTF-8"].hex() in kept and POISON["truncated"].decode() in kept
    assert ingest.running()


def test_hostile_names_are_rejected_and_never_touch_the_points_around_them(
        setup: Setup, influxd: Influxd) -> None:
    ingest = setup.start_ingest()
    ingest.stop()  # leaves the persistent session: what follows is queued for the next start
    hostile = hostile_messages(setup)
    before, after = readings_message("GOOD-A", TS, 3), readings_message("GOOD-B", TS, 3)
    setup.publish(encode_readings(before), setup.topics.readings("gw-zamora", "GOOD-A"))
    for topic, body in hostile:
        setup.publish(body, topic)
    setup.publish(encode_readings(after), setup.topics.readings("gw-zamora", "GOOD-B"))

    # Restarted, it gets the whole backlog at once: hostile and good messages share batches.
    ingest = setup.start_ingest()
    deadletters = setup.subscribe_deadletters()
    want = expected_rows(before) + expected_rows(after)
    setup.wait_for_points(len(want))
    wait_for(lambda: ingest.stats()["acks_sent"] == len(hostile) + 2, what="everything acked")
    assert_only(setup, influxd, want)
    assert ingest.stats()["invalid"] == len(hostile)
    # Dead-lettered with the payload exactly as sent, so it can be inspected and replayed.
    records = [json.loads(line) for line in setup.deadletter_file.read_text().splitlines()]
    assert sorted(r["payload"] for r in records) == sorted(body.decode() for _, body in hostile)
    assert all(r["reason"] for r in records)
