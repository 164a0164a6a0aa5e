"""A scenario's sensors are the firmware's own config entries plus their truth (issue 13, item
1): every kind loads, the firmware's validator speaks for the entry with the scenario's file,
line and key, and the harness refuses what it cannot simulate. Also the devices' pure parts:
tips from rain intensity, a gauge handing tips over, a BME280's register image."""

from __future__ import annotations

import random
from pathlib import Path

import pytest

from watershed_sim.devices import bme280
from watershed_sim.devices.bme280 import (DATASHEET, PART_B, Bme280Image, Calib, compensate_h,
                                          compensate_p, compensate_t, image, raws_for)
from watershed_sim.scenario import ScenarioError, Window, load_scenario, parse_scenario
from watershed_sim.sensor_site import RainGauge, rain_tips

SCENARIOS = Path(__file__).resolve().parents[2] / "scenarios"

HEAD = """\
[scenario]
name = "kinds"
start = 2026-03-01T00:00:00Z
duration = "1d"

[[link]]
name = "bus"
kind = "bus"

[[station]]
id = "ZAM-01"
address = 1
basin = "santiago"
link = "bus"
"""


def sensor(text: str) -> str:
    return HEAD + "\n[[station.sensor]]\n" + text


def problems(text: str) -> list[str]:
    with pytest.raises(ScenarioError) as e:
        parse_scenario(text, Path("k.toml"))
    return e.value.problems


def test_the_full_set_scenario_is_the_firmware_config_plus_truth() -> None:
    s = load_scenario(SCENARIOS / "full_set_thirty_days.toml")
    zam, chi, cat = s.stations
    assert [x.kind for x in zam.sensors] == ["sdi12", "sdi12", "sdi12", "rain", "analog"]
    assert [x.kind for x in chi.sensors] == ["serial_level", "analog", "rain", "analog"]
    assert [x.kind for x in cat.sensors] == ["bme280", "analog"]
    weather = zam.sensors[1]
    assert weather.device == "weather" and weather.channels == (23, 0, 20, 21, 22, 17, 24, 19, 18)
    assert weather.sources[0] == 420 and weather.sources[5] == "air_temp_c"
    cfg = zam.firmware_config({"name": "unix"}, {"sdi12": "/dev/pts/9"}, "/dev/pts/1")
    assert cfg["channels"][0] == {
        "sensor": "sdi12", "port": "/dev/pts/9", "address": "0", "channels": [1, 3],
        "interval_s": 900, "event_s": 300, "response_ms": 1000, "retries": 1}
    assert cfg["event"]["stage"] == 1 and cfg["quality"] == {"1": {"valid_min": 0.0,
                                                                    "valid_max": 6.0,
                                                                    "spike": 1.5}}
    assert cfg["channels"][3]["debounce_ms"] == 0  # tips of a step arrive together
    assert zam.alerts == ({"channel": "stage_m", "above": 1.5},)  # the gateway's own rule
    assert zam.ratings == (str(SCENARIOS / "ratings" / "ZAM-01.toml"),)
    assert {f.kind for x in s.stations for se in x.sensors for f in se.faults} == {
        "no_reply", "late", "garble", "bad_crc", "stuck", "drift", "dropout"}


def test_an_entry_the_firmware_would_refuse_is_named_at_its_line() -> None:
    found = problems(sensor('sensor = "sdi12"\nport = "sdi"\naddress = "00"\n'
                            'channels = [1]\ninterval_s = 900\nsource = "stage_m"\n'))
    assert found == ["k.toml:19: station[0].sensor[0].address: must be one SDI-12 address "
                     "character: 0-9, A-Z or a-z"]
    [typo] = problems(sensor('pin = 26\nchannel = 1\ninterval_s = 900\nexponnent = -3\n'
                             'source = "stage_m"\n'))
    assert typo.startswith("k.toml:20: station[0].sensor[0].exponnent: unknown key")


@pytest.mark.parametrize("body,expected", [
    ('sensor = "analog"\npin = 26\nchannel = 1\ninterval_s = 900\nsource = "stage_m"\n'
     '[[station.sensor.fault]]\nkind = "garble"\nat = "1h"\nduration = "1h"\n',
     "station[0].sensor[0].fault[0].kind: 'garble' does not apply to a analog sensor"),
    ('sensor = "sdi12"\nport = "s"\naddress = "0"\ncrc = false\nchannels = [1]\n'
     'interval_s = 900\nsource = "stage_m"\n'
     '[[station.sensor.fault]]\nkind = "bad_crc"\nat = "1h"\nduration = "1h"\n',
     "station[0].sensor[0].fault[0].kind: bad_crc needs the sensor's crc = true"),
    ('sensor = "sdi12"\nport = "s"\naddress = "0"\nchannels = [1, 3]\ninterval_s = 900\n'
     'sources = ["stage_m"]\n',
     "station[0].sensor[0].sources: needs one source per value the sensor returns (2)"),
    ('sensor = "rain"\npin = 27\ninterval_s = 900\ndebounce_ms = 50\nsource = "rain_mm_h"\n',
     "station[0].sensor[0].debounce_ms: must be 0 in a simulation"),
    ('sensor = "sdi12"\nport = "s"\naddress = "0"\ndevice = "barometer"\nchannels = [1]\n'
     'interval_s = 900\nsource = "stage_m"\n',
     "station[0].sensor[0].device: expected one of generic, level, weather, radar"),
    ('sensor = "analog"\npin = 26\nchannel = 1\ninterval_s = 900\ndevice = "level"\n'
     'source = "stage_m"\n', "station[0].sensor[0].device: unknown key"),
    ('sensor = "sonar"\npin = 26\nchannel = 1\ninterval_s = 900\nsource = "stage_m"\n',
     "station[0].sensor[0].sensor: expected one of analog, sdi12, serial_level, rain, bme280"),
    ('sensor = "rain"\npin = 27\ninterval_s = 900\nsource = "stage_m"\n',
     "station[0].sensor[0].source: a rain gauge's tips come from \"rain_mm_h\" or a tip record"),
    ('pin = 26\nchannel = 1\ninterval_s = 900\nsource = "replay:nowhere"\n',
     "station[0].sensor[0].source: no [[replay]] is named 'nowhere'"),
])
def test_what_the_harness_cannot_simulate_is_refused(body: str, expected: str) -> None:
    found = problems(sensor(body))
    assert any(expected in p for p in found), found


def test_a_rating_file_that_is_not_there_is_named() -> None:
    found = problems(HEAD + 'ratings = ["ratings/nowhere.toml"]\n' + "\n[[station.sensor]]\n"
                     'pin = 26\nchannel = 1\ninterval_s = 900\nsource = "stage_m"\n')
    assert found == ["k.toml:15: station[0].ratings: 'ratings/nowhere.toml': no such file"]


def test_tips_integrate_the_rain_intensity_into_buckets() -> None:
    # 12 mm/h for one hour on a 0.2 mm bucket: 60 tips, one a minute
    tips = rain_tips(lambda t: 12.0 if 3600 <= t < 7200 else 0.0, 0, 4 * 3600, 0.2)
    assert len(tips) == 60
    assert all(3600 < t <= 7200 for t in tips)
    assert tips[1] - tips[0] == 60


@pytest.mark.parametrize("events", [
    [(3600, 3600, 12.0)],
    [(3605.5, 1234.5, 7.3), (4000, 600, 30.0)],  # off the 10 s grid, overlapping
    [(-500, 1000, 5.0), (13000, 3000, 40.0)],  # begun before the start, going past the end
    [(100 + 977 * k, 311 + 13 * k, 0.7 + k) for k in range(12)],
])
def test_tips_asked_only_in_the_wet_windows_are_the_tips_of_every_step(
        events: list[tuple[float, float, float]]) -> None:
    from watershed_sim.environment import Catchment, RainEvent
    catchment = Catchment(rain=tuple(RainEvent(*e) for e in events))
    every_step = rain_tips(catchment.rain_mm_h, 0, 4 * 3600, 0.2)
    assert every_step  # it rains: the comparison is of tips, not of two empty lists
    assert rain_tips(catchment.rain_mm_h, 0, 4 * 3600, 0.2,
                     wet=catchment.wet_windows()) == every_step


def test_a_gauge_hands_over_the_tips_due_and_loses_those_of_a_blocked_funnel(
        tmp_path: Path) -> None:
    from watershed_sim.scenario import FaultSpec, SensorSpec
    spec = SensorSpec(entry={"sensor": "rain", "pin": 27, "mm_per_tip_um": 200},
                      sources=("rain_mm_h",),
                      faults=(FaultSpec("dropout", Window(100, 50)),))
    gauge = RainGauge(tmp_path, spec, [10, 20, 120, 130, 160, 170])
    gauge.deliver_until(20)
    assert (tmp_path / "edges").read_text() == "27\n27\n"
    gauge.deliver_until(165)
    assert gauge.lost == [120, 130] and gauge.delivered == [10, 20, 160]
    gauge.skip_until(170)  # the station was off
    assert gauge.lost == [120, 130, 170]
    assert gauge.rain_um_between(0, 20) == 400 and gauge.rain_um_between(20, 200) == 200


def test_a_bme280_image_gives_the_asked_conditions_to_the_chip_s_resolution() -> None:
    adc_t, adc_p, adc_h = raws_for(DATASHEET, 12.5, 80.0, 750.0)
    t, t_fine = compensate_t(DATASHEET, adc_t)
    assert abs(t - 1250) <= 1  # 0.01 °C
    assert abs(compensate_p(DATASHEET, adc_p, t_fine) / 256 - 75000) <= 1  # 0.01 hPa
    assert abs(compensate_h(DATASHEET, adc_h, t_fine) / 1024 - 80.0) <= 0.01


def test_a_bme280_image_searched_from_the_last_one_has_the_same_counts() -> None:
    # The harness writes each chip's image at every time step, searching from the last
    # image's counts: a walk of conditions, with jumps, gives what a search from scratch does.
    rng = random.Random(280)
    for calib in (DATASHEET, PART_B):
        temp, rh, hpa = 9.0, 80.0, 720.0
        near = None
        for step in range(600):
            if step % 100 == 0:
                temp, rh, hpa = rng.uniform(-10, 35), rng.uniform(0, 100), rng.uniform(600, 1050)
            temp += rng.gauss(0, 0.3)
            rh = min(100.0, max(0.0, rh + rng.gauss(0, 2)))
            hpa += rng.gauss(0, 0.5)
            near = raws_for(calib, temp, rh, hpa, near=near)
            assert near == raws_for(calib, temp, rh, hpa), (step, temp, rh, hpa)


def test_chips_in_the_same_conditions_share_a_search_and_each_shows_its_own_part(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # A fleet's chips see one environment: the counts are searched for once per conditions
    # and part, and a chip of another part (calibration) still gets its own.
    searched = []

    def search(calib: Calib, *conditions: float, near: tuple[int, int, int] | None = None
               ) -> tuple[int, int, int]:
        searched.append(calib)
        return raws_for(calib, *conditions, near=near)

    monkeypatch.setattr(bme280, "_IMAGES", {})
    monkeypatch.setattr(bme280, "raws_for", search)
    chips = [Bme280Image(tmp_path / name, 0, 0x76, calib)
             for name, calib in (("a", DATASHEET), ("b", DATASHEET), ("c", PART_B))]
    for folder in ("a", "b", "c"):
        (tmp_path / folder).mkdir()
    for conditions in ((12.5, 80.0, 750.0), (12.6, 79.0, 750.5), (12.5, 80.0, 750.0)):
        for chip in chips:
            chip.write(*conditions)
            assert chip.path.read_bytes() == image(chip.calib, *raws_for(chip.calib, *conditions))
    assert chips[0].path.read_bytes() != chips[2].path.read_bytes()
    assert searched == [DATASHEET, PART_B] * 2  # not once a chip and step: 9


def test_a_drifting_station_clock_and_its_wake_times() -> None:
    from watershed_sim.clock import StationDrift
    drift = StationDrift(500, t0_ms=1_000_000)
    assert drift.local(1_000_000) == 1_000_000
    assert drift.local(1_000_000 + 86_400_000) == 1_000_000 + 86_400_000 + 43_200  # 43.2 s a day
    for local in (1_000_000, 5_000_123, 90_000_000):
        shared = drift.shared(local)  # the first shared time the station sees it
        assert drift.local(shared) >= local > drift.local(shared - 1)
    drift.step_ms = -25_000
    assert drift.local(drift.shared(50_000_000)) >= 50_000_000


def test_clock_drift_and_steps_are_read_from_the_station_table() -> None:
    s = parse_scenario(HEAD + 'clock_ppm = -120\n[[station.clock_step]]\nat = "6h"\n'
                       'by_s = 30\n\n[[station.sensor]]\npin = 26\nchannel = 1\n'
                       'interval_s = 900\nsource = "stage_m"\n', Path("k.toml"))
    [st] = s.stations
    assert st.clock_ppm == -120 and st.clock_steps == ((s.start + 6 * 3600, 30.0),)


def test_a_misconfigured_spell_is_read_and_a_station_cannot_claim_its_own_id() -> None:
    sensor = '\n[[station.sensor]]\npin = 26\nchannel = 1\ninterval_s = 900\nsource = "stage_m"\n'
    s = parse_scenario(HEAD + '[[station.misnamed]]\nat = "6h"\nduration = "3h"\n'
                       'claims = "SAN-09"\n' + sensor, Path("k.toml"))
    [st] = s.stations
    [slip] = st.misnamed
    assert (slip.window.start, slip.window.end, slip.claims) == (
        s.start + 6 * 3600, s.start + 9 * 3600, "SAN-09")
    own = st.id
    text = "\n".join(problems(HEAD + f'[[station.misnamed]]\nat = "6h"\nclaims = "{own}"\n'
                                     'who = 1\n' + sensor))
    assert "misnamed[0].claims: is the station's own id" in text
    assert "misnamed[0].duration: must be more than 0" in text
    assert "misnamed[0].who" in text


def test_outages_of_the_pipeline_name_a_part_and_end_within_the_run() -> None:
    analog = sensor('pin = 26\nchannel = 1\ninterval_s = 900\nsource = "stage_m"\n')
    s = parse_scenario(analog + '\n[[outage]]\npart = "broker"\nat = "2h"\nduration = "1h"\n',
                       Path("k.toml"))
    [outage] = s.outages
    assert (outage.part, outage.window.start, outage.window.end) == (
        "broker", s.start + 7200, s.start + 10800)
    text = "\n".join(problems(analog + '\n[[outage]]\npart = "gateway"\nat = "23h"\n'
                                        'duration = "2h"\n'))
    assert "outage[0].part: expected one of broker, ingest, influxdb" in text
    assert "outage[0].duration: must end before the scenario does" in text


def test_a_sensor_whose_record_has_no_value_then_does_not_answer() -> None:
    """A replay's gap never becomes a number: the SDI-12 sensor stays silent (the station
    stores the reading missing); with a value it answers it."""
    from types import SimpleNamespace

    from watershed_sim.devices import SDI12Bus
    from watershed_sim.scenario import SensorSpec
    from watershed_sim.sensor_site import _sdi12_sensor
    spec = SensorSpec(entry={"sensor": "sdi12", "port": "s", "address": "0", "channels": [1]},
                      sources=("replay:gappy",))
    clock = SimpleNamespace(now=lambda: 1000.0)
    record = {1000.0: None}
    bus = SDI12Bus()
    bus.add(_sdi12_sensor(spec, [lambda t: record.get(t, 1.234)], clock, seed=1))  # type: ignore[arg-type]
    bus.receive(b"\x000M!", 0.0)
    assert bus.run_until(5.0) == b""
    record.clear()
    bus.receive(b"\x000M!", 10.0)
    bus.run_until(15.0)
    bus.receive(b"\x000D0!", 15.2)
    assert b"+1.234" in bus.run_until(20.0)
