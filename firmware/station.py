"""The station: sample channels on schedule, keep readings in the outbox, answer the gateway.

Everything here is the same on every board; hardware comes from the board module named in the
config (``hal_<name>.py``). The station speaks only when polled (docs/contracts.md, 1.5).
Sampling is sampler.py; config loading, checking and applying is config.py and the technician's
commands are console.py, both imported only while they work (RAM is the scarce thing).

Console lines (the technician's USB serial, and the test harness's truth record):
    R <seq> <channel> <time> <mantissa> <exponent> <flags>     a reading was stored
    E <message>                                                 something went wrong
    I <message>                                                 something worth knowing
"""

import gc
import sys
import time

from micropython import const

import log
import wire

FIRMWARE_VERSION = "0.2.0"
_MAX_WAIT_MS = const(200)  # awake: longest real-time wait for gateway bytes before re-checking
_MAX_SLEEP_MS = const(1000)  # asleep: real time between looks at the console and the clock
_RX_WAKE_MS = const(30)  # after the link woke the CPU: the gateway's frame follows within this
_CONSOLE_AWAKE_MS = const(600000)  # a technician typed: stay awake (no sleep) this long
_MAX_READINGS = const(30)  # readings offered per DATA frame when the POLL does not say
# POLL want MORE (contracts 1.2): a reply of up to _MAX_FRAMES DATA frames. Not wire.py's: a
# name there is a module global, and every byte of RAM counts.
_WANT_MORE = const(0x08)
_MAX_FRAMES = const(4)


class Station:
    def __init__(self, board, path, address, station_id, config_hash, clock, outbox, sampler,
                 uart, boot_count, first):
        """The parts come from startup.py (boot only): see ``build``."""
        self.board = board
        self.path = path  # the config file on flash
        self.address = address
        self.station_id = station_id
        self.config_hash = config_hash
        # the file the config in force came from: ``path``, its .bak, or None (safe mode); not
        # ``path`` is STATUS state CONFIG_ERROR
        self.config_from = path
        self.clock = clock
        self.outbox = outbox
        self.sampler = sampler
        self._steps = 0
        self.uart = uart
        self.decoder = wire.Decoder()
        self.boot_count = boot_count
        self._hello_due = first  # the first answer after boot says who we are
        self._rx = bytearray(64)
        self._cfg_got = 0  # bytes of a CONFIG received so far
        self.reload = False  # main() builds the station again (rebuild) ...
        self.pending = None  # ... after checking this new config: (config_hash, console key)
        self._started = board.clock.now()
        self._console = None
        self._awake_from = None  # ticks_ms of the technician's last console line
        self.asleep_s = 0  # time spent in lightsleep since boot (and its ms below a second)
        self._asleep_ms = 0
        try:
            import select
            p = select.poll()
            p.register(sys.stdin, select.POLLIN)
            self._console = p
        except Exception:  # no console on this port
            pass
        self.sampler.schedule(self.clock.now())

    # --- sampling ---------------------------------------------------------------------------

    def sample_due(self):
        clock = self.clock
        clock.check()
        now = clock.now()
        if clock.steps != self._steps:  # the clock stepped: new slots, flag the next readings
            self._steps = clock.steps
            self.sampler.clock_stepped(now)
        return self.sampler.run_due(now, clock, self.store)

    def store(self, ch, at, m, e, f):
        seq = self.outbox.append(ch, at, m, e, f)
        print("R", seq, ch, at, m, e, f)

    def ms_until_next_sample(self):
        due = self.sampler.next_due()
        if not due:
            return 60000
        return max(0, due * 1000 - self.clock.now_ms())

    # --- gateway ----------------------------------------------------------------------------

    def handle(self, frame):
        """Act on a frame from the link; False if it was not this station's."""
        ftype, addr = frame[0], frame[1]
        if addr != self.address and addr != wire.BROADCAST_ADDRESS:
            return False  # another station's frame on a shared bus
        if ftype == wire.POLL:
            self.answer_poll(frame[2], frame[3], frame[4])
        elif ftype == wire.ACK:
            self.outbox.ack(frame[2], frame[3])
        elif ftype == wire.TIME:
            self.clock.set_ms(frame[2])
            if addr == self.address:  # a broadcast TIME gets no answer: stations would collide
                self.send(wire.encode_result(self.address, wire.TIME, wire.RESULT_OK))
        elif addr != self.address:
            return False
        elif ftype == wire.CONFIG:
            self.config_chunk(frame[2], frame[3], frame[4], frame[5])
        elif ftype == wire.COMMAND:
            if frame[2] == wire.CMD_SAMPLE_NOW:
                for s in self.sampler.slots:
                    s.next_due = 0  # due now: the next loop samples every sensor
                self.result(wire.COMMAND, wire.RESULT_OK)
            else:
                self.result(wire.COMMAND, wire.RESULT_REJECTED, "not supported")
        return True

    def result(self, ref, status, detail=""):
        self.send(wire.encode_result(self.address, ref, status, detail))

    def config_chunk(self, config_hash, total, offset, chunk):
        import config
        config.chunk(self, config_hash, total, offset, chunk)
        del sys.modules["config"]

    def answer_poll(self, want, max_readings, backfill):
        if want & wire.WANT_HELLO or self._hello_due:
            self._hello_due = False
            self.send(wire.encode_hello(self.address, self.station_id, FIRMWARE_VERSION,
                                        self.config_hash, self.board.reset_cause(),
                                        self.boot_count, self.outbox.next_seq,
                                        self.clock.now() if self.clock.plausible() else 0))
        if want & wire.WANT_DATA:
            # The oldest unacked readings (or the backfill range), read from flash one at a
            # time: a list of a backlog needs a block a fragmented heap may not have. With
            # MORE, in up to _MAX_FRAMES frames, each but the last a DATA_MORE.
            ob = self.outbox
            ob.seek(*(backfill or (0, 0)))
            frames = _MAX_FRAMES if want & _WANT_MORE else 1
            rest = None
            try:
                while frames:
                    frames -= 1
                    frame, _, rest = wire.encode_data(
                        self.address, ob, ob.next_seq, self.clock.now(),
                        max_readings or _MAX_READINGS, frames, rest)
                    self.send(frame)
                    if rest is None:
                        break
                    frame = None
                    gc.collect()  # one frame's garbage at a time
            finally:
                ob.stop()
        if want & wire.WANT_STATUS:
            ob = self.outbox
            self.send(wire.encode_status(
                self.address, self.uptime(), self.clock.now(), self.state(), self.battery_mv(),
                ob.depth(), ob.oldest_seq(), ob.next_seq, ob.lost_overwritten, ob.lost_corrupt,
                self.sampler.sensor_errors, self.board.free_heap()))

    def state(self):
        s = wire.STATE_CLOCK_SYNCED if self.clock.synced_now() else 0
        if self.sampler.event:
            s |= wire.STATE_EVENT_MODE
        if self.config_from != self.path:
            s |= wire.STATE_CONFIG_ERROR
        return s

    def uptime(self):
        return max(0, self.board.clock.now() - self._started)

    def battery_mv(self):
        r = self.sampler.last.get(32)  # battery_v
        if r is None or r[3] & wire.MISSING:
            return 0
        m, e = r[1], r[2] + 3
        while e > 0:
            m *= 10
            e -= 1
        while e < 0:
            m //= 10
            e += 1
        return max(0, m)

    def send(self, frame):
        self.uart.write(frame)

    # --- main loop --------------------------------------------------------------------------

    def step(self):
        self.board.feed_watchdog()
        busy = self.sample_due()
        if self._console is not None and self._console.poll(0):
            self.console()
        if busy:
            wait = 0  # more may be due: look at the link and loop
        elif self._technician_here():
            wait = min(self.clock.wait_ms(self.ms_until_next_sample()), _MAX_WAIT_MS)
        else:
            # Nothing due: sleep with RAM kept until the next sample, a rain tip, the link's
            # first byte (the gateway's wake preamble) or the next look at the console.
            t0 = self.clock.now_ms()
            woke = self.board.lightsleep(min(self.ms_until_next_sample(),
                                             _MAX_SLEEP_MS * self.clock.speed), self.uart)
            wait = _RX_WAKE_MS if woke else 0
            ms = self._asleep_ms + max(0, self.clock.now_ms() - t0)  # the console's power figure
            self.asleep_s += ms // 1000
            self._asleep_ms = ms % 1000
        n = self.uart.readinto(self._rx, wait)
        if n:
            for item in self.decoder.feed(memoryview(self._rx)[:n]):
                if isinstance(item, str):
                    log.e("frame rejected:", item)
                    busy = True
                elif self.handle(item):
                    busy = True
        if busy:
            # Collect after each cycle's work, before the next wait: the garbage of one cycle
            # never piles up into fragments, and the free heap between cycles is the live heap.
            # A cycle that only heard other stations' frames on a shared bus did no work: its
            # few bytes of garbage wait for the next collect. A station hears every POLL, reply
            # and ACK of the others on its bus, and a collection marks its whole live heap:
            # collecting after each was awake time for nothing (15 % of the stations' CPU on
            # the fleet bench's buses of five).
            gc.collect()

    def _technician_here(self):
        """A console line came within _CONSOLE_AWAKE_MS: stay awake so typing is answered
        (a board's USB serial does not wake it from lightsleep)."""
        if self._awake_from is None:
            return False
        if time.ticks_diff(time.ticks_ms(), self._awake_from) < _CONSOLE_AWAKE_MS:
            return True
        self._awake_from = None
        return False

    def console(self):
        line = sys.stdin.readline()
        if not line:  # end of input: no technician on this port
            self._console = None
            return
        self._awake_from = time.ticks_ms()
        import console
        try:
            console.run(self, line.split())
        except Exception as e:
            log.e("console:", e)
        del sys.modules["console"]
        gc.collect()

    def run(self):
        while not self.reload:
            self.step()


def bring_up(how, *args):
    """``bringup.build(*args)`` (boot) or ``renew.rebuild(*args)`` (a new config): that module
    only while it works."""
    name = "bringup" if how == "build" else "renew"
    mod = __import__(name)
    try:
        st = getattr(mod, how)(*args)
    finally:
        sys.modules.pop(name, None)
        sys.modules.pop("bringup", None)
    del mod
    gc.collect()  # the boot module's code and garbage go before gap.py loads
    import gap  # a power cut's trace (gap.py), once the station is built
    gap.report(st)
    del sys.modules["gap"]
    return st


def main(config_path="config.json"):
    gc.collect()  # a 48 KB heap: start the station on a compacted heap
    station = bring_up("build", config_path)
    gc.collect()
    print("station", station.station_id, "address", station.address, "next seq",
          station.outbox.next_seq, "free", gc.mem_free())
    while True:
        station.run()
        # A new config: the same board, link and boot, the new channels.
        station = bring_up("rebuild", station)
        gc.collect()
        print("I config", "%08x" % station.config_hash, "in force")


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else "config.json")
