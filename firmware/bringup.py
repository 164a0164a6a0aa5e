"""Boot only: the station brought up on its config, whatever the config holds.

``build(path)`` tries the config at ``path``, then the last good one (``path + ".bak"``), then
safe mode (safemode.py). Imported by ``station.bring_up`` (and renew.py) while it works and
dropped afterwards, like config.py and startup.py which it imports one at a time.
"""

import gc
import sys

import log


def build(path, board=None, uart=None, boot_count=0, synced=False):
    """The station on the config at ``path``; if it is refused or does not build, on the last
    good one (``path + ".bak"``); if neither, in safe mode (safemode.py: no sampling, the
    console and the gateway answered, STATUS says config error). Never a traceback: a station
    that cannot start cannot be repaired from the office.

    ``board``, ``uart``, ``boot_count`` and ``synced`` are kept from a running station when a
    new config comes into force (the clock stays synchronised). The boot-only modules (config,
    outbox_boot, startup) are dropped after their work, one at a time, so none shares the heap
    with the station running."""
    for p in (path, path + ".bak"):
        import config
        try:
            cfg, config_hash = config.load(p)
        finally:
            del sys.modules["config"]
        if not config_hash:
            continue
        gc.collect()
        try:
            st = _build(cfg, config_hash, path, board, uart, boot_count, synced)
        except Exception as e:  # a bug or a board that refuses: the next config, not a crash
            log.e("config:", p + ":", "does not build:", repr(e))
            cfg = None
            _forget()
            continue
        st.config_from = p
        return st
    cfg = None
    gc.collect()
    import safemode
    try:
        return safemode.station(path, board, uart, boot_count, synced)
    finally:
        del sys.modules["safemode"]


def _forget():
    """Drop the modules a build imports (they come back with the next build) and collect."""
    for name in list(sys.modules):
        if name.startswith("drivers") or name in ("sampler", "outbox", "clock", "startup"):
            del sys.modules[name]
    gc.collect()


def _build(cfg, config_hash, path, board, uart, boot_count, synced):
    """Load the board (``hal_<name>.py``) and the outbox, then build the station on them
    (startup.py)."""
    if board is None:
        board = __import__("hal_" + cfg["board"]["name"]).Board(cfg["board"])
    # The outbox's boot replay (outbox_boot.py, dropped after it), before the drivers load.
    from outbox import Outbox
    ob = cfg.get("outbox", {})
    outbox = Outbox(board.data_dir, ob.get("budget_bytes", 65536), ob.get("segment_records", 128))
    ob = None
    gc.collect()
    import startup
    try:
        return startup.station(cfg, config_hash, path, board, uart, boot_count, outbox, synced)
    except Exception:
        outbox.close()
        raise
    finally:
        del sys.modules["startup"]
