"""A station record that went through the pipeline (mosquitto -> ingest -> influxd, discharge
derived at ingest through two ratings) for the hydrologists' commands: query, plot, export,
audit, flag. One per test module (module-scoped), on the session's servers.

SAN-01 (santiago): stage_m and rain_mm every 15 min, battery_v hourly, 6 hours from T0. Seq
runs through all its readings in time order. The stage slots of 02:00-02:45 never arrive (the
gateway's ledger counts them lost, gone_from_station); the 01:30 stage is a flagged spike; the
00:45 rain is missing (sensor error). Rating SAN-01.1 is in force until 03:00, SAN-01.2 after.
SAN-02 (santiago): rain only, 15 min, no losses.
SAN-03 (santiago): rain only, 15 min; a power cut from 01:00 to 02:00: four slots never
sampled, no seq missing (firmware too old to report the slots it skipped).
SAN-04 (santiago, registry only: test_hydro_audit.py publishes it): as SAN-03, with the
station's report of the gap (san04_readings).
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path

import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion

from watershed.contracts.channels import NOT_SAMPLED
from watershed.contracts.influx import absent_fields
from watershed.contracts.mqtt import MessageReading, ReadingsMessage, encode_readings
from watershed.contracts.wire import MISSING, SPIKE
from watershed.devservers import Influxd, Mosquitto
from watershed.hydro.influxql import query

from .test_ingest_service import Setup, wait_for

T0 = 1763596800  # 2025-11-20T00:00:00Z
HOURS = 6
GAP = range(T0 + 2 * 3600, T0 + 3 * 3600, 900)  # stage slots that never arrive
SPIKE_AT = T0 + 5400
MISSING_RAIN_AT = T0 + 2700
RATING_CHANGE = T0 + 3 * 3600

RATING = """id = "{id}"
stage_unit = "m"
[[effective]]
begin = {begin}
{end}
[[segments]]
offset = {offset}
points = [[0.20, 0.20], [0.60, 2.64], [2.00, 41.6]]
"""

REGISTRY = """[[basin]]
id = "santiago"
timezone = "America/Guayaquil"
water_year_start_month = 10

[[station]]
id = "SAN-01"
name = "Rio Zamora en San Francisco"
basin = "santiago"
latitude = -3.9702
longitude = -79.0725
gauge_datum_m = 1812.45
vertical_datum = "EGM96"
sensor_elevation_m = 1812.2
channels = { stage_m = 900, rain_mm = 900, battery_v = 3600 }

[[station]]
id = "SAN-02"
basin = "santiago"
latitude = -3.99
longitude = -79.1
channels = { rain_mm = 900 }

[[station]]
id = "SAN-03"
basin = "santiago"
channels = { rain_mm = 900 }

[[station]]
id = "SAN-04"
basin = "santiago"
channels = { rain_mm = 900 }
"""


def stage_at(ts: int) -> str:
    """A storm hydrograph in mm: rises from 0.5 m to 1.6 m and falls."""
    k = (ts - T0) // 900
    return f"{0.5 + 0.05 * min(k, 24 - k):.3f}"


def rain_at(ts: int) -> str:
    k = (ts - T0) // 900
    return f"{[0.0, 0.2, 1.4, 3.2, 2.6, 1.0][k % 6]:.1f}"


def _reading(seq: int, channel: str, ts: int, text: str | None, flags: int = 0
             ) -> MessageReading:
    if text is None:
        return MessageReading(seq, channel, ts, 0, 0, flags | MISSING)
    sign, digits, exponent = Decimal(text).as_tuple()
    mantissa = int("".join(map(str, digits))) * (-1 if sign else 1)
    return MessageReading(seq, channel, ts, mantissa, int(exponent), flags)


def san01_readings() -> tuple[list[MessageReading], int]:
    """Delivered readings, and how many seqs the gap swallowed."""
    out, seq, lost = [], 0, 0
    for ts in range(T0, T0 + HOURS * 3600, 900):
        channels = [("stage_m", stage_at(ts)), ("rain_mm", rain_at(ts))]
        if ts % 3600 == 0:
            channels.append(("battery_v", "12.61"))
        for channel, text in channels:
            seq += 1
            if channel == "stage_m" and ts in GAP:
                lost += 1
                continue
            flags = SPIKE if channel == "stage_m" and ts == SPIKE_AT else 0
            if channel == "stage_m" and ts == SPIKE_AT:
                text = "3.912"
            if channel == "rain_mm" and ts == MISSING_RAIN_AT:
                text = None
            out.append(_reading(seq, channel, ts, text, flags))
    return out, lost


def san02_readings() -> list[MessageReading]:
    return [_reading(i + 1, "rain_mm", ts, rain_at(ts + 900))
            for i, ts in enumerate(range(T0, T0 + HOURS * 3600, 900))]


POWER_CUT = range(T0 + 3600, T0 + 7200, 900)


def san03_readings() -> list[MessageReading]:
    slots = [ts for ts in range(T0, T0 + HOURS * 3600, 900) if ts not in POWER_CUT]
    return [_reading(i + 1, "rain_mm", ts, rain_at(ts)) for i, ts in enumerate(slots)]


POWER_BACK = T0 + 7100  # SAN-04 boots at 01:58:20 and reports the gap from 01:00:00


def san04_readings() -> list[MessageReading]:
    """SAN-03's record from firmware that reports its gaps: a ``not_sampled_s`` reading of
    3500 s at the boot after the cut, in seq order between the readings around it."""
    out, seq = [], 0
    for ts in range(T0, T0 + HOURS * 3600, 900):
        if ts in POWER_CUT:
            continue
        if ts > POWER_BACK and not any(r.channel == NOT_SAMPLED for r in out):
            seq += 1
            out.append(_reading(seq, NOT_SAMPLED, POWER_BACK, str(POWER_BACK - POWER_CUT[0])))
        seq += 1
        out.append(_reading(seq, "rain_mm", ts, rain_at(ts)))
    return out


@dataclass
class Record:
    setup: Setup
    influx_url: str
    database: str
    config: Path  # ingest TOML (InfluxDB, MQTT, stations with ratings); stations.toml beside it
    registry: Path
    points: int
    lost: int


def _publish_health(setup: Setup, lost: int) -> None:
    health = {"gateway": "gw-zamora", "version": "test", "at": T0 + HOURS * 3600,
              "uptime_s": 1, "queue": {"unsent": 0, "unconfirmed": 0},
              "quarantine": {"count": 0, "readings": 0, "stations": {}},
              "stations": {"SAN-01": {"last_seen": T0 + HOURS * 3600, "outbox_depth": 0,
                                      "losses": {"total": lost, "gone_from_station": lost}},
                           "SAN-02": {"last_seen": T0 + HOURS * 3600, "outbox_depth": 0,
                                      "losses": {"total": 0}},
                           "SAN-03": {"last_seen": T0 + HOURS * 3600, "outbox_depth": 0,
                                      "losses": {"total": 0}},
                           "SAN-04": {"last_seen": T0 + HOURS * 3600, "outbox_depth": 0,
                                      "losses": {"total": 0}}}}
    client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=f"hydro-{uuid.uuid4().hex}")
    client.connect(setup.mosquitto.host, setup.mosquitto.port)
    client.loop_start()
    info = client.publish(setup.topics.health("gw-zamora"), json.dumps(health), qos=1,
                          retain=True)
    info.wait_for_publish(5)
    client.loop_stop()
    client.disconnect()


@pytest.fixture(scope="module")
def record(mosquitto: Mosquitto, influxd: Influxd,
           tmp_path_factory: pytest.TempPathFactory) -> Iterator[Record]:
    tmp = tmp_path_factory.mktemp("hydro")
    database = f"hydro_{uuid.uuid4().hex[:10]}"
    influxd.query(f'CREATE DATABASE "{database}"')
    (tmp / "san01a.toml").write_text(RATING.format(
        id="SAN-01.1", begin="2025-01-01T00:00:00Z", end="end = 2025-11-20T03:00:00Z",
        offset="0.10"))
    (tmp / "san01b.toml").write_text(RATING.format(
        id="SAN-01.2", begin="2025-11-20T03:00:00Z", end="", offset="0.15"))
    setup = Setup(mosquitto, influxd.url, database, tmp)
    config = tmp / "ingest.toml"
    config.write_text(f"""[ingest]
id = "{setup.config.ingest.id}"
group = "{setup.config.ingest.group}"
deadletter_file = "{setup.deadletter_file}"
[mqtt]
host = "{mosquitto.host}"
port = {mosquitto.port}
prefix = "{setup.prefix}"
[influx]
url = "{influxd.url}"
database = "{database}"
flush_interval_s = 0.2
[validation]
max_future_s = 0
[[stations]]
id = "SAN-01"
ratings = ["san01a.toml", "san01b.toml"]
""")
    registry = tmp / "stations.toml"
    registry.write_text(REGISTRY)
    from watershed.ingest.config import load_config
    setup.config = load_config(config)
    setup.start_ingest()
    san01, lost = san01_readings()
    for at in range(0, len(san01), 20):
        setup.publish(encode_readings(ReadingsMessage("gw-zamora", "SAN-01", "santiago",
                                                      tuple(san01[at:at + 20]))))
    setup.publish(encode_readings(ReadingsMessage("gw-zamora", "SAN-02", "santiago",
                                                  tuple(san02_readings()))),
                  setup.topics.readings("gw-zamora", "SAN-02"))
    setup.publish(encode_readings(ReadingsMessage("gw-zamora", "SAN-03", "santiago",
                                                  tuple(san03_readings()))),
                  setup.topics.readings("gw-zamora", "SAN-03"))
    stages = sum(r.channel == "stage_m" for r in san01)
    points = len(san01) + stages + len(san02_readings()) + len(san03_readings())
    wait_for(lambda: _count(influxd.url, database) >= points, 20, f"{points} points")
    _publish_health(setup, lost)
    yield Record(setup, influxd.url, database, config, registry, points, lost)
    setup.close()
    influxd.query(f'DROP DATABASE "{database}"')


def _count(url: str, database: str) -> int:
    """Points InfluxDB shows whole: it applies a point's fields one by one (absent_fields), and
    a test that reads the record at once must not meet the last one half applied."""
    series = query(url, database, "SELECT * FROM readings")
    return sum(not absent_fields(row) for _, rows in series for row in rows)
