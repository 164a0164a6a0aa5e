"""The line protocol written as text (contracts.influx) is byte for byte what influxdb-client's
``Point`` gives for the same reading, which is what the schema was specified and vetted with."""

from __future__ import annotations

import json
from decimal import Decimal
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st
from influxdb_client import Point, WritePrecision

from watershed.contracts.influx import (MEASUREMENT, absent_fields, discharge_line, message_lines,
                                        payload_lines)
from watershed.contracts.mqtt import (MAX_TS, MessageReading, ReadingsMessage, decode_readings,
                                      encode_readings)
from watershed.contracts.wire import MAX_EXPONENT, MAX_MANTISSA, MAX_SEQ, MISSING, value_text

VECTORS = json.loads((Path(__file__).parents[1] / "vectors" / "mqtt_v1.json").read_text()
                     )["messages"]


def point_line(msg: ReadingsMessage, r: MessageReading) -> str:
    """The reference: the schema through influxdb-client's Point (the ingest's former code)."""
    point = (Point(MEASUREMENT).tag("station", msg.station).tag("basin", msg.basin)
             .tag("channel", r.channel).field("flags", r.flags).field("seq", r.seq)
             .field("gateway", msg.gateway).time(r.ts, WritePrecision.S))
    if not r.missing:
        point.field("value", Decimal(value_text(r.mantissa, r.exponent)))
    return point.to_line_protocol()


def point_discharge(station: str, basin: str, ts: int, value: Decimal | None, flags: int,
                    seq: int, gateway: str, rating_id: str) -> str:
    point = (Point(MEASUREMENT).tag("station", station).tag("basin", basin)
             .tag("channel", "discharge_m3s").field("flags", flags).field("seq", seq)
             .field("gateway", gateway).field("rating_id", rating_id)
             .time(ts, WritePrecision.S))
    if value is not None:
        point.field("value", value)
    return point.to_line_protocol()


@pytest.mark.parametrize("vector", VECTORS, ids=lambda v: v["name"])
def test_vector_lines(vector: dict) -> None:
    msg = decode_readings(vector["payload"].encode())
    assert message_lines(msg) == vector["lines"]
    assert [point_line(msg, r) for r in msg.readings] == vector["lines"]
    sent = ReadingsMessage(msg.gateway, msg.station, msg.basin,
                           tuple(MessageReading(*r) for r in vector["readings"]))
    assert encode_readings(sent).decode() == vector["payload"]
    assert message_lines(sent) == vector["lines"]


ids = st.from_regex(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,31}", fullmatch=True)
readings = st.builds(
    MessageReading, seq=st.integers(0, MAX_SEQ), channel=ids, ts=st.integers(0, MAX_TS),
    mantissa=st.integers(-MAX_MANTISSA, MAX_MANTISSA),
    exponent=st.integers(-MAX_EXPONENT, MAX_EXPONENT), flags=st.integers(0, 255))


@given(ids, ids, ids, st.lists(readings, min_size=1, max_size=5))
def test_reading_lines_match_point(gateway: str, station: str, basin: str,
                                   items: list[MessageReading]) -> None:
    items = [r if not r.flags & MISSING else MessageReading(r.seq, r.channel, r.ts, 0, 0, r.flags)
             for r in items]
    msg = ReadingsMessage(gateway, station, basin, tuple(items))
    assert message_lines(msg) == [point_line(msg, r) for r in msg.readings]


@given(ids, ids, st.integers(0, MAX_TS), st.one_of(st.none(), st.decimals(allow_nan=False,
       allow_infinity=False, places=None)), st.integers(0, 255), st.integers(0, MAX_SEQ),
       ids, ids)
def test_discharge_lines_match_point(station: str, basin: str, ts: int, value: Decimal | None,
                                     flags: int, seq: int, gateway: str, rating: str) -> None:
    assert discharge_line(station, basin, ts, value, flags, seq, gateway, rating) == \
        point_discharge(station, basin, ts, value, flags, seq, gateway, rating)


def test_zero_with_a_positive_exponent() -> None:
    # "0e2" in a payload: (0, 2); value_text gives "0", as Point (Decimal) does.
    msg = ReadingsMessage("gw", "st", "ba", (MessageReading(1, "c", 2, 0, 2, 0),))
    assert message_lines(msg) == [point_line(msg, r) for r in msg.readings]


@given(ids, ids, ids, st.lists(readings, min_size=1, max_size=5))
def test_every_valid_reading_is_published_as_exact_json_the_ingest_takes(
        gateway: str, station: str, basin: str, items: list[MessageReading]) -> None:
    items = [r if not r.flags & MISSING else MessageReading(r.seq, r.channel, r.ts, 0, 0, r.flags)
             for r in items]
    msg = ReadingsMessage(gateway, station, basin, tuple(items))
    payload = encode_readings(msg)
    # Standard JSON (no NaN or Infinity), each value the reading's exact decimal
    plain = json.loads(payload, parse_float=Decimal, parse_int=Decimal,
                       parse_constant=lambda c: pytest.fail(f"not JSON: {c}"))
    assert [r["value"] for r in plain["readings"]] == [r.value for r in items]
    # Exact within float64 too: a JSON reader that holds numbers as doubles gets the value
    for got, r in zip(json.loads(payload)["readings"], items):
        if not r.missing:
            assert Decimal(repr(float(got["value"]))) == r.value
    # The ingest takes it, both paths, to the very lines of the readings sent
    lines = message_lines(msg)
    assert message_lines(decode_readings(payload)) == lines
    assert payload_lines(payload) == (gateway, station, lines, [r.seq for r in items])


WHOLE = {"time": 1, "value": Decimal("1.5"), "flags": 0, "seq": 7, "gateway": "gw"}


@pytest.mark.parametrize("row, absent", [
    (WHOLE, []),
    (WHOLE | {"value": None, "flags": MISSING | 2}, []),  # flagged missing: no value is whole
    (WHOLE | {"value": None}, ["value"]),  # good flags and no value: its value not yet applied
    (WHOLE | {"flags": None}, ["flags"]),  # as a fleet run's last reading showed
    (WHOLE | {"value": None, "flags": None, "gateway": None}, ["value", "flags", "gateway"]),
    ({"time": 1, "seq": 7, "rating_id": "r1"}, ["value", "flags", "gateway"]),
])
def test_a_point_lacks_any_field_every_reading_has_bar_a_missing_value(row, absent):
    # InfluxDB 1.x applies a point's fields one by one: a query racing the write sees some
    assert absent_fields(row) == absent
