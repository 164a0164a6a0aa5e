"""Discharge derived at ingest through the station's rating, and recomputed after a rating
change — real mosquitto in, real influxd out."""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path

import pytest

from watershed.cli import main
from watershed.contracts.mqtt import MessageReading, ReadingsMessage, encode_readings
from watershed.contracts.wire import MISSING, OUT_OF_RANGE
from watershed.devservers import Influxd, Mosquitto
from watershed.hydro.influxql import query
from watershed.ingest.config import IngestConfig
from watershed.ratings.tomlfile import parse_toml_rating

from .test_ingest_service import Setup, wait_for

pytestmark = pytest.mark.integration

RATING = """
id = "{id}"
stage_unit = "m"
[[segments]]
offset = {offset}
points = [[0.20, 0.20], [0.60, 2.64], [2.00, 41.6]]
"""
T0 = 1763676900


def stage_message(values: list[str | None]) -> ReadingsMessage:
    readings = []
    for i, text in enumerate(values):
        if text is None:
            readings.append(MessageReading(i + 1, "stage_m", T0 + 900 * i, 0, 0, MISSING))
        else:
            d = Decimal(text)
            sign, digits, exp = d.as_tuple()
            mantissa = int("".join(map(str, digits))) * (-1 if sign else 1)
            readings.append(MessageReading(i + 1, "stage_m", T0 + 900 * i, mantissa, int(exp), 0))
    return ReadingsMessage("gw-zamora", "SAN-01", "santiago", tuple(readings))


def discharge_rows(s: Setup) -> dict[int, dict]:
    series = query(s.influx_url, s.database, "SELECT value, flags, seq, rating_id, gateway "
                   "FROM readings WHERE channel = 'discharge_m3s'")
    return {row["time"]: row for _, rows in series for row in rows}


@pytest.fixture
def rated(mosquitto: Mosquitto, influxd: Influxd, fresh_influx_db: str,
          tmp_path: Path):  # type: ignore[no-untyped-def]
    (tmp_path / "san01.toml").write_text(RATING.format(id="SAN-01.1", offset="0.10"))
    s = Setup(mosquitto, influxd.url, fresh_influx_db, tmp_path)
    c = s.config
    s.config = IngestConfig.from_dict({
        "ingest": {"id": c.ingest.id, "group": c.ingest.group,
                   "deadletter_file": c.ingest.deadletter_file},
        "mqtt": {"port": c.mqtt.port, "prefix": c.mqtt.prefix},
        "influx": {"url": c.influx.url, "database": c.influx.database, "flush_interval_s": 0.2},
        "validation": {"max_future_s": 0},
        "stations": [{"id": "SAN-01", "gateways": ["gw-zamora"], "ratings": ["san01.toml"]}],
    }, tmp_path)
    yield s
    s.close()


def test_discharge_is_derived_at_ingest_with_its_rating_id(rated: Setup, tmp_path: Path) -> None:
    rated.start_ingest()
    rated.publish(encode_readings(stage_message(["0.60", "1.25", "2.50", None])))
    rated.wait_for_points(8)  # 4 stage + 4 discharge
    rows = discharge_rows(rated)
    rating = parse_toml_rating(RATING.format(id="SAN-01.1", offset="0.10"))
    assert {t: (r["value"], r["flags"], r["seq"], r["rating_id"]) for t, r in rows.items()} == {
        T0: (Decimal("2.64"), 0, 1, "SAN-01.1"),
        T0 + 900: (rating.rated(1.25), 0, 2, "SAN-01.1"),
        T0 + 1800: (None, OUT_OF_RANGE | MISSING, 3, "SAN-01.1"),  # above the rating: no number
        T0 + 2700: (None, MISSING, 4, "SAN-01.1"),
    }


def test_recompute_after_a_rating_change(rated: Setup, tmp_path: Path) -> None:
    ingest = rated.start_ingest()
    rated.publish(encode_readings(stage_message(["0.60", "1.25", "1.90"])))
    rated.wait_for_points(6)
    ingest.stop()
    before = discharge_rows(rated)

    # The rating is revised (new offset, new id); recompute the station's range.
    (tmp_path / "san01.toml").write_text(RATING.format(id="SAN-01.2", offset="0.30"))
    config = tmp_path / "ingest.toml"
    config.write_text(f"""
[influx]
url = "{rated.influx_url}"
database = "{rated.database}"
[[stations]]
id = "SAN-01"
ratings = ["san01.toml"]
""")
    assert main(["recompute", "--config", str(config), "--station", "SAN-01",
                 "--start", str(T0), "--end", "2025-11-21T00:00:00Z"]) == 0
    after = discharge_rows(rated)
    new = parse_toml_rating(RATING.format(id="SAN-01.2", offset="0.30"))
    assert set(after) == set(before)  # replaced, not added
    assert {r["rating_id"] for r in after.values()} == {"SAN-01.2"}
    assert after[T0]["value"] == before[T0]["value"] == Decimal("2.64")  # a breakpoint
    for t, stage in ((T0 + 900, 1.25), (T0 + 1800, 1.9)):
        assert after[t]["value"] == new.rated(stage) != before[t]["value"]
        assert (after[t]["seq"], after[t]["gateway"]) == (before[t]["seq"], "gw-zamora")
    # The raw stage is untouched.
    stages = query(rated.influx_url, rated.database,
                   "SELECT value FROM readings WHERE channel = 'stage_m'")
    assert [r["value"] for _, rows in stages for r in rows] == [Decimal("0.6"), Decimal("1.25"),
                                                                Decimal("1.9")]


def test_a_gateway_that_does_not_own_the_station_is_rejected(rated: Setup) -> None:
    ingest = rated.start_ingest()
    deadletters = rated.subscribe_deadletters()
    forged = ReadingsMessage("gw-rogue", "SAN-01", "santiago", stage_message(["1.0"]).readings)
    rated.publish(encode_readings(forged), rated.topics.readings("gw-rogue", "SAN-01"))
    rated.publish(encode_readings(stage_message(["1.0"])))
    rated.wait_for_points(2)
    wait_for(lambda: len(deadletters) == 1, what="1 dead letter")
    assert deadletters[0]["reason"].startswith("registry: gateway gw-rogue does not own")
    assert ingest.stats()["invalid"] == 1
