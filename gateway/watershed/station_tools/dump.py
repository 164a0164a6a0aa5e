"""``watershed station dump PORT --out F.csv``: a station's readings over its USB console.

For when the radio is down: the console's ``dump [FROM_SEQ]`` streams every reading still in
the station's flash as CSV; this saves it with the station's id in each row. ``--load F.csv
--into gateway.db`` stores such a file in a gateway's store later, by station and seq like a
DATA frame, so a reading the gateway already has is not stored twice.
"""

from __future__ import annotations

import argparse
import csv
import sys
import time
from pathlib import Path

import serial

from watershed.contracts.mqtt import MessageReading

HEADER = ["station", "seq", "channel", "name", "time", "unix_s", "mantissa", "exponent",
          "value", "flags"]


class DumpError(RuntimeError):
    """The console did not answer as a station does."""


def read_dump(port: str, from_seq: int, timeout: float) -> tuple[str, list[list[str]]]:
    """(station id, rows) from the console at ``port``."""
    with serial.Serial(port, 115200, timeout=0.2) as s:
        s.write(f"dump {from_seq}\r\n".encode() if from_seq else b"dump\r\n")
        station = None
        rows: list[list[str]] = []
        buf = b""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            buf += s.read(s.in_waiting or 1)
            while b"\n" in buf:
                raw, buf = buf.split(b"\n", 1)
                line = raw.decode(errors="replace").strip("\r")
                if line.startswith("C dump station "):
                    station = line.split()[3]
                elif line == "C ok" and station is not None:
                    return station, rows
                elif station is not None and line.startswith("C ") and "," in line:
                    fields = line[2:].split(",")
                    if fields[0] != "seq":
                        rows.append(fields)
                deadline = time.monotonic() + timeout  # the dump is still coming
    raise DumpError(f"{port}: no dump from a station within {timeout:.0f} s")


def save(path: Path, station: str, rows: list[list[str]]) -> None:
    with path.open("w", newline="") as f:
        w = csv.writer(f)
        w.writerow(HEADER)
        for r in rows:
            w.writerow([station, *r])


def load(path: Path) -> dict[str, list[MessageReading]]:
    """The readings of a dump file by station, as the gateway stores them."""
    out: dict[str, list[MessageReading]] = {}
    with path.open(newline="") as f:
        for row in csv.DictReader(f):
            out.setdefault(row["station"], []).append(MessageReading(
                int(row["seq"]), row["name"], int(row["unix_s"]), int(row["mantissa"]),
                int(row["exponent"]), _flags(row["flags"])))
    return out


_FLAG_NAMES = ["missing", "out_of_range", "suspect", "unsynced", "spike", "flatline",
               "clock_jump", "event"]


def _flags(text: str) -> int:
    return 0 if text == "ok" else sum(1 << _FLAG_NAMES.index(n) for n in text.split("|"))


def main(args: argparse.Namespace) -> int:
    try:
        if args.port:
            if args.out is None:
                print("watershed station dump: --out F.csv is required with a port",
                      file=sys.stderr)
                return 2
            station, rows = read_dump(args.port, args.from_seq, args.timeout)
            save(args.out, station, rows)
            print(f"{len(rows)} readings of {station} saved in {args.out}")
        if args.load and args.into:
            from watershed.gateway.store import Store
            with Store(args.into) as store:
                for station, readings in load(args.load).items():
                    added = store.add(station, args.basin, readings)
                    print(f"{station}: {added.new} new, {added.duplicate} already stored")
    except (DumpError, OSError, ValueError) as e:
        print(f"watershed station dump: {e}", file=sys.stderr)
        return 1
    return 0
