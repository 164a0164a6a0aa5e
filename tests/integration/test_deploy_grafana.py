"""Every query of the Grafana dashboard runs on a real influxd against the schema's data; missing
stays missing (no fill(0)), flagged values are kept out of the lines and drawn apart, and the
health and loss panels count what they say. The Prometheus panels (gateway and ingest health)
name only metrics and labels that a real scrape of the running programs shows (no Grafana or
Prometheus server here: their queries are checked against what the programs expose)."""

from __future__ import annotations

import json
import re
import urllib.parse
import urllib.request
from dataclasses import replace
from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families

from watershed.contracts.mqtt import MessageReading
from watershed.devservers import free_port
from watershed.gateway.config import load_config
from watershed.gateway.daemon import Gateway
from watershed.gateway.store import Store
from watershed.hydro.influxql import query
from watershed_sim.py_station import StationBus

from .test_gateway_operator import (  # noqa: F401 (fixtures)
    SAN,
    broker,
    config_file,
    gateway_id,
    link,
    sample,
    station_bus,
    wait_until,
)
from .test_ingest_service import (  # noqa: F401 (fixtures)
    VECTOR,
    VECTOR_MESSAGE,
    Setup,
    setup,
    wait_for,
)
from .test_ingest_unattended import ingest_with_metrics

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


def influx_panels() -> list[dict]:
    return [p for p in json.loads(DASHBOARD.read_text())["panels"]
            if p.get("datasource", {}).get("type") == "influxdb"]


def test_every_panel_query_returns_data(influxd, sample_db: str) -> None:
    assert influx_panels()
    for panel in influx_panels():
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


# --- the health panels: Prometheus queries against the programs' real /metrics ----------------

PROMETHEUS_YML = DASHBOARD.parent / "prometheus.yml"
_PROMQL_WORDS = {"by", "without", "on", "ignoring", "group_left", "group_right", "bool", "and",
                 "or", "unless", "offset"}
_ADDED_BY_PROMETHEUS = {"job", "instance"}  # labels of every scraped series


def promql_parts(expr: str) -> tuple[set[str], set[str], dict[str, str]]:
    """The metric names, label names and label values (name -> value) a simple PromQL
    expression uses."""
    labels: set[str] = set()
    values: dict[str, str] = {}
    for matchers in re.findall(r"\{([^}]*)\}", expr):
        for name, value in re.findall(r'(\w+)\s*=~?\s*"([^"]*)"', matchers):
            labels.add(name)
            values[name] = value
    for grouping in re.findall(r"\b(?:by|without)\s*\(([^)]*)\)", expr):
        labels.update(n.strip() for n in grouping.split(",") if n.strip())
    bare = re.sub(r"\b(?:by|without)\s*\([^)]*\)|\{[^}]*\}|\[[^\]]*\]|\"[^\"]*\"", " ", expr)
    names = {m.group(1) for m in re.finditer(r"\b([a-zA-Z_:][\w:]*)\b(?!\s*\()", bare)
             if m.group(1) not in _PROMQL_WORDS}
    return names, labels, values


def prometheus_targets() -> list[tuple[str, dict]]:
    dashboard = json.loads(DASHBOARD.read_text())
    return [(panel["title"], target) for panel in dashboard["panels"]
            if panel.get("datasource", {}).get("type") == "prometheus"
            for target in panel["targets"]]


def scraped(text: str) -> dict[str, set[str]]:
    """Metric name -> the label names its samples carry, as a Prometheus would parse them."""
    families: dict[str, set[str]] = {}
    for family in text_string_to_metric_families(text):
        labels = families.setdefault(family.name, set())
        for sample in family.samples:
            labels.update(sample.labels)
    return families


def test_promql_parts() -> None:  # the checker below must see what a query uses
    assert promql_parts('sum by (cause) (watershed_gateway_readings_lost_total)') == (
        {"watershed_gateway_readings_lost_total"}, {"cause"}, {})
    assert promql_parts('increase(watershed_ingest_points_written_total[5m])')[0] == {
        "watershed_ingest_points_written_total"}
    assert promql_parts('up{job="watershed-gateway"}') == (
        {"up"}, {"job"}, {"job": "watershed-gateway"})


def check_targets(prefix: str, exposed: dict[str, set[str]]) -> int:
    """Every query naming a ``prefix`` metric names ones in ``exposed`` with labels its samples
    carry (legend ``{{label}}`` too); returns how many queries were checked."""
    checked = 0
    for title, target in prometheus_targets():
        names, labels, _ = promql_parts(target["expr"])
        ours = {n for n in names if n.startswith(prefix)}
        if not ours:
            continue
        assert names == ours, f"{title!r}: {target['expr']} mixes programs"
        legend = set(re.findall(r"\{\{\s*(\w+)\s*\}\}", target.get("legendFormat", "")))
        for name in ours:
            assert name in exposed, f"{title!r}: {name} is not in the program's /metrics"
            missing = (labels | legend) - exposed[name] - _ADDED_BY_PROMETHEUS
            assert not missing, f"{title!r}: {name} has no label {missing}"
        checked += 1
    return checked


def test_the_up_panel_asks_for_the_jobs_the_scrape_config_defines() -> None:
    jobs = set(re.findall(r"job_name:\s*(\S+)", PROMETHEUS_YML.read_text()))
    asked = {promql_parts(t["expr"])[2]["job"] for _, t in prometheus_targets()
             if "up" in promql_parts(t["expr"])[0]}
    assert asked == jobs == {"watershed-gateway", "watershed-ingest"}
    every_name = {n for _, t in prometheus_targets() for n in promql_parts(t["expr"])[0]}
    assert every_name - {"up"} and all(n.startswith(("watershed_gateway_", "watershed_ingest_"))
                                       for n in every_name - {"up"})


def scrape(port: int) -> str:
    return urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10).read().decode()


def test_gateway_panels_name_what_a_running_gateway_exposes(station_bus: StationBus,
                                                             config_file: Path) -> None:
    config = replace(load_config(config_file), metrics_port=free_port())
    with Store(config.store) as store:  # a loss in the ledger, so its labels show
        store.add("OLD-09", "santiago", [MessageReading(seq, "stage_m", T0 + seq, 1, 0, 0)
                                         for seq in (1, 2, 5)])
        assert store.settle_lost("OLD-09", 5) == 2
    gw = Gateway(config)
    gw.start()
    try:
        sample(station_bus, SAN, ["1.0", "2.0"])
        wait_until(lambda: 'station_battery_millivolts{station="SAN-01"}'
                   in scrape(config.metrics_port), what="the station's STATUS in the metrics")
        exposed = scraped(scrape(config.metrics_port))
    finally:
        gw.stop()
    assert 'cause' in exposed["watershed_gateway_readings_lost_total"]
    assert check_targets("watershed_gateway_", exposed) >= 8


def test_ingest_panels_name_what_a_running_ingest_exposes(setup: Setup, tmp_path: Path
                                                           ) -> None:
    port = free_port()
    process = ingest_with_metrics(setup, tmp_path, port)
    try:
        def written() -> bool:
            setup.publish(VECTOR["payload"].encode())
            return len(setup.rows()) == len(VECTOR_MESSAGE.readings)
        wait_for(written, what="points written")

        def metrics() -> str:
            try:
                return scrape(port)
            except OSError:
                return ""
        wait_for(lambda: "watershed_ingest_points_written_total" in metrics(),
                 what="the ingest's metrics")
        exposed = scraped(metrics())
    finally:
        process.terminate()
        process.communicate(timeout=15)
    assert check_targets("watershed_ingest_", exposed) >= 4
