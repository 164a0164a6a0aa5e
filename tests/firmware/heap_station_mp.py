# Runs in the MicroPython unix port (tests/firmware/test_heap_station.py, tests/bench):
# the real station (config.json on flash, outbox, sampler, drivers, wire codec) driven cycle by
# cycle. The clock is a manual one the script moves to the next sample due; the link is an
# in-memory UART that hands the station another station's POLL and ACK (heard on the bus), then
# its own POLL (DATA + STATUS) and an ACK of everything, as a gateway does (the frames made by
# the gateway's codec, in frames.bin); the POLL asks for a whole reply (MORE). Sensor inputs
# are the unix board's files (ADC counts, rain edges) and, if configured, a simulated SDI-12
# bus.
# The script is kept small: its code and names share the heap with the station's.
#
#   micropython -X heapsize=48K heap_station_mp.py config.json frames.bin poll_len,ack_len days \
#       event_from_day ballast link_down_h
#
# ``link_down_h``: for that many hours at the start of each simulated day no POLL comes, so the
# station drains a backlog when the link is back.
#
# This part boots the station; the driving loop (heap_loop_mp.py) is imported after the boot,
# as a station's main loop runs after its boot-only modules are dropped.
#
# ``ballast`` bytes are taken from the heap after boot and held to the end: the run then proves
# that much headroom beyond everything the station allocates, transient allocations included.
# The station collects after each cycle's work (station.py), so the free heap after a cycle is
# its live heap, plus, after a cycle that only heard another station's frames (no collection
# then), their garbage; ``low`` is the lowest seen (the ballast counted as free).
#
# Prints one JSON line per simulated hour and a summary:
#   {"hour": h, "free": <mem_free after collect>, "event": 0|1}
#   {"done": 1, "boot_free": ..., "low": <lowest free after a cycle>, ...}
import gc
import sys

import hal_unix
import station

argv = sys.argv
with open(argv[2], "rb") as f:
    frames = memoryview(f.read())  # views of it below, not copies: a 48 KB heap is tight
POLL, ACK = argv[3].split(",")
ACK = int(POLL) + int(ACK)
HEARD = frames[ACK:]  # another station's POLL and ACK on the bus: heard, not answered
ACK = frames[int(POLL):ACK]  # cumulative beyond any seq: the station clamps it to next_seq
POLL = frames[:int(POLL)]  # DATA | STATUS


class Sim:
    """The board's clock, moved by hand, and the station's link, fed by hand: one object."""
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
        n = len(self.inbox)
        buf[:n] = self.inbox
        self.inbox = b""
        return n

    def write(self, data):
        pass


def board_cfg():
    import json
    with open(argv[1]) as f:
        return json.load(f)["board"]


b = board_cfg()
io = b["io_dir"] + "/"
T0 = b["sim_epoch"]
board = hal_unix.Board(b)
b = None
sim = Sim()
sim.ms = T0 * 1000
board.clock = sim
gc.collect()
st = station.bring_up("build", argv[1], board, sim, 0)
if st.config_from != argv[1]:  # on its fallback config it samples nothing: the loop would spin
    sys.exit(1)
gc.collect()
import heap_loop_mp  # noqa: E402,F401  (runs the loop)
