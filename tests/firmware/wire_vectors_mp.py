# Runs in the MicroPython unix port (MICROPYPATH=firmware): checks firmware/wire.py against
# tests/vectors/wire_v1.json. Usage: micropython wire_vectors_mp.py path/to/wire_v1.json
#
# Prints one line per vector, "PASS <group>/<name>" or "FAIL <group>/<name>: <why>", then
# "DONE <count>". tests/firmware/test_wire_vectors.py checks every vector has its line.
import json
import sys

import wire

NAMES = {wire.HELLO: "HELLO", wire.DATA: "DATA", 5: "DATA_MORE",
         wire.STATUS: "STATUS", wire.RESULT: "RESULT",
         wire.POLL: "POLL", wire.ACK: "ACK", wire.TIME: "TIME", wire.CONFIG: "CONFIG",
         wire.COMMAND: "COMMAND"}
CODES = {}
for _code in NAMES:
    CODES[NAMES[_code]] = _code
STATION_TYPES = ("HELLO", "DATA", "DATA_MORE", "STATUS", "RESULT")
# The decoded tuple's fields after (type, addr), in the vector's names.
FIELDS = {
    "POLL": ("want", "max_readings", "backfill"),
    "ACK": ("cumulative", "ranges"),
    "TIME": ("unix_ms",),
    "CONFIG": ("config_hash", "total_len", "offset", "chunk"),
    "COMMAND": ("code", "args"),
}


def plain(x):
    """A decoded value in the vectors' JSON form: lists for tuples, hex for bytes."""
    if isinstance(x, (tuple, list)):
        return [plain(i) for i in x]
    if isinstance(x, bytes):
        return x.hex() if x else ""  # MicroPython 1.25: b"".hex() is b""
    return x


def outcomes(stream, chunk):
    """Decode ``stream`` fed ``chunk`` bytes at a time: (outcome names, decoder)."""
    dec = wire.Decoder()
    out = []
    for i in range(0, len(stream), chunk):
        for item in dec.feed(stream[i:i + chunk]):
            out.append(item if isinstance(item, str) else NAMES[item[0]])
    return out, dec


def encode(f):
    t = f["type"]
    if t == "HELLO":
        return bytes(wire.encode_hello(f["addr"], f["station_id"], f["firmware"],
                                       f["config_hash"], f["reset_cause"], f["boot_count"],
                                       f["next_seq"], f["clock"]))
    if t in ("DATA", "DATA_MORE"):
        readings = [tuple(r) for r in f["readings"]]
        n = len(readings)
        more = t == "DATA_MORE"
        if more:  # a DATA_MORE: readings beyond the frame follow in the next
            last = readings[-1]
            readings.append((last[0] + 1,) + last[1:])
        frame, count, _ = wire.encode_data(f["addr"], readings, f["next_seq"], f["base_time"], n,
                                        more)
        if count != n:
            raise ValueError("encoded %d of %d readings" % (count, n))
        return bytes(frame)
    if t == "STATUS":
        return bytes(wire.encode_status(f["addr"], f["uptime_s"], f["clock"], f["state"],
                                        f["battery_mv"], f["outbox_depth"], f["oldest_seq"],
                                        f["next_seq"], f["lost_overwritten"], f["lost_corrupt"],
                                        f["sensor_errors"], f["free_heap"]))
    return bytes(wire.encode_result(f["addr"], f["ref_type"], f["status"], f["detail"]))


def check_valid(v):
    f = v["frame"]
    raw = bytes.fromhex(v["wire"])
    if f["type"] in STATION_TYPES:
        got = encode(f)
        if got != raw:
            return "encoded %s, want %s" % (got.hex(), v["wire"])
        # A station hears other stations' frames on a shared bus: recognised, not parsed.
        expect = [(CODES[f["type"]], f["addr"], None)]
    else:
        expect = [[CODES[f["type"]], f["addr"]] + [f[k] for k in FIELDS[f["type"]]]]
    for chunk in (len(raw), 1):
        dec = wire.Decoder()
        got = []
        for i in range(0, len(raw), chunk):
            for item in dec.feed(raw[i:i + chunk]):
                got.append(item if isinstance(item, str) or item[2] is None else plain(item))
        if got != expect:
            return "decoded %r (fed %d at a time), want %r" % (got, chunk, expect)
    return None


def check_invalid(v):
    stream = bytes.fromhex(v["stream"])
    expect = v["expect"]
    for chunk in (len(stream), 1, 7):
        got, dec = outcomes(stream, chunk)
        if v["gateway_only"]:
            # The defect is inside a station frame's payload, which a station does not parse.
            ok = len(got) == len(expect) and all(
                g == e or (e in ("malformed", "out_of_range") and g in STATION_TYPES)
                for g, e in zip(got, expect))
        else:
            ok = got == expect
        if not ok:
            return "got %r (fed %d at a time), want %r" % (got, chunk, expect)
        for kind in wire.ERROR_KINDS:
            if dec.errors[kind] != got.count(kind):
                return "errors[%r] is %d, want %d" % (kind, dec.errors[kind], got.count(kind))
        if dec.frames != len([g for g in got if g not in wire.ERROR_KINDS]):
            return "frames is %d" % dec.frames
    return None


def main():
    with open(sys.argv[1]) as f:
        vectors = json.load(f)
    count = 0
    for group, check in (("valid", check_valid), ("invalid", check_invalid)):
        for v in vectors[group]:
            try:
                why = check(v)
            except Exception as e:  # a crash fails this vector, not the run
                why = "raised %r" % (e,)
            if why is None:
                print("PASS %s/%s" % (group, v["name"]))
            else:
                print("FAIL %s/%s: %s" % (group, v["name"], why))
            count += 1
    print("DONE %d" % count)


main()
