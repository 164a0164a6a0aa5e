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
DISCHARGE_CHANNEL = "discharge_m3s"
DERIVED_FIELDS = ("rating_id",)  # only on discharge derived from stage through a rating


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


def discharge_line(station: str, basin: str, ts: int, value: Decimal | None, flags: int,
                   seq: int, gateway: str, rating_id: str) -> str:
    """A discharge point derived from the stage reading (station, ts, seq) through a rating.

    Same series as a measured discharge (channel ``discharge_m3s``), told apart by its
    ``rating_id`` field; ``seq`` and ``gateway`` are the stage reading's. No ``value`` when the
    stage is missing or outside the rating (flags say which).
    """
    point = (Point(MEASUREMENT)
             .tag("station", check_id("station", station))
             .tag("basin", check_id("basin", basin))
             .tag("channel", DISCHARGE_CHANNEL)
             .field("flags", flags)
             .field("seq", seq)
             .field("gateway", check_id("gateway", gateway))
             .field("rating_id", check_id("rating_id", rating_id))
             .time(ts, WritePrecision.S))
    if value is not None:
        point.field("value", value)
    return point.to_line_protocol()
