"""The console's longer commands (console.py imports this only while one runs): ``dump``,
``sdi12`` and ``cal``.

- ``dump [FROM_SEQ]``: every reading still in flash from FROM_SEQ (default: the oldest), as
  CSV lines ``C seq,channel,name,time,unix_s,mantissa,exponent,value,flags`` after a line
  ``C dump station <id>``; ``watershed station dump`` saves them on the laptop.
- ``sdi12 scan`` (who answers ``a!`` on the first SDI-12 line of the config), ``sdi12 ident
  ADDR`` (``aI!``), ``sdi12 address OLD NEW`` (``aAb!``): drivers/sdi12_setup.py.
- ``cal CH VALUE``: the analog channel CH reads VALUE (in its unit) now; the first call keeps
  the raw count (``<data_dir>/cal``), the second, at another known value, sets the channel's
  ``offset``, ``scale_num`` and ``scale_den`` (its ``exponent`` kept) like ``set``.
"""

import json
import sys

from console import flags, iso, name, propose, value

_ADDRS = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"


def dump(st, args):
    ob = st.outbox
    seq = int(args[0]) if args else ob.oldest_seq()
    print("C dump station", st.station_id)
    print("C seq,channel,name,time,unix_s,mantissa,exponent,value,flags")
    ob.seek(seq, ob.next_seq)  # from flash, one at a time
    try:
        for r in ob:
            print("C %d,%d,%s,%s,%d,%d,%d,%s,%s" % (r[0], r[1], name(r[1]), iso(r[2]), r[2],
                                                  r[3], r[4], value(r[3], r[4], r[5]),
                                                  flags(r[5])))
            st.board.feed_watchdog()
    finally:
        ob.stop()


def _master(st):
    for s in st.sampler.slots:
        m = getattr(s.drv, "master", None)
        if m is not None:
            return m
    raise OSError("no SDI-12 sensor in the config")


def sdi12(st, args):
    from drivers import sdi12_setup
    try:
        m = _master(st)
        if args[:1] == ["scan"]:
            for a in _ADDRS:
                st.board.feed_watchdog()
                if sdi12_setup.acknowledge(m, a):
                    print("C sdi12", a, "answers")
        elif args[:1] == ["ident"] and len(args) == 2:
            print("C sdi12", args[1], sdi12_setup.identify(m, args[1]).decode())
        elif args[:1] == ["address"] and len(args) == 3:
            sdi12_setup.change_address(m, args[1], args[2])
            print("C sdi12", args[1], "is now", args[2])
        else:
            print("C sdi12 scan | sdi12 ident ADDR | sdi12 address OLD NEW")
    finally:
        sys.modules.pop("drivers.sdi12_setup", None)


def _units(text, exponent):
    """The decimal ``text`` in units of 10**exponent, exactly (ValueError if it is finer)."""
    neg = text.startswith("-")
    whole, _, frac = text.lstrip("+-").partition(".")
    digits = int((whole or "0") + frac)
    shift = -exponent - len(frac)
    if shift < 0:
        if digits % 10 ** -shift:
            raise ValueError("more decimals than the channel's exponent keeps")
        digits //= 10 ** -shift
    else:
        digits *= 10 ** shift
    return -digits if neg else digits


def cal(st, args):
    ch = int(args[0])
    with open(st.path) as f:
        cfg = json.load(f)
    chans = cfg["channels"]
    i = 0
    while i < len(chans) and not (chans[i].get("sensor", "analog") == "analog" and
                                  chans[i].get("channel", chans[i].get("no")) == ch):
        i += 1
    if i == len(chans):
        raise ValueError("no analog channel %d in the config" % ch)
    c = chans[i]
    v = _units(args[1], c.get("exponent", 0))
    count = None
    for s in st.sampler.slots:
        if ch in s.chans:
            s.drv.read()
            count = s.drv.last_raw
    if count is None or count < 0:
        raise OSError("channel %d has no raw count" % ch)
    path = st.board.data_dir + "/cal"
    try:
        with open(path) as f:
            c1, v1, ch1 = [int(x) for x in f.read().split()]
    except (OSError, ValueError):
        ch1 = -1
    if ch1 != ch or c1 == count:
        with open(path, "w") as f:
            f.write("%d %d %d" % (count, v, ch))
        print("C cal", ch, "point 1: count", count, "=", args[1], "; now at a second value")
        return
    import os
    os.remove(path)
    num, den = v - v1, count - c1
    if den < 0:
        num, den = -num, -den
    c["offset"] = v1 - c1 * num // den
    c["scale_num"] = num
    c["scale_den"] = den
    print("C cal", ch, "offset", c["offset"], "scale", num, "/", den)
    propose(st, cfg, "channels.%d calibration" % i)
