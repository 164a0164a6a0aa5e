"""Contracts 1.4: every value in the contract's range (|mantissa| <= 10**15 - 1, |exponent| <= 20)
reaches a real influxd exactly. Random values go the whole way the ingest takes them: readings
message (contracts.mqtt), its line protocol (the ingest's fast path, checked against the full
path), V1Writer to influxd 1.x, and back as InfluxDB's shortest float text, read as a decimal.
A 16th digit does not survive a float64 field: the reason for the bound."""

from __future__ import annotations

import itertools
from decimal import Decimal

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from watershed.contracts.influx import message_lines, payload_lines
from watershed.contracts.mqtt import (MessageReading, ReadingsMessage, decode_readings,
                                      encode_readings)
from watershed.contracts.wire import MAX_EXPONENT, MAX_MANTISSA
from watershed.devservers import Influxd
from watershed.hydro.influxql import query
from watershed.ingest.writer import V1Writer

pytestmark = pytest.mark.integration

T0 = 1763676900
_stations = itertools.count()  # one station a batch: batches never read each other's points

mantissas = st.one_of(
    st.integers(-MAX_MANTISSA, MAX_MANTISSA),
    # 15 significant digits, the hardest for a float64
    st.integers(10**14, MAX_MANTISSA).flatmap(lambda m: st.sampled_from([m, -m])),
    st.integers(-9999, 9999),
    st.sampled_from([MAX_MANTISSA, -MAX_MANTISSA, 0, 1, -1]),
)
values = st.tuples(mantissas, st.integers(-MAX_EXPONENT, MAX_EXPONENT))


def read_back(influxd: Influxd, database: str, station: str) -> dict[int, Decimal]:
    [(_, rows)] = query(influxd.url, database,
                        f"SELECT seq, value FROM readings WHERE station = '{station}'")
    # InfluxDB answers a float with Go's shortest text: 1e+34, 627.814973311771, 10000000000000000
    return {r["seq"]: Decimal(r["value"]) for r in rows}


# ~200 random values, written in batches of up to 50: a few writes, seconds in all.
@settings(max_examples=8, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.lists(values, min_size=10, max_size=50))
@example([(MAX_MANTISSA, MAX_EXPONENT), (-MAX_MANTISSA, -MAX_EXPONENT), (1, -MAX_EXPONENT),
          (-1, MAX_EXPONENT), (1, 16), (0, 2), (627814973311771, -12), (150, -2),
          (123456789012345, -20), (999999999999999, -1), (100000000000001, 5)])
def test_values_in_the_contract_read_back_exactly(influxd: Influxd, fresh_influx_db: str,
                                                  batch: list[tuple[int, int]]) -> None:
    station = f"EXACT-{next(_stations)}"
    msg = ReadingsMessage("gw-exact", station, "santiago", tuple(
        MessageReading(seq, "stage_m", T0 + 60 * seq, m, e, 0)
        for seq, (m, e) in enumerate(batch, start=1)))
    payload = encode_readings(msg)
    fast = payload_lines(payload)
    assert fast is not None, "the ingest's fast path takes every valid message"
    lines = fast[2]
    assert lines == message_lines(decode_readings(payload))

    V1Writer(influxd.url, fresh_influx_db).write(lines)

    assert read_back(influxd, fresh_influx_db, station) == {
        r.seq: Decimal(r.mantissa).scaleb(r.exponent) for r in msg.readings}


def test_a_sixteenth_digit_does_not_survive_a_float_field(influxd: Influxd,
                                                          fresh_influx_db: str) -> None:
    # Observed in the field: 1,551 of 24,072 values of 16 digits changed in their last digit.
    V1Writer(influxd.url, fresh_influx_db).write([
        "readings,basin=santiago,channel=stage_m,station=DIGITS flags=0i,seq=1i,"
        f"value=627.8149733117711 {T0}",
        "readings,basin=santiago,channel=stage_m,station=DIGITS flags=0i,seq=2i,"
        f"value=627.814973311771 {T0 + 60}"])
    assert read_back(influxd, fresh_influx_db, "DIGITS") == {
        1: Decimal("627.8149733117712"),  # 16 digits: another number
        2: Decimal("627.814973311771")}  # 15: itself
