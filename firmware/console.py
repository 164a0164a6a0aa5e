"""The technician's console on the USB serial (stdin on the unix port), one command a line.

    status           clock (ISO UTC), synced?, last readings (channel name with its unit,
                     value, flags by name), outbox depth, battery, losses, reset cause, free
                     heap, time asleep (lightsleep) against uptime
    read             read every sensor now and print (nothing stored)
    config           the config in force
    set KEY VALUE    change one key (dotted: ``channels.0.interval_s``; VALUE is JSON, else
                     text), checked and applied atomically like a CONFIG frame
    log              the recent E lines
    dump [FROM_SEQ]  the readings in flash as CSV (console_tools.py)
    sdi12 scan | sdi12 ident ADDR | sdi12 address OLD NEW   install SDI-12 sensors
    cal CH VALUE     two-point calibration of an analog input (4-20 mA): twice, at two
                     known values; then the channel's offset and scale are set

Imported by the station when a line arrives, dropped afterwards.
"""

import gc
import json
import sys
import time

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
                print("C read", r[0], name(r[0]), value(r[1], r[2], r[3]), flags(r[3]))
    elif cmd == "config":
        # In pieces: the whole file as one string needs a block the heap may not have.
        sys.stdout.write("C config ")
        with open(st.path) as f:
            while True:
                piece = f.read(128)
                if not piece:
                    break
                sys.stdout.write(piece)
        sys.stdout.write("\n")
    elif cmd == "set" and len(words) >= 3:
        set_key(st, words[1], " ".join(words[2:]))
    elif cmd == "log":
        for line in log.ring:
            print("C log", line)
    elif cmd in ("dump", "sdi12", "cal"):
        import console_tools  # only when used: the running station's heap is small
        try:
            getattr(console_tools, cmd)(st, words[1:])
        finally:
            del sys.modules["console_tools"]
    else:
        print("C commands: status read config log set KEY VALUE dump [FROM_SEQ] sdi12 "
              "scan|ident ADDR|address OLD NEW cal CH VALUE")
    print("C ok")


def status(st):
    ob = st.outbox
    clock = st.clock
    gc.collect()
    print("C clock", iso(clock.now()), "synced", 1 if clock.synced_now() else 0, "event",
          1 if st.sampler.event else 0)
    print("C outbox depth", ob.depth(), "next", ob.next_seq, "lost", ob.lost_overwritten,
          ob.lost_corrupt)
    print("C battery_mv", st.battery_mv(), "sensor_errors", st.sampler.sensor_errors)
    print("C reset", st.board.reset_cause(), "boots", st.boot_count, "config",
          "%08x" % st.config_hash, "error" if st.config_from != st.path else "ok")
    print("C heap", gc.mem_free())
    print("C asleep_s", st.asleep_s, "uptime_s", st.uptime())
    last = st.sampler.last
    for ch in sorted(last):
        r = last[ch]
        print("C last", ch, name(ch), iso(r[0]), value(r[1], r[2], r[3]), flags(r[3]))


# The network's channel catalogue (docs/contracts.md 1.6): the names carry their unit. One
# text, split only when a name is wanted: no names kept in the station's RAM.
_NAMES = ("1 stage_m 2 stage_spread_m 3 water_temp_c 4 discharge_m3s 5 velocity_ms "
          "6 conductivity_uscm 7 range_m 8 loop_ma 16 rain_mm 17 air_temp_c 18 rh_pct "
          "19 pressure_hpa 20 wind_speed_ms 21 wind_dir_deg 22 wind_gust_ms 23 solar_wm2 "
          "24 vapour_pressure_kpa 32 battery_v 33 solar_v 34 logger_temp_c")
_FLAGS = "missing out_of_range suspect unsynced spike flatline clock_jump event"
_EPOCH = 946684800 if time.gmtime(0)[0] == 2000 else 0  # the port's epoch in Unix seconds


def name(ch):
    w = _NAMES.split()
    for i in range(0, len(w), 2):
        if w[i] == str(ch):
            return w[i + 1]
    return "ch%d" % ch


def iso(t):
    """Unix seconds as ISO 8601 UTC."""
    g = time.gmtime(t - _EPOCH)
    return "%04d-%02d-%02dT%02d:%02d:%02dZ" % g[:6]


def value(m, e, f):
    """The exact decimal text of m × 10**e; "missing" for a missing reading."""
    if f & 1:
        return "missing"
    s = str(abs(m))
    if e >= 0:
        s += "0" * e
    else:
        s = "0" * max(0, 1 - e - len(s)) + s
        s = s[:e] + "." + s[e:]
    return "-" + s if m < 0 else s


def flags(f):
    names = _FLAGS.split()
    return "|".join(names[i] for i in range(8) if f >> i & 1) or "ok"


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
    propose(st, cfg, key)


def propose(st, cfg, what):
    """Write ``cfg`` as the new config: checked and committed by renew.rebuild, which
    answers "C set <what>" or the reason it was refused."""
    import config
    config.write(st.path + ".new", cfg)
    cfg = None
    config_hash = config.hash_of(_read(st.path + ".new"))
    del sys.modules["config"]
    st.pending = (config_hash, what)
    st.reload = True


def _read(path):
    with open(path) as f:
        return json.load(f)
