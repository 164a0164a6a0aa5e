"""InfluxDB schema, version 1 (docs/contracts.md, section 3).

One measurement, ``readings``. Tags are a reading's identity only (station, basin, channel), so
the same reading delivered twice, or heard by two gateways, lands on the same series and second
and overwrites itself. Per-delivery facts (gateway, seq) are fields. Timestamps in seconds.
"""

from __future__ import annotations

from decimal import Decimal

from influxdb_client import Point, WritePrecision

from .ids import check_id
from .mqtt import MessageReading, ReadingsMessage
from .wire import value_text

MEASUREMENT = "readings"
PRECISION = "s"
TAGS = ("station", "basin", "channel")
FIELDS = ("value", "flags", "seq", "gateway")


def reading_point(msg: ReadingsMessage, r: MessageReading) -> Point:
    """The point for one reading. A missing reading has no ``value`` field, only its flags."""
    point = (Point(MEASUREMENT)
             .tag("station", check_id("station", msg.station))
             .tag("basin", check_id("basin", msg.basin))
             .tag("channel", check_id("channel", r.channel))
             .field("flags", r.flags)
             .field("seq", r.seq)
             .field("gateway", check_id("gateway", msg.gateway))
             .time(r.ts, WritePrecision.S))
    if not r.missing:
        # Decimal, not float: the line protocol gets the sensor's exact decimal text, written
        # without exponent notation.
        point.field("value", Decimal(value_text(r.mantissa, r.exponent)))
    return point


def message_lines(msg: ReadingsMessage) -> list[str]:
    """Line protocol for every reading of a message, in order."""
    return [reading_point(msg, r).to_line_protocol() for r in msg.readings]
