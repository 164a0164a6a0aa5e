"""The station: sample channels on schedule, keep readings in the outbox, answer the gateway.

Everything here is the same on every board; hardware comes from the board module named in the
config (``hal_<name>.py``). The station speaks only when polled (docs/contracts.md, 1.5).

Console lines (the technician's USB serial, and the test harness's truth record):
    R <seq> <channel> <time> <mantissa> <exponent> <flags>     a reading was stored
    E <message>                                                 something went wrong
"""

import gc
import json
import os
import sys

import wire
from clock import MIN_VALID_S, StationClock
from outbox import Outbox

FIRMWARE_VERSION = "0.1.0"
_MAX_WAIT_MS = 200  # longest real-time wait for gateway bytes before re-checking the schedule
_MAX_READINGS = 30  # readings offered per DATA frame when the POLL does not say


class Channel:
    """An analog channel: value = offset + raw * scale_num // scale_den, times 10**exponent.

    Integer arithmetic on the ADC count, so the same count always gives the same exact decimal.
    """

    def __init__(self, cfg, board):
        self.no = cfg["no"]
        self.interval_s = cfg["interval_s"]
        self.adc = board.adc(cfg["pin"])
        self.offset = cfg.get("offset", 0)
        self.scale_num = cfg.get("scale_num", 1)
        self.scale_den = cfg.get("scale_den", 1)
        self.exponent = cfg.get("exponent", 0)
        self.next_due = 0
        self.last_slot = 0  # the time of this channel's newest reading: slots only ascend
        self.jump = False  # flag the next reading CLOCK_JUMP

    def schedule(self, now):
        # Aligned to the clock: a 900 s channel samples at :00, :15, :30, :45. Never at or before
        # the last slot sampled (contracts 1.4): after a backward step the channel waits. An
        # impossible clock (before MIN_VALID_S) cannot collide with a real slot, so it does not
        # wait for one: a flood is sampled whatever the clock says.
        iv = self.interval_s
        due = (now // iv + 1) * iv
        if (now >= MIN_VALID_S) == (self.last_slot >= MIN_VALID_S) and due <= self.last_slot:
            due = (self.last_slot // iv + 1) * iv
        self.next_due = due

    def read(self):
        raw = self.adc.read_u16()
        return self.offset + raw * self.scale_num // self.scale_den, self.exponent


class Station:
    def __init__(self, cfg, board):
        self.cfg = cfg
        self.board = board
        self.clock = StationClock(board.clock, cfg.get("clock_jump_s", 5))
        self.address = cfg["address"]
        self.station_id = cfg["station"]
        self.config_hash = wire.crc32(json.dumps(cfg).encode())
        ob = cfg.get("outbox", {})
        self.outbox = Outbox(board.data_dir, ob.get("budget_bytes", 65536),
                             ob.get("segment_records", 128))
        self.channels = [Channel(c, board) for c in cfg["channels"]]
        for ch in self.channels:  # the slots already taken, from flash: they survive a reboot
            ch.last_slot = self.outbox.last_time.get(ch.no, 0)
        self._steps = 0
        link = cfg["link"]
        self.uart = board.uart(link["port"], link.get("baud", 9600))
        self.decoder = wire.Decoder()
        self.sensor_errors = 0
        self.boot_count = _count_boot(board.data_dir)
        self._hello_due = True  # the first answer after boot says who we are: a reboot shows
        self._rx = bytearray(64)
        now = self.clock.now()
        for ch in self.channels:
            ch.schedule(now)

    # --- sampling ---------------------------------------------------------------------------

    def sample_due(self):
        clock = self.clock
        clock.check()
        now = clock.now()
        if clock.steps != self._steps:  # the clock stepped: new slots, flag the next readings
            self._steps = clock.steps
            for ch in self.channels:
                ch.jump = True
                ch.schedule(now)
        for ch in self.channels:
            if ch.next_due <= now:
                # The latest slot due: slots missed while busy or skipped by a forward step
                # cannot be measured any more.
                at = now // ch.interval_s * ch.interval_s
                if at < ch.next_due:
                    at = ch.next_due
                self.sample(ch, at)
                ch.last_slot = at
                ch.schedule(now)

    def sample(self, ch, at):
        flags = self.clock.flags(at)
        if ch.jump:
            flags |= wire.CLOCK_JUMP
            ch.jump = False
        try:
            mantissa, exponent = ch.read()
        except (OSError, ValueError) as e:
            self.sensor_errors += 1
            print("E channel", ch.no, "read failed:", e)
            mantissa, exponent, flags = 0, 0, flags | wire.MISSING
        seq = self.outbox.append(ch.no, at, mantissa, exponent, flags)
        print("R", seq, ch.no, at, mantissa, exponent, flags)

    def ms_until_next_sample(self):
        due = min(ch.next_due for ch in self.channels) * 1000
        return max(0, due - self.clock.now_ms())

    # --- gateway ----------------------------------------------------------------------------

    def handle(self, frame):
        ftype, addr = frame[0], frame[1]
        if addr != self.address and addr != wire.BROADCAST_ADDRESS:
            return  # another station's frame on a shared bus
        if ftype == wire.POLL:
            self.answer_poll(frame[2], frame[3], frame[4])
        elif ftype == wire.ACK:
            self.outbox.ack(frame[2], frame[3])
        elif ftype == wire.TIME:
            self.clock.set_ms(frame[2])
            if addr == self.address:  # a broadcast TIME gets no answer: stations would collide
                self.send(wire.encode_result(self.address, wire.TIME, wire.RESULT_OK))
        elif ftype in (wire.CONFIG, wire.COMMAND):
            self.send(wire.encode_result(self.address, ftype, wire.RESULT_REJECTED,
                                         "not supported by this firmware"))

    def answer_poll(self, want, max_readings, backfill):
        if want & wire.WANT_HELLO or self._hello_due:
            self._hello_due = False
            self.send(wire.encode_hello(self.address, self.station_id, FIRMWARE_VERSION,
                                        self.config_hash, self.board.reset_cause(),
                                        self.boot_count, self.outbox.next_seq,
                                        self.clock.now() if self.clock.plausible() else 0))
        if want & wire.WANT_DATA:
            limit = max_readings or _MAX_READINGS
            if backfill:
                readings = self.outbox.pending(limit, backfill[0], backfill[1])
            else:
                readings = self.outbox.pending(limit)
            frame, _ = wire.encode_data(self.address, readings, self.outbox.next_seq,
                                        self.clock.now())
            self.send(frame)
        if want & wire.WANT_STATUS:
            state = wire.STATE_CLOCK_SYNCED if self.clock.synced_now() else 0
            self.send(wire.encode_status(
                self.address, 0, self.clock.now(), state, 0, self.outbox.depth(),
                self.outbox.oldest_seq(), self.outbox.next_seq, self.outbox.lost_overwritten,
                self.outbox.lost_corrupt, self.sensor_errors, self.board.free_heap()))

    def send(self, frame):
        self.uart.write(frame)

    # --- main loop --------------------------------------------------------------------------

    def step(self):
        self.sample_due()
        wait = min(self.clock.wait_ms(self.ms_until_next_sample()), _MAX_WAIT_MS)
        n = self.uart.readinto(self._rx, wait)
        if n:
            for item in self.decoder.feed(memoryview(self._rx)[:n]):
                if isinstance(item, str):
                    print("E frame rejected:", item)
                else:
                    self.handle(item)

    def run(self):
        while True:
            self.step()


def _count_boot(data_dir):
    """Add one to the boot counter in flash (write, then rename: a power cut keeps a count)."""
    path = data_dir + "/boot_count"
    try:
        with open(path) as f:
            count = int(f.read()) + 1
    except (OSError, ValueError):
        count = 1
    with open(path + ".tmp", "w") as f:
        f.write("%d\n" % count)
    os.rename(path + ".tmp", path)
    return count


def load_board(cfg):
    name = cfg["board"]["name"]
    hal = __import__("hal_" + name)
    return hal.Board(cfg["board"])


def main(config_path="config.json"):
    with open(config_path) as f:
        cfg = json.load(f)
    gc.collect()  # a 48 KB heap: start the station on a compacted heap
    station = Station(cfg, load_board(cfg))
    gc.collect()
    print("station", station.station_id, "address", station.address, "next seq",
          station.outbox.next_seq)
    station.run()


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else "config.json")
