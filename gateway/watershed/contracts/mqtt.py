"""Gateway -> ingest MQTT contract, version 1 (docs/contracts.md, section 2).

Readings travel as JSON so that any MQTT consumer (Telegraf, Node-RED) can read them. A value is
written as a JSON number in its exact decimal text (``1.234``, never ``1.2339999``); readers
that care about exactness parse it as a decimal (``json.loads(parse_float=Decimal)``).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any
from decimal import Decimal

from .ids import check_id, is_valid_id
from .decimals import MAX_EXPONENT, MAX_MANTISSA, decimal_tuple, value_text
from .wire import MAX_SEQ, MAX_TIME, MISSING, FlaggedValue

PAYLOAD_VERSION = 1
DEFAULT_PREFIX = "watershed"
QOS = 1
MAX_TS = MAX_TIME  # 2**33 - 1, year 2242: inside InfluxDB's time range (up to 2262)


class Topics:
    """Every topic of the tree ``<prefix>/v1/...``."""

    def __init__(self, prefix: str = DEFAULT_PREFIX) -> None:
        self.root = f"{prefix}/v{PAYLOAD_VERSION}"

    def readings(self, gateway: str, station: str) -> str:
        return f"{self.root}/{gateway}/{station}/readings"

    def all_readings(self) -> str:
        return f"{self.root}/+/+/readings"

    def alert(self, gateway: str, station: str) -> str:
        return f"{self.root}/{gateway}/{station}/alert"

    def status(self, gateway: str) -> str:
        return f"{self.root}/{gateway}/status"

    def health(self, gateway: str) -> str:
        return f"{self.root}/{gateway}/health"

    def command(self, gateway: str) -> str:
        return f"{self.root}/{gateway}/cmd"

    def confirm(self, gateway: str) -> str:
        """Where ingests confirm what they wrote of the gateway's readings (contracts/confirm.py)."""
        return f"{self.root}/{gateway}/confirm"

    def command_result(self, gateway: str) -> str:
        return f"{self.root}/{gateway}/cmd/result"

    def deadletter(self, source: str) -> str:
        return f"{self.root}/deadletter/{source}"

    def ingest_status(self, ingest_id: str) -> str:
        return f"{self.root}/ingest/{ingest_id}/status"

    def parse_readings(self, topic: str) -> tuple[str, str] | None:
        """``(gateway, station)`` of a readings topic, or None if it is not one."""
        parts = topic.split("/")
        if len(parts) != 5 or "/".join(parts[:2]) != self.root or parts[4] != "readings":
            return None
        return parts[2], parts[3]


class PayloadError(ValueError):
    """A message that does not follow the payload contract; the text is the reason."""


@dataclass(frozen=True, slots=True)
class MessageReading(FlaggedValue):
    seq: int
    channel: str
    ts: int  # Unix seconds, UTC
    mantissa: int
    exponent: int
    flags: int

    @property
    def value_text(self) -> str | None:
        return None if self.missing else value_text(self.mantissa, self.exponent)


@dataclass(frozen=True, slots=True)
class ReadingsMessage:
    gateway: str
    station: str
    basin: str
    readings: tuple[MessageReading, ...]


def encode_readings(msg: ReadingsMessage) -> bytes:
    """The JSON payload. Ids are contract-checked, so they need no JSON escaping."""
    for kind, ident in (("gateway", msg.gateway), ("station", msg.station), ("basin", msg.basin)):
        check_id(kind, ident)
    items = []
    for channel in {r.channel for r in msg.readings}:  # once each, not once a reading
        check_id("channel", channel)
    for r in msg.readings:
        value = "null" if r.flags & MISSING else value_text(r.mantissa, r.exponent)
        items.append(f'{{"seq":{r.seq},"channel":"{r.channel}","ts":{r.ts},'
                     f'"value":{value},"flags":{r.flags}}}')
    return (f'{{"v":{PAYLOAD_VERSION},"gateway":"{msg.gateway}","station":"{msg.station}",'
            f'"basin":"{msg.basin}","readings":[{",".join(items)}]}}').encode()


def _int(obj: dict, key: str, low: int, high: int) -> int:
    v = obj.get(key)
    if type(v) is not int or not low <= v <= high:
        raise PayloadError(f"{key}: expected an integer in [{low}, {high}], got {v!r}")
    return v


def _ident(obj: dict, key: str) -> str:
    v = obj.get(key)
    if not isinstance(v, str) or not is_valid_id(v):
        raise PayloadError(f"{key}: not a valid identifier: {v!r}")
    return v


class _Number(str):
    """The text of a JSON number with a fraction or exponent, exactly as sent (json.loads
    ``parse_float``): a value's decimal text is kept, never a binary float, and a JSON string
    (a plain ``str``) is told apart from a number."""
    __slots__ = ()


_MAX_SEQ = MAX_SEQ  # 2**53 - 1: exact for a reader that holds JSON numbers as float64
# Longer number text cannot fit MAX_MANTISSA and MAX_EXPONENT, and int() of thousands of digits
# is slow (and refused beyond sys.get_int_max_str_digits()).
_MAX_NUMBER_TEXT = 64


def _number(raw: _Number) -> tuple[int, int]:
    """``(mantissa, exponent)`` of a JSON number's text: ``1.50`` -> ``(150, -2)``."""
    if len(raw) > _MAX_NUMBER_TEXT:
        raise PayloadError(f"value: {raw} has more digits than the contract allows")
    if "e" in raw or "E" in raw:
        return decimal_tuple(Decimal(raw))
    whole, _, fraction = raw.partition(".")
    return int(whole + fraction), -len(fraction)


def _reading(item: object, channels: dict[str, str]) -> MessageReading:
    if not isinstance(item, dict):
        raise PayloadError("readings: every item must be an object")
    get: Callable[[str], Any] = item.get
    seq, channel, ts, flags = get("seq"), get("channel"), get("ts"), get("flags")
    # The fast checks; the helpers again, for the reason, when one fails.
    if type(seq) is not int or not 0 <= seq <= _MAX_SEQ:
        _int(item, "seq", 0, _MAX_SEQ)
    if type(channel) is not str or channel not in channels:  # each name checked once a message
        channels[_ident(item, "channel")] = channel
    if type(ts) is not int or not 0 <= ts <= MAX_TS:
        _int(item, "ts", 0, MAX_TS)
    if type(flags) is not int or not 0 <= flags <= 255:
        _int(item, "flags", 0, 255)
    raw = item.get("value", "absent")
    if raw is None:
        if not flags & MISSING:
            raise PayloadError("value: null without the missing flag")
        return MessageReading(seq, channel, ts, 0, 0, flags)
    if flags & MISSING:
        raise PayloadError("value: a missing reading must have value null")
    if type(raw) is _Number:
        mantissa, exponent = _number(raw)
    elif type(raw) is int:
        mantissa, exponent = raw, 0
    else:
        raise PayloadError(f"value: expected a number or null, got {raw!r}")
    if not -MAX_MANTISSA <= mantissa <= MAX_MANTISSA or not -MAX_EXPONENT <= exponent <= MAX_EXPONENT:
        raise PayloadError(f"value: {raw} has more digits than the contract allows")
    return MessageReading(seq, channel, ts, mantissa, exponent, flags)


def parse_payload(payload: bytes) -> Any:
    """The JSON of a payload, numbers with a fraction or exponent as ``_Number`` text; raises
    PayloadError. Exactly ``json.loads(payload, parse_float=_Number, ...)``, without making a
    decoder per call."""
    try:
        if not isinstance(payload, (bytes, bytearray)):  # str: json.loads' own checks
            return json.loads(payload, parse_float=_Number, parse_constant=_not_a_number)
        return _DECODER.decode(payload.decode(json.detect_encoding(payload), "surrogatepass"))
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        raise PayloadError(f"not JSON: {e}") from e


def decode_readings(payload: bytes) -> ReadingsMessage:
    """Parse and validate a readings payload; raises PayloadError with the reason."""
    obj, readings = _envelope(payload)
    channels: dict[str, str] = {}
    return ReadingsMessage(_ident(obj, "gateway"), _ident(obj, "station"), _ident(obj, "basin"),
                           tuple([_reading(item, channels) for item in readings]))


def decode_readings_each(payload: bytes
                         ) -> tuple[ReadingsMessage, list[tuple[int | None, str]]]:
    """Like ``decode_readings``, but a bad reading costs only itself: the message of the valid
    readings, and ``(seq, reason)`` of each invalid one (seq None when it has no valid seq).
    Raises PayloadError only when the message as a whole cannot be read."""
    obj, items = _envelope(payload)
    channels: dict[str, str] = {}
    readings: list[MessageReading] = []
    rejected: list[tuple[int | None, str]] = []
    for item in items:
        try:
            readings.append(_reading(item, channels))
        except PayloadError as e:
            seq = item.get("seq") if isinstance(item, dict) else None
            valid_seq = type(seq) is int and 0 <= seq <= _MAX_SEQ
            rejected.append((seq if valid_seq else None, str(e)))
    message = ReadingsMessage(_ident(obj, "gateway"), _ident(obj, "station"),
                              _ident(obj, "basin"), tuple(readings))
    return message, rejected


def _envelope(payload: bytes) -> tuple[dict, list]:
    obj = parse_payload(payload)
    if not isinstance(obj, dict):
        raise PayloadError("payload is not a JSON object")
    if obj.get("v") != PAYLOAD_VERSION:
        raise PayloadError(f"v: unsupported payload version {obj.get('v')!r}")
    readings = obj.get("readings")
    if not isinstance(readings, list) or not readings:
        raise PayloadError("readings: expected a non-empty list")
    return obj, readings


def _not_a_number(text: str) -> object:
    """``NaN``, ``Infinity``: not JSON numbers, refused as values like any other non-number."""
    return text  # a plain str: "expected a number or null"


_DECODER = json.JSONDecoder(parse_float=_Number, parse_constant=_not_a_number)


def encode_status(gateway: str, state: str, since: int) -> bytes:
    """The retained online/offline message (also the last will, with state "offline")."""
    return json.dumps({"v": PAYLOAD_VERSION, "gateway": gateway, "state": state,
                       "since": since}, separators=(",", ":")).encode()


def encode_deadletter(source: str, reason: str, topic: str, payload: bytes, at: int) -> bytes:
    """A rejected message with the reason, for the dead-letter topic and local file."""
    try:
        original: object = payload.decode()
    except UnicodeDecodeError:
        original = {"hex": payload.hex()}
    return json.dumps({"v": PAYLOAD_VERSION, "source": source, "reason": reason, "topic": topic,
                       "payload": original, "at": at}, separators=(",", ":")).encode()
