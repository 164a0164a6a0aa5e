"""Issue 13, item 1: every sensor kind the firmware supports, on its simulated device, in a
scenario through the whole real pipeline (firmware in the unix port, bus and radio links,
gateway, mosquitto, ingest, influxd), with every kind of device fault on the timeline.

scenarios/full_set_thirty_days.toml runs here for its first two days (all its faults fall in
them; `make bench` runs the thirty). Besides nothing missing or mismatched between what the
stations stored and InfluxDB, each value is checked against the truth the device was given:
what a fault does (missing, stuck, drifted) and what it must not do (cost another value).
"""

from __future__ import annotations

import dataclasses
import uuid
from decimal import Decimal
from pathlib import Path

import pytest

from watershed.hydro.influxql import query
from watershed_sim.devices.sdi12 import format_value
from watershed_sim.runner import run_scenario
from watershed_sim.scenario import load_scenario

pytestmark = [pytest.mark.integration, pytest.mark.firmware]

SCENARIO = Path(__file__).resolve().parents[2] / "scenarios" / "full_set_thirty_days.toml"
DAYS = 2
MISSING, EVENT = 0x01, 0x80
H = 3600
P = 7 / 60  # a device's own faults start and end 7 min past a reading


@pytest.fixture(scope="module")
def full_set(tmp_path_factory, mosquitto, influxd):
    scenario = dataclasses.replace(load_scenario(SCENARIO), duration_s=DAYS * 86400)
    database = f"kinds_{uuid.uuid4().hex[:8]}"
    pipeline = []
    result = run_scenario(scenario, tmp_path_factory.mktemp("kinds"), database=database,
                          mosquitto=mosquitto, influxd=influxd, pipeline_out=pipeline)
    end = scenario.start + scenario.duration_s

    def stored(station: str, channel: str) -> dict[int, tuple[Decimal | None, int]]:
        rows = {}
        for _, series in query(influxd.url, database,
                               f"SELECT value, flags FROM readings WHERE station = '{station}' "
                               f"AND channel = '{channel}'"):
            rows.update({r["time"]: (r["value"], r["flags"]) for r in series
                         if r["time"] <= end})
        return rows
    return scenario, result, pipeline[0], stored


def at(scenario, hours: float) -> float:
    return scenario.start + hours * H


def test_every_kind_stores_everything_it_read(full_set):
    scenario, result, _, stored = full_set
    lines = [f"{r.station}/{r.channel}: missing {r.missing[:5]} mismatched {r.mismatched[:3]}"
             for r in result.reports if r.missing or r.mismatched]
    assert lines == [], lines + result.explanation
    assert result.firmware_faults == []
    assert result.ok
    kinds = {
        "ZAM-01": ["stage_m", "water_temp_c", "solar_wm2", "wind_speed_ms", "wind_dir_deg",
                   "wind_gust_ms", "air_temp_c", "vapour_pressure_kpa", "pressure_hpa",
                   "rh_pct", "velocity_ms", "rain_mm", "battery_v"],
        "CHI-01": ["stage_m", "range_m", "ch129", "rain_mm", "battery_v"],
        "CAT-01": ["air_temp_c", "rh_pct", "pressure_hpa", "battery_v"],
    }
    for station, channels in kinds.items():
        for channel in channels:
            assert len(stored(station, channel)) >= DAYS * 24 - 4, (station, channel)
    done = " | ".join(what for _, what in result.faults_done)
    for fault in ("sdi12 no_reply", "sdi12 bad_crc", "sdi12 garble", "sdi12 late",
                  "serial_level garble", "serial_level no_reply", "BME280 no_reply",
                  "CHI-01 power off"):
        assert fault in done, (fault, done)


def test_sdi12_level_values_are_the_truth_and_faults_cost_only_their_window(full_set):
    scenario, _, _, stored = full_set
    env = scenario.environment()
    no_reply = (at(scenario, 3 + P), at(scenario, 4 + P))
    drift = (at(scenario, 40), at(scenario, 46))
    rows = stored("ZAM-01", "stage_m")
    for t, (value, flags) in rows.items():
        if no_reply[0] <= t < no_reply[1]:
            assert value is None and flags & MISSING, (t, value, flags)
            continue
        truth = Decimal(str(env.value("stage_m", t)))
        if drift[0] <= t < drift[1]:
            truth += Decimal("0.02") * Decimal(str((t - drift[0]) / 86400))
        assert value == Decimal(format_value(truth, 3)), (t, value, truth)
        assert not flags & MISSING
    assert sum(1 for t in rows if no_reply[0] <= t < no_reply[1]) == 4  # every 15 min


def test_sdi12_weather_values_shifts_and_faults(full_set):
    scenario, _, _, stored = full_set
    env = scenario.environment()
    bad = [(at(scenario, 16 + P), at(scenario, 17 + P)),  # a bad CRC, then a garbled byte
           (at(scenario, 17 + P), at(scenario, 18 + P))]
    stuck = (at(scenario, 36), at(scenario, 42))
    air = stored("ZAM-01", "air_temp_c")
    pressure = stored("ZAM-01", "pressure_hpa")
    for t, (value, flags) in air.items():
        if any(a <= t < b for a, b in bad):  # a bad CRC, a garbled byte: every retry failed
            assert value is None and flags & MISSING, t
            assert pressure[t][0] is None
            continue
        when = stuck[0] if stuck[0] <= t < stuck[1] else t
        assert value == Decimal(format_value(env.value("air_temp_c", when), 1)), t
        # kPa with 2 decimals from the sensor, shifted to hPa by the station exactly
        kpa = Decimal(format_value(env.value("pressure_kpa", when), 2))
        assert pressure[t][0] == kpa * 10 and not pressure[t][1] & MISSING, (t, pressure[t])
    assert stored("ZAM-01", "wind_dir_deg")[int(at(scenario, 10))][0] == Decimal("187.5")
    radar = stored("ZAM-01", "velocity_ms")
    assert all(v is not None for t, (v, _) in radar.items()
               if at(scenario, 18 + P) <= t < at(scenario, 19 + P))  # late, yet in time
    gone = [(v, f) for t, (v, f) in radar.items() if at(scenario, 20) <= t < at(scenario, 21)]
    assert len(gone) == 4 and all(v is None and f & MISSING for v, f in gone)  # a dropout


def test_rain_per_interval_is_the_tips_handed_over_times_the_bucket(full_set):
    scenario, _, pipeline, stored = full_set
    for station, bucket_um in (("ZAM-01", 200), ("CHI-01", 254)):
        [gauge] = pipeline.sites[station].gauges
        rows = sorted(stored(station, "rain_mm").items())
        total = Decimal(0)
        for (t0, _), (t1, (value, flags)) in zip(rows, rows[1:]):
            assert value is not None and not flags & MISSING
            assert value == Decimal(gauge.rain_um_between(t0, t1)) / 1000, (station, t1)
            total += value
        assert total > 0
    [zam] = pipeline.sites["ZAM-01"].gauges
    assert zam.lost and all(at(scenario, 7) <= t < at(scenario, 8) for t in zam.lost)
    [chi] = pipeline.sites["CHI-01"].gauges
    assert all(at(scenario, 38) <= t <= at(scenario, 41) for t in chi.lost)  # the power cut


def test_serial_radar_and_4_20_ma_stage(full_set):
    scenario, _, _, stored = full_set
    env = scenario.environment()
    radar = stored("CHI-01", "stage_m")
    silent = [(at(scenario, 24 + P), at(scenario, 25 + P)),
              (at(scenario, 26 + P), at(scenario, 27 + P))]
    off = (at(scenario, 38), at(scenario, 41))
    for t, (value, flags) in radar.items():
        assert not off[0] < t < off[1], "no reading while the power was off"
        if any(a <= t < b for a, b in silent):
            assert value is None and flags & MISSING, t
            continue
        truth_mm = round(Decimal(str(env.value("stage_m", t))) * 1000)
        assert value == Decimal(truth_mm) / 1000, (t, value)
    analog = stored("CHI-01", "ch129")
    drift = (at(scenario, 2), at(scenario, 14))
    dropout = (at(scenario, 44), at(scenario, 45))
    for t, (value, flags) in analog.items():
        if dropout[0] <= t < dropout[1]:
            assert value is None and flags & MISSING
            continue
        truth = Decimal(str(env.value("stage_m", t)))
        if drift[0] <= t < drift[1]:
            truth += Decimal("0.01") * Decimal(str((t - drift[0]) / 86400))
        assert abs(value - truth) <= Decimal("0.001"), (t, value, truth)  # one ADC count


def test_bme280_on_the_simulated_i2c_bus(full_set):
    scenario, _, _, stored = full_set
    env = scenario.environment()
    silent = (at(scenario, 10 + P), at(scenario, 12 + P))
    drift = (at(scenario, 24), at(scenario, 36))
    rows = stored("CAT-01", "air_temp_c")
    humidity = stored("CAT-01", "rh_pct")
    for t, (value, flags) in rows.items():
        if silent[0] <= t < silent[1]:
            assert value is None and flags & MISSING and humidity[t][0] is None
            continue
        drifted = 0.5 * (t - drift[0]) / 86400 if drift[0] <= t < drift[1] else 0.0
        truth = env.value("air_temp_c", t) + drifted  # a drift moves every value
        assert value is not None, (t, flags)
        assert abs(float(value) - truth) <= 0.011, (t, value, truth)  # 0.01 °C steps
        rh = min(env.value("rh_pct", t) + drifted, 100.0)  # the chip's formula stops at 100
        assert abs(float(humidity[t][0]) - rh) <= 0.06, t


def test_stuck_battery_and_event_mode(full_set):
    scenario, _, _, stored = full_set
    battery = stored("ZAM-01", "battery_v")
    stuck = {v for t, (v, _) in battery.items() if at(scenario, 12) <= t < at(scenario, 18)}
    day_after = {v for t, (v, _) in battery.items() if at(scenario, 36) <= t < at(scenario, 42)}
    assert len(stuck) == 1 and len(day_after) >= 5  # the morning's charge, frozen
    stage = stored("ZAM-01", "stage_m")
    flood = sorted(t for t, (_, flags) in stage.items() if flags & EVENT)
    assert flood and any(at(scenario, 30) <= t <= at(scenario, 38) for t in flood)
    steps = {b - a for a, b in zip(flood, flood[1:])}
    assert 300 in steps  # event_s: five-minute stage in the flood


def test_gateway_alert_and_discharge_at_the_ingest(full_set):
    scenario, result, pipeline, stored = full_set
    assert result.gateway_stats["forwarder"]["alerts_published"] >= 1  # the flood's stage
    stage = stored("ZAM-01", "stage_m")
    discharge = stored("ZAM-01", "discharge_m3s")
    rating = scenario.catchment.rating  # the river's own law; the station's rating file has it
    assert set(discharge) == set(stage)  # one discharge per stage reading
    assert result.discharge == {"ZAM-01": {"stage_readings": len(stage),
                                           "discharge_points": len(discharge)}}
    for t, (q, flags) in discharge.items():
        if stage[t][0] is None:  # the level sensor did not answer: no discharge either
            assert q is None and flags & MISSING, t
            continue
        expected = rating.discharge(float(stage[t][0]))
        assert abs(float(q) - expected) <= 0.001 * expected + 0.0005, (t, q, expected)


def test_a_station_misconfigured_as_another_is_quarantined_then_released_whole(full_set):
    """CAT-01 runs 3 h with CAT-02's config (a technician's slip): the gateway holds what it
    sends in quarantine, under neither id, and ACKs it (the station's flash is freed); with its
    own config back the operator releases the entry to CAT-01, and InfluxDB has every reading
    of the window under CAT-01 (the whole-run check above: nothing missing)."""
    scenario, result, pipeline, stored = full_set
    window = (at(scenario, 40 + P), at(scenario, 43 + P))
    (entry,) = result.quarantine  # a late reply on a radio is no second station: one entry
    readings = entry.pop("readings")
    assert entry == {"kind": "address_taken", "bound": "CAT-01", "claimed": "CAT-02",
                     "address": 3, "state": "released", "settled_to": "CAT-01"}
    air = [t for t in stored("CAT-01", "air_temp_c") if window[0] <= t < window[1]]
    assert len(air) == 12  # every 15 min of the window, under its own id
    assert readings >= 3 * len(air) - 3  # BME280's three values (and battery), sent misnamed
    done = [what for _, what in result.faults_done]
    assert "CAT-01 configured as CAT-02" in done and "CAT-01 configured as itself" in done
    links = result.gateway_stats["links"].values()
    assert sum(s.get("identity_mismatches", 0) for s in links) >= 1
