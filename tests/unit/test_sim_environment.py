"""Environment models and replay readers: physical facts and exact recorded values."""

from __future__ import annotations

from datetime import datetime, timezone
from decimal import Decimal
from pathlib import Path

import pytest

from watershed_sim.environment import Catchment, Environment, Rating, RainEvent, River, Weather
from watershed_sim.replay import ReplayError, read_csv, read_tip_log, read_toa5, read_usgs_rdb

# The replayed scenario's record (scenarios/data/SOURCES.md says where it comes from).
SCENARIO_DATA = Path(__file__).resolve().parents[2] / "scenarios" / "data"
USGS_IV = SCENARIO_DATA / "usgs_09512500_iv_discharge.rdb"
T0 = 1_700_000_000 // 86400 * 86400  # a midnight UTC


def test_rating_and_its_inverse_agree() -> None:
    rating = Rating(c=12.0, e=0.15, b=1.6)
    for h in (0.2, 0.5, 1.0, 3.0):
        assert rating.stage(rating.discharge(h)) == pytest.approx(h)
    assert rating.discharge(0.1) == 0.0  # below the gage height of zero flow


def test_a_storm_raises_the_river_and_it_recedes_with_the_reservoir_constant() -> None:
    storm = RainEvent(start=T0 + 3600, duration_s=2 * 3600, intensity_mm_h=20.0)
    catchment = Catchment(rain=(storm,))
    river = River(catchment, T0)
    base = river.discharge_m3s(T0 + 1800)
    assert base == pytest.approx(catchment.base_m3s)
    flows = {h: river.discharge_m3s(T0 + h * 3600) for h in range(0, 30)}
    peak_hour = max(flows, key=flows.get)
    assert 2 <= peak_hour <= 4  # peaks as the rain stops
    assert flows[peak_hour] > 5 * base
    # After the rain, the excess decays as exp(-t/k): one k later it is 1/e of itself.
    k_h = catchment.k_s / 3600
    excess = lambda h: river.discharge_m3s(T0 + h * 3600) - catchment.base_m3s  # noqa: E731
    assert excess(3 + k_h) / excess(3) == pytest.approx(1 / 2.718281828, rel=0.02)
    assert river.stage_m(T0 + peak_hour * 3600) > river.stage_m(T0)
    # Mass balance: the runoff volume equals the share of rain that runs off.
    rain_m3 = 20.0 * 2 / 1000 * catchment.area_km2 * 1e6 * catchment.runoff_coeff
    volume = sum((river.discharge_m3s(T0 + s) - catchment.base_m3s) * 300
                 for s in range(0, 72 * 3600, 300))
    assert volume == pytest.approx(rain_m3, rel=0.02)


def test_air_is_warmest_in_the_afternoon_and_humidity_lowest() -> None:
    weather = Weather(utc_offset_h=-5)
    local = lambda h: T0 + (h + 5) * 3600  # noqa: E731
    temps = {h: weather.air_temp_c(local(h)) for h in range(24)}
    assert max(temps, key=temps.get) == 14
    assert min(temps, key=temps.get) == 2
    rh = {h: weather.rh_pct(local(h)) for h in range(24)}
    assert min(rh, key=rh.get) == 14
    assert all(0 < v <= 100 for v in rh.values())
    pressures = [weather.pressure_hpa_at(local(h)) for h in range(24)]
    assert max(pressures) - min(pressures) == pytest.approx(2 * weather.tide_hpa, rel=0.01)


def test_environment_names_every_quantity() -> None:
    env = Environment(River(Catchment(), T0), Weather())
    for q in Environment.QUANTITIES:
        assert isinstance(env.value(q, T0 + 3600), float)


def test_usgs_rdb_replay_is_exact_and_keeps_its_gap() -> None:
    series = read_usgs_rdb(USGS_IV)
    assert len(series.times) == 714
    assert series.step_s == 900
    first = datetime(2016, 5, 9, 7, 0, tzinfo=timezone.utc).timestamp()  # 00:00 MST
    assert series.times[0] == first
    assert series.values[0] == Decimal("1.0")
    assert series.values[-1] == Decimal("0.82")
    gap = int(datetime(2016, 5, 10, 18, 0, tzinfo=timezone.utc).timestamp())  # 11:00 MST
    assert series.gaps() == [gap]
    assert series.value_at(gap) is None
    assert series.value_at(gap - 900) is not None
    moved = series.shifted(T0)
    assert moved.times[0] == T0 and moved.values == series.values


def test_csv_replay_reads_iso_and_unix_times(tmp_path: Path) -> None:
    path = tmp_path / "stage.csv"
    path.write_text("time,stage_m\n2024-01-01T00:00:00Z,0.420\n1704068100,0.431\n"
                    "2024-01-01T00:30:00,\n")
    series = read_csv(path, "stage_m")
    assert series.times == (1704067200, 1704068100)
    assert series.values == (Decimal("0.420"), Decimal("0.431"))


def test_toa5_replay_skips_nan(tmp_path: Path) -> None:
    path = tmp_path / "CR1000X_Table15.dat"
    path.write_text(
        '"TOA5","PARAMO","CR1000X","1234","CR1000X.Std.05","CPU:p.CR1X","1","Table15"\n'
        '"TIMESTAMP","RECORD","AirT_C","Stage_m"\n'
        '"TS","RN","Deg C","m"\n'
        '"","","Avg","Smp"\n'
        '"2024-01-01 00:15:00",0,12.31,0.512\n'
        '"2024-01-01 00:30:00",1,"NAN",0.515\n'
        '"2024-01-01 00:45:00",2,11.9,0.519\n')
    series = read_toa5(path, "AirT_C", utc_offset_h=-5)
    assert series.values == (Decimal("12.31"), Decimal("11.9"))
    assert series.times[0] == 1704068100 + 5 * 3600


def test_tip_log_counts_tips_per_interval(tmp_path: Path) -> None:
    path = tmp_path / "tips.log"
    path.write_text("# tipping bucket, 0.2 mm\n100.5\n101.0\n899.9\n900\n1800.2\n")
    log = read_tip_log(path)
    assert log.tips_between(0, 900) == 3
    assert log.rain_mm(900, 1800) == Decimal("0.2")
    assert log.rain_mm(0, 2700) == Decimal("1.0")


def test_a_broken_file_names_its_line(tmp_path: Path) -> None:
    path = tmp_path / "bad.csv"
    path.write_text("time,stage_m\n2024-01-01T00:00:00Z,0.4\n2024-01-01T00:15:00Z,abc\n")
    with pytest.raises(ReplayError, match=r"bad.csv:3: 'abc' is not a number"):
        read_csv(path, "stage_m")
