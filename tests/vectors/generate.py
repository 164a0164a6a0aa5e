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
        Reading(108, 8, T0, 2**53 - 1, -20, wire.OUT_OF_RANGE | wire.SPIKE | wire.FLATLINE | wire.EVENT),
        Reading(109, 4, T0, -(2**53 - 1), 20, 0),
        Reading.from_text(110, 1, T0, "+1.50"),
    )
    return [
        ("data_stage_8", wire.Data(5, tuple(stage))),
        ("data_mixed_flags_gaps", wire.Data(17, mixed)),
        ("data_single", wire.Data(1, (Reading.from_text(1, 1, T0, "+0.001"),))),
        ("data_empty", wire.Data(3, (), next_seq=812, base_time=T0)),
        ("hello", wire.Hello(5, "SAN-01", "0.1.0", 0xDEADBEEF, 3, 17, 1042, T0)),
        ("hello_unset_clock", wire.Hello(254, "mayo.ch-3_b", "1.25.0-ws1", 0, 1, 0, 1, 0)),
        ("status", wire.Status(5, 86400, T0, wire.STATE_CLOCK_SYNCED | wire.STATE_EVENT_MODE,
                               12810, 37, 1005, 1042, 3, 1, 0, 31000)),
        ("result_ok", wire.Result(5, wire.CONFIG, wire.RESULT_OK, "")),
        ("result_rejected", wire.Result(5, wire.CONFIG, wire.RESULT_REJECTED, "channels[2].interval_s: must be > 0")),
        ("poll_data", wire.Poll(5, wire.WANT_DATA, 0)),
        ("poll_all", wire.Poll(7, wire.WANT_DATA | wire.WANT_STATUS | wire.WANT_HELLO, 16)),
        ("poll_backfill", wire.Poll(5, wire.WANT_DATA, 30, (300, 420))),
        ("ack_cumulative", wire.Ack(5, 49)),
        ("ack_selective", wire.Ack(5, 49, ((51, 53), (60, 61), (300, 428)))),
        ("ack_ranges_gap_1", wire.Ack(5, 10, ((11, 12), (13, 14)))),
        ("ack_zero", wire.Ack(2, 0)),
        ("time", wire.TimeSync(255, T0 * 1000 + 250)),
        ("config_chunk", wire.ConfigChunk(5, 0x12345678, 300, 200, b'{"station":"SAN-01"}\x00\xff')),
        ("command_reboot", wire.Command(5, wire.CMD_REBOOT)),
        ("command_args", wire.Command(5, wire.CMD_SAMPLE_NOW, b"\x01\x00\x10")),
    ]


def with_crc(body: bytes) -> bytes:
    import zlib
    return body + zlib.crc32(body).to_bytes(4, "little")


def cobs_frame(body: bytes) -> bytes:
    from cobs import cobs
    return cobs.encode(body) + b"\x00"


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
        ("two_frames_one_chunk", good + hello, ["ACK", "HELLO"]),
        ("non_minimal_varint", cobs_frame(with_crc(b"\x01\x12\x05\x80\x00")), ["malformed"]),
        ("ack_ranges_touch", cobs_frame(with_crc(b"\x01\x11\x05\x0a\x00\x01")), ["malformed"]),
    ]


def mqtt_vectors() -> list[dict]:
    msg = mqtt.ReadingsMessage("gw-zamora", "SAN-01", "santiago", (
        mqtt.MessageReading(41, "stage_m", T0, 1234, -3, 0),
        mqtt.MessageReading(42, "rain_mm", T0, 0, 0, wire.MISSING),
        mqtt.MessageReading(43, "stage_m", T0 + 900, 150, -2, wire.EVENT),
        mqtt.MessageReading(44, "pressure_hpa", T0 + 900, 15, 2, 0),
        mqtt.MessageReading(45, "air_temp_c", T0 + 900, -37, -1, wire.SUSPECT),
    ))
    payload = mqtt.encode_readings(msg)
    return [{
        "name": "readings_basic",
        "topic": mqtt.Topics().readings(msg.gateway, msg.station),
        "payload": payload.decode(),
        "readings": [[r.seq, r.channel, r.ts, r.mantissa, r.exponent, r.flags] for r in msg.readings],
        "lines": influx.message_lines(msg),
    }]


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
