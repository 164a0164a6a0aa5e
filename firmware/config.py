"""Station config on flash: load and validate at boot, canonical bytes and hash, atomic apply.

Imported when needed (boot, a CONFIG frame, the console's ``set``) and dropped afterwards, so
its code does not stay in RAM while the station samples. Building the station on a loaded
config is startup.py's work.

- ``load(path)``: the config at ``path``, or the last good one (``path + ".bak"``) when it is
  missing, not JSON or lacks what the station cannot run without. Every defect is printed as
  ``E config: <key>: <what is wrong>``; a bad channel entry only loses that entry.
- The **canonical** form is the JSON the gateway pushes: keys sorted, no spaces
  (``json.dumps(cfg, sort_keys=True, separators=(",", ":"))``); ``config_hash`` (HELLO) is its
  CRC-32.
- ``apply(path, tmp_path, config_hash)``: a new config already written whole to ``tmp_path``
  (CONFIG chunks or ``set``) replaces ``path`` only if its CRC-32 equals ``config_hash``, it
  validates and it is in the canonical form: the old one becomes ``path + ".bak"`` and the new one is renamed in place (the
  commit). Until then the old config stays in force.
"""

import json
import os

import log
import wire
from wire import crc32

_MAX_CONFIG = 8192  # bytes of a config pushed by CONFIG

_KINDS = ("analog", "sdi12", "serial_level", "rain", "bme280")


def _emit(v, put):
    """Write the canonical JSON of ``v`` piece by piece through ``put`` (never whole in RAM)."""
    if isinstance(v, dict):
        put("{")
        keys = sorted(v)
        for i in range(len(keys)):
            if i:
                put(",")
            put(json.dumps(keys[i]))
            put(":")
            _emit(v[keys[i]], put)
        put("}")
    elif isinstance(v, list):
        put("[")
        for i in range(len(v)):
            if i:
                put(",")
            _emit(v[i], put)
        put("]")
    else:
        put(json.dumps(v))


class _Crc:
    def __init__(self):
        self.crc = 0

    def put(self, text):
        self.crc = crc32(text.encode(), self.crc)


def hash_of(cfg):
    """CRC-32 of the canonical bytes of ``cfg``: the config_hash in HELLO."""
    c = _Crc()
    _emit(cfg, c.put)
    return c.crc


def _int(v, lo, hi):
    return isinstance(v, int) and not isinstance(v, bool) and lo <= v <= hi


def _ident(v):
    if not isinstance(v, str) or not 1 <= len(v) <= 32:
        return False
    for i in range(len(v)):
        c = v[i]
        if not (c.isalpha() or c.isdigit() or (i and c in "_.-")):
            return False
    return True


def check(cfg):
    """Defects of ``cfg`` as ``(key, what)``; fatal ones (the station cannot run) first."""
    if not isinstance(cfg, dict):
        return [("config", "not a JSON object")], True
    bad = []
    if not _ident(cfg.get("station")):
        bad.append(("station", "must be an identifier of 1-32 characters"))
    if not _int(cfg.get("address"), 1, 254):
        bad.append(("address", "must be 1-254"))
    b = cfg.get("board")
    if not isinstance(b, dict) or not isinstance(b.get("name"), str):
        bad.append(("board.name", "missing"))
    link = cfg.get("link")
    if not isinstance(link, dict) or "port" not in link:
        bad.append(("link.port", "missing"))
    chans = cfg.get("channels")
    if not isinstance(chans, list):
        bad.append(("channels", "must be a list"))
    fatal = len(bad) > 0
    for i, c in enumerate(chans if isinstance(chans, list) else ()):
        key = "channels.%d" % i
        if not isinstance(c, dict):
            bad.append((key, "must be an object"))
            continue
        kind = c.get("sensor", "analog")
        if kind not in _KINDS:
            bad.append((key + ".sensor", "unknown kind " + str(kind)))
        if not _int(c.get("interval_s"), 1, 86400):
            bad.append((key + ".interval_s", "must be 1-86400"))
        if "event_s" in c and not _int(c["event_s"], 1, 86400):
            bad.append((key + ".event_s", "must be 1-86400"))
        if "burst" in c and not _int(c["burst"], 1, 15):
            bad.append((key + ".burst", "must be 1-15"))
        ch = c.get("channel", c.get("no"))
        if kind in ("analog", "serial_level", "rain") and not _int(ch, 1, 255):
            bad.append((key + ".channel", "must be 1-255"))
    for k in ("quality", "event", "outbox"):
        if k in cfg and not isinstance(cfg[k], dict):
            bad.append((k, "must be an object"))
    return bad, fatal


def _read(path):
    try:
        with open(path) as f:
            return json.load(f)
    except OSError:
        return "cannot be read"
    except ValueError:
        return "not valid JSON"


def load(path):
    """(config, hash, number of defects) of the config at ``path`` or of the last good one."""
    for p in (path, path + ".bak"):
        cfg = _read(p)
        if isinstance(cfg, str):
            log.e("config:", p + ":", cfg)
            continue
        bad, fatal = check(cfg)
        for key, what in bad:
            log.e("config:", key + ":", what)
        if fatal:
            log.e("config:", p + ":", "cannot run on it")
            continue
        return cfg, hash_of(cfg), len(bad)
    raise OSError(2)


def apply(path, tmp, config_hash):
    """Commit ``tmp`` as the config at ``path``; None, or why it was rejected."""
    crc = 0
    buf = bytearray(64)
    with open(tmp, "rb") as f:
        while True:
            n = f.readinto(buf)
            if not n:
                break
            crc = crc32(memoryview(buf)[:n], crc)
    if crc != config_hash:
        return "config_hash does not match"
    cfg = _read(tmp)
    if isinstance(cfg, str):
        return "config " + cfg
    bad, _ = check(cfg)
    if bad:
        return "config: %s: %s" % bad[0]
    # The hash in HELLO is that of the canonical form: other bytes (MicroPython's json also
    # takes a document cut short) would announce a hash the gateway never pushed.
    if hash_of(cfg) != config_hash:
        return "config not in canonical form"
    try:
        os.rename(path, path + ".bak")
    except OSError:
        pass
    os.rename(tmp, path)
    return None


def write(tmp, cfg):
    with open(tmp, "w") as f:
        _emit(cfg, f.write)


def chunk(st, config_hash, total, offset, data):
    """A CONFIG chunk (contracts 1.3), written straight to flash; the last one applies the
    whole: RESULT ok and the station re-initialises, or RESULT rejected and why."""
    tmp = st.path + ".new"
    if total > _MAX_CONFIG:
        st.result(wire.CONFIG, wire.RESULT_REJECTED, "config too long")
        return
    if offset == 0:
        st._cfg_got = 0
    if offset != st._cfg_got:  # a chunk lost: the gateway starts again
        st._cfg_got = 0
        st.result(wire.CONFIG, wire.RESULT_BAD_REQUEST, "chunk out of order")
        return
    with open(tmp, "wb" if offset == 0 else "ab") as f:
        f.write(data)
    st._cfg_got += len(data)
    if st._cfg_got < total:
        return
    st._cfg_got = 0
    why = apply(st.path, tmp, config_hash)
    if why:
        log.e("config rejected:", why)
        try:
            os.remove(tmp)
        except OSError:
            pass
        st.result(wire.CONFIG, wire.RESULT_REJECTED, why)
    else:
        st.result(wire.CONFIG, wire.RESULT_OK)
        st.reload = True

