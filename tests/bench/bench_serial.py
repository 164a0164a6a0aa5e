"""Serial goodput: reading payload delivered per second over a 9600-baud RS-485 bus of 8 stations,
as a fraction of the line's capacity (issue 13, item 5).

The bus is watershed_sim's SharedBus: every byte occupies the wires for its airtime (10 bits at
the baud, airtime.py), one talker at a time. It runs at speed 1, so simulated time is wall time
and the gateway's reply timeouts, turnaround and commit cadence count as they would on site.
The gateway is the real one below the daemon: SerialLink (link.py) with its Poller and a SQLite
Store on this machine's disk; MQTT plays no part in the serial exchange and is left out. The
stations are watershed_sim's PyStations (py_station.py): they honour the wire contract as the
firmware does (DATA from the oldest unacknowledged readings, as many as fit 250 body bytes,
deleted only when an ACK covers them) and answer at once, so the figure is the protocol's and
the gateway's, not a MicroPython interpreter's on this shared machine. The gateway asks for
whole replies (POLL want MORE, contracts 1.2: up to 4 DATA frames for one POLL and one ACK).
They fill a DATA frame (33 readings of the backlog's kind); the firmware offers at most 30 a frame (its
_MAX_READINGS, for its heap), so ``drain_firmware_packing`` caps the PyStations at that.

Figures:
- ``payload_bytes``: the readings sections of the DATA frames (contracts 1.4: seq_gap, channel,
  dt, flags, exponent, mantissa of each reading; not the frame header, base_seq, base_time, CRC,
  COBS or delimiter), each reading counted once, at its share of the last frame that carried it,
  and only once an ACK has covered it (it left the station's outbox).
- ``goodput_fraction``: payload_bytes per second / line capacity (baud / 10 bytes a second).
- drain: every station starts with ``BACKLOG`` readings; timed from the link's start (HELLOs
  included) to the last ACK. Target (issue 13): >= 0.85.
- live: stations sample ``LIVE_CHANNELS`` channels every ``LIVE_SAMPLE_INTERVAL_S``; the
  goodput fraction is bounded by that offered load, so ``line_busy_fraction`` (every byte on
  the wires) and ``overhead_bytes_per_payload_byte`` (polls, ACKs, frame overhead, empty DATA)
  say what the polling costs.
"""

from __future__ import annotations

import logging
import tempfile
import threading
import time
from collections.abc import Iterable
from pathlib import Path

from watershed.contracts import wire
from watershed.contracts.wire import Reading
from watershed.contracts.wire.payloads import encode_payload
from watershed.contracts.wire.varint import put_uvarint
from watershed.gateway.config import LinkConfig
from watershed.gateway.link import SerialLink
from watershed.gateway.store import Store
from watershed_sim.airtime import BITS_PER_BYTE
from watershed_sim.py_station import FIRST_FIT, PyStation, StationBus
from watershed_sim.shared_bus import SharedBus

BAUD = 9600
STATIONS = 8
BACKLOG = 700  # readings a station holds when the drain starts (~40 s of line at 9600 baud)
FIRMWARE_MAX_READINGS = 30  # firmware/station.py _MAX_READINGS: its DATA offers at most this
POLL_INTERVAL_S = 5.0  # deploy/gateway/gateway.example.toml
REPLY_TIMEOUT_S = 2.0
LIVE_S = 45.0
LIVE_CHANNELS = 4
LIVE_SAMPLE_INTERVAL_S = 15.0
TARGET_GOODPUT_FRACTION = 0.85
DRAIN_TIMEOUT_S = 300.0


class CountingStation(PyStation):
    """A PyStation that notes the readings-section bytes each reading took in its last DATA."""

    def __init__(self, addr: int, station_id: str, max_readings: int) -> None:
        super().__init__(addr, station_id)
        self._fit = max_readings  # PyStation shrinks it further if they do not fit
        self.payload_of: dict[int, float] = {}  # seq -> bytes
        self.readings_sent = 0

    def _data(self, readings: Iterable[Reading]) -> wire.Data:
        frame = super()._data(readings)
        if frame.readings:
            self.readings_sent += len(frame.readings)
            share = readings_section_bytes(frame) / len(frame.readings)
            for r in frame.readings:
                self.payload_of[r.seq] = share
        return frame

    def delivered_payload(self) -> float:
        """Bytes of the readings an ACK has covered (they left the outbox)."""
        return sum(b for seq, b in self.payload_of.items() if seq not in self.outbox)


def readings_section_bytes(frame: wire.Data) -> int:
    head = bytearray()
    put_uvarint(head, frame.readings[0].seq)
    put_uvarint(head, frame.readings[0].time)
    return len(encode_payload(frame)) - len(head)


class Testbed:
    """8 stations on one SharedBus, each on its own pty, and the gateway's SerialLink."""

    def __init__(self, workdir: Path, max_readings: int = FIRST_FIT) -> None:
        names = [f"st{a}" for a in range(1, STATIONS + 1)]
        self.bus = SharedBus(names, baud=BAUD)
        self.stations = [CountingStation(a, f"SER-{a:02d}", max_readings)
                         for a in range(1, STATIONS + 1)]
        self.ends = [StationBus(self.bus.port_for(n), s) for n, s in zip(names, self.stations)]
        self.store = Store(workdir / "gateway.db")
        config = LinkConfig(port=self.bus.gateway_path, baud=BAUD,
                            stations=tuple(range(1, STATIONS + 1)),
                            poll_interval_s=POLL_INTERVAL_S, reply_timeout_s=REPLY_TIMEOUT_S)
        self.link = SerialLink(config, self.store, {}, time_sync=False)

    def line_bytes(self) -> int:
        return self.bus.stats().get("bytes_sent", 0)

    def payload(self) -> float:
        total = 0.0
        for end, s in zip(self.ends, self.stations):
            with end.lock:
                total += s.delivered_payload()
        return total

    def all_empty(self) -> bool:
        return all(end.outbox_empty() for end in self.ends)

    def close(self) -> None:
        self.link.stop()
        for end in self.ends:
            end.close()
        self.bus.close()
        self.store.close()


def full_exchange(max_readings: int) -> dict:
    """The bytes of one drain exchange at its best: POLL (DATA and MORE, as the gateway asks),
    the reply's MAX_DATA_FRAMES DATA frames as full as the station makes them (readings like
    the backlog's), ACK, each with the gateway's leading delimiter; and the goodput fraction a
    line never idle between them would give: the protocol's ceiling."""
    station = CountingStation(1, "CEILING", max_readings)
    station.take(BACKLOG)
    poll = wire.Poll(1, wire.WANT_DATA | wire.WANT_MORE)
    datas = [f for f in station.answer(poll) if isinstance(f, wire.Data)]
    lead = len(wire.DELIMITER)
    sizes = {"poll_wire_bytes": lead + len(wire.encode_frame(poll)),
             "data_wire_bytes": sum(len(wire.encode_frame(d)) for d in datas),
             "ack_wire_bytes": lead + len(wire.encode_frame(
                 wire.Ack(1, BACKLOG)))}  # mid-drain: a two-byte cumulative
    payload = sum(readings_section_bytes(d) for d in datas)
    return {"data_frames_per_reply": len(datas), "readings_per_data": len(datas[0].readings),
            "payload_bytes_per_reply": payload, **sizes,
            "ceiling_goodput_fraction": round(payload / sum(sizes.values()), 3)}


def capacity_bytes_per_s() -> float:
    return BAUD / BITS_PER_BYTE


def drain(max_readings: int = FIRST_FIT) -> dict:
    with tempfile.TemporaryDirectory(prefix="bench-serial-") as workdir:
        bed = Testbed(Path(workdir), max_readings)
        try:
            for s in bed.stations:
                s.take(BACKLOG)
            started = time.monotonic()
            bed.link.start()
            while not bed.all_empty():
                if time.monotonic() - started > DRAIN_TIMEOUT_S:
                    raise TimeoutError("the backlog did not drain")
                time.sleep(0.01)
            seconds = time.monotonic() - started
            payload = bed.payload()
            line = bed.line_bytes()
            stats = bed.link.stats()
            sent = sum(s.readings_sent for s in bed.stations)
        finally:
            bed.close()
    readings = STATIONS * BACKLOG
    return {
        "readings": readings, "drain_s": round(seconds, 2),
        "payload_bytes": round(payload), "payload_bytes_per_reading": round(payload / readings, 3),
        "readings_per_s": round(readings / seconds, 1),
        "goodput_bytes_per_s": round(payload / seconds, 1),
        "goodput_fraction": round(payload / seconds / capacity_bytes_per_s(), 3),
        "line_bytes": line, "line_busy_fraction": round(line / seconds / capacity_bytes_per_s(), 3),
        # goodput_fraction = line_busy_fraction x payload_per_line_byte
        "payload_per_line_byte": round(payload / line, 3),
        "exchange": full_exchange(max_readings),
        "readings_resent": sent - readings,
        "polls": stats.get("polls", 0), "acks": stats.get("acks", 0),
        "timeouts": stats.get("timeouts", 0),
    }


def live() -> dict:
    with tempfile.TemporaryDirectory(prefix="bench-serial-") as workdir:
        bed = Testbed(Path(workdir))
        stop = threading.Event()

        def sample() -> None:
            # Stations sample out of phase, as their clocks and configs have them.
            offsets = [LIVE_SAMPLE_INTERVAL_S * i / STATIONS for i in range(STATIONS)]
            begun = time.monotonic()
            rounds = [0] * STATIONS
            while not stop.is_set():
                now = time.monotonic() - begun
                for i, (end, s) in enumerate(zip(bed.ends, bed.stations)):
                    if now >= offsets[i] + rounds[i] * LIVE_SAMPLE_INTERVAL_S:
                        rounds[i] += 1
                        with end.lock:
                            for channel in range(1, LIVE_CHANNELS + 1):
                                s.take(1, channel)
                stop.wait(0.05)

        sampler = threading.Thread(target=sample, name="sampler", daemon=True)
        try:
            bed.link.start()
            # Past the HELLOs before the window opens: the figure is the steady state.
            while bed.link.stats().get("polls", 0) < STATIONS:
                time.sleep(0.01)
            line_before = bed.line_bytes()
            sampler.start()
            started = time.monotonic()
            time.sleep(LIVE_S)
            seconds = time.monotonic() - started
            payload = bed.payload()
            line = bed.line_bytes() - line_before
            taken = sum(len(s.produced) for s in bed.stations)
            waiting = sum(len(s.outbox) for s in bed.stations)
            stats = bed.link.stats()
        finally:
            stop.set()
            if sampler.is_alive():
                sampler.join()
            bed.close()
    return {
        "window_s": round(seconds, 2), "stations": STATIONS, "channels": LIVE_CHANNELS,
        "sample_interval_s": LIVE_SAMPLE_INTERVAL_S, "poll_interval_s": POLL_INTERVAL_S,
        "readings_taken": taken, "readings_waiting_at_end": waiting,
        "payload_bytes": round(payload),
        "goodput_fraction": round(payload / seconds / capacity_bytes_per_s(), 4),
        "line_bytes": line,
        "line_busy_fraction": round(line / seconds / capacity_bytes_per_s(), 4),
        "overhead_bytes_per_payload_byte":
            round((line - payload) / payload, 2) if payload else None,
        "polls": stats.get("polls", 0), "timeouts": stats.get("timeouts", 0),
    }


def run() -> dict:
    # The stations are not in a registry: the gateway warns once each, which is not news here.
    logging.getLogger("watershed.gateway.poller").setLevel(logging.ERROR)
    return {
        "baud": BAUD, "line_capacity_bytes_per_s": capacity_bytes_per_s(),
        "stations": "watershed_sim.py_station.PyStation (contract codec, answers at once)",
        "payload_definition": "readings sections of DATA frames (contracts 1.4), each reading"
                              " once, once ACKed",
        "target_goodput_fraction": TARGET_GOODPUT_FRACTION,
        "drain": drain(),
        # the same with DATA frames packed as the firmware packs them (at most 30 readings)
        "drain_firmware_packing": drain(FIRMWARE_MAX_READINGS),
        "live": live(),
    }
