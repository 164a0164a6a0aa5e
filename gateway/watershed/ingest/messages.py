"""One MQTT readings message -> its line protocol, or the reason it is rejected.

``readings_lines`` is the contract alone. ``Converter`` adds what the operator configured: the
station registry (which gateway owns which station), time bounds, value ranges, and discharge
derived from stage through the station's ratings.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable, Mapping

from ..contracts.influx import discharge_line, message_lines, payload_lines
from ..contracts.mqtt import (MAX_TS, MessageReading, PayloadError, ReadingsMessage, Topics,
                              decode_readings)
from ..contracts.wire import OUT_OF_RANGE
from ..ratings.station import StationRatings
from .config import IngestConfig


def readings_lines(topics: Topics, topic: str, payload: bytes) -> list[str]:
    """Line protocol for every reading of the message; raises PayloadError with the reason."""
    fast = _fast_lines(topics, topic, payload, 0, MAX_TS)
    if fast is not None:
        return fast[2]
    return message_lines(decode_routed(topics, topic, payload))


def _fast_lines(topics: Topics, topic: str, payload: bytes, ts_low: float,
                ts_high: float) -> tuple[str, str, list[str]] | None:
    """``(gateway, station, lines)`` of a valid message whose topic names the same gateway and
    station, through payload_lines (no object per reading); None when the full path
    (decode_routed + message_lines) must look at it, which finds any reason to reject."""
    fast = payload_lines(payload, ts_low, ts_high)
    if fast is None or topics.parse_readings(topic) != (fast[0], fast[1]):
        return None
    return fast


def decode_routed(topics: Topics, topic: str, payload: bytes) -> ReadingsMessage:
    """The message, checked against its topic.

    The topic must name the same gateway and station as the payload: a gateway may only speak for
    itself (broker ACLs restrict it by topic), so a mismatch is a misbehaving or forged sender.
    """
    route = topics.parse_readings(topic)
    if route is None:
        raise PayloadError(f"topic: not a readings topic: {topic}")
    msg = decode_readings(payload)
    if route != (msg.gateway, msg.station):
        raise PayloadError(f"topic: gateway/station {route[0]}/{route[1]} differ from the "
                           f"payload's {msg.gateway}/{msg.station}")
    return msg


class Converter:
    def __init__(self, config: IngestConfig, ratings: Mapping[str, StationRatings],
                 now: Callable[[], float] = time.time) -> None:
        self._topics = Topics(config.mqtt.prefix)
        self._config = config
        self._ratings = ratings
        self._ranges = {channel: (low, high) for channel, low, high in config.ranges}
        self._now = now
        self.derived = 0  # discharge points made (the worker thread only)

    def lines(self, topic: str, payload: bytes) -> list[str]:
        """Line protocol for the message and its derived discharge; raises PayloadError."""
        if not self._ranges:
            lines = self._plain_lines(topic, payload)
            if lines is not None:
                return lines
        msg = decode_routed(self._topics, topic, payload)
        self._check_owner(msg.gateway, msg.station)
        self._check_times(msg)
        if self._ranges:
            msg = dataclasses.replace(msg, readings=tuple(self._flag_range(r)
                                                          for r in msg.readings))
        return message_lines(msg) + self._discharge_lines(msg)

    def _plain_lines(self, topic: str, payload: bytes) -> list[str] | None:
        """The fast path (no ranges configured): a valid message, on its own topic, every
        timestamp within bounds, of a station without a rating, straight to its lines. None
        when the full path must look at it (it also finds any reason to reject)."""
        if self._ratings:
            route = self._topics.parse_readings(topic)
            if route is None or (self._ratings.get(route[1]) is not None
                                 and self._config.station(route[1]) is not None):
                return None  # discharge to derive
        v = self._config.validation
        now = self._now()
        fast = _fast_lines(self._topics, topic, payload,
                           now - v.max_past_s if v.max_past_s else 0,
                           now + v.max_future_s if v.max_future_s else MAX_TS)
        if fast is None:
            return None
        gateway, station, lines = fast
        self._check_owner(gateway, station)
        return lines

    def _check_owner(self, gateway: str, station: str) -> None:
        entry = self._config.station(station)
        if entry is None:
            if self._config.validation.require_registered and self._config.stations:
                raise PayloadError(f"registry: station {station} is not registered")
            return
        if entry.gateways and gateway not in entry.gateways:
            raise PayloadError(f"registry: gateway {gateway} does not own station "
                               f"{station} (owners: {', '.join(entry.gateways)})")

    def _check_times(self, msg: ReadingsMessage) -> None:
        v = self._config.validation
        now = self._now()
        for r in msg.readings:
            if v.max_future_s and r.ts > now + v.max_future_s:
                raise PayloadError(f"ts: reading seq {r.seq} at {r.ts} is {r.ts - now:.0f} s in "
                                   f"the future (limit {v.max_future_s} s)")
            if v.max_past_s and r.ts < now - v.max_past_s:
                raise PayloadError(f"ts: reading seq {r.seq} at {r.ts} is older than "
                                   f"{v.max_past_s} s")

    def _flag_range(self, r: MessageReading) -> MessageReading:
        bounds = self._ranges.get(r.channel)
        value = r.value
        if bounds is None or value is None or bounds[0] <= value <= bounds[1]:
            return r
        return dataclasses.replace(r, flags=r.flags | OUT_OF_RANGE)

    def _discharge_lines(self, msg: ReadingsMessage) -> list[str]:
        ratings = self._ratings.get(msg.station)
        entry = self._config.station(msg.station)
        if ratings is None or entry is None:
            return []
        lines = []
        for r in msg.readings:
            if r.channel != entry.stage_channel:
                continue
            derived = ratings.derive(r.value, r.flags, r.ts)
            if derived is not None:
                lines.append(discharge_line(msg.station, msg.basin, r.ts, derived.value,
                                            derived.flags, r.seq, msg.gateway, derived.rating_id))
        self.derived += len(lines)
        return lines
