"""The firmware's SDI-12 master, in the real MicroPython unix port, against simulated sensors on
a pty (watershed_sim.devices), faults included."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.firmware.drivers_harness import read_sensors
from tests.fixtures.micropython import MicroPythonRunner
from watershed_sim.devices import (
    DevicePty,
    LevelSensor,
    RadarVelocitySensor,
    SDI12Bus,
    WeatherSensor,
    crc16_arc,
)

pytestmark = pytest.mark.firmware

MISSING = 0x01


@pytest.fixture
def bus() -> Iterator[tuple[SDI12Bus, DevicePty]]:
    bus = SDI12Bus([LevelSensor("0", measure_s=0.3), WeatherSensor("1", measure_s=0),
                    RadarVelocitySensor("2", measure_s=0.2)])
    with DevicePty(bus) as pty:
        yield bus, pty


def sdi12(pty: DevicePty, address: str, channels: list[int], **kw: object) -> dict[str, object]:
    # generous first-byte timeout: 5 engineers share 2 cores
    return {"sensor": "sdi12", "port": pty.path, "address": address, "channels": channels,
            "response_ms": 150, **kw}


def exact(value: str) -> tuple[int, int]:
    sign = -1 if value[0] == "-" else 1
    digits = value[1:]
    exponent = -(len(digits) - digits.index(".") - 1) if "." in digits else 0
    return sign * int(digits.replace(".", "")), exponent


def test_crc16_matches_the_check_value(micropython: MicroPythonRunner, tmp_path: Path) -> None:
    from watershed.firmware_build import compile_firmware
    compiled = compile_firmware(tmp_path / "mpy")
    result = micropython.run("from drivers.sdi12 import crc16\nb=b'123456789'\n"
                             "print(hex(crc16(b, 0, len(b))))", path=[compiled])
    assert result.stdout.strip() == hex(crc16_arc(b"123456789")) == "0xbb3d"


def test_several_sensors_on_one_bus_read_exactly(micropython: MicroPythonRunner, tmp_path: Path,
                                                 bus: tuple[SDI12Bus, DevicePty]) -> None:
    sim, pty = bus
    sim.sensor("0").set("stage_m", "1.250")
    sim.sensor("1").set("air_temp_c", "-3.5")
    sensors = [
        sdi12(pty, "0", [1, 3]),                      # aMC!, service request, D0
        sdi12(pty, "1", [23, 16, 20, 21, 22, 17, 24, 0, 18]),  # 9 values: D0 and D1
        sdi12(pty, "2", [5, 0], measure="C"),        # aCC!: concurrent
        sdi12(pty, "0", [1], measure="R0", crc=False),  # continuous
        sdi12(pty, "0", [0, 0], shift=[-3, 0], measure="M"),  # values read, none kept
    ]
    results, done = read_sensors(micropython, tmp_path, sensors)

    truth = {(s.address, m.command): m.values for s in sim.sensors for m in s.measured}
    level = truth[("0", "MC")]
    assert results[0]["readings"] == [[1, *exact(level[0]), 0], [3, *exact(level[1]), 0]]
    assert results[0]["readings"][0] == [1, 1250, -3, 0]  # "+1.250": trailing zero kept
    weather = truth[("1", "MC")]
    expected = [[ch, *exact(v), 0] for ch, v in zip([23, 16, 20, 21, 22, 17, 24, 0, 18], weather)
                if ch]
    assert results[1]["readings"] == expected
    assert [17, -35, -1, 0] in results[1]["readings"]
    radar = truth[("2", "CC")]
    assert results[2]["readings"] == [[5, *exact(radar[0]), 0]]
    assert results[3]["readings"] == [[1, *exact(truth[("0", "R0")][0]), 0]]
    assert results[4]["readings"] == []
    assert all(r["error"] is None for r in results)
    # the master broke before addressing another sensor, and waited for service requests
    for prev, cmd in zip(sim.commands, sim.commands[1:]):
        if prev.text[0] != cmd.text[0]:
            assert cmd.after_break, (prev, cmd)
    assert done["feeds"] > 0  # the watchdog was fed while waiting


def test_faults_are_retried_then_flagged_missing(micropython: MicroPythonRunner, tmp_path: Path,
                                                 bus: tuple[SDI12Bus, DevicePty]) -> None:
    sim, pty = bus
    level, weather, radar = sim.sensors
    with pty.lock:
        level.force("garble", 2)      # recovered by retries
        weather.force("wrong_crc", 1)  # the D0 retried
        radar.force("no_reply", 100)  # never answers: missing
    sensors = [sdi12(pty, "0", [1, 3]), sdi12(pty, "1", [23, 16]), sdi12(pty, "2", [5, 0])]
    results, _ = read_sensors(micropython, tmp_path, sensors)

    assert results[0]["error"] is None
    assert results[0]["readings"] == [[1, *exact(level.measured[-1].values[0]), 0],
                                      [3, *exact(level.measured[-1].values[1]), 0]]
    assert results[1]["error"] is None
    assert [r.fault for r in weather.reports][:2] == ["wrong_crc", None]
    assert results[1]["readings"][0] == [23, *exact(weather.measured[-1].values[0]), 0]
    assert results[2]["error"] == 110  # ETIMEDOUT after the retries
    assert results[2]["readings"] == [[5, 0, 0, MISSING]]
    tries = [c for c in sim.commands if c.text.startswith("2")]
    assert len(tries) == 4  # the first try and 3 retries, each after a break
    assert all(c.after_break for c in tries)


def test_garbled_data_without_crc_is_caught_by_parity(micropython: MicroPythonRunner,
                                                      tmp_path: Path,
                                                      bus: tuple[SDI12Bus, DevicePty]) -> None:
    sim, pty = bus
    level = sim.sensors[0]
    with pty.lock:
        level.force("garble", 4)  # every attempt of aM! fails
    results, _ = read_sensors(micropython, tmp_path, [sdi12(pty, "0", [1, 3], crc=False)])
    assert results[0]["error"] == 5  # EIO: replies came, all bad
    assert results[0]["readings"] == [[1, 0, 0, MISSING], [3, 0, 0, MISSING]]


def test_station_keeps_reading_the_others_when_one_sensor_dies(
        micropython: MicroPythonRunner, tmp_path: Path,
        bus: tuple[SDI12Bus, DevicePty]) -> None:
    sim, pty = bus
    sim.sensors[2].faults.no_reply = 1.0
    sensors = [sdi12(pty, "2", [5, 0], retries=1), sdi12(pty, "0", [1, 3])]
    results, _ = read_sensors(micropython, tmp_path, sensors, rounds=2)
    assert [r["readings"][0][3] for r in results] == [MISSING, 0, MISSING, 0]
    got = [tuple(r["readings"][0][1:3]) for r in results if r["sensor"] == 1]
    assert got == [exact(m.values[0]) for m in sim.sensors[0].measured]


def test_a_crc_with_the_character_0x7f_is_accepted(micropython: MicroPythonRunner,
                                                   tmp_path: Path,
                                                   bus: tuple[SDI12Bus, DevicePty]) -> None:
    """SDI-12's CRC characters are 0x40 | 6 bits: 0x40-0x7F, DEL included. The check once took
    DEL for a control character and refused one sound reply in ~20 (found by a simulation)."""
    sim, pty = bus
    sim.sensor("0").set("stage_m", "0.387")
    sim.sensor("0").set("water_temp_c", "9.99")
    assert crc16_arc(b"0+0.387+9.99") & 0x3F == 0x3F  # its CRC ends in DEL
    results, _ = read_sensors(micropython, tmp_path, [sdi12(pty, "0", [1, 3])])
    assert results[0]["error"] is None
    assert results[0]["readings"] == [[1, 387, -3, 0], [3, 999, -2, 0]]
    assert len([c for c in sim.commands if c.text == "0D0!"]) == 1  # no retry


class TricklingBus(SDI12Bus):
    """Every reply longer than a service request comes in two writes 2 ms apart (the master
    waits 20 ms between characters), the second with a stray byte after its LF."""

    def schedule(self, due, data):  # type: ignore[no-untyped-def]
        if len(data) <= 3:
            return super().schedule(due, data)
        half = len(data) // 2
        super().schedule(due, data[:half])
        return super().schedule(due + 0.002, data[half:] + b"\xff")


def test_a_reply_in_pieces_with_a_stray_byte_after_it_is_read_exactly(
        micropython: MicroPythonRunner, tmp_path: Path) -> None:
    """The master takes a reply's bytes as many at a time as have come: two pieces make one
    reply, and a byte after its LF is not part of it (it would fail every check)."""
    sim = TricklingBus([WeatherSensor("1", measure_s=0)])
    sim.sensor("1").set("air_temp_c", "-3.5")
    channels = [23, 16, 20, 21, 22, 17, 24, 0, 18]
    with DevicePty(sim) as pty:
        results, _ = read_sensors(micropython, tmp_path, [sdi12(pty, "1", channels)])
    weather = {m.command: m.values for m in sim.sensor("1").measured}["MC"]
    assert results[0]["error"] is None
    assert results[0]["readings"] == [[ch, *exact(v), 0] for ch, v in zip(channels, weather)
                                      if ch]
    assert [17, -35, -1, 0] in results[0]["readings"]
