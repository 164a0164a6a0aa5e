"""Station <-> gateway wire protocol, version 1 (docs/contracts.md, section 1).

A frame on the byte stream is ``COBS(header + payload + crc32) + b"\\x00"``. The zero byte only
ever appears as a delimiter, so a receiver resynchronises at the next zero after noise or a
truncated frame. The firmware has its own codec (firmware/wire.py); both must pass
tests/vectors/wire_v1.json.

Callers use this package's names (``wire.Data``, ``wire.encode_frame``); its modules:
``constants`` (frame types, flags, codes, field ranges), ``errors`` (why a frame is refused),
``frames`` (the frames as values), ``varint`` (the primitive fields), ``payloads`` (each type's
layout), ``framing`` (COBS, CRC, the stream decoder, packing readings into DATA frames). The
exact decimal values are ``contracts/decimals.py``, shared with the MQTT and InfluxDB contracts.
"""

from ..decimals import MAX_EXPONENT, MAX_MANTISSA, decimal_parts, decimal_tuple, value_text
from .constants import (ACK, BROADCAST_ADDRESS, CLOCK_JUMP, CLOCK_UNSYNCED, CMD_REBOOT,
                        CMD_SAMPLE_NOW, COMMAND, CONFIG, DATA, DATA_MORE, DELIMITER, EVENT,
                        FLATLINE, GATEWAY_ADDRESS, HELLO, MAX_BODY, MAX_DATA_FRAMES, MAX_SEQ,
                        MAX_TIME, MAX_UNIX_MS, MAX_UVARINT, MISSING, OUT_OF_RANGE, POLL,
                        PROTOCOL_VERSION, RESET_CAUSES, RESULT, RESULT_BAD_REQUEST, RESULT_BUSY,
                        RESULT_OK, RESULT_REJECTED, SPIKE, STATE_CLOCK_SYNCED, STATE_CONFIG_ERROR,
                        STATE_EVENT_MODE, STATUS, SUSPECT, TIME, WANT_DATA, WANT_HELLO, WANT_MORE,
                        WANT_STATUS)
from .errors import (CobsError, CrcError, FrameError, Malformed, OutOfRange, TooLong,
                     UnknownFrameType, UnsupportedVersion)
from .frames import (FRAME_NAMES, Ack, Command, ConfigChunk, Data, DataMore, FlaggedValue, Frame,
                     Hello, Poll, Reading, Result, Status, TimeSync, config_hash, joined)
from .framing import (FrameDecoder, decode_body, decode_frame, encode_body, encode_frame,
                      readings_per_frame)
from .varint import put_uvarint

# The simulator's unchecked frames (hardware/watershed_sim/unchecked_frames.py) write varints
# with the range check lifted through this older name; new code: varint.put_uvarint.
_uvarint = put_uvarint

__all__ = [
    "ACK", "BROADCAST_ADDRESS", "CLOCK_JUMP", "CLOCK_UNSYNCED", "CMD_REBOOT", "CMD_SAMPLE_NOW",
    "COMMAND", "CONFIG", "DATA", "DATA_MORE", "DELIMITER", "EVENT", "FLATLINE", "FRAME_NAMES",
    "GATEWAY_ADDRESS", "HELLO", "MAX_BODY", "MAX_DATA_FRAMES", "MAX_EXPONENT", "MAX_MANTISSA",
    "MAX_SEQ", "MAX_TIME",
    "MAX_UNIX_MS", "MAX_UVARINT", "MISSING", "OUT_OF_RANGE", "POLL", "PROTOCOL_VERSION",
    "RESET_CAUSES", "RESULT", "RESULT_BAD_REQUEST", "RESULT_BUSY", "RESULT_OK", "RESULT_REJECTED",
    "SPIKE", "STATE_CLOCK_SYNCED", "STATE_CONFIG_ERROR", "STATE_EVENT_MODE", "STATUS", "SUSPECT",
    "TIME", "WANT_DATA", "WANT_HELLO", "WANT_MORE", "WANT_STATUS",
    "Ack", "CobsError", "Command", "ConfigChunk", "CrcError", "Data", "DataMore", "FlaggedValue",
    "Frame",
    "FrameDecoder",
    "FrameError", "Hello", "Malformed", "OutOfRange", "Poll", "Reading", "Result", "Status",
    "TimeSync", "TooLong", "UnknownFrameType", "UnsupportedVersion",
    "config_hash", "decimal_parts", "decimal_tuple", "decode_body", "decode_frame", "encode_body",
    "encode_frame", "joined", "readings_per_frame", "value_text",
]
