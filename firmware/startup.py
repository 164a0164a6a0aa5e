"""Boot only: build the station's parts on a loaded, checked config (config.py).

Imported by ``bringup.build`` (after the config is loaded and the outbox replayed) and dropped
afterwards, with the drivers package's ``make_driver``, so none of this code stays in RAM while
the station samples: the boot counter, one sampler slot per sensor entry (a bad entry
is logged, flagged as a config error, and the others go on), the quality limits and the event
rule.
"""

import gc
import os
import sys

import log

_MODULES = {"analog": "analog", "rain": "rain", "sdi12": "sdi12", "bme280": "bme280",
            "serial_level": "level_serial"}


def station(cfg, config_hash, path, board, uart, boot_count, outbox, synced=False):
    """The Station for ``cfg`` on ``board`` and ``outbox``. ``uart``, ``boot_count`` and
    ``synced`` are kept when given (a new config on a running station: the clock the gateway
    set stays synchronised); otherwise this is a boot: counted, the link opened."""
    # The drivers' modules first, on the emptiest heap: the biggest load before the rest.
    for c in cfg["channels"]:
        name = _MODULES.get(c.get("sensor", "analog") if isinstance(c, dict) else "")
        if name:
            gc.collect()
            try:
                __import__("drivers." + name)
            except Exception:  # reported with its channel entry by make_driver
                pass
    from clock import StationClock
    from station import Station
    first = not boot_count  # the first answer after a boot is a HELLO
    if first:
        boot_count = count_boot(board.data_dir)
    smp, bad = sampler(cfg, board)
    last_time = outbox.last_time
    for s in smp.slots:  # slots only ascend, across reboots too
        t = 0
        for ch in s.chans:
            t = max(t, last_time.get(ch, 0))
        if s.spread:
            t = max(t, last_time.get(s.spread, 0))
        s.last_slot = t
    if uart is None:
        link = cfg["link"]
        uart = board.uart(link["port"], link.get("baud", 9600))
    clock = StationClock(board.clock, cfg.get("clock_jump_s", 5))
    clock.synced = synced
    gc.collect()  # the sampler's building left garbage: the Station's buffers get its room
    st = Station(board, path, cfg["address"], cfg["station"], config_hash, clock, outbox, smp,
                 uart, boot_count, first)
    if bad:  # schema.check passed it, yet an entry did not build: refuse the config
        raise ValueError("%d sensor entries did not build" % bad)
    return st


def sampler(cfg, board):
    """(Sampler, number of channel entries that could not be built). Each entry is dropped
    from ``cfg`` once its slot is built: the config never shares the heap with every driver."""
    q = cfg.pop("quality", {})
    qc = {}
    for k in q:
        d = q[k]
        qc[int(k)] = [d.get("valid_min"), d.get("valid_max"), d.get("spike"), d.get("flat_n", 0),
                      None, 0]
    ev = cfg.pop("event", {})
    event = (ev.get("stage", 0), ev.get("rise"), ev.get("rain", 0), ev.get("rain_mm"),
             ev.get("hold_s", 3600))
    q = ev = None
    from drivers import make_driver
    from sampler import Sampler, Slot
    chans = cfg["channels"]
    slots = []
    bad = 0
    for i in range(len(chans)):
        c = chans[i]
        chans[i] = None
        gc.collect()  # a driver module loads into a compacted heap
        try:
            if "sensor" not in c:  # the older analog entry
                c["sensor"] = "analog"
                c["channel"] = c["no"]
                if "samples" not in c:
                    c["samples"] = 1
            slots.append(Slot(make_driver(c, board), c["interval_s"],
                              c.get("event_s", c["interval_s"]), c.get("burst", 1),
                              c.get("spread", 0)))
        except Exception as e:  # a bad entry must not stop the other channels
            log.e("config: channels.%d:" % i, e)
            bad += 1
    c = None
    sys.modules.pop("drivers", None)  # the drivers stay (drivers.<kind>), make_driver goes
    return Sampler(board, slots, qc, event), bad


def count_boot(data_dir):
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
