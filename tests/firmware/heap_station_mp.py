# Runs in the MicroPython unix port (tests/firmware/test_heap_station.py, tests/bench):
# the real station (config.json on flash, outbox, sampler, drivers, wire codec) driven cycle by
# cycle. The clock is a manual one the script moves to the next sample due; the link is an
# in-memory UART that hands the station a POLL (DATA + STATUS) and then an ACK of everything,
# as a gateway does. Sensor inputs are the unix board's files (ADC counts, rain edges).
#
#   micropython -X heapsize=48K heap_station_mp.py config.json days event_from_day
#
# Prints one JSON line per simulated hour and a summary:
#   {"hour": h, "free": <mem_free after collect>, "event": 0|1}
#   {"done": true, "boot_free": ..., "low": <lowest free seen before a collect>, ...}
import gc
import json
import sys
import time

import hal_unix
import station
import wire

path = sys.argv[1]
days = float(sys.argv[2])
event_day = float(sys.argv[3])
with open(path) as f:
    board_cfg = json.load(f)["board"]
io = board_cfg["io_dir"]
T0 = board_cfg["sim_epoch"]


class ManualClock:
    speed = 1000000000  # StationClock.check() sees no step while the script moves the clock

    def __init__(self, t):
        self.ms = t * 1000

    def now_ms(self):
        return self.ms

    def now(self):
        return self.ms // 1000

    def set_ms(self, ms):
        self.ms = ms

    def wait_ms(self, ms):
        return 0


def cobs(body):
    out = bytearray()
    code_at = 0
    out.append(0)
    code = 1
    for b in body:
        if b == 0:
            out[code_at] = code
            code_at = len(out)
            out.append(0)
            code = 1
        else:
            out.append(b)
            code += 1
            if code == 0xFF:
                out[code_at] = code
                code_at = len(out)
                out.append(0)
                code = 1
    out[code_at] = code
    out.append(0)
    return bytes(out)


def uvarint(n):
    out = bytearray()
    while True:
        b = n & 0x7F
        n >>= 7
        if n:
            out.append(b | 0x80)
        else:
            out.append(b)
            return out


def frame(ftype, addr, payload):
    body = bytearray((1, ftype, addr)) + payload
    crc = wire.crc32(body)
    body += bytes((crc & 0xFF, (crc >> 8) & 0xFF, (crc >> 16) & 0xFF, crc >> 24))
    return cobs(body)


class FakeUart:
    def __init__(self):
        self.inbox = b""
        self.sent = 0

    def readinto(self, buf, timeout_ms):
        n = min(len(buf), len(self.inbox))
        buf[:n] = self.inbox[:n]
        self.inbox = self.inbox[n:]
        return n

    def write(self, data):
        self.sent += len(data)


def set_adc(pin, raw):
    with open("%s/adc%d" % (io, pin), "w") as f:
        f.write("%d\n" % raw)


def tip(pin, n):
    with open(io + "/edges", "a") as f:
        for _ in range(n):
            f.write("%d\n" % pin)


board = hal_unix.Board(board_cfg)
board.clock = ManualClock(T0)
uart = FakeUart()
gc.collect()
st = station.build(path, board, uart, 0)
gc.collect()
boot_free = gc.mem_free()
print(json.dumps({"boot_free": boot_free}))
set_adc(26, 12000)
set_adc(28, 50000)
end = T0 + int(days * 86400)
event_at = T0 + int(event_day * 86400)
low = boot_free
cycles = 0
awake_us = 0
hour = -1
stage = 12000
while board.clock.now() < end:
    due = st.sampler.next_due()
    board.clock.ms = due * 1000
    now = due
    if event_at <= now < event_at + 3 * 3600:  # a flood: the stage climbs, rain pours
        stage = min(60000, stage + 400)
        tip(27, 5)
    elif stage > 12000:
        stage = max(12000, stage - 100)
    set_adc(26, stage)
    board.run_irqs()
    t0 = time.ticks_us()
    st.step()  # samples what is due
    uart.inbox = frame(0x10, st.address, bytes((0x03, 0)))  # POLL: DATA | STATUS
    st.step()
    uart.inbox = frame(0x11, st.address, uvarint(st.outbox.next_seq))  # ACK everything
    st.step()
    awake_us += time.ticks_diff(time.ticks_us(), t0)
    cycles += 1
    free = gc.mem_free()
    if free < low:
        low = free
    h = (now - T0) // 3600
    if h != hour:
        hour = h
        gc.collect()
        print(json.dumps({"hour": h, "free": gc.mem_free(), "event": 1 if st.sampler.event else 0,
                          "depth": st.outbox.depth(), "next_seq": st.outbox.next_seq}))
# outbox costs, measured apart: append and ack of one reading
ob = st.outbox
n = 200
t0 = time.ticks_us()
for i in range(n):
    ob.append(1, end + i, 1234, -3, 0)
append_us = time.ticks_diff(time.ticks_us(), t0) // n
t0 = time.ticks_us()
for i in range(n):
    ob.ack(ob.next_seq - n + i + 1)
ack_us = time.ticks_diff(time.ticks_us(), t0) // n
gc.collect()
print(json.dumps({"done": True, "boot_free": boot_free, "low": low, "cycles": cycles,
                  "awake_us_per_cycle": awake_us // max(1, cycles), "append_us": append_us,
                  "ack_us": ack_us, "sensor_errors": st.sampler.sensor_errors,
                  "end_free": gc.mem_free(), "next_seq": ob.next_seq}))
