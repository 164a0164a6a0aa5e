"""Both wire codecs under CPython: the contract's vectors, round trips, fuzzing, cross-checks.

The gateway's codec (watershed.contracts.wire) is the reference. The firmware's codec
(firmware/wire.py, written for MicroPython) is imported here as the top-level module ``wire`` and
must agree with it byte for byte; tests/firmware/test_wire_vectors.py runs it in MicroPython.
"""

from __future__ import annotations

import dataclasses
import json
import re
import sys
import zlib
from pathlib import Path

import pytest
from cobs import cobs
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.vectors.generate import frame_dict
from watershed.contracts import wire
from watershed.contracts.ids import ID_PATTERN
from watershed.contracts.wire import Reading

REPO_ROOT = Path(__file__).resolve().parents[2]
FIRMWARE_DIR = REPO_ROOT / "firmware"
VECTORS = json.loads((REPO_ROOT / "tests" / "vectors" / "wire_v1.json").read_text())

sys.path.insert(0, str(FIRMWARE_DIR))
try:
    import crc32_soft  # firmware/crc32_soft.py
    import wire as fw  # firmware/wire.py
finally:
    sys.path.remove(str(FIRMWARE_DIR))
assert Path(fw.__file__).resolve() == FIRMWARE_DIR / "wire.py"

FRAME_CLASSES = {cls.type: cls for cls in (wire.Hello, wire.Data, wire.DataMore, wire.Status,
                                           wire.Result, wire.Poll, wire.Ack, wire.TimeSync, wire.ConfigChunk,
                                           wire.Command)}
NAME_TO_TYPE = {name: code for code, name in wire.FRAME_NAMES.items()}
STATION_TYPES = (wire.HELLO, wire.DATA, wire.DATA_MORE, wire.STATUS, wire.RESULT)
STATION_NAMES = ("HELLO", "DATA", "DATA_MORE", "STATUS", "RESULT")
PAYLOAD_KINDS = ("malformed", "out_of_range")  # defects a station finds only in a payload it parses
MAX_ENCODED = wire.MAX_BODY + 2
VECTOR_ACK = bytes.fromhex(next(v["wire"] for v in VECTORS["valid"]
                                 if v["name"] == "ack_cumulative"))


def frame_from_dict(d: dict) -> wire.Frame:
    """A vector's ``frame`` object as the reference dataclass."""
    fields = {k: v for k, v in d.items() if k != "type"}
    if "readings" in fields:
        fields["readings"] = tuple(Reading(*r) for r in fields["readings"])
    if "ranges" in fields:
        fields["ranges"] = tuple(tuple(r) for r in fields["ranges"])
    if fields.get("backfill") is not None:
        fields["backfill"] = tuple(fields["backfill"])
    for key in ("chunk", "args"):
        if key in fields:
            fields[key] = bytes.fromhex(fields[key])
    return FRAME_CLASSES[NAME_TO_TYPE[d["type"]]](**fields)


def fw_layout(frame: wire.Frame) -> tuple:
    """What the firmware's Decoder yields for this frame."""
    if frame.type in STATION_TYPES:
        return (frame.type, frame.addr, None)
    return (frame.type, *(getattr(frame, f.name) for f in dataclasses.fields(frame)))


def fw_encode(frame: wire.Frame) -> bytes:
    """The firmware's encoding of a station frame (a copy: the firmware returns a view of its
    buffer, good until its next encode)."""
    if isinstance(frame, wire.Data):
        readings = [(r.seq, r.channel, r.time, r.mantissa, r.exponent, r.flags)
                    for r in frame.readings]
        more = isinstance(frame, wire.DataMore)
        if more:  # a DATA_MORE: readings beyond the frame follow in the next
            last = readings[-1]
            readings.append((last[0] + 1, *last[1:]))
        raw, count, _ = fw.encode_data(frame.addr, readings, frame.next_seq, frame.base_time,
                                    len(frame.readings), more)
        assert count == len(frame.readings)
        return bytes(raw)
    fields = [getattr(frame, f.name) for f in dataclasses.fields(frame)]
    encoder = {wire.HELLO: fw.encode_hello, wire.STATUS: fw.encode_status,
               wire.RESULT: fw.encode_result}[frame.type]
    return bytes(encoder(*fields))


def outcome_name(item: object) -> str:
    if isinstance(item, wire.FrameError):
        return item.kind
    if isinstance(item, str):
        return item
    if isinstance(item, tuple):
        return wire.FRAME_NAMES[item[0]]
    return wire.FRAME_NAMES[item.type]


def feed_in_chunks(feed, stream: bytes, sizes: list[int]) -> list:
    out, pos, i = [], 0, 0
    while pos < len(stream):
        size = sizes[i % len(sizes)] if sizes else len(stream)
        out.extend(feed(stream[pos:pos + size]))
        pos += size
        i += 1
    return out


def complete_chunks(stream: bytes) -> list[bytes]:
    """The non-empty chunks a decoder sees complete: one outcome each, in order."""
    return [c for c in stream.split(b"\x00")[:-1] if c]


def vector_params(group: str, only=lambda v: True):
    return [pytest.param(v, id=v["name"]) for v in VECTORS[group] if only(v)]


def is_station(v: dict) -> bool:
    return NAME_TO_TYPE[v["frame"]["type"]] in STATION_TYPES


# --- the reference codec against the vectors -----------------------------------------------


def test_vectors_cover_every_frame_type() -> None:
    assert {v["frame"]["type"] for v in VECTORS["valid"]} == set(NAME_TO_TYPE)
    assert VECTORS["version"] == wire.PROTOCOL_VERSION == fw.PROTOCOL_VERSION


@pytest.mark.parametrize("vector", vector_params("valid"))
def test_reference_encodes_valid_vector_exactly(vector: dict) -> None:
    assert wire.encode_frame(frame_from_dict(vector["frame"])).hex() == vector["wire"]


@pytest.mark.parametrize("vector", vector_params("valid"))
def test_reference_decodes_valid_vector_to_its_fields(vector: dict) -> None:
    raw = bytes.fromhex(vector["wire"])
    assert raw.endswith(b"\x00") and raw.count(0) == 1
    frame = wire.decode_frame(raw[:-1])
    assert frame == frame_from_dict(vector["frame"])
    assert frame_dict(frame) == vector["frame"]


@pytest.mark.parametrize("vector", vector_params("invalid"))
def test_reference_decoder_gives_the_expected_outcomes(vector: dict) -> None:
    decoder = wire.FrameDecoder()
    got = [outcome_name(o) for o in decoder.feed(bytes.fromhex(vector["stream"]))]
    assert got == vector["expect"]
    kinds = [k for k in got if k not in NAME_TO_TYPE]
    assert decoder.errors == {k: kinds.count(k) for k in kinds}
    assert decoder.frames == len(got) - len(kinds)


# --- the firmware codec against the vectors, under CPython ---------------------------------


@pytest.mark.parametrize("vector", vector_params("valid", is_station))
def test_firmware_encodes_station_vector_exactly(vector: dict) -> None:
    assert fw_encode(frame_from_dict(vector["frame"])).hex() == vector["wire"]


@pytest.mark.parametrize("vector", vector_params("valid"))
def test_firmware_decodes_valid_vector(vector: dict) -> None:
    decoder = fw.Decoder()
    got = list(decoder.feed(bytes.fromhex(vector["wire"])))
    assert got == [fw_layout(frame_from_dict(vector["frame"]))]
    assert decoder.frames == 1 and not any(decoder.errors.values())


@pytest.mark.parametrize("vector", vector_params("invalid"))
def test_firmware_decoder_gives_the_expected_outcomes(vector: dict) -> None:
    decoder = fw.Decoder()
    got = [outcome_name(o) for o in decoder.feed(bytes.fromhex(vector["stream"]))]
    if vector["gateway_only"]:  # a station does not parse station frames' payloads
        assert len(got) == len(vector["expect"])
        for g, e in zip(got, vector["expect"]):
            assert g == e or (e in PAYLOAD_KINDS and g in STATION_NAMES)
    else:
        assert got == vector["expect"]
    assert decoder.errors == {k: got.count(k) for k in fw.ERROR_KINDS}


# --- strategies ----------------------------------------------------------------------------

addrs = st.integers(0, 255)
u8s = st.integers(0, 255)
u32s = st.integers(0, 2**32 - 1)
uvarints = st.one_of(st.integers(0, 300), st.integers(0, wire.MAX_UVARINT))
times = st.one_of(st.just(0), st.integers(0, wire.MAX_TIME))
small_gaps = st.one_of(st.integers(0, 3), st.integers(0, 2**32))


@st.composite
def reading_lists(draw, max_size: int = 40) -> list[Reading]:
    """Readings in contract ranges, ascending seq with random gaps, times jumping both ways."""
    seq = draw(st.integers(1, 2**40))
    time = draw(st.integers(0, wire.MAX_TIME))
    out = []
    for i in range(draw(st.integers(1, max_size))):
        if i:
            seq += 1 + draw(small_gaps)
            time = min(wire.MAX_TIME, max(0, time + draw(st.one_of(st.sampled_from([0, 900]),
                                                                  st.integers(-10**7, 10**7)))))
        flags = draw(u8s)
        if flags & wire.MISSING:
            mantissa = exponent = 0
        else:
            mantissa = draw(st.one_of(st.integers(-5000, 5000),
                                      st.integers(-wire.MAX_MANTISSA, wire.MAX_MANTISSA)))
            exponent = draw(st.integers(-wire.MAX_EXPONENT, wire.MAX_EXPONENT))
        out.append(Reading(seq, draw(u8s), time, mantissa, exponent, flags))
    return out


# At most 8 readings always fit MAX_BODY (each at most 20 bytes with these ranges).
data_frames = st.one_of(
    st.builds(lambda a, rs: wire.Data(a, tuple(rs)), addrs, reading_lists(max_size=8)),
    st.builds(lambda a, n, t: wire.Data(a, (), next_seq=n, base_time=t), addrs, uvarints, times),
)
ids = st.from_regex(ID_PATTERN, fullmatch=True)
hellos = st.builds(wire.Hello, addrs, ids, st.text(max_size=8), u32s, u8s, uvarints, uvarints,
                   times)
statuses = st.builds(wire.Status, addrs, uvarints, times, *[uvarints] * 9)
results = st.builds(wire.Result, addrs, u8s, u8s, st.text(max_size=50))
polls = st.builds(wire.Poll, addrs, u8s, u8s, st.none() | st.tuples(uvarints, uvarints))


@st.composite
def acks(draw) -> wire.Ack:
    cumulative = draw(st.integers(0, 2**40))
    ranges, end = [], cumulative
    for _ in range(draw(st.integers(0, 16))):
        first = end + draw(st.integers(1, 2**20))  # gap >= 1: ranges never touch
        end = first + draw(st.integers(1, 2**20))
        ranges.append((first, end))
    return wire.Ack(draw(addrs), cumulative, tuple(ranges))


@st.composite
def config_chunks(draw) -> wire.ConfigChunk:
    chunk = draw(st.binary(max_size=100))
    offset = draw(st.integers(0, 2**20))
    total = offset + len(chunk) + draw(st.integers(0, 2**20))
    return wire.ConfigChunk(draw(addrs), draw(u32s), total, offset, chunk)


gateway_frames = st.one_of(polls, acks(), st.builds(wire.TimeSync, addrs,
                                                   st.integers(0, wire.MAX_UNIX_MS)),
                           config_chunks(), st.builds(wire.Command, addrs, u8s,
                                                      st.binary(max_size=100)))
station_frames = st.one_of(data_frames, hellos, statuses, results)
frames = st.one_of(station_frames, gateway_frames)


@st.composite
def streams(draw) -> bytes:
    """Valid frames, noise and idle delimiters, then bit flips, truncation and dropped bytes."""
    parts = draw(st.lists(st.one_of(frames.map(wire.encode_frame), st.binary(max_size=300),
                                    st.just(b"\x00")), max_size=6))
    data = bytearray(b"".join(parts))
    for _ in range(draw(st.integers(0, 3))):
        if not data:
            break
        i = draw(st.integers(0, len(data) - 1))
        how = draw(st.sampled_from(["flip", "cut", "drop"]))
        if how == "flip":
            data[i] ^= 1 << draw(st.integers(0, 7))
        elif how == "cut":
            del data[i:]
        else:
            del data[i:i + draw(st.integers(1, 20))]
    return bytes(data)


def with_crc(body: bytes) -> bytes:
    return body + zlib.crc32(body).to_bytes(4, "little")


@st.composite
def crc_valid_bodies(draw) -> bytes:
    """Bodies with a correct CRC: random payloads, or valid ones with bytes changed or added."""
    if draw(st.booleans()):
        head = bytes([draw(st.sampled_from([1, 1, 1, 2])),
                      draw(st.sampled_from([*wire.FRAME_NAMES, 0, 0x7E])), draw(addrs)])
        return with_crc(head + draw(st.binary(max_size=40)))
    body = bytearray(wire.encode_body(draw(frames))[:-4])
    for _ in range(draw(st.integers(1, 3))):
        i = draw(st.integers(3, len(body)))
        how = draw(st.sampled_from(["set", "insert", "cut"]))
        if how == "set" and i < len(body):
            body[i] = draw(u8s)
        elif how == "insert":
            body[i:i] = draw(st.binary(min_size=1, max_size=4))
        else:
            del body[i:]
    return with_crc(bytes(body[:wire.MAX_BODY - 4]))


# --- reference: round trips and robustness -------------------------------------------------


@given(addrs, reading_lists())
def test_data_round_trips_packed_into_frames(addr: int, readings: list[Reading]) -> None:
    packed = wire.readings_per_frame(readings, addr)
    assert [r for f in packed for r in f.readings] == readings
    for frame in packed:
        raw = wire.encode_frame(frame)
        assert len(raw) <= MAX_ENCODED
        assert wire.decode_frame(raw[:-1]) == frame


@given(st.one_of(acks(), polls))
def test_ack_and_poll_round_trip(frame: wire.Frame) -> None:
    assert wire.decode_frame(wire.encode_frame(frame)[:-1]) == frame


@given(frames)
def test_every_frame_type_round_trips(frame: wire.Frame) -> None:
    raw = wire.encode_frame(frame)
    assert raw.index(0) == len(raw) - 1
    assert wire.decode_frame(raw[:-1]) == frame


@settings(suppress_health_check=[HealthCheck.too_slow])
@given(streams(), st.lists(st.integers(1, 64), max_size=4))
def test_reference_decoder_survives_noise_and_yields_only_exact_frames(
        stream: bytes, sizes: list[int]) -> None:
    decoder = wire.FrameDecoder()
    got = feed_in_chunks(decoder.feed, stream, sizes)  # never raises
    chunks = complete_chunks(stream)
    assert len(got) == len(chunks)
    for chunk, item in zip(chunks, got):
        assert (outcome_name(item) == "too_long") == (len(chunk) > MAX_ENCODED)
        if not isinstance(item, wire.FrameError):
            assert wire.encode_frame(item) == chunk + b"\x00"
    assert sum(decoder.errors.values()) + decoder.frames == len(got)


@given(crc_valid_bodies())
def test_crc_valid_bodies_decode_to_stable_frames_or_fail_cleanly(body: bytes) -> None:
    try:
        frame = wire.decode_body(body)
    except wire.FrameError:
        return
    again = wire.encode_body(frame)
    assert wire.decode_body(again) == frame
    # Re-encoding gives back the body except for trailing bytes a HELLO or STATUS may carry from a later minor revision.
    assert len(again) <= len(body)


def test_non_minimal_varint_is_malformed() -> None:
    body = with_crc(bytes([1, wire.TIME, 5, 0x80, 0x00]))
    with pytest.raises(wire.Malformed):
        wire.decode_body(body)


def test_reference_too_long_is_counted_and_memory_stays_bounded() -> None:
    decoder = wire.FrameDecoder()
    out = list(decoder.feed(b"\x01" * 10_000))
    assert out == [] and len(decoder._buf) <= MAX_ENCODED
    assert [outcome_name(o) for o in decoder.feed(b"\x00" + VECTOR_ACK)] == ["too_long", "ACK"]


# --- the firmware codec cross-checked with the reference -----------------------------------


@given(addrs, reading_lists(), st.integers(0, 40))
def test_firmware_data_equals_reference_and_packs_as_many_as_fit(
        addr: int, readings: list[Reading], max_readings: int) -> None:
    tuples = [(r.seq, r.channel, r.time, r.mantissa, r.exponent, r.flags) for r in readings]
    raw, count, rest = fw.encode_data(addr, tuples, max_readings=max_readings)
    assert 1 <= count <= len(readings)
    assert raw == wire.encode_frame(wire.Data(addr, tuple(readings[:count])))
    assert rest == (tuples[count] if count < len(tuples) else None)
    if count < len(readings):
        if max_readings and count == max_readings:
            return
        with pytest.raises(ValueError, match="exceeds"):  # one more would not fit
            wire.encode_body(wire.Data(addr, tuple(readings[:count + 1])))


@given(addrs, reading_lists(), st.integers(0, 40))
def test_firmware_data_from_an_iterator_is_the_list_in_frames(
        addr: int, readings: list[Reading], max_readings: int) -> None:
    """A station reads its outbox one reading at a time: frames from an iterator, each begun
    with the reading the last one had no room for, carry the readings a list would, in order."""
    tuples = [(r.seq, r.channel, r.time, r.mantissa, r.exponent, r.flags) for r in readings]
    it = iter(tuples)
    sent: list[Reading] = []
    rest = None
    while True:
        raw, count, rest = fw.encode_data(addr, it, max_readings=max_readings, more=True,
                                          head=rest)
        frame = wire.decode_frame(bytes(raw)[:-1])
        assert count == len(frame.readings) >= 1
        assert isinstance(frame, wire.DataMore) == (rest is not None)
        if max_readings:
            assert count <= max_readings
        sent.extend(frame.readings)
        if rest is None:
            break
    assert sent == readings


@given(station_frames)
def test_firmware_encodes_station_frames_as_the_reference(frame: wire.Frame) -> None:
    assert fw_encode(frame) == wire.encode_frame(frame)


def test_firmware_cuts_a_long_result_detail_at_a_character() -> None:
    detail = "config rejected:" + "é" * 200  # 416 bytes; byte 239 is inside an "é"
    raw = bytes(fw.encode_result(5, wire.CONFIG, wire.RESULT_REJECTED, detail))
    frame = wire.decode_frame(raw[:-1])
    assert frame.detail == detail[:16 + 111]
    assert len(wire.encode_body(frame)) == wire.MAX_BODY - 1 and len(raw) <= MAX_ENCODED


@pytest.mark.parametrize("call", [
    lambda: fw.encode_data(5, [(1, 1, 0, 5, -1, fw.MISSING)]),  # a missing reading with a value
    lambda: fw.encode_data(5, [(2, 1, 0, 5, -1, 0), (2, 1, 0, 5, -1, 0)]),  # seq not ascending
    lambda: fw.encode_data(5, [(1, 256, 0, 5, -1, 0)]),  # channel
    lambda: fw.encode_data(5, [(1, 1, 0, 10**15, 0, 0)]),  # mantissa
    lambda: fw.encode_data(5, [(1, 1, 0, -10**15, 0, 0)]),  # mantissa
    lambda: fw.encode_data(5, [(1, 1, 0, 1, -21, 0)]),  # exponent
    lambda: fw.encode_data(5, [(2**53, 1, 0, 1, 0, 0)]),  # seq
    lambda: fw.encode_data(5, [(2**53 - 1, 1, 0, 1, 0, 0), (2**53, 1, 0, 1, 0, 0)]),  # seq
    lambda: fw.encode_data(5, [(1, 1, 2**33, 1, 0, 0)]),  # time
    lambda: fw.encode_data(5, [], 2**53, 0),  # next_seq
    lambda: fw.encode_data(5, [], 1, 2**33),  # base_time
    lambda: fw.encode_hello(5, "SAN-01", "0.1", 0, 1, 0, 2**53, 0),  # next_seq
    lambda: fw.encode_hello(5, "SAN-01", "0.1", 0, 1, 0, 1, 2**33),  # clock
    lambda: fw.encode_status(5, 0, 2**33, 0, 0, 0, 0, 0, 0, 0, 0, 0),  # clock
    lambda: fw.encode_status(5, 0, 0, 0, 0, 0, 0, 0, 2**64, 0, 0, 0),  # lost_overwritten
    lambda: fw.encode_data(5, [(1, 1, 0, 1, 21, 0)]),  # exponent
    lambda: fw.encode_data(5, [(1, 1, -1, 1, 0, 0)]),  # time
    lambda: fw.encode_data(256, []),  # address
    lambda: fw.encode_hello(5, "S" * 33, "0.1", 0, 1, 0, 1, 0),  # station id length
    lambda: fw.encode_hello(5, "SAN-01", "0.1", 2**32, 1, 0, 1, 0),  # config hash
    lambda: fw.encode_status(5, -1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0),  # negative uvarint
])
def test_firmware_refuses_values_outside_the_contract(call) -> None:
    with pytest.raises(ValueError):
        call()


@settings(suppress_health_check=[HealthCheck.too_slow])
@given(st.one_of(streams(), crc_valid_bodies().map(lambda b: cobs.encode(b) + b"\x00")),
       st.lists(st.integers(1, 64), max_size=4))
def test_firmware_decoder_agrees_with_the_reference(stream: bytes, sizes: list[int]) -> None:
    ref_decoder, fw_decoder = wire.FrameDecoder(), fw.Decoder()
    ref = feed_in_chunks(ref_decoder.feed, stream, sizes)
    got = feed_in_chunks(fw_decoder.feed, stream, sizes)
    assert len(got) == len(ref)
    for r, g in zip(ref, got):
        if isinstance(r, wire.FrameError):
            # A station does not parse station frames, which the gateway may find malformed.
            if not (r.kind in PAYLOAD_KINDS and isinstance(g, tuple) and g[0] in STATION_TYPES):
                assert g == r.kind
        else:
            assert g == fw_layout(r)
    assert fw_decoder.frames == sum(isinstance(g, tuple) for g in got)
    assert sum(fw_decoder.errors.values()) == len(got) - fw_decoder.frames


def test_firmware_decoder_drops_over_long_frames_without_growing() -> None:
    decoder = fw.Decoder()
    buffer = decoder._buf
    assert list(decoder.feed(b"\x01" * MAX_ENCODED + b"\x00")) == ["crc"]  # long, not too long
    assert list(decoder.feed(b"\x01" * 10_000)) == []
    assert list(decoder.feed(b"\x00" + VECTOR_ACK)) == ["too_long", (wire.ACK, 5, 49, ())]
    assert decoder._buf is buffer and len(buffer) == MAX_ENCODED
    assert decoder.errors["too_long"] == 1 and decoder.frames == 1


@given(st.binary(max_size=600))
def test_firmware_cobs_encode_matches_the_cobs_package(data: bytes) -> None:
    out = bytearray(len(data) + len(data) // 254 + 2)
    n = fw._cobs_encode(data, len(data), out)
    assert bytes(out[:n]) == cobs.encode(data) + b"\x00"


@given(st.binary(max_size=300).map(lambda b: b.replace(b"\x00", b"\x01")))
def test_firmware_cobs_decode_matches_the_cobs_package(encoded: bytes) -> None:
    buf = bytearray(encoded)
    n = fw._cobs_decode(buf, len(buf))
    try:
        want = cobs.decode(encoded)
    except cobs.DecodeError:
        assert n == -1
    else:
        assert bytes(buf[:n]) == want


@given(st.binary(max_size=300))
def test_firmware_crc32_fallback_matches_zlib(data: bytes) -> None:
    assert crc32_soft.crc32(data) == zlib.crc32(data)


def test_crc32_check_value() -> None:
    assert fw.crc32(b"123456789") == crc32_soft.crc32(b"123456789") == 0xCBF43926


@pytest.mark.parametrize("text, parts", [
    (b"+1.234", (1234, -3)), ("-0.50", (-50, -2)), ("+12", (12, 0)), ("1.50", (150, -2)),
    ("+0", (0, 0)), ("-0", (0, 0)), (".5", (5, -1)), ("7.", (7, 0)), ("+1013.25", (101325, -2)),
    (str(wire.MAX_MANTISSA), (wire.MAX_MANTISSA, 0)), ("0." + "0" * 19 + "1", (1, -20)),
])
def test_parse_decimal_is_exact_and_keeps_trailing_zeros(text, parts) -> None:
    assert fw.parse_decimal(text) == parts


@pytest.mark.parametrize("text", [
    "", "+", "-", ".", "+.", "1.2.3", "1e3", " 1", "1 ", "1,5", "nan", "inf", "0x10", "1_0",
    "++1", str(wire.MAX_MANTISSA + 1), "0." + "0" * 20 + "1", b"\xff",
])
def test_parse_decimal_refuses_garbage_and_unrepresentable_values(text) -> None:
    with pytest.raises(ValueError):
        fw.parse_decimal(text)


@given(st.one_of(st.from_regex(r"[+-]?[0-9]{0,20}(\.[0-9]{0,22})?", fullmatch=True), st.text()))
def test_parse_decimal_agrees_with_the_reference(text: str) -> None:
    try:
        want = wire.decimal_parts(text)
    except (ValueError, ArithmeticError):  # the reference raises decimal.InvalidOperation
        want = None
    try:
        got = fw.parse_decimal(text)
    except ValueError:
        got = None
    if got is not None:
        assert got == want
    elif want is not None and re.fullmatch(r"[+-]?([0-9]+\.?[0-9]*|\.[0-9]+)", text):
        assert abs(want[0]) > wire.MAX_MANTISSA or want[1] < -wire.MAX_EXPONENT


# --- field ranges (contracts 1.2, 1.4) -----------------------------------------------------

MAX_U = wire.MAX_UVARINT


@pytest.mark.parametrize("frame", [
    wire.Data(5, (Reading(1, 1, 0, 10**15, 0, 0),)),  # 16 significant digits
    wire.Data(5, (Reading(1, 1, 0, -10**15, 0, 0),)),
    wire.Data(5, (Reading(1, 1, 0, 1, 21, 0),)),
    wire.Data(5, (Reading(1, 1, 0, 1, -21, 0),)),
    wire.Data(5, (Reading(2**53, 1, 0, 1, 0, 0),)),
    wire.Data(5, (Reading(MAX_U, 1, 0, 1, 0, 0), Reading(2**53, 1, 0, 1, 0, 0))),
    wire.Data(5, (Reading(1, 1, 2**33, 1, 0, 0),)),
    wire.Data(5, (), next_seq=2**53),
    wire.Data(5, (), base_time=2**33),
    wire.Hello(5, "SAN-01", "0.1", 0, 1, 0, 2**53, 0),
    wire.Hello(5, "SAN-01", "0.1", 0, 1, 2**63 + 5, 1, 0),
    wire.Hello(5, "SAN-01", "0.1", 0, 1, 0, 1, 2**33),
    wire.Status(5, 0, 2**33, 0, 0, 0, 0, 0, 0, 0, 0, 0),
    wire.Status(5, 0, 0, 0, 0, 0, 0, 0, 2**64, 0, 0, 0),
    wire.TimeSync(5, wire.MAX_UNIX_MS + 1),
    wire.Ack(5, 2**53),
    wire.Ack(5, 1, ((MAX_U - 1, 2**53),)),
    wire.Poll(5, wire.WANT_DATA, 0, (1, 2**53)),
    wire.ConfigChunk(5, 0, 2**53, 0, b"{"),
], ids=lambda f: repr(f)[:60])
def test_reference_refuses_values_outside_the_contract(frame: wire.Frame) -> None:
    with pytest.raises(ValueError):
        wire.encode_body(frame)


def _data(addr: int, *seqs: int, more: bool = False) -> wire.Data:
    kind = wire.DataMore if more else wire.Data
    return kind(addr, tuple(Reading(s, 1, 1_770_000_000 + s, s, 0) for s in seqs))


def test_joined_makes_a_reply_of_several_data_frames_one_data() -> None:
    status = wire.Status(3, 1, 2, 0, 0, 0, 0, 0, 0, 0, 0, 0)
    frames = [_data(3, 1, 2, more=True), _data(3, 3, more=True), _data(3, 4), status]
    assert wire.joined(frames) == [_data(3, 1, 2, 3, 4), status]
    assert wire.joined([_data(3, 1), _data(3, 2)]) == [_data(3, 1), _data(3, 2)]  # two replies
    # a chain ended by a DATA with nothing left: the readings of its DATA_MORE frames
    assert wire.joined([_data(3, 1, more=True), wire.Data(3, (), 9, 0)]) == [_data(3, 1)]


def test_joined_keeps_a_reply_cut_short_as_data_more() -> None:
    # its last DATA never came: the readings that did are good, and more was to come
    assert wire.joined([_data(3, 1, more=True), _data(3, 2, more=True)]) == [
        _data(3, 1, 2, more=True)]
    # another address's frame is not the end of the chain
    assert wire.joined([_data(3, 1, more=True), _data(4, 7)]) == [_data(3, 1, more=True),
                                                                  _data(4, 7)]


def test_an_empty_data_more_is_refused_both_ways() -> None:
    with pytest.raises(ValueError):
        wire.encode_frame(wire.DataMore(3, ()))
