"""InfluxDB schema, version 1 (docs/contracts.md, section 3).

One measurement, ``readings``. Tags are a reading's identity only (station, basin, channel), so
the same reading delivered twice, or heard by two gateways, lands on the same series and second
and overwrites itself. Per-delivery facts (gateway, seq) are fields. Timestamps in seconds.

Lines are written directly as text, in exactly the layout influxdb-client's ``Point`` gives
(tags sorted, fields sorted, ``i`` suffix on integers, a float trimmed of a trailing ``.0``):
identifiers are contract-checked to a charset that never needs line-protocol escaping, and
``Point`` costs some twenty times as much per line, the bulk of the ingest's work
(tests/unit/test_ingest_lines.py holds the two to the same bytes).
"""

from __future__ import annotations

import math
from decimal import Decimal

from .ids import check_id
from .mqtt import MessageReading, ReadingsMessage
from .wire import MISSING, value_text

MEASUREMENT = "readings"
PRECISION = "s"
TAGS = ("station", "basin", "channel")
FIELDS = ("value", "flags", "seq", "gateway")
DISCHARGE_CHANNEL = "discharge_m3s"
DERIVED_FIELDS = ("rating_id",)  # only on discharge derived from stage through a rating

# Channel names already checked (a network has a few dozen); bounded against a hostile stream.
_checked_channels: set[str] = set()
_MAX_CHECKED = 4096


def _channel(name: str) -> str:
    if name not in _checked_channels:
        check_id("channel", name)
        if len(_checked_channels) < _MAX_CHECKED:
            _checked_channels.add(name)
    return name


def float_text(value: Decimal | float) -> str | None:
    """A float field's text, as ``Point`` writes a Decimal or float: ``str()``, a trailing
    ``.0`` trimmed; None (no field) when it is not finite."""
    if not math.isfinite(value):
        return None
    s = str(value)
    return s[:-2] if s.endswith(".0") else s


def reading_value_text(mantissa: int, exponent: int) -> str:
    """The ``value`` field's text for a reading: its exact decimal text, as ``float_text``
    gives it for ``Decimal(value_text(mantissa, exponent))``."""
    if exponent < -6:  # str(Decimal) switches to exponent notation here (1E-7)
        return float_text(Decimal(value_text(mantissa, exponent))) or ""
    s = value_text(mantissa, exponent)
    return s[:-2] if s.endswith(".0") else s


def reading_line(msg: ReadingsMessage, r: MessageReading) -> str:
    """The line for one reading. A missing reading has no ``value`` field, only its flags."""
    return _lines(msg, (r,))[0]


def message_lines(msg: ReadingsMessage) -> list[str]:
    """Line protocol for every reading of a message, in order."""
    return _lines(msg, msg.readings)


def _lines(msg: ReadingsMessage, readings: tuple[MessageReading, ...]) -> list[str]:
    head = (f"{MEASUREMENT},basin={check_id('basin', msg.basin)},channel=")
    station = f",station={check_id('station', msg.station)} flags="
    gateway = f'i,gateway="{check_id("gateway", msg.gateway)}",seq='
    out = []
    for r in readings:
        if r.flags & MISSING:
            out.append(f"{head}{_channel(r.channel)}{station}{r.flags}{gateway}{r.seq}i {r.ts}")
        else:
            out.append(f"{head}{_channel(r.channel)}{station}{r.flags}{gateway}{r.seq}i,value="
                       f"{reading_value_text(r.mantissa, r.exponent)} {r.ts}")
    return out


def discharge_line(station: str, basin: str, ts: int, value: Decimal | None, flags: int,
                   seq: int, gateway: str, rating_id: str) -> str:
    """A discharge point derived from the stage reading (station, ts, seq) through a rating.

    Same series as a measured discharge (channel ``discharge_m3s``), told apart by its
    ``rating_id`` field; ``seq`` and ``gateway`` are the stage reading's. No ``value`` when the
    stage is missing or outside the rating (flags say which).
    """
    text = None if value is None else float_text(value)
    return (f"{MEASUREMENT},basin={check_id('basin', basin)},channel={DISCHARGE_CHANNEL},"
            f"station={check_id('station', station)} flags={int(flags)}i,"
            f'gateway="{check_id("gateway", gateway)}",'
            f'rating_id="{check_id("rating_id", rating_id)}",seq={int(seq)}i'
            f"{'' if text is None else ',value=' + text} {int(ts)}")
