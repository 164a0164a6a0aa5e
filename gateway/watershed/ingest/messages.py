"""One MQTT readings message -> its line protocol, and what of it is refused, reading by reading.

``convert_readings`` is the contract alone. ``Converter`` adds what the operator configured: the
station registry (which gateway owns which station), time bounds, value ranges, and discharge
derived from stage through the station's ratings. A bad reading costs only itself: the rest of
its message is written, and it is named (seq and reason) so the ingest can dead-letter it and
tell the gateway it was refused (contracts/confirm.py). Only a message that cannot be read as a
whole (not JSON, no identity, a topic that does not match its payload) raises PayloadError.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

from ..contracts.influx import discharge_line, message_lines, payload_lines
from ..contracts.mqtt import (MAX_TS, MessageReading, PayloadError, ReadingsMessage, Topics,
                              decode_readings_each)
from ..contracts.wire import OUT_OF_RANGE
from ..ratings.station import StationRatings
from .config import IngestConfig
from .owners import Owners


@dataclass(slots=True)
class Converted:
    """A readings message made ready to write."""

    gateway: str
    station: str
    lines: list[str]
    line_seqs: list[int]  # the seq of the reading each line comes from
    # (seq, reason) of each reading refused before writing; seq None: it had no valid seq
    rejected: list[tuple[int | None, str]] = field(default_factory=list)

    def reason(self) -> str:
        """One line naming every refused reading (for the dead letter); a message refused as a
        whole (nothing written, one reason) gives that reason alone."""
        reasons = {why for _, why in self.rejected}
        if not self.line_seqs and len(reasons) == 1:
            return reasons.pop()
        parts = [f"seq {seq}: {why}" if seq is not None else why for seq, why in self.rejected]
        named = {seq for seq, _ in self.rejected if seq is not None}
        unnamed = sum(seq is None for seq, _ in self.rejected)
        total = len(named | set(self.line_seqs)) + unnamed
        head = f"{len(self.rejected)} of {total} readings"
        return f"{head} refused: " + "; ".join(parts[:5]) + ("; ..." if len(parts) > 5 else "")


def convert_readings(topics: Topics, topic: str, payload: bytes) -> Converted:
    """The message's line protocol and refused readings; raises PayloadError when the message
    as a whole cannot be read."""
    fast = _fast_lines(topics, topic, payload, 0, MAX_TS)
    if fast is not None:
        return Converted(*fast)
    msg, rejected = decode_routed_each(topics, topic, payload)
    return Converted(msg.gateway, msg.station, message_lines(msg),
                     [r.seq for r in msg.readings], rejected)


def readings_lines(topics: Topics, topic: str, payload: bytes) -> list[str]:
    """Line protocol for every reading of the message; raises PayloadError with the reason if
    any reading is refused (the strict view, for tools and tests)."""
    return _strict(convert_readings(topics, topic, payload))


def _strict(converted: Converted) -> list[str]:
    if converted.rejected:
        raise PayloadError(converted.rejected[0][1])
    return converted.lines


def _fast_lines(topics: Topics, topic: str, payload: bytes, ts_low: float, ts_high: float
                ) -> tuple[str, str, list[str], list[int]] | None:
    """``(gateway, station, lines, seqs)`` of a valid message whose topic names the same gateway
    and station, through payload_lines (no object per reading); None when the full path
    (decode_routed_each + message_lines) must look at it, which finds any reason to reject."""
    fast = payload_lines(payload, ts_low, ts_high)
    if fast is None or topics.parse_readings(topic) != (fast[0], fast[1]):
        return None
    return fast


def decode_routed_each(topics: Topics, topic: str, payload: bytes
                       ) -> tuple[ReadingsMessage, list[tuple[int | None, str]]]:
    """The message's valid readings and its refused ones, checked against its topic.

    The topic must name the same gateway and station as the payload: a gateway may only speak for
    itself (broker ACLs restrict it by topic), so a mismatch is a misbehaving or forged sender.
    """
    route = topics.parse_readings(topic)
    if route is None:
        raise PayloadError(f"topic: not a readings topic: {topic}")
    msg, rejected = decode_readings_each(payload)
    if route != (msg.gateway, msg.station):
        raise PayloadError(f"topic: gateway/station {route[0]}/{route[1]} differ from the "
                           f"payload's {msg.gateway}/{msg.station}")
    return msg, rejected


def decode_routed(topics: Topics, topic: str, payload: bytes) -> ReadingsMessage:
    """The message, checked against its topic; raises PayloadError if any reading is refused."""
    msg, rejected = decode_routed_each(topics, topic, payload)
    if rejected:
        raise PayloadError(rejected[0][1])
    return msg


class Converter:
    def __init__(self, config: IngestConfig, ratings: Mapping[str, StationRatings],
                 now: Callable[[], float] = time.time, owners: Owners | None = None) -> None:
        self._topics = Topics(config.mqtt.prefix)
        self._config = config
        # Who owns each station; without a file (tools, tests) the first gateway heard still
        # owns it, for this converter's life: no configuration lets anyone write anything.
        self.owners = owners if owners is not None else Owners(None, config.ingest.id, now)
        self._ratings = ratings
        self._ranges = {channel: (low, high) for channel, low, high in config.ranges}
        self._now = now
        self.derived = 0  # discharge points made (the worker thread only)

    def lines(self, topic: str, payload: bytes) -> list[str]:
        """Line protocol for the message and its derived discharge; raises PayloadError if any
        reading is refused (the strict view)."""
        return _strict(self.convert(topic, payload))

    def convert(self, topic: str, payload: bytes) -> Converted:
        """The message's lines (derived discharge included) and its refused readings; raises
        PayloadError when the message as a whole cannot be read."""
        if not self._ranges:
            plain = self._plain(topic, payload)
            if plain is not None:
                return plain
        msg, rejected = decode_routed_each(self._topics, topic, payload)
        owner_problem = self._owner_problem(msg.gateway, msg.station)
        if owner_problem is not None:  # every reading of the message is refused
            if owner_problem[1] is not None:
                self.owners.note_refused(msg.station, msg.gateway, owner_problem[1],
                                         len(msg.readings))
            return Converted(msg.gateway, msg.station, [], [],
                             rejected + [(r.seq, owner_problem[0]) for r in msg.readings])
        readings = []
        for r in msg.readings:
            problem = self._time_problem(r)
            if problem is not None:
                rejected.append((r.seq, problem))
            else:
                readings.append(self._flag_range(r) if self._ranges else r)
        msg = dataclasses.replace(msg, readings=tuple(readings))
        discharge = self._discharge_lines(msg)
        return Converted(msg.gateway, msg.station, message_lines(msg) + [d[1] for d in discharge],
                         [r.seq for r in msg.readings] + [d[0] for d in discharge], rejected)

    def _plain(self, topic: str, payload: bytes) -> Converted | None:
        """The fast path (no ranges configured): a valid message, on its own topic, every
        timestamp within bounds, of a station without a rating and a gateway that owns it,
        straight to its lines. None when the full path must look at it (it also finds any
        reason to reject)."""
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
        if fast is None or self._owner_problem(fast[0], fast[1]) is not None:
            return None
        return Converted(*fast)

    def _owner_problem(self, gateway: str, station: str) -> tuple[str, str | None] | None:
        """Why ``gateway`` may not speak for ``station`` and, when another gateway owns it, who
        (for the alert); None when it may. The config's registry first, then the owners file."""
        entry = self._config.station(station)
        if entry is None and self._config.validation.require_registered and self._config.stations:
            return f"registry: station {station} is not registered", None
        if entry is not None and entry.gateways:
            if gateway in entry.gateways:
                return None
            owners = ", ".join(entry.gateways)
            return (f"registry: gateway {gateway} does not own station {station} "
                    f"(owners: {owners})", f"{owners} (ingest config [[stations]])")
        owner = self.owners.owner(station)
        if owner is None:
            owner = self.owners.claim(station, gateway)
        if owner.gateway == gateway:
            return None
        return (f"owner: gateway {gateway} does not own station {station} (owned by "
                f"{owner.gateway} since {owner.at}, {owner.by})", owner.describe())

    def _time_problem(self, r: MessageReading) -> str | None:
        v = self._config.validation
        now = self._now()
        if v.max_future_s and r.ts > now + v.max_future_s:
            return (f"ts: reading seq {r.seq} at {r.ts} is {r.ts - now:.0f} s in the future "
                    f"(limit {v.max_future_s} s)")
        if v.max_past_s and r.ts < now - v.max_past_s:
            return f"ts: reading seq {r.seq} at {r.ts} is older than {v.max_past_s} s"
        return None

    def _flag_range(self, r: MessageReading) -> MessageReading:
        bounds = self._ranges.get(r.channel)
        value = r.value
        if bounds is None or value is None or bounds[0] <= value <= bounds[1]:
            return r
        return dataclasses.replace(r, flags=r.flags | OUT_OF_RANGE)

    def _discharge_lines(self, msg: ReadingsMessage) -> list[tuple[int, str]]:
        """``(seq, line)`` of the discharge derived from each stage reading of the message."""
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
                lines.append((r.seq, discharge_line(msg.station, msg.basin, r.ts, derived.value,
                                                    derived.flags, r.seq, msg.gateway,
                                                    derived.rating_id)))
        self.derived += len(lines)
        return lines
