"""The technician's console on the USB serial (stdin on the unix port), one command a line.

    status           clock, synced?, last readings, outbox depth, battery, losses, reset
                     cause, free heap, time asleep (lightsleep) against uptime
    read             read every sensor now and print (nothing stored)
    config           the config in force
    set KEY VALUE    change one key (dotted: ``channels.0.interval_s``; VALUE is JSON, else
                     text), checked and applied atomically like a CONFIG frame
    log              the recent E lines

Imported by the station when a line arrives, dropped afterwards.
"""

import gc
import json
import sys

import log


def run(st, words):
    if not words:
        return
    cmd = words[0]
    if cmd == "status":
        status(st)
    elif cmd == "read":
        import drivers
        for s in st.sampler.slots:
            try:
                out = s.read(st.board.feed_watchdog)
            except Exception:
                out = drivers.missing(s.drv)
            for r in out:
                print("C read", r[0], r[1], r[2], r[3])
    elif cmd == "config":
        with open(st.path) as f:
            print("C config", f.read())
    elif cmd == "set" and len(words) >= 3:
        set_key(st, words[1], " ".join(words[2:]))
    elif cmd == "log":
        for line in log.ring:
            print("C log", line)
    else:
        print("C commands: status read config log set KEY VALUE")
    print("C ok")


def status(st):
    ob = st.outbox
    clock = st.clock
    gc.collect()
    print("C clock", clock.now(), "synced", 1 if clock.synced_now() else 0, "event",
          1 if st.sampler.event else 0)
    print("C outbox depth", ob.depth(), "next", ob.next_seq, "lost", ob.lost_overwritten,
          ob.lost_corrupt)
    print("C battery_mv", st.battery_mv(), "sensor_errors", st.sampler.sensor_errors)
    print("C reset", st.board.reset_cause(), "boots", st.boot_count, "config",
          "%08x" % st.config_hash, "error" if st.config_error else "ok")
    print("C heap", gc.mem_free())
    print("C asleep_s", st.asleep_s, "uptime_s", st.uptime())
    last = st.sampler.last
    for ch in sorted(last):
        r = last[ch]
        print("C last", ch, r[0], r[1], r[2], r[3])


def set_key(st, key, text):
    try:
        value = json.loads(text)
    except ValueError:
        value = text
    with open(st.path) as f:
        cfg = json.load(f)
    node = cfg
    parts = key.split(".")
    for p in parts[:-1]:
        node = node[int(p)] if isinstance(node, list) else node.setdefault(p, {})
    last = parts[-1]
    if isinstance(node, list):
        node[int(last)] = value
    else:
        node[last] = value
    import config
    config.write(st.path + ".new", cfg)
    cfg = None
    config_hash = config.hash_of(_read(st.path + ".new"))
    del sys.modules["config"]
    st.pending = (config_hash, key)  # checked and committed by station.rebuild, which answers
    st.reload = True


def _read(path):
    with open(path) as f:
        return json.load(f)
