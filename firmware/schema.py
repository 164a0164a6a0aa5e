"""The one validator of a station config: ``check(cfg)`` lists every defect as ``(key, what)``.

Every key a config may hold is in ``_SPEC``, with its type and range, per section, board and
sensor kind: an unknown key is a defect (a typo such as ``"exponnent"`` would otherwise be a
silent default), and so is a wrong type or range, a duplicate channel, an empty channel list or
an unknown board. What ``check`` accepts, ``startup.station`` builds (tests/firmware: a property
test). The same module runs in the station (boot, and a new config with the station torn down:
``renew.rebuild``) and on the laptop (``watershed station check``, under CPython), so both
say the same thing.

Heap: the specs are one text, split only while checking, and the code uses few names, because
every name a module holds stays in the station's RAM (MicroPython's qstr pool) after the
module is dropped. One line per section: its name, then ``key=type`` words, ``!`` after the
type for a required key. Types: ``iLO:HI`` integer, ``nLO:HI`` number, ``b`` true/false,
``d`` identifier, ``s`` text, ``p`` port (a UART id 0-9; a device path
on the unix test port), ``a`` SDI-12
address, ``m`` SDI-12 measurement, ``o`` object (checked by its own section), ``L`` list of
sensor entries, ``C`` list of channel numbers (``C3``: three), ``S`` power-of-ten shifts,
``O`` BME280 oversampling.
"""

_SPEC = """top station=d! address=i1:254! basin=d board=o! link=o! channels=L! clock_jump_s=i1:2000000000 quality=o event=o outbox=o
link port=p! baud=i300:1000000
outbox budget_bytes=i4096:16777216 segment_records=i4:4096
event stage=i0:255 rise=n0:1e9 rain=i0:255 rain_mm=n0:1e9 hold_s=i0:604800
quality valid_min=n-1e15:1e15 valid_max=n-1e15:1e15 spike=n0:1e15 flat_n=i0:100000
esp32 name=s! data_dir=s watchdog_ms=i0:3600000 link_wake=i0:48 uarts=o i2c=o sdi12=o ds3231=o
rp2 name=s! data_dir=s watchdog_ms=i0:3600000 link_wake=i0:48 uarts=o i2c=o sdi12=o ds3231=o
unix name=s! data_dir=s! io_dir=s! sim_epoch=i0:4102444800! wall_epoch=i0:4102444800! speed=i1:1000000 harness=s
uarts tx=i0:48! rx=i0:48!
i2c scl=i0:48! sda=i0:48!
sdi12 tx=i0:48 rx=i0:48 dir=i-1:48 invert_tx=b invert_rx=b echo=b
ds3231 bus=i0:1 address=i8:119
entry sensor=s interval_s=i1:86400! event_s=i1:86400 burst=i1:15 spread=i0:255
analog pin=i0:48! channel=i1:255! offset=i-999999999999999999:999999999999999999 scale_num=i-999999999999999999:999999999999999999 scale_den=i1:999999999999999999 exponent=i-20:20 samples=i1:64 raw_min=i0:65535 raw_max=i0:65535 valid_min=i0:65535 valid_max=i0:65535
rain pin=i0:48! channel=i1:255 mm_per_tip_um=i1:100000 debounce_ms=i0:10000
serial_level port=p! baud=i300:1000000 mount_mm=i1:100000! channel=i1:255! range_channel=i0:255 samples=i1:15 timeout_ms=i1:60000
sdi12_sensor port=p! address=a! measure=m crc=b channels=C! shift=S retries=i0:10 response_ms=i1:1000 wake_ms=i0:1000
bme280 bus=i0:1 scl=i0:48 sda=i0:48 freq=i10000:1000000 address=i118:119 channels=C3 oversampling=O timeout_ms=i1:10000
"""
_BOARDS = "esp32 rp2 unix"
_KINDS = "analog rain serial_level sdi12 bme280"
_MAX_ENTRIES = 16  # sensor entries: the sampler's slots
_UNIX = [False]  # the config is for the unix port: its ports are device paths


def _spec(v):
    """The section named ``v`` as {key: type}."""
    for line in _SPEC.split("\n"):
        t = line.split()
        if t and t[0] == v:
            return dict(w.split("=") for w in t[1:])
    return None


def _int(v):
    return isinstance(v, int) and not isinstance(v, bool)


def _what(v, t):
    """None if ``v`` is of type ``t``, else what it must be."""
    k = "inbdspamoLCSO".find(t[0])
    if k < 2:  # a range
        lo, hi = t[1:].rstrip("!").split(":")
        if k == 0 and (not _int(v) or not int(lo) <= v <= int(hi)):
            return "must be a whole number %s to %s" % (lo, hi)
        if k == 1 and (not (_int(v) or isinstance(v, float)) or not float(lo) <= v <= float(hi)):
            return "must be a number %s to %s" % (lo, hi)
    elif k == 2:
        if not isinstance(v, bool):
            return "must be true or false"
    elif k == 3:
        if not isinstance(v, str) or not 1 <= len(v) <= 32 or not all(
                c.isalpha() or c.isdigit() or c in "_.-" for c in v) or v[0] in "_.-" or \
                len(v.encode()) != len(v):
            return "must be 1-32 letters, digits, '_', '.' or '-' (a letter or digit first)"
    elif k == 4:
        if not isinstance(v, str) or not 1 <= len(v) <= 255:
            return "must be a text of 1-255 characters"
    elif k == 5:  # a board's UART id; on the unix test port a device path
        if _UNIX[0]:
            if not isinstance(v, str) or not 1 <= len(v) <= 255:
                return "must be a device path (the unix port)"
        elif not (_int(v) and 0 <= v <= 9):
            return "must be a UART id 0-9"
    elif k == 6:
        if not isinstance(v, str) or len(v) != 1 or not (v.isdigit() or v.isalpha()) or \
                len(v.encode()) != 1:
            return "must be one SDI-12 address character: 0-9, A-Z or a-z"
    elif k == 7:
        if not isinstance(v, str) or not 1 <= len(v) <= 2 or v[0] not in "MCR" or (
                len(v) == 2 and not v[1].isdigit()) or v == "R":
            return "must be M, M1-M9, C, C1-C9 or R0-R9"
    elif k == 8:
        if not isinstance(v, dict):
            return "must be an object"
    elif not isinstance(v, list):
        return "must be a list"
    elif k == 10:
        k = int(t[1:].rstrip("!") or 0)
        if not (len(v) == k if k else 1 <= len(v) <= 20) or not all(
                _int(c) and 0 <= c <= 255 for c in v):
            return "must be a list of %s channel numbers 0-255 (0 skips a value)" % (
                k or "1-20")
    elif k == 11:
        if not all(_int(c) and -20 <= c <= 20 for c in v):
            return "must be a list of whole numbers -20 to 20"
    elif k == 12:
        if len(v) != 3 or not all(_int(c) and c in (0, 1, 2, 4, 8, 16) for c in v):
            return "must be 3 values from 0, 1, 2, 4, 8, 16"
    return None


def _object(v, t, k, b):
    """Check the object ``v`` against the spec ``t``, its defects added to ``b`` under the
    key prefix ``k``; True if it has none."""
    n = len(b)
    for c in v:
        if c not in t:
            b.append((k + str(c), "unknown key; this takes " + ", ".join(sorted(t))))
    for c in t:
        if c in v:
            w = _what(v[c], t[c])
            if w:
                b.append((k + c, w))
        elif t[c][-1] == "!":
            b.append((k + c, "missing (required)"))
    return len(b) == n


def check(v):
    """Every defect of the config ``v`` as ``(key, what)``; an empty list: it can run."""
    if not isinstance(v, dict):
        return [("config", "must be a JSON object")]
    b = []  # type: list[tuple[str, str]]
    t = v.get("board")
    _UNIX[0] = isinstance(t, dict) and t.get("name") == "unix"
    _object(v, _spec("top"), "", b)
    for k in ("link", "outbox", "event"):
        if isinstance(v.get(k), dict):
            _object(v[k], _spec(k), k + ".", b)
    t = v.get("board")
    if isinstance(t, dict):
        _board(t, b)
    t = v.get("quality")
    if isinstance(t, dict):
        for k in t:
            c = "quality." + str(k)
            if not (isinstance(k, str) and k.isdigit() and 1 <= int(k) <= 255):
                b.append((c, "must be a channel number 1-255"))
            elif not isinstance(t[k], dict):
                b.append((c, "must be an object"))
            elif _object(t[k], _spec("quality"), c + ".", b) and \
                    t[k].get("valid_min", 0) > t[k].get("valid_max", 1e15):
                b.append((c + ".valid_min", "must not be above valid_max"))
    t = v.get("channels")
    if isinstance(t, list):
        _entries(t, b)
    return b


def _board(v, b):
    t = v.get("name")
    if not isinstance(t, str) or t not in _BOARDS.split():
        b.append(("board.name", "unknown board %r; one of %s" % (t, ", ".join(
            _BOARDS.split()))))
        return
    _object(v, _spec(t), "board.", b)
    for t in ("uarts", "i2c", "sdi12"):
        if not isinstance(v.get(t), dict):
            continue
        for k in v[t]:
            c = "board.%s.%s" % (t, k)
            if not (isinstance(k, str) and len(k) == 1 and k.isdigit()):
                b.append((c, "must be a bus id 0-9"))
            elif not isinstance(v[t][k], dict):
                b.append((c, "must be an object"))
            else:
                _object(v[t][k], _spec(t), c + ".", b)
    if isinstance(v.get("ds3231"), dict):
        _object(v["ds3231"], _spec("ds3231"), "board.ds3231.", b)


def _entries(v, b):
    if not v:
        b.append(("channels", "empty: a station needs at least one sensor entry"))
    elif len(v) > _MAX_ENTRIES:
        b.append(("channels", "at most %d sensor entries" % _MAX_ENTRIES))
    seen = {}  # type: dict[int, str]  # channel number -> the entry that stores readings on it
    for i in range(len(v)):
        c = v[i]
        k = "channels.%d" % i
        if not isinstance(c, dict):
            b.append((k, "must be an object"))
            continue
        kind = c.get("sensor", "analog")
        if not isinstance(kind, str) or kind not in _KINDS.split():
            b.append((k + ".sensor", "unknown sensor kind %r; one of %s" % (
                kind, ", ".join(_KINDS.split()))))
            continue
        t = _spec("entry")
        t.update(_spec("sdi12_sensor" if kind == "sdi12" else kind))
        if "sensor" not in c:  # the older analog entry: "no" is its channel
            t["no"] = t.pop("channel")
        if not _object(c, t, k + ".", b):
            continue
        if kind == "analog":
            for lo, hi in (("raw_min", "raw_max"), ("valid_min", "valid_max")):
                if c.get(lo, 0) > c.get(hi, 65535):
                    b.append((k + "." + lo, "must not be above " + hi))
        if kind == "sdi12" and len(c.get("shift", c["channels"])) != len(c["channels"]):
            b.append((k + ".shift", "needs one entry per channel (%d)" % len(c["channels"])))
        if c.get("spread") and c.get("burst", 1) < 2:
            b.append((k + ".spread", "needs a burst of 2 or more"))
        # (channel, key) of every channel the entry stores readings on
        if kind in ("sdi12", "bme280"):
            out = [(n, "channels.%d" % j) for j, n in enumerate(c.get("channels", (17, 18, 19)))]
        elif kind == "rain":
            out = [(c.get("channel", 16), "channel")]
        else:
            out = [(c["channel"], "channel") if "channel" in c else (c["no"], "no")]
        out += [(c.get(n, 0), n) for n in ("range_channel", "spread")]
        for n, j in out:
            if n and n in seen:
                b.append((k + "." + j, "channel %d already comes from %s" % (n, seen[n])))
            elif n:
                seen[n] = k
