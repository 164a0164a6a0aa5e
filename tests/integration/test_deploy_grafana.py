"""Every query of the Grafana dashboard runs on a real influxd against the schema's data; missing
stays missing (no fill(0)), flagged values are kept out of the lines and drawn apart, and the
health and loss panels count what they say."""

from __future__ import annotations

import json
import urllib.parse
import urllib.request
from pathlib import Path

import pytest

from watershed.hydro.influxql import query

pytestmark = pytest.mark.integration

DASHBOARD = Path(__file__).resolve().parents[2] / "deploy" / "grafana" / "watershed-stations.json"
T0 = 1763676900


def grafana_to_influxql(q: str) -> str:
    """What Grafana sends for these variables: all stations, the last 30 days."""
    return (q.replace("/^$station$/", "/^(SAN-01|MAY-02)$/")
             .replace("$timeFilter", f"time >= {T0 - 86400}s AND time <= {T0 + 86400}s"))


@pytest.fixture
def sample_db(influxd, fresh_influx_db: str) -> str:
    lines = []
    seq = {"SAN-01": 0, "MAY-02": 0}  # per station, as stations number their readings
    for i in range(8):
        t = T0 + 900 * i
        for station in ("SAN-01", "MAY-02"):
            for channel, value in (("stage_m", "1.234"), ("discharge_m3s", "3.5"),
                                   ("rain_mm", "0.2"), ("battery_v", "12.81"),
                                   ("water_temp_c", "14.52")):
                seq[station] += 1
                if station == "SAN-01" and channel == "water_temp_c" and i == 5:
                    continue  # lost on the way: a seq gap
                flags = 4 if i == 3 else 0
                field = f"value={value}"
                if station == "SAN-01" and channel == "rain_mm" and i == 6:
                    flags, field = 1, ""  # stored as missing
                fields = ",".join(f for f in (f"flags={flags}i", 'gateway="gw-1"',
                                              f"seq={seq[station]}i", field) if f)
                lines.append(f"readings,basin=santiago,channel={channel},station={station} "
                             f"{fields} {t}")
    params = urllib.parse.urlencode({"db": fresh_influx_db, "precision": "s"})
    urllib.request.urlopen(f"{influxd.url}/write?{params}", data="\n".join(lines).encode(),
                           timeout=10).read()
    return fresh_influx_db


def test_every_panel_query_returns_data(influxd, sample_db: str) -> None:
    dashboard = json.loads(DASHBOARD.read_text())
    assert dashboard["panels"]
    for panel in dashboard["panels"]:
        for target in panel["targets"]:
            series = query(influxd.url, sample_db, grafana_to_influxql(target["query"]))
            assert series, f"panel {panel['title']!r} returned nothing"
            values = [v for _, rows in series for row in rows for k, v in row.items()
                      if k != "time" and v is not None]
            assert values, f"panel {panel['title']!r} returned only nulls"


def test_the_station_variable_lists_the_stations(influxd, sample_db: str) -> None:
    dashboard = json.loads(DASHBOARD.read_text())
    variable = dashboard["templating"]["list"][0]
    series = query(influxd.url, sample_db, variable["query"])
    assert sorted(row["value"] for _, rows in series for row in rows) == ["MAY-02", "SAN-01"]


def panel_rows(influxd, db: str, title: str, ref: str = "A") -> list[tuple[dict, dict]]:
    dashboard = json.loads(DASHBOARD.read_text())
    [panel] = [p for p in dashboard["panels"] if p["title"] == title]
    [target] = [t for t in panel["targets"] if t["refId"] == ref]
    return [(tags, row) for tags, rows in query(influxd.url, db,
                                                 grafana_to_influxql(target["query"]))
            for row in rows]


def test_missing_stays_missing_and_flagged_values_are_apart(influxd, sample_db: str) -> None:
    assert "fill(0)" not in DASHBOARD.read_text()
    flagged_at = T0 + 900 * 3
    clean = panel_rows(influxd, sample_db, "River stage (m)")
    assert clean and flagged_at not in {row["time"] for _, row in clean}
    apart = panel_rows(influxd, sample_db, "River stage (m)", "B")
    assert {row["time"] for _, row in apart} == {flagged_at}
    rain = panel_rows(influxd, sample_db, "Rain per hour (mm)")
    assert all(row["sum"] is not None for _, row in rain)


def test_health_and_loss_panels_count(influxd, sample_db: str) -> None:
    missing = {(tags["station"], row["time"]): row["missing"]
               for tags, row in panel_rows(influxd, sample_db,
                                           "Missing readings per hour (stored as missing)")}
    assert sum(missing.values()) == 1 and [k for k, v in missing.items() if v] == [
        ("SAN-01", (T0 + 900 * 6) // 3600 * 3600)]
    lost = {(tags["station"], row["time"]): row["lost"]
            for tags, row in panel_rows(influxd, sample_db, "Lost readings per hour (seq gaps)")}
    assert [k for k, v in lost.items() if v] == [("SAN-01", (T0 + 900 * 5) // 3600 * 3600)]
    stored = panel_rows(influxd, sample_db, "Readings stored per hour (health)")
    assert sum(row["readings"] for _, row in stored) == 2 * 8 * 5 - 1
