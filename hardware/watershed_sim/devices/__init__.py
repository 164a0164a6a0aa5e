"""Simulated field devices that sit on the far end of a station's serial ports.

- ``sdi12``: an SDI-12 bus (``SDI12Bus``) with sensors on it — a level/pressure transducer,
  an all-in-one weather sensor and a radar surface-velocity sensor — each with fault modes and a
  record of exactly what it reported;
- ``range_sensor``: a serial radar/ultrasonic range sensor sending ``Rnnnn<CR>`` (mm);
- ``pty``: ``DevicePty`` runs any of them on a raw pty whose path the firmware opens.

Protocol objects take bytes and a time and return bytes (``receive(data, now)``,
``pop_due(now)``), so their tests need no pty and no wall clock; ``DevicePty`` gives them both.
"""

from .pty import DevicePty
from .range_sensor import RangeSensor
from .sdi12 import (
    BREAK,
    Faults,
    LevelSensor,
    RadarVelocitySensor,
    Reported,
    SDI12Bus,
    SDI12Sensor,
    WeatherSensor,
    crc16_arc,
    crc_chars,
)

__all__ = [
    "BREAK", "DevicePty", "Faults", "LevelSensor", "RadarVelocitySensor", "RangeSensor",
    "Reported", "SDI12Bus", "SDI12Sensor", "WeatherSensor", "crc16_arc", "crc_chars",
]
