"""A station config's power budget: mAh a day at the 12 V battery, days without sun.

Awake time per cycle comes from what keeps the CPU up for each sensor kind (an SDI-12
measurement about 2 s, a serial range sensor's frames about 1 s; the firmware's own work per
cycle, `awake_us_per_cycle` in tests/bench/bench_firmware.py, is milliseconds) and the gateway's
polls; currents are the datasheets' typical figures, the board's from its pin map
(hardware/boards/<board>.json "power"), the sensors' below. The 3.3 V side reaches the battery
through the buck converter (hardware/README.md), so its mAh scale by 3.3 / 12 / efficiency.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

BATTERY_V = 12.0
LOGIC_V = 3.3
BUCK_EFFICIENCY = 0.85
TO_BATTERY = LOGIC_V / BATTERY_V / BUCK_EFFICIENCY
ALWAYS_ON_MA = 0.5  # MAX3485 receiving 0.3 mA + DS3231 0.2 mA, at 3.3 V
POLL_AWAKE_S = 0.05  # a gateway poll: wake on the link, answer, sleep
FIRMWARE_AWAKE_S = 0.02  # the firmware's own work in a sampling cycle (bench: 7-19 ms)


@dataclass(frozen=True)
class SensorDraw:
    """What one measurement of a sensor kind costs: CPU awake, and the sensor's own supply."""

    awake_s: float  # CPU awake per measurement, beyond the firmware's own work
    on_12v_ma: float  # the sensor's current from 12 V while measuring
    standby_12v_ma: float  # ... and between measurements


# Datasheet typical figures (OTT PLS-C SDI-12 transducer, MaxBotix MB7389 through a 5 V buck,
# Bosch BME280 in forced mode from 3.3 V: microamps, left out; a tipping bucket is a switch).
SENSORS = {
    "sdi12": SensorDraw(awake_s=2.0, on_12v_ma=8.0, standby_12v_ma=0.1),
    "serial_level": SensorDraw(awake_s=1.0, on_12v_ma=1.5, standby_12v_ma=0.0),
    "bme280": SensorDraw(awake_s=0.01, on_12v_ma=0.0, standby_12v_ma=0.0),
    "analog": SensorDraw(awake_s=0.0, on_12v_ma=0.0, standby_12v_ma=0.0),
    "rain": SensorDraw(awake_s=0.0, on_12v_ma=0.0, standby_12v_ma=0.0),
}


@dataclass(frozen=True)
class Budget:
    lines: list[tuple[str, float]]  # (what, mAh/day at the battery)

    @property
    def total_mah_per_day(self) -> float:
        return sum(mah for _, mah in self.lines)

    def days_without_sun(self, battery_ah: float, depth: float = 0.5) -> float:
        return battery_ah * 1000 * depth / self.total_mah_per_day


def budget(cfg: dict[str, Any], board_power: dict[str, float], poll_s: float = 60.0) -> Budget:
    """The mAh/day at the battery of the station ``cfg`` on a board drawing ``board_power``
    (its pin map's "power": sleep_ma, board_ma, active_ma), polled every ``poll_s``."""
    day = 86400.0
    awake_s = day / poll_s * POLL_AWAKE_S
    sensors_12v_mah = 0.0
    for entry in cfg["channels"]:
        draw = SENSORS[entry.get("sensor", "analog")]
        cycles = day / entry["interval_s"]
        awake_s += cycles * (FIRMWARE_AWAKE_S + draw.awake_s)
        on_h = cycles * draw.awake_s / 3600
        sensors_12v_mah += on_h * draw.on_12v_ma + (24 - on_h) * draw.standby_12v_ma
    asleep_ma = board_power["sleep_ma"] + board_power["board_ma"] + ALWAYS_ON_MA
    active_extra_ma = board_power["active_ma"] - board_power["sleep_ma"]
    return Budget([
        ("board asleep, RS-485 receiver and RTC (3.3 V)", 24 * asleep_ma * TO_BATTERY),
        (f"CPU awake {awake_s / 60:.0f} min a day (3.3 V)",
         awake_s / 3600 * active_extra_ma * TO_BATTERY),
        ("sensors on 12 V", sensors_12v_mah),
    ])


def describe(b: Budget, battery_ah: float, poll_s: float) -> list[str]:
    """The budget in a technician's terms, one line a load."""
    out = [f"power budget (datasheet typical, gateway poll every {poll_s:g} s), "
           "mAh/day at the 12 V battery:"]
    out += [f"  {what:<48} {mah:7.1f}" for what, mah in b.lines]
    out.append(f"  {'total':<48} {b.total_mah_per_day:7.1f}  → a {battery_ah:g} Ah battery "
               f"lasts {b.days_without_sun(battery_ah):.0f} days without sun to 50 % depth")
    return out
