"""Writes wire_v1.json and mqtt_v1.json from the gateway's codec.

The vectors are the contract's executable form: the firmware codec (in MicroPython) and the
gateway codec must both reproduce them. Regenerate only when the contract changes:
    python -m tests.vectors.generate
"""

import dataclasses
import json
from pathlib import Path

from watershed.contracts import influx, mqtt, wire
from watershed.contracts.wire import Reading

HERE = Path(__file__).parent
T0 = 1763676900  # 2025-11-20T22:15:00Z
MAX_U, MAX_T, MAX_M = wire.MAX_UVARINT, wire.MAX_TIME, wire.MAX_MANTISSA


def frame_dict(frame: wire.Frame) -> dict:
    out: dict = {"type": wire.FRAME_NAMES[frame.type]}
    for f in dataclasses.fields(frame):
        v = getattr(frame, f.name)
        if f.name == "readings":
            v = [[r.seq, r.channel, r.time, r.mantissa, r.exponent, r.flags] for r in v]
        elif isinstance(v, bytes):
            v = v.hex()
        elif isinstance(v, tuple):
            v = [list(x) if isinstance(x, tuple) else x for x in v]
        out[f.name] = v
    return out


def valid_frames() -> list[tuple[str, wire.Frame]]:
    stage = [Reading.from_text(41 + i, 1, T0 + 900 * i, t) for i, t in
             enumerate(["+1.234", "+1.240", "+1.251", "+1.262", "+1.270", "+1.301", "+1.355", "+1.420"])]
    mixed = (
        Reading.from_text(100, 1, T0, "+0.512"),
        Reading.from_text(101, 17, T0, "-3.7"),
        Reading.missing_reading(102, 16, T0),
        Reading.from_text(105, 19, T0 + 1, "+1013.25", wire.SUSPECT),
        Reading.from_text(106, 200, T0 - 3600, "+0", wire.CLOCK_JUMP | wire.CLOCK_UNSYNCED),
        Reading.from_text(107, 32, T0, "+12.81"),
        Reading(108, 8, T0, MAX_M, -20, wire.OUT_OF_RANGE | wire.SPIKE | wire.FLATLINE | wire.EVENT),
        Reading(109, 4, T0, -MAX_M, 20, 0),
        Reading.from_text(110, 1, T0, "+1.50"),
    )
    return [
        ("data_stage_8", wire.Data(5, tuple(stage))),
        ("data_mixed_flags_gaps", wire.Data(17, mixed)),
        ("data_single", wire.Data(1, (Reading.from_text(1, 1, T0, "+0.001"),))),
        ("data_empty", wire.Data(3, (), next_seq=812, base_time=T0)),
        ("data_more", wire.DataMore(5, tuple(stage[:4]))),
        ("hello", wire.Hello(5, "SAN-01", "0.1.0", 0xDEADBEEF, 3, 17, 1042, T0)),
        ("hello_unset_clock", wire.Hello(254, "mayo.ch-3_b", "1.25.0-ws1", 0, 1, 0, 1, 0)),
        ("status", wire.Status(5, 86400, T0, wire.STATE_CLOCK_SYNCED | wire.STATE_EVENT_MODE,
                               12810, 37, 1005, 1042, 3, 1, 0, 31000)),
        ("result_ok", wire.Result(5, wire.CONFIG, wire.RESULT_OK, "")),
        ("result_rejected", wire.Result(5, wire.CONFIG, wire.RESULT_REJECTED, "channels[2].interval_s: must be > 0")),
        ("poll_data", wire.Poll(5, wire.WANT_DATA, 0)),
        ("poll_all", wire.Poll(7, wire.WANT_DATA | wire.WANT_STATUS | wire.WANT_HELLO, 16)),
        ("poll_backfill", wire.Poll(5, wire.WANT_DATA, 30, (300, 420))),
        ("poll_more", wire.Poll(5, wire.WANT_DATA | wire.WANT_MORE | wire.WANT_HELLO, 0)),
        ("ack_cumulative", wire.Ack(5, 49)),
        ("ack_selective", wire.Ack(5, 49, ((51, 53), (60, 61), (300, 428)))),
        ("ack_ranges_gap_1", wire.Ack(5, 10, ((11, 12), (13, 14)))),
        ("ack_zero", wire.Ack(2, 0)),
        ("time", wire.TimeSync(255, T0 * 1000 + 250)),
        ("config_chunk", wire.ConfigChunk(5, 0x12345678, 300, 200, b'{"station":"SAN-01"}\x00\xff')),
        ("command_reboot", wire.Command(5, wire.CMD_REBOOT)),
        ("command_args", wire.Command(5, wire.CMD_SAMPLE_NOW, b"\x01\x00\x10")),
        # Every field at the top of its range (contracts 1.2, 1.4).
        ("data_range_limits", wire.Data(9, (Reading(MAX_U - 1, 1, MAX_T, MAX_M, 20, 0),
                                            Reading(MAX_U, 2, 0, -MAX_M, -20, wire.SUSPECT)))),
        ("data_empty_range_limits", wire.Data(9, (), next_seq=MAX_U, base_time=MAX_T)),
        ("hello_range_limits", wire.Hello(9, "SAN-01", "0.1.0", 0xFFFFFFFF, 6, MAX_U, MAX_U, MAX_T)),
        ("status_range_limits", wire.Status(9, MAX_U, MAX_T, *[MAX_U] * 9)),
        ("time_range_limit", wire.TimeSync(9, wire.MAX_UNIX_MS)),
        ("ack_range_limits", wire.Ack(9, MAX_U - 3, ((MAX_U - 1, MAX_U),))),
        ("poll_backfill_range_limits", wire.Poll(9, wire.WANT_DATA, 0, (MAX_U - 1, MAX_U))),
        ("config_range_limits", wire.ConfigChunk(9, 1, MAX_U, MAX_U - 1, b"}")),
    ]


def with_crc(body: bytes) -> bytes:
    import zlib
    return body + zlib.crc32(body).to_bytes(4, "little")


def cobs_frame(body: bytes) -> bytes:
    from cobs import cobs
    return cobs.encode(body) + b"\x00"


def uv(n: int) -> bytes:
    """A uvarint of any size (the codecs refuse to write one out of range)."""
    out = bytearray()
    while n > 0x7F:
        out.append((n & 0x7F) | 0x80)
        n >>= 7
    return bytes(out + bytes([n]))


def sv(n: int) -> bytes:
    return uv((n << 1) if n >= 0 else ((-n << 1) - 1))


def raw_frame(ftype: int, payload: bytes, addr: int = 5) -> bytes:
    return cobs_frame(with_crc(bytes([1, ftype, addr]) + payload))


def reading_bytes(gap: int = 0, dt: int = 0, exponent: int = -3, mantissa: int = 1234) -> bytes:
    """One reading of a DATA payload (1.4), channel 1, flags 0."""
    return uv(gap) + b"\x01" + sv(dt) + b"\x00" + bytes([exponent & 0xFF]) + sv(mantissa)


def out_of_range_streams() -> list[tuple[str, bytes, list[str]]]:
    """Well-formed frames with one field beyond its range (1.2, 1.4): ``out_of_range``."""
    status = [86400, T0, 1, 12810, 0, 1, 1, 0, 0, 0, 31000]
    status_lost = status[:7] + [2**64] + status[8:]  # lost_overwritten = 2**64
    status_clock = status[:1] + [MAX_T + 1] + status[2:]
    hello_head = b"\x06SAN-01\x050.1.0" + bytes(4) + b"\x01"
    oor = ["out_of_range"]
    return [
        ("gateway_only:data_seq_2_63_plus_5", raw_frame(wire.DATA, uv(2**63 + 5) + uv(T0) + reading_bytes()), oor),
        ("gateway_only:data_seq_2_53", raw_frame(wire.DATA, uv(2**53) + uv(T0) + reading_bytes()), oor),
        ("gateway_only:data_seq_gap_beyond_2_53",
         raw_frame(wire.DATA, uv(MAX_U) + uv(T0) + reading_bytes() + reading_bytes()), oor),
        ("gateway_only:data_time_2_33", raw_frame(wire.DATA, uv(1) + uv(MAX_T + 1) + reading_bytes()), oor),
        ("gateway_only:data_time_dt_beyond_2_33",
         raw_frame(wire.DATA, uv(1) + uv(MAX_T) + reading_bytes(dt=1)), oor),
        ("gateway_only:data_time_negative", raw_frame(wire.DATA, uv(1) + uv(0) + reading_bytes(dt=-1)), oor),
        ("gateway_only:data_mantissa_10_15", raw_frame(wire.DATA, uv(1) + uv(T0) + reading_bytes(mantissa=10**15)), oor),
        ("gateway_only:data_mantissa_minus_10_15",
         raw_frame(wire.DATA, uv(1) + uv(T0) + reading_bytes(mantissa=-10**15)), oor),
        ("gateway_only:data_exponent_21", raw_frame(wire.DATA, uv(1) + uv(T0) + reading_bytes(exponent=21)), oor),
        ("gateway_only:data_exponent_minus_21", raw_frame(wire.DATA, uv(1) + uv(T0) + reading_bytes(exponent=-21)), oor),
        ("gateway_only:data_empty_time_2_33", raw_frame(wire.DATA, uv(812) + uv(MAX_T + 1)), oor),
        ("gateway_only:hello_next_seq_2_53", raw_frame(wire.HELLO, hello_head + uv(1) + uv(2**53) + uv(T0)), oor),
        ("gateway_only:hello_clock_2_33", raw_frame(wire.HELLO, hello_head + uv(1) + uv(1) + uv(MAX_T + 1)), oor),
        ("gateway_only:status_lost_overwritten_2_64", raw_frame(wire.STATUS, b"".join(map(uv, status_lost))), oor),
        ("gateway_only:status_clock_2_33", raw_frame(wire.STATUS, b"".join(map(uv, status_clock))), oor),
        ("time_unix_ms_2_33_s", raw_frame(wire.TIME, uv(wire.MAX_UNIX_MS + 1)), oor),
        ("ack_cumulative_2_53", raw_frame(wire.ACK, uv(2**53)), oor),
        ("ack_range_end_beyond_2_53", raw_frame(wire.ACK, uv(MAX_U - 2) + uv(1) + uv(2)), oor),
        ("poll_backfill_end_2_53", raw_frame(wire.POLL, b"\x01\x00" + uv(1) + uv(2**53)), oor),
        ("config_total_len_2_53", raw_frame(wire.CONFIG, bytes(4) + uv(2**53) + uv(0) + b"{"), oor),
        # Nine bytes: past MAX_UVARINT whatever they hold, even a padded zero.
        ("varint_of_9_bytes", raw_frame(wire.TIME, b"\x80" * 8 + b"\x00"), oor),
    ]


def invalid_streams() -> list[tuple[str, bytes, list[str]]]:
    """(name, bytes, expected outcome per frame: a frame type name or an error kind).

    A station parses only the gateway's frame types; ``gateway_only`` marks streams whose
    defect is inside a station frame's payload."""
    good = wire.encode_frame(wire.Ack(5, 49))
    hello = wire.encode_frame(wire.Hello(5, "SAN-01", "0.1.0", 1, 1, 1, 1, 0))
    body = wire.encode_body(wire.Ack(5, 49))
    flipped = bytearray(body)
    flipped[3] ^= 0x04
    too_long = bytes(range(1, 256)) + bytes(range(1, 10)) + b"\x00"
    return [
        ("noise_then_frame", b"\x13\x37\xfe\x00" + good, ["cobs", "ACK"]),
        ("idle_delimiters", b"\x00\x00" + good + b"\x00", ["ACK"]),
        ("truncated_then_frame", hello[:18] + b"\x00" + good, ["crc", "ACK"]),
        ("bit_flip", cobs_frame(bytes(flipped)), ["crc"]),
        ("bad_crc", cobs_frame(body[:-1] + bytes([body[-1] ^ 0xFF])), ["crc"]),
        ("version_2", cobs_frame(with_crc(b"\x02\x11\x05\x31")), ["version"]),
        ("unknown_type", cobs_frame(with_crc(b"\x01\x7e\x05\x31")), ["unknown_type"]),
        ("too_long_then_frame", too_long + hello, ["too_long", "HELLO"]),
        ("short_payload", cobs_frame(with_crc(b"\x01\x10\x05\x01")), ["malformed"]),
        ("trailing_bytes", cobs_frame(with_crc(b"\x01\x12\x05\x01\x02")), ["malformed"]),
        ("gateway_only:missing_with_value", cobs_frame(with_crc(b"\x01\x02\x05\x01\x01\x00\x01\x00\x01\x00\x02")), ["malformed"]),
        # "more follows" with nothing in it: a DATA_MORE carries readings (contracts 1.3)
        ("gateway_only:data_more_empty", cobs_frame(with_crc(b"\x01\x05\x05\x2a\x01")),
         ["malformed"]),
        ("two_frames_one_chunk", good + hello, ["ACK", "HELLO"]),
        ("non_minimal_varint", cobs_frame(with_crc(b"\x01\x12\x05\x80\x00")), ["malformed"]),
        ("ack_ranges_touch", cobs_frame(with_crc(b"\x01\x11\x05\x0a\x00\x01")), ["malformed"]),
        *out_of_range_streams(),
    ]


def mqtt_vectors() -> list[dict]:
    msg = mqtt.ReadingsMessage("gw-zamora", "SAN-01", "santiago", (
        mqtt.MessageReading(41, "stage_m", T0, 1234, -3, 0),
        mqtt.MessageReading(42, "rain_mm", T0, 0, 0, wire.MISSING),
        mqtt.MessageReading(43, "stage_m", T0 + 900, 150, -2, wire.EVENT),
        mqtt.MessageReading(44, "pressure_hpa", T0 + 900, 15, 2, 0),
        mqtt.MessageReading(45, "air_temp_c", T0 + 900, -37, -1, wire.SUSPECT),
    ))
    # Value forms (contracts 2): exact JSON, and readings at the top of every range.
    forms = mqtt.ReadingsMessage("gw-zamora", "SAN-01", "santiago", (
        mqtt.MessageReading(50, "stage_m", T0, 1, 16, 0),  # 1E+16, not 17 digits
        mqtt.MessageReading(51, "stage_m", T0 + 900, 0, 2, 0),  # 0, not 000
        mqtt.MessageReading(52, "discharge_m3s", T0, MAX_M, 20, 0),
        mqtt.MessageReading(53, "discharge_m3s", T0 + 900, -MAX_M, -20, 0),
        mqtt.MessageReading(54, "rain_mm", T0, 0, -2, 0),  # 0.00
        mqtt.MessageReading(55, "pressure_hpa", T0, 12345678901234, 1, 0),  # 15 digits: plain
        mqtt.MessageReading(56, "pressure_hpa", T0 + 900, 12345678901234, 2, 0),  # 16: E+2
        mqtt.MessageReading(57, "stage_m", T0 + 1800, 1, -7, 0),  # 0.0000001 (1E-7 in a line)
        mqtt.MessageReading(MAX_U, "stage_m", MAX_T, 627814973311771, -12, 0),
    ))
    return [message_vector("readings_basic", msg), message_vector("readings_value_forms", forms)]


def message_vector(name: str, msg: mqtt.ReadingsMessage) -> dict:
    return {
        "name": name,
        "topic": mqtt.Topics().readings(msg.gateway, msg.station),
        "payload": mqtt.encode_readings(msg).decode(),
        "readings": [[r.seq, r.channel, r.ts, r.mantissa, r.exponent, r.flags] for r in msg.readings],
        "lines": influx.message_lines(msg),
    }


def _one_vector_a_line(doc: dict) -> str:
    """JSON with one vector per line: diffs stay readable, the file stays small."""
    lines = ["{"]
    for i, (key, value) in enumerate(doc.items()):
        comma = "," if i < len(doc) - 1 else ""
        if isinstance(value, list):
            items = [json.dumps(v, separators=(",", ":")) for v in value]
            lines.append(f' "{key}": [\n  ' + ",\n  ".join(items) + f"\n ]{comma}")
        else:
            lines.append(f' "{key}": {json.dumps(value)}{comma}')
    return "\n".join(lines) + "\n}\n"


def main() -> None:
    vectors = {
        "contract": "watershed wire protocol",
        "version": wire.PROTOCOL_VERSION,
        "valid": [{"name": n, "wire": wire.encode_frame(f).hex(), "frame": frame_dict(f)}
                  for n, f in valid_frames()],
        "invalid": [{"name": n.split(":")[-1], "stream": b.hex(), "expect": e,
                     "gateway_only": n.startswith("gateway_only:")} for n, b, e in invalid_streams()],
    }
    (HERE / "wire_v1.json").write_text(_one_vector_a_line(vectors))
    (HERE / "mqtt_v1.json").write_text(_one_vector_a_line({"contract": "watershed mqtt payload",
                                                          "version": mqtt.PAYLOAD_VERSION,
                                                          "messages": mqtt_vectors()}))


if __name__ == "__main__":
    main()
