# Runs in the MicroPython unix port (tests/firmware/test_station_engine.py): the real station
# (config.json on flash, outbox, sampler, drivers, wire codec) driven step by step from a script
# of steps, on a manual clock, with the gateway's frames handed in as bytes made by the
# gateway's codec. Only the board's edges are the harness's: the clock, the link and the ADC
# inputs, which give a queue of counts per pin (one per read: a burst sees them in turn) or
# fail (OSError, a sensor that does not answer).
#
#   micropython engine_mp.mpy config.json steps.json
#
# steps.json is a list of steps, each an object with one key:
#   {"adc": {"26": [c1, c2, ...]}}   the next reads of pin 26 (the last one sticks)
#   {"fail": [26]}                   reads of these pins raise OSError from now on ([]: none)
#   {"cycles": n}                    n sampling cycles: the clock to the next sample due, step
#   {"clock": t}                     the clock to t (Unix s), then one step
#   {"frames": "<hex>"}              gateway bytes into the link, then one step
# Output: the station's console (R lines ...) and each frame it sends as "W <hex>";
# "S <sensor_errors> <config_hash hex>" after every step; "done" at the end.
import gc
import sys

import hal_unix
import station

argv = sys.argv
queues = {}
failing = []


class Adc:
    def __init__(self, pin):
        self.pin = pin

    def read_u16(self):
        if self.pin in failing:
            raise OSError(5)
        q = queues[self.pin]
        return q.pop(0) if len(q) > 1 else q[0]


class Sim:
    """The board's clock, moved by hand, and the station's link, fed by hand."""
    speed = 1000000000  # StationClock.check() sees no step while the script moves the clock
    ms = 0
    inbox = b""

    def now_ms(self):
        return self.ms

    def now(self):
        return self.ms // 1000

    def set_ms(self, ms):
        self.ms = ms

    def wait_ms(self, ms):
        return 0

    def waiting(self, timeout_ms):
        return bool(self.inbox)

    def readinto(self, buf, timeout_ms):
        n = min(len(buf), len(self.inbox))
        buf[:n] = self.inbox[:n]
        self.inbox = self.inbox[n:]
        return n

    def write(self, data):
        print("W", data.hex())


def load(path):
    import json
    with open(path) as f:
        return json.load(f)


b = load(argv[1])["board"]
board = hal_unix.Board(b)
sim = Sim()
sim.ms = b["sim_epoch"] * 1000
b = None
board.clock = sim
board.adc = Adc
st = station.bring_up("build", argv[1], board, sim, 0)
steps = load(argv[2])
gc.collect()


def step():
    global st
    st.step()
    if st.reload:  # a new config: rebuilt as station.main does
        st = station.bring_up("rebuild", st)
        print("I config", "%08x" % st.config_hash, "in force")


for s in steps:
    if "adc" in s:
        for pin in s["adc"]:
            queues[int(pin)] = s["adc"][pin]
    elif "fail" in s:
        failing = s["fail"]
    elif "cycles" in s:
        for _ in range(s["cycles"]):
            sim.ms = st.sampler.next_due() * 1000
            step()
    elif "clock" in s:
        sim.ms = s["clock"] * 1000
        step()
    elif "frames" in s:
        sim.inbox = bytes.fromhex(s["frames"])
        while sim.inbox:
            step()
    print("S", st.sampler.sensor_errors, "%08x" % st.config_hash)
print("done")
