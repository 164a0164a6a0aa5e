"""One MQTT readings message -> its line protocol, or the reason it is rejected."""

from __future__ import annotations

from ..contracts.influx import message_lines
from ..contracts.mqtt import PayloadError, Topics, decode_readings


def readings_lines(topics: Topics, topic: str, payload: bytes) -> list[str]:
    """Line protocol for every reading of the message; raises PayloadError with the reason.

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
    return message_lines(msg)
