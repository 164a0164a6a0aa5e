"""Why a frame is refused: one exception class per counter the gateway tallies it under."""

from __future__ import annotations


class FrameError(ValueError):
    """A frame that cannot be accepted; ``kind`` names the counter it is tallied under."""

    kind = "malformed"


class CrcError(FrameError):
    """The CRC does not match: noise or truncation on the link."""

    kind = "crc"


class CobsError(FrameError):
    """The bytes between two delimiters are not valid COBS."""

    kind = "cobs"


class TooLong(FrameError):
    """More bytes than MAX_BODY allows arrived without a delimiter."""

    kind = "too_long"


class UnsupportedVersion(FrameError):
    """A frame of a protocol version this decoder does not speak."""

    kind = "version"


class UnknownFrameType(FrameError):
    """A frame type this decoder does not know."""

    kind = "unknown_type"


class Malformed(FrameError):
    """A payload that does not follow its type's layout."""

    kind = "malformed"


class OutOfRange(FrameError):
    """A well-formed field whose value lies outside its contract range (1.2, 1.4)."""

    kind = "out_of_range"
