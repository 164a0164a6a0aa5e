"""Station <-> gateway wire protocol v1: the firmware's codec (docs/contracts.md, section 1).

The same bytes as the gateway's codec (gateway/watershed/contracts/wire/); both must pass
tests/vectors/wire_v1.json. A frame on the wire is ``COBS(version type addr payload crc32le) 0x00``
with a body of at most MAX_BODY (250) bytes. Written for MicroPython; imports under CPython too.

Sending. A reading is a tuple ``(seq, channel, time, mantissa, exponent, flags)``::

    frame, n, rest = wire.encode_data(ADDR, readings)  # as many as fit one frame
    uart.write(frame)
    # ... the first n readings leave the outbox only when an ACK covers them

``encode_hello``, ``encode_data``, ``encode_status`` and ``encode_result`` build the body in a
buffer allocated once at import and return the wire bytes (COBS, delimiter included) as a
memoryview of a second such buffer: nothing as big as a frame is allocated per frame (on a
fragmented heap that is what fails first), and the view is good until the next encode, so write
it out (or copy it) before encoding another.

``encode_data`` returns ``(frame, count, rest)``: the first ``count`` readings went into the
frame, as many as fit MAX_BODY and at most ``max_readings`` if that is not 0; ``rest`` is the
first reading that did not go in, None if none was left. ``readings`` is a sequence or an
iterator (a station's outbox read from flash one at a time: no list of a backlog in RAM); an
iterator is read one past the frame, so pass that ``rest`` back as ``head`` to start the next
frame with it. With no readings the frame is the "nothing to send" DATA carrying ``next_seq``
and ``base_time``. With ``more`` the frame is a DATA_MORE when ``rest`` is not None: the rest
follow in the next frame of the reply (a POLL with WANT_MORE, contracts 1.2). Bad field values
raise ValueError. A RESULT ``detail`` longer than a frame holds is cut at a character boundary.

Receiving::

    dec = wire.Decoder()
    for item in dec.feed(uart.read()):         # iterate to the end: it consumes as it goes
        if isinstance(item, str):              # an error kind, already counted in dec.errors
            continue
        if item[1] in (MY_ADDR, wire.BROADCAST_ADDRESS):
            handle(item)

``feed`` yields, per frame on the stream, either a frame tuple or the name of its defect:
``"crc"``, ``"cobs"``, ``"too_long"``, ``"version"``, ``"unknown_type"``, ``"malformed"``,
``"out_of_range"`` (the kinds of the spec and the gateway's FrameDecoder; totals in ``errors``, good frames in
``frames``). It yields frames for every address. Frame tuples are ``(type, addr, fields...)``:

    (POLL, addr, want, max_readings, backfill)    backfill: None or (first_seq, end_seq)
    (ACK, addr, cumulative, ranges)               ranges: tuple of (first, end), end exclusive
    (TIME, addr, unix_ms)
    (CONFIG, addr, config_hash, total_len, offset, chunk)     chunk: bytes
    (COMMAND, addr, code, args)                   args: bytes
    (HELLO | DATA | STATUS | RESULT, addr, None)  station frames (echoes on a shared bus),
                                                  recognised but not parsed

``parse_decimal(text)`` turns a sensor's decimal text (``b"+1.234"``) into the exact
``(mantissa, exponent)`` of a reading. ``crc32`` is binascii's, or crc32_soft.py's where a port
lacks it.

Memory: imported as .mpy (mpy-cross -O3) the module holds about 7 KB of heap on the 32-bit unix
port; compiling this source on the device needs about 60 KB there, so deploy it compiled.
"""

try:
    from micropython import const
except ImportError:  # CPython, for tests and tools
    def const(x):  # type: ignore[misc]
        return x

PROTOCOL_VERSION = const(1)
MAX_BODY = const(250)  # version + type + addr + payload + CRC
BROADCAST_ADDRESS = const(255)

# Frame types: stations send 0x0_, the gateway 0x1_.
HELLO = const(0x01)
DATA = const(0x02)
STATUS = const(0x03)
RESULT = const(0x04)
_DATA_MORE = const(0x05)  # a DATA with another of the same reply after it (contracts 1.2)
POLL = const(0x10)
ACK = const(0x11)
TIME = const(0x12)
CONFIG = const(0x13)
COMMAND = const(0x14)

# Reading flags (a bit set).
MISSING = const(0x01)
OUT_OF_RANGE = const(0x02)
SUSPECT = const(0x04)
CLOCK_UNSYNCED = const(0x08)
SPIKE = const(0x10)
FLATLINE = const(0x20)
CLOCK_JUMP = const(0x40)
EVENT = const(0x80)

# POLL want bits, STATUS state bits, RESULT status codes, COMMAND codes.
WANT_DATA = const(0x01)
WANT_STATUS = const(0x02)
WANT_HELLO = const(0x04)
STATE_CLOCK_SYNCED = const(0x01)
STATE_EVENT_MODE = const(0x02)
STATE_CONFIG_ERROR = const(0x04)
RESULT_OK = const(0)
RESULT_BAD_REQUEST = const(1)
RESULT_REJECTED = const(2)
RESULT_BUSY = const(3)
CMD_REBOOT = const(1)
CMD_SAMPLE_NOW = const(2)

# Field ranges (contracts 1.2, 1.4). Private consts are folded by mpy-cross: no heap for a name.
_MAX_UVARINT = const(9007199254740991)  # 2**53 - 1: any uvarint unless its field says less
_MAX_TIME = const(8589934591)  # 2**33 - 1, Unix seconds
_MAX_UNIX_MS = const(8589934591999)  # TIME's milliseconds
# A value has at most 15 significant digits (what a float64 keeps exactly).
MAX_EXPONENT = const(20)
MAX_MANTISSA = 999999999999999  # 10**15 - 1; beyond a small int on 32-bit ports, so not const()

ERROR_KINDS = ("crc", "cobs", "too_long", "version", "unknown_type", "malformed", "out_of_range")

_HEADER = const(3)
_CRC = const(4)
_MAX_PAYLOAD_END = const(246)  # MAX_BODY - _CRC
_MAX_WIRE = const(252)  # COBS adds 1 byte to a body of up to 254, then the delimiter
_MAX_ENCODED = const(252)  # MAX_BODY + 2: longer without a delimiter is "too_long" (spec 1.1)
_MAX_ID = const(32)  # station_id and firmware strings in HELLO
_MAX_DETAIL = const(239)  # MAX_BODY - header, ref_type, status, 2-byte length, CRC


try:
    from binascii import crc32
except ImportError:
    from crc32_soft import crc32


# --- primitives -------------------------------------------------------------------------


def _zigzag(n):
    return (n << 1) if n >= 0 else ((-n << 1) - 1)


def _uvarint_len(n):
    size = 1
    while n > 0x7F:
        n >>= 7
        size += 1
    return size


def _put_uvarint(buf, pos, n, limit=_MAX_UVARINT):
    if n < 0 or n > limit:
        raise ValueError("uvarint out of range")
    while n > 0x7F:
        buf[pos] = (n & 0x7F) | 0x80
        n >>= 7
        pos += 1
    buf[pos] = n
    return pos + 1


def _put_u32le(buf, pos, n):
    if not 0 <= n <= 0xFFFFFFFF:
        raise ValueError("u32 out of range")
    for i in range(4):
        buf[pos + i] = (n >> (8 * i)) & 0xFF
    return pos + 4


def _get_u32le(buf, pos):
    return buf[pos] | (buf[pos + 1] << 8) | (buf[pos + 2] << 16) | (buf[pos + 3] << 24)


def _u8(n):
    if not 0 <= n <= 0xFF:
        raise ValueError("u8 out of range")
    return n


def _utf8(text):
    return text.encode() if isinstance(text, str) else text


def _put_str(buf, pos, raw, limit):
    if len(raw) > limit:
        raise ValueError("string too long")
    pos = _put_uvarint(buf, pos, len(raw))
    buf[pos:pos + len(raw)] = raw
    return pos + len(raw)


def _cobs_encode(src, n, dst):
    """COBS of src[:n] into dst, then the delimiter; returns the number of bytes written."""
    code_at = 0  # where the current block's length code goes
    out = 1
    code = 1
    for i in range(n):
        byte = src[i]
        if byte:
            dst[out] = byte
            out += 1
            code += 1
        if not byte or (code == 0xFF and i + 1 < n):
            dst[code_at] = code
            code_at = out
            out += 1
            code = 1
    dst[code_at] = code
    dst[out] = 0
    return out + 1


def _cobs_decode(buf, n):
    """Undo COBS in place on buf[:n] (which holds no zero); the body length, or -1 if invalid."""
    i = j = 0
    while i < n:
        code = buf[i]
        end = i + code
        if end > n:
            return -1  # a length code pointing beyond the frame
        i += 1
        while i < end:
            buf[j] = buf[i]
            i += 1
            j += 1
        if code < 0xFF and i < n:
            buf[j] = 0
            j += 1
    return j


def _check_reading(seq, channel, time, mantissa, exponent, flags):
    _u8(channel)
    _u8(flags)
    if flags & MISSING and (mantissa or exponent):
        raise ValueError("a missing reading carries no value")
    # One message for every field: each distinct string costs the heap a qstr.
    if not (0 <= seq <= _MAX_UVARINT and 0 <= time <= _MAX_TIME
            and -MAX_MANTISSA <= mantissa <= MAX_MANTISSA
            and -MAX_EXPONENT <= exponent <= MAX_EXPONENT):
        raise ValueError("reading out of range")


# --- sending ----------------------------------------------------------------------------


_body = bytearray(MAX_BODY)  # frames are built here, then COBS-encoded into _wire
_wire = bytearray(_MAX_WIRE)
_body_view = memoryview(_body)
_wire_view = memoryview(_wire)


def _start(addr, ftype):
    _body[0] = PROTOCOL_VERSION
    _body[1] = ftype
    _body[2] = _u8(addr)
    return _HEADER


def _finish(end):
    # CRC-32 of header + payload, little-endian, then COBS and the delimiter.
    if end > _MAX_PAYLOAD_END:
        raise ValueError("frame too long")
    _put_u32le(_body, end, crc32(_body_view[:end]))
    return _wire_view[:_cobs_encode(_body, end + _CRC, _wire)]


def encode_hello(addr, station_id, firmware, config_hash, reset_cause, boot_count, next_seq, clock):
    pos = _start(addr, HELLO)
    pos = _put_str(_body, pos, _utf8(station_id), _MAX_ID)
    pos = _put_str(_body, pos, _utf8(firmware), _MAX_ID)
    pos = _put_u32le(_body, pos, config_hash)
    _body[pos] = _u8(reset_cause)
    pos = _put_uvarint(_body, pos + 1, boot_count)
    pos = _put_uvarint(_body, pos, next_seq)
    return _finish(_put_uvarint(_body, pos, clock, _MAX_TIME))


def encode_data(addr, readings, next_seq=0, base_time=0, max_readings=0, more=False, head=None):
    body = _body
    pos = _start(addr, DATA)
    it = iter(readings)
    r = next(it, None) if head is None else head
    if r is None:  # "nothing to send": the station's next seq and clock
        pos = _put_uvarint(body, pos, next_seq)
        return _finish(_put_uvarint(body, pos, base_time, _MAX_TIME)), 0, None
    prev_seq = r[0] - 1
    prev_time = r[2]
    pos = _put_uvarint(body, pos, prev_seq + 1)  # base_seq
    pos = _put_uvarint(body, pos, prev_time)  # base_time
    count = 0
    while r is not None:
        if count == max_readings and max_readings:
            break
        seq, channel, time, mantissa, exponent, flags = r
        _check_reading(seq, channel, time, mantissa, exponent, flags)
        gap = seq - prev_seq - 1
        if gap < 0:
            raise ValueError("readings must ascend by seq")
        dt = _zigzag(time - prev_time)
        zm = _zigzag(mantissa)
        # seq_gap channel dt flags exponent mantissa
        if pos + _uvarint_len(gap) + _uvarint_len(dt) + _uvarint_len(zm) + 3 > _MAX_PAYLOAD_END:
            break
        pos = _put_uvarint(body, pos, gap)
        body[pos] = channel
        pos = _put_uvarint(body, pos + 1, dt)
        body[pos] = flags
        body[pos + 1] = exponent & 0xFF
        pos = _put_uvarint(body, pos + 2, zm)
        prev_seq = seq
        prev_time = time
        count += 1
        r = next(it, None)
    if more and r is not None:
        body[1] = _DATA_MORE  # the rest follow in the next frame of this reply
    return _finish(pos), count, r


def encode_status(addr, uptime_s, clock, state, battery_mv, outbox_depth, oldest_seq, next_seq,
                  lost_overwritten, lost_corrupt, sensor_errors, free_heap):
    pos = _start(addr, STATUS)
    pos = _put_uvarint(_body, pos, uptime_s)
    pos = _put_uvarint(_body, pos, clock, _MAX_TIME)
    for n in (state, battery_mv, outbox_depth, oldest_seq, next_seq, lost_overwritten,
              lost_corrupt, sensor_errors, free_heap):
        pos = _put_uvarint(_body, pos, n)
    return _finish(pos)


def encode_result(addr, ref_type, status, detail=""):
    pos = _start(addr, RESULT)
    _body[pos] = _u8(ref_type)
    _body[pos + 1] = _u8(status)
    raw = _utf8(detail)
    n = len(raw)
    if n > _MAX_DETAIL:  # cut, but never inside a UTF-8 sequence
        n = _MAX_DETAIL
        while n and raw[n] & 0xC0 == 0x80:
            n -= 1
        raw = raw[:n]
    return _finish(_put_str(_body, pos + 2, raw, _MAX_DETAIL))


# --- receiving --------------------------------------------------------------------------


class Decoder:
    """Splits a byte stream into frames at each 0x00 and decodes the gateway's frames.

    One buffer of _MAX_ENCODED bytes, allocated once: bytes beyond it without a delimiter are
    dropped up to the next one and counted as "too_long". See the module docstring."""

    def __init__(self):
        self._buf = bytearray(_MAX_ENCODED)
        self._view = memoryview(self._buf)
        self._len = 0
        self._overflow = False
        self._pos = 0  # payload reader, within the frame being decoded
        self._end = 0
        self.frames = 0
        self.errors = {}
        for kind in ERROR_KINDS:
            self.errors[kind] = 0

    def feed(self, data):
        """Yield a frame tuple or an error kind for each frame completed by ``data``."""
        buf = self._buf
        for byte in data:
            if byte:
                if self._len < _MAX_ENCODED:
                    buf[self._len] = byte
                    self._len += 1
                else:
                    self._overflow = True  # drop up to the next delimiter
                continue
            n = self._len
            self._len = 0
            if self._overflow:
                self._overflow = False
                item = "too_long"
            elif n:
                item = self._decode(n)
            else:
                continue  # an empty frame is idle fill
            if isinstance(item, str):
                self.errors[item] += 1
            else:
                self.frames += 1
            yield item

    def _decode(self, n):
        buf = self._buf
        n = _cobs_decode(buf, n)
        if n < 0:
            return "cobs"
        if n < _HEADER + _CRC:
            return "crc"
        n -= _CRC
        if crc32(self._view[:n]) != _get_u32le(buf, n):
            return "crc"
        if buf[0] != PROTOCOL_VERSION:
            return "version"
        ftype = buf[1]
        if HELLO <= ftype <= _DATA_MORE:
            return (ftype, buf[2], None)
        if not POLL <= ftype <= COMMAND:
            return "unknown_type"
        self._pos = _HEADER
        self._end = n
        try:
            frame = self._payload(ftype, buf[2])
        except OverflowError:  # a field beyond its range (raised below, a builtin: no heap)
            return "out_of_range"
        except ValueError:  # raised bare below: a message would only cost heap
            return "malformed"
        if self._pos < n:
            return "malformed"  # trailing bytes
        return frame

    def _payload(self, ftype, addr):
        if ftype == POLL:
            want = self._u8()
            max_readings = self._u8()
            backfill = None
            if self._pos < self._end:
                first = self._uvarint()
                backfill = (first, self._uvarint())
            return (POLL, addr, want, max_readings, backfill)
        if ftype == ACK:
            cumulative = end = self._uvarint()
            ranges = []
            while self._pos < self._end:
                gap = self._uvarint()
                if not gap:
                    raise ValueError
                first = end + gap  # start = previous end + gap
                length = self._uvarint()
                if not length:
                    raise ValueError
                end = first + length
                if end > _MAX_UVARINT:
                    raise OverflowError
                ranges.append((first, end))
            return (ACK, addr, cumulative, tuple(ranges))
        if ftype == TIME:
            return (TIME, addr, self._uvarint(_MAX_UNIX_MS))
        if ftype == CONFIG:
            if self._pos + 4 > self._end:
                raise ValueError
            config_hash = _get_u32le(self._buf, self._pos)
            self._pos += 4
            total_len = self._uvarint()
            offset = self._uvarint()
            chunk = self._rest()
            if offset + len(chunk) > total_len:
                raise ValueError
            return (CONFIG, addr, config_hash, total_len, offset, chunk)
        return (COMMAND, addr, self._u8(), self._rest())

    def _u8(self):
        if self._pos >= self._end:
            raise ValueError
        self._pos += 1
        return self._buf[self._pos - 1]

    def _uvarint(self, limit=_MAX_UVARINT):
        n = shift = 0
        while True:
            byte = self._u8()
            n |= (byte & 0x7F) << shift
            if not byte & 0x80:
                if shift and not byte:
                    raise ValueError
                if n > limit:
                    raise OverflowError
                return n
            shift += 7
            if shift > 49:  # a 9th byte: beyond _MAX_UVARINT (and n stays below 2**56)
                raise OverflowError

    def _rest(self):
        raw = bytes(self._view[self._pos:self._end])
        self._pos = self._end
        return raw


# --- values -----------------------------------------------------------------------------


def parse_decimal(text):
    """Exact ``(mantissa, exponent)`` of a sensor's decimal text: ``b"+1.234"`` -> ``(1234, -3)``.

    An optional sign, then digits with at most one point (SDI-12 values); trailing zeros are
    kept (``"1.50"`` -> ``(150, -2)``). Raises ValueError for anything else (spaces, exponents,
    inf, nan) and for values a reading cannot carry (|mantissa| > MAX_MANTISSA or more than
    MAX_EXPONENT decimals)."""
    raw = _utf8(text)
    i = 0
    if len(raw) and (raw[0] == 0x2B or raw[0] == 0x2D):  # + -
        i = 1
    mantissa = 0
    exponent = 0
    digits = 0
    point = False
    for c in raw[i:]:
        if 0x30 <= c <= 0x39:
            mantissa = mantissa * 10 + c - 0x30
            digits += 1
            if point:
                exponent -= 1
        elif c == 0x2E and not point:  # .
            point = True
        else:
            raise ValueError("not a decimal")
    if not digits:
        raise ValueError("not a decimal")
    if mantissa > MAX_MANTISSA or exponent < -MAX_EXPONENT:
        raise ValueError("value out of range for a reading")
    return (-mantissa if i and raw[0] == 0x2D else mantissa), exponent

