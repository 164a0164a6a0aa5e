"""Sensor drivers and the one place the sampling engine builds them: ``make_driver(cfg, board)``.

A driver has ``channels`` (the channel numbers it produces) and ``read()``, which returns a
sequence of ``(channel, mantissa, exponent, flags)`` — value = mantissa × 10**exponent exactly,
flags from wire (MISSING, OUT_OF_RANGE …) — or raises OSError when the sensor cannot be read at
all. ``read_or_missing(driver)`` gives MISSING readings for every channel in that case: a failed
sensor is never a number.

``cfg["sensor"]`` picks the kind; each kind's config keys are in its module's docstring:
``"sdi12"`` (sdi12.py), ``"serial_level"`` (level_serial.py), ``"analog"`` (analog.py: 4–20 mA,
battery and solar voltage), ``"rain"`` (rain.py), ``"bme280"`` (bme280.py: air temperature,
humidity and pressure on I2C). Modules are imported only when a config uses them, to keep the
heap small.
"""

import wire

_KINDS = ("sdi12", "serial_level", "analog", "rain", "bme280")


def make_driver(cfg, board, shared=None):
    """The driver for one sensor config entry. ``shared`` (a dict the caller keeps) lets
    entries on one bus share it (several SDI-12 sensors on one line)."""
    kind = cfg.get("sensor")
    if shared is None:
        shared = _shared_for(board)
    if kind == "sdi12":
        from drivers import sdi12
        return sdi12.from_config(cfg, board, shared)
    if kind == "serial_level":
        from drivers import level_serial
        return level_serial.from_config(cfg, board)
    if kind == "analog":
        from drivers import analog
        return analog.from_config(cfg, board)
    if kind == "rain":
        from drivers import rain
        return rain.from_config(cfg, board)
    if kind == "bme280":
        from drivers import bme280
        return bme280.from_config(cfg, board, shared)
    raise ValueError("unknown sensor kind %r; one of %s" % (kind, ", ".join(_KINDS)))


_buses = {}  # type: dict[int, dict]


def _shared_for(board):
    key = id(board)
    if key not in _buses:
        _buses[key] = {}
    return _buses[key]


def read_or_missing(driver):
    """``driver.read()``, or a MISSING reading for each of its channels when it raises OSError."""
    try:
        return driver.read()
    except OSError:
        return missing(driver)


def missing(driver):
    """A MISSING reading (no value, never a number) for each channel of ``driver``."""
    return [(ch, 0, 0, wire.MISSING) for ch in driver.channels if ch]
