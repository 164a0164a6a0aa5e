"""The simulated SDI-12 sensors honour the protocol facts of docs/sdi12.md.

The bus is driven directly with made-up times (no pty, no wall clock): ``ask`` sends a break
and a command at time ``t`` and returns what the line carries up to ``t + 0.05``.
"""

from __future__ import annotations

import pytest

from watershed_sim.devices.sdi12 import (
    BREAK,
    PARITY_ERROR,
    Faults,
    LevelSensor,
    RadarVelocitySensor,
    SDI12Bus,
    WeatherSensor,
    crc16_arc,
    crc_chars,
    format_value,
)


def ask(bus: SDI12Bus, command: str, t: float, brk: bool = True, wait: float = 0.05) -> bytes:
    bus.receive((bytes([BREAK]) if brk else b"") + command.encode(), t)
    return bus.run_until(t + wait)


def values_of(reply: bytes, crc: bool = False) -> list[str]:
    body = reply[1:-2].decode()
    if crc:
        body = body[:-3]
    out: list[str] = []
    for ch in body:
        if ch in "+-":
            out.append(ch)
        else:
            out[-1] += ch
    return out


@pytest.fixture
def bus() -> SDI12Bus:
    return SDI12Bus([LevelSensor("0", measure_s=1.0), WeatherSensor("1", measure_s=0),
                     RadarVelocitySensor("2", measure_s=2.0)])


def test_crc16_arc_check_value_is_bb3d() -> None:
    assert crc16_arc(b"123456789") == 0xBB3D


def test_crc_is_sent_as_three_ascii_characters() -> None:
    assert crc_chars(0xBB3D) == bytes((0x40 | 0xB, 0x40 | 0x2C, 0x40 | 0x3D))


@pytest.mark.parametrize("value,decimals,text", [
    ("1.234", 3, "+1.234"), (-0.5, 2, "-0.50"), (12, 0, "+12"), ("123.45678", 5, "+123.4568"),
    (123456789, 0, "+9999999"),
])
def test_values_have_a_sign_and_at_most_seven_digits(value: object, decimals: int,
                                                     text: str) -> None:
    assert format_value(value, decimals) == text  # type: ignore[arg-type]


def test_acknowledge_and_identify(bus: SDI12Bus) -> None:
    assert ask(bus, "0!", 0) == b"0\r\n"
    ident = ask(bus, "0I!", 1)
    assert ident.startswith(b"014OTT HYDRPLS   140") and ident.endswith(b"\r\n")


def test_address_query_with_one_sensor_answers_its_address() -> None:
    single = SDI12Bus([LevelSensor("7")])
    assert ask(single, "?!", 0) == b"7\r\n"


def test_address_query_with_several_sensors_collides(bus: SDI12Bus) -> None:
    reply = ask(bus, "?!", 0)
    assert reply and all(b & PARITY_ERROR for b in reply)


def test_change_address(bus: SDI12Bus) -> None:
    assert ask(bus, "0A5!", 0) == b"5\r\n"
    assert ask(bus, "5!", 1) == b"5\r\n"
    assert ask(bus, "0!", 2) == b""


def test_m_then_d_returns_the_promised_number_of_values(bus: SDI12Bus) -> None:
    bus.sensor("0").set("stage_m", "1.234")
    assert ask(bus, "0M!", 0, wait=0.01) == b"00012\r\n"
    # service request once ready (after 1 s)
    assert bus.run_until(1.02) == b"0\r\n"
    reply = ask(bus, "0D0!", 1.03, brk=False)
    assert values_of(reply) == ["+1.234", "+12.50"]
    assert bus.sensor("0").measured[-1].values == ("+1.234", "+12.50")


def test_values_split_across_d0_d1_within_35_characters(bus: SDI12Bus) -> None:
    head = ask(bus, "1M!", 0)
    assert head == b"10009\r\n"  # ttt 000: no service request
    got: list[str] = []
    for i in range(10):
        reply = ask(bus, f"1D{i}!", 1 + i)
        body = values_of(reply)
        assert len("".join(body)) <= 35
        if not body:
            break
        got += body
    assert len(got) == 9
    assert tuple(got) == bus.sensor("1").measured[-1].values


def test_concurrent_measurement_carries_up_to_75_characters(bus: SDI12Bus) -> None:
    assert ask(bus, "1C!", 0) == b"100009\r\n"
    d0 = values_of(ask(bus, "1D0!", 1))
    assert len(d0) == 9 and len("".join(d0)) <= 75


def test_concurrent_measurement_sends_no_service_request(bus: SDI12Bus) -> None:
    assert ask(bus, "2C!", 0) == b"200202\r\n"
    assert bus.run_until(5) == b""
    assert len(values_of(ask(bus, "2D0!", 5))) == 2


def test_crc_variant_appends_a_valid_crc(bus: SDI12Bus) -> None:
    ask(bus, "1MC!", 0)
    reply = ask(bus, "1D0!", 1)
    line = reply[:-2]
    assert crc_chars(crc16_arc(line[:-3])) == line[-3:]


def test_interrupted_m_is_aborted(bus: SDI12Bus) -> None:
    assert ask(bus, "0M!", 0, wait=0.01) == b"00012\r\n"
    assert ask(bus, "0!", 0.5, wait=0.01) == b"0\r\n"  # another command before it is ready
    assert bus.run_until(2) == b""  # no service request
    assert ask(bus, "0D0!", 2) == b"0\r\n"  # no values
    assert bus.sensor("0").measured[-1].aborted


def test_a_device_with_a_history_keeps_the_last_entries_of_its_logs() -> None:
    kept = SDI12Bus([WeatherSensor("1", measure_s=0, history=2)], history=3)
    every = SDI12Bus([WeatherSensor("1", measure_s=0)])
    for b in (kept, every):
        for t in range(4):
            ask(b, "1M!", 10 * t)
            ask(b, "1D0!", 10 * t + 1)
        ask(b, "9!", 50)  # a command nobody answers: heard all the same

    assert [c.text for c in kept.commands] == ["1M!", "1D0!", "9!"]
    assert [c.text for c in every.commands] == ["1M!", "1D0!"] * 4 + ["9!"]
    weather, all_of_it = kept.sensor("1"), every.sensor("1")
    assert [m.time for m in weather.measured] == [20, 30]
    assert [m.time for m in all_of_it.measured] == [0, 10, 20, 30]
    assert [(r.time, r.command) for r in weather.reports] == [(21, "D0"), (31, "D0")]
    assert len(all_of_it.reports) == 4
    assert list(weather.measured) == list(all_of_it.measured)[-2:]


def test_command_to_another_sensor_does_not_abort(bus: SDI12Bus) -> None:
    ask(bus, "0M!", 0, wait=0.01)
    assert ask(bus, "1!", 0.3, wait=0.01) == b"1\r\n"
    assert bus.run_until(1.1) == b"0\r\n"


def test_unknown_and_malformed_commands_get_silence(bus: SDI12Bus) -> None:
    for t, command in enumerate(["0Z!", "0XYZ!", "0D!", "0M10!", "0DC0!", "9!"]):
        assert ask(bus, command, t) == b"", command


def test_sensors_in_standby_need_a_break(bus: SDI12Bus) -> None:
    assert ask(bus, "0!", 0) == b"0\r\n"
    assert ask(bus, "0!", 0.05, brk=False) == b"0\r\n"  # within 100 ms of marking
    assert ask(bus, "0!", 1.0, brk=False) == b""  # 100 ms passed: standby
    assert ask(bus, "1!", 2.0) == b"1\r\n"
    assert ask(bus, "0!", 2.02, brk=False) == b""  # another address needs a break


def test_continuous_and_unsupported_continuous(bus: SDI12Bus) -> None:
    assert len(values_of(ask(bus, "2R0!", 0))) == 2
    reply = ask(bus, "2RC0!", 1)
    assert crc_chars(crc16_arc(reply[:-5])) == reply[-5:-2]
    assert ask(bus, "2R5!", 2) == b"2\r\n"


def test_several_sensors_share_a_bus(bus: SDI12Bus) -> None:
    bus.sensor("2").set("velocity_ms", "1.5")
    ask(bus, "2C!", 0)
    ask(bus, "1C!", 0.1)
    assert values_of(ask(bus, "1D0!", 3))[5] == "+8.5"
    assert values_of(ask(bus, "2D0!", 3.1)) == ["+1.500", "+92"]


def test_faults_no_reply_late_garble_wrong_crc() -> None:
    s = LevelSensor("0", measure_s=0)
    bus = SDI12Bus([s])
    s.force("no_reply")
    assert ask(bus, "0!", 0) == b""
    s.force("late")
    assert ask(bus, "0!", 1) == b""
    assert bus.run_until(1.6) == b"0\r\n"
    s.force("garble")
    assert any(b & PARITY_ERROR for b in ask(bus, "0I!", 2))
    ask(bus, "0MC!", 3)
    s.force("wrong_crc")
    reply = ask(bus, "0D0!", 4)
    assert crc_chars(crc16_arc(reply[:-5])) != reply[-5:-2]
    assert s.reports[-1].fault == "wrong_crc"


def test_stuck_and_drift() -> None:
    t = [0.0]
    s = LevelSensor("0", measure_s=0, clock=lambda: t[0], faults=Faults(stuck=True))
    s.set("stage_m", "1.000")
    assert s.sample("")[0] == "+1.000"
    s.set("stage_m", "2.000")
    assert s.sample("")[0] == "+1.000"
    d = LevelSensor("0", measure_s=0, clock=lambda: t[0], faults=Faults(drift_per_hour=0.01))
    t[0] = 7200
    assert d.sample("")[0] == "+1.020"


def test_dropout_makes_the_sensor_silent_for_a_spell() -> None:
    s = LevelSensor("0", measure_s=0, faults=Faults(dropout=1.0, dropout_s=10))
    bus = SDI12Bus([s])
    assert ask(bus, "0M!", 0) == b""
    assert ask(bus, "0!", 5) == b""
    s.faults.dropout = 0
    assert ask(bus, "0!", 11) == b"0\r\n"
