"""Every query of the Grafana dashboard runs on a real influxd against the schema's data."""

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
    for i in range(8):
        t = T0 + 900 * i
        for station in ("SAN-01", "MAY-02"):
            for channel, value in (("stage_m", "1.234"), ("discharge_m3s", "3.5"),
                                   ("rain_mm", "0.2"), ("battery_v", "12.81"),
                                   ("water_temp_c", "14.52")):
                flags = 4 if i == 3 else 0
                lines.append(f"readings,basin=santiago,channel={channel},station={station} "
                             f"flags={flags}i,gateway=\"gw-1\",seq={i}i,value={value} {t}")
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
