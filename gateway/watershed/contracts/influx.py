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
from typing import Any

import msgspec

from .ids import check_id, is_valid_id
from .mqtt import (_MAX_SEQ, MAX_TS, PAYLOAD_VERSION, PayloadError, ReadingsMessage,
                   _Number, _number)
from .decimals import MAX_EXPONENT, MAX_MANTISSA, value_text
from .wire import MISSING

MEASUREMENT = "readings"
PRECISION = "s"
TAGS = ("station", "basin", "channel")
FIELDS = ("value", "flags", "seq", "gateway")
DISCHARGE_CHANNEL = "discharge_m3s"
DERIVED_FIELDS = ("rating_id",)  # only on discharge derived from stage through a rating


def absent_fields(row: dict[str, Any], fields: tuple[str, ...] = FIELDS) -> list[str]:
    """The ``fields`` (of FIELDS) that ``row``, a point as a query returns it, lacks: a value
    only when its flags do not say missing. Every point the ingest writes has them all, but
    InfluxDB 1.x applies a point's fields one by one, so a query racing the write that brings
    the point can see some of them: a reader that needs whole points asks again."""
    absent = [name for name in fields if row.get(name) is None]
    if absent == ["value"] and row.get("flags") is not None and int(row["flags"]) & MISSING:
        return []
    return absent


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
    if not -6 <= exponent <= 0:  # str(Decimal) may write exponent notation (1E-7, 1.5E+17)
        return float_text(Decimal(value_text(mantissa, exponent))) or ""
    s = value_text(mantissa, exponent)
    return s[:-2] if s.endswith(".0") else s


def message_lines(msg: ReadingsMessage) -> list[str]:
    """Line protocol for every reading of a message, in order. A missing reading has no
    ``value`` field, only its flags."""
    head = (f"{MEASUREMENT},basin={check_id('basin', msg.basin)},channel=")
    station = f",station={check_id('station', msg.station)} flags="
    gateway = f'i,gateway="{check_id("gateway", msg.gateway)}",seq='
    out = []
    for r in msg.readings:
        if r.flags & MISSING:
            out.append(f"{head}{_channel(r.channel)}{station}{r.flags}{gateway}{r.seq}i {r.ts}")
        else:
            out.append(f"{head}{_channel(r.channel)}{station}{r.flags}{gateway}{r.seq}i,value="
                       f"{reading_value_text(r.mantissa, r.exponent)} {r.ts}")
    return out


# Identifiers already checked (gateways, stations, basins, channels); bounded like the above.
_valid_ids: set[str] = set()


def _valid_id(name: object) -> bool:
    if name in _valid_ids:
        return True
    if type(name) is not str or not is_valid_id(name):
        return False
    if len(_valid_ids) < _MAX_CHECKED:
        _valid_ids.add(name)
    return True


def _slow_value_text(raw: object) -> str | None:
    """The value text of a JSON number the fast path does not take on (exponent notation, many
    digits, negative zero), as decode_readings + message_lines give it; None if not valid."""
    if type(raw) is _Number:
        try:
            mantissa, exponent = _number(raw)
        except PayloadError:
            return None
    elif type(raw) is int:
        mantissa, exponent = raw, 0
    else:
        return None
    if not -MAX_MANTISSA <= mantissa <= MAX_MANTISSA or \
            not -MAX_EXPONENT <= exponent <= MAX_EXPONENT:
        return None
    return reading_value_text(mantissa, exponent)


class _FastReading(msgspec.Struct, gc=False):
    """A reading as payload_lines takes it: the contract's keys, each required; extra keys are
    ignored, as the full path does. ``value`` is left untyped so that a JSON string or boolean
    reaches the checks below (msgspec would make a Decimal of "1.5")."""
    seq: int
    channel: str
    ts: int
    flags: int
    value: Any


class _FastMessage(msgspec.Struct, gc=False):
    v: int
    gateway: str
    station: str
    basin: str
    readings: list[_FastReading]


# msgspec parses in C, some three times as fast as json with a Python parse_float per number;
# float_hook gets each number's very text, as parse_payload's parse_float does. Duplicate keys:
# the last wins, as with json.loads.
_FAST_DECODER = msgspec.json.Decoder(_FastMessage, float_hook=_Number)


def payload_lines(payload: bytes, ts_low: float = 0, ts_high: float = MAX_TS
                  ) -> tuple[str, str, list[str], list[int]] | None:
    """The readings payload straight to line protocol, without a MessageReading per reading:
    ``(gateway, station, lines, seqs)``, the seq of each line beside it, the lines exactly those of
    ``message_lines(decode_readings(payload))``, when the payload is valid and every reading's
    ts lies in [ts_low, ts_high]. None for anything else (invalid, out of those bounds, not
    UTF-8): the caller then takes the full path, which finds the reason. Raises nothing."""
    try:
        msg = _FAST_DECODER.decode(payload)
    except (msgspec.DecodeError, TypeError):  # ValidationError is a DecodeError
        return None
    readings = msg.readings
    gateway, station, basin = msg.gateway, msg.station, msg.basin
    if msg.v != PAYLOAD_VERSION or not readings or not _valid_id(gateway) \
            or not _valid_id(station) or not _valid_id(basin):
        return None
    low, high = max(0, ts_low), min(MAX_TS, ts_high)
    head = f"{MEASUREMENT},basin={basin},channel="
    tail = f",station={station} flags="
    gw = f'i,gateway="{gateway}",seq='
    prefixes: dict[str, str] = {}  # channel -> the line up to the flags
    out: list[str] = []
    append = out.append
    seqs = [r.seq for r in readings]
    for r in readings:
        channel, seq, ts, flags, raw = r.channel, r.seq, r.ts, r.flags, r.value
        prefix = prefixes.get(channel)
        if prefix is None:
            if not _valid_id(channel):
                return None
            prefix = prefixes[channel] = f"{head}{channel}{tail}"
        if not 0 <= seq <= _MAX_SEQ or not low <= ts <= high or not 0 <= flags <= 255:
            return None
        if raw is None:
            if not flags & MISSING:
                return None
            append(f"{prefix}{flags}{gw}{seq}i {ts}")
            continue
        if flags & MISSING:
            return None
        # A JSON number with a fraction, at most 15 digits, at most 6 after the point, not
        # negative zero: value_text(mantissa, exponent) gives back its very text.
        if type(raw) is _Number and len(raw) <= 16 and len(raw) - raw.find(".") <= 7 \
                and "e" not in raw and "E" not in raw \
                and (raw[0] != "-" or raw.strip("-0.")):
            text = raw[:-2] if raw.endswith(".0") else raw
        elif type(raw) is int and -MAX_MANTISSA <= raw <= MAX_MANTISSA:
            text = str(raw)
        else:
            slow = _slow_value_text(raw)
            if slow is None:
                return None
            text = slow
        append(f"{prefix}{flags}{gw}{seq}i,value={text} {ts}")
    return gateway, station, out, seqs


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
