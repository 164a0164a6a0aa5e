# The driving loop of heap_station_mp.py (see there), imported after the station's boot.
import gc
import time

from heap_station_mp import ACK, HEARD, POLL, T0, argv, board, io, sim, st


def run():
    """The run, in a function: its names are locals, not a module's globals dict, which grows
    in one contiguous block that the station's heap after boot may not have (a harness cost,
    not the station's)."""
    ob = st.outbox
    n = 200
    i = t0 = append_us = ack_us = 0
    days = float(argv[4])
    event_day = float(argv[5])
    ballast_n = int(argv[6])
    down_s = int(float(argv[7]) * 3600)  # the link is down this long at the start of each day
    gc.collect()
    boot_free = gc.mem_free()
    # Held to the end: headroom the station must not need. Small blocks, so that it takes heap, not
    # one contiguous stretch of it; ballast_n is what it took, as mem_free counts it.
    ballast = [bytearray(112) for _ in range(ballast_n // 128)]
    gc.collect()
    ballast_n = boot_free - gc.mem_free()
    end = T0 + int(days * 86400)
    event_at = T0 + int(event_day * 86400)
    low = boot_free
    cycles = 0
    awake_us = 0
    hour = -1
    stage = 12000
    while sim.ms < end * 1000:
        now = st.sampler.next_due()
        sim.ms = now * 1000
        if event_at <= now < event_at + 3 * 3600:  # a flood: the stage climbs, rain pours
            stage = min(60000, stage + 400)
            with open(io + "edges", "a") as f:
                f.write("27\n27\n27\n27\n27\n")
        elif stage > 12000:
            stage = max(12000, stage - 100)
        with open(io + "adc26", "w") as f:
            f.write("%d\n" % stage)
        board.run_irqs()
        t0 = time.ticks_us()
        st.step()  # samples what is due
        if (now - T0) % 86400 >= down_s:  # the gateway polls another station, then this one
            sim.inbox = HEARD
            st.step()
            sim.inbox = POLL
            st.step()
            sim.inbox = ACK
            st.step()
        awake_us += time.ticks_diff(time.ticks_us(), t0)
        cycles += 1
        free = gc.mem_free() + ballast_n
        if free < low:
            low = free
        h = (now - T0) // 3600
        if h != hour:
            hour = h
            gc.collect()
            print('{"hour": %d, "free": %d, "event": %d}' % (
                h, gc.mem_free() + ballast_n, 1 if st.sampler.event else 0))
    # outbox costs, measured apart: append and ack of one reading
    t0 = time.ticks_us()
    for i in range(n):
        ob.append(1, end + i, 1234, -3, 0)
    append_us = time.ticks_diff(time.ticks_us(), t0) // n
    t0 = time.ticks_us()
    for i in range(n):
        ob.ack(ob.next_seq - n + i + 1)
    ack_us = time.ticks_diff(time.ticks_us(), t0) // n
    gc.collect()
    # printed in pieces: one string of the whole line is a ~190-byte block, which the heap after
    # the outbox's 200 appends above may no longer have in one piece (a harness cost)
    print('{"done": 1, "boot_free": %d, "low": %d, "cycles": %d, ' % (
        boot_free + ballast_n, low, cycles), end="")
    print('"awake_us_per_cycle": %d, "append_us": %d, "ack_us": %d, ' % (
        awake_us // max(1, cycles), append_us, ack_us), end="")
    print('"sensor_errors": %d, "end_free": %d, "ballast": %d}' % (
        st.sampler.sensor_errors, gc.mem_free() + ballast_n, ballast_n))


run()
