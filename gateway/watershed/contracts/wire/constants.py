"""The numbers of the wire protocol, version 1 (docs/contracts.md 1): frame types, flags, codes
and the ranges every field must keep."""

from __future__ import annotations

PROTOCOL_VERSION = 1
MAX_BODY = 250  # header + payload + CRC; COBS adds 1 byte, the delimiter 1: 252 on the wire
DELIMITER = b"\x00"
GATEWAY_ADDRESS = 0
BROADCAST_ADDRESS = 255

# Frame types. Stations send 0x0_, the gateway sends 0x1_.
HELLO = 0x01
DATA = 0x02
STATUS = 0x03
RESULT = 0x04
DATA_MORE = 0x05  # a DATA frame with another of the same reply after it (1.2)
POLL = 0x10
ACK = 0x11
TIME = 0x12
CONFIG = 0x13
COMMAND = 0x14

# Reading quality flags (a bit set).
MISSING = 0x01  # no value: sensor error or no response
OUT_OF_RANGE = 0x02
SUSPECT = 0x04
CLOCK_UNSYNCED = 0x08  # taken before the station's first TIME sync
SPIKE = 0x10
FLATLINE = 0x20
CLOCK_JUMP = 0x40  # taken around a detected clock step
EVENT = 0x80  # taken in event (flood) mode; not a quality defect


# POLL "want" bits.
WANT_DATA = 0x01
WANT_STATUS = 0x02
WANT_HELLO = 0x04
WANT_MORE = 0x08  # with WANT_DATA: up to MAX_DATA_FRAMES DATA frames back to back (1.2)

# DATA frames a station sends at most in answer to one POLL with WANT_MORE: ~1 KB, 1 s at 9600
# baud. Each stays a whole frame (one frame's loss costs only its readings).
MAX_DATA_FRAMES = 4

# Reset causes in HELLO.
RESET_CAUSES = ("unknown", "power_on", "hard", "watchdog", "deepsleep", "soft", "brownout")

# RESULT status codes.
RESULT_OK = 0
RESULT_BAD_REQUEST = 1
RESULT_REJECTED = 2
RESULT_BUSY = 3

# COMMAND codes.
CMD_REBOOT = 1
CMD_SAMPLE_NOW = 2

# Field ranges (contracts 1.2, 1.4; a value's are in decimals.py). Every number must fit the
# gateway's SQLite store (int64), JSON readers that hold numbers as float64 and InfluxDB.
MAX_UVARINT = (1 << 53) - 1  # any uvarint unless its field says less: exact in a float64
MAX_SEQ = MAX_UVARINT
MAX_TIME = (1 << 33) - 1  # Unix seconds: year 2242, inside InfluxDB's range (up to 2262)
MAX_UNIX_MS = (MAX_TIME + 1) * 1000 - 1  # TIME's milliseconds

# STATUS state bits.
STATE_CLOCK_SYNCED = 0x01
STATE_EVENT_MODE = 0x02
STATE_CONFIG_ERROR = 0x04
