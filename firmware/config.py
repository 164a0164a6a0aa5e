"""Station config on flash: load and validate at boot, canonical bytes and hash, atomic apply.

Imported when needed (boot, a CONFIG frame, the console's ``set``) and dropped afterwards, so
its code does not stay in RAM while the station samples. Building the station on a loaded
config is startup.py's work.

- ``load(path)``: the config at ``path`` if it is JSON and ``check`` (schema.py, the one
  validator) finds nothing wrong; every defect is printed as ``E config: <key>: <what is
  wrong>``. ``bringup.build`` tries the last good one (``path + ".bak"``) next, then safe mode.
- The **canonical** form is the JSON the gateway pushes: keys sorted, no spaces
  (``json.dumps(cfg, sort_keys=True, separators=(",", ":"))``); ``config_hash`` (HELLO) is its
  CRC-32.
- ``apply(path, config_hash)``: a new config already written whole to ``path + ".new"``
  (CONFIG chunks or ``set``) replaces ``path`` only if its CRC-32 equals ``config_hash``, it
  validates and it is in the canonical form: the old one becomes ``path + ".bak"`` and the new
  one is renamed in place (the commit). Until then the old config stays in force.
"""

import json
import os
import sys

import log
import wire
from wire import crc32

_MAX_CONFIG = 8192  # bytes of a config pushed by CONFIG


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


def _read(path):
    try:
        with open(path) as f:
            return json.load(f)
    except OSError:
        return "cannot be read"
    except ValueError:
        return "not valid JSON"


def check(cfg):
    """Every defect of ``cfg`` as ``(key, what)`` (schema.py, loaded only while it checks)."""
    import schema
    try:
        return schema.check(cfg)
    finally:
        del sys.modules["schema"]


def load(path):
    """(config, hash) of the config at ``path`` if it reads and checks clean, else (raw, 0):
    the JSON as read (or None), every defect printed as ``E config: <key>: <what>``."""
    cfg = _read(path)
    if isinstance(cfg, str):
        log.e("config:", path + ":", cfg)
        return None, 0
    bad = check(cfg)
    for key, what in bad:
        log.e("config:", key + ":", what)
    if bad:
        log.e("config:", path + ":", "refused (%d defects)" % len(bad))
        return cfg, 0
    return cfg, hash_of(cfg)


def apply(path, config_hash, backup=True):
    """Commit ``path + ".new"`` as the config at ``path``; None, or why it was rejected (and
    the new file is gone). The config at ``path`` becomes the last good one (``.bak``) only
    with ``backup`` (it is in force): one the station refused never replaces the last good
    one. Called with the station torn down (``renew.rebuild``): the validator needs the
    heap the running station holds."""
    tmp = path + ".new"
    why = _acceptable(tmp, config_hash)
    if why:
        try:
            os.remove(tmp)
        except OSError:
            pass
        return why
    try:
        if backup:
            os.rename(path, path + ".bak")
        else:
            os.remove(path)
    except OSError:
        pass
    os.rename(tmp, path)
    return None


def _acceptable(tmp, config_hash):
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
    bad = check(cfg)
    if bad:
        return "config: %s: %s" % bad[0]
    # The hash in HELLO is that of the canonical form: other bytes (MicroPython's json also
    # takes a document cut short) would announce a hash the gateway never pushed.
    if hash_of(cfg) != config_hash:
        return "config not in canonical form"
    return None


def write(tmp, cfg):
    with open(tmp, "w") as f:
        _emit(cfg, f.write)


def chunk(st, config_hash, total, offset, data):
    """A CONFIG chunk (contracts 1.3), written straight to flash. After the last one the
    station is torn down and the whole is checked (``renew.rebuild``): RESULT ok and the
    new config is in force, or RESULT rejected and why, and the old one stays."""
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
    st.pending = (config_hash, None)  # None: the gateway asked, a RESULT answers
    st.reload = True
