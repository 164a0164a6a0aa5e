"""Safe mode: neither the config nor the last good one builds a station (bringup.build).

The station samples nothing but answers the gateway (HELLO with config_hash 0, STATUS with
CONFIG_ERROR) and the console (``config``, ``set`` to repair it), on what of the config is
usable: the board, the address (else 254) and the link. Loaded only then: no heap otherwise.
"""

import sys
import time

import log


def station(path, board, uart, boot_count, synced):
    """The station in safe mode (see the module docstring)."""
    from clock import StationClock
    from outbox import Outbox
    from sampler import Sampler
    from station import Station
    cfg = _raw(path)
    log.e("config: safe mode: nothing is sampled until a config that checks is in force")
    b = cfg.get("board")
    b = b if isinstance(b, dict) else {}
    if board is None:
        board = _board(b)
    addr = cfg.get("address")
    if not (isinstance(addr, int) and 1 <= addr <= 254):
        addr = 254
    ident = cfg.get("station")
    if not isinstance(ident, str) or not 1 <= len(ident) <= 32:
        ident = "unconfigured"
    first = not boot_count
    if first:
        from startup import count_boot
        boot_count = count_boot(board.data_dir)
        sys.modules.pop("startup", None)
    if uart is None:
        uart = _link(board, cfg.get("link"))
    outbox = Outbox(board.data_dir)
    clock = StationClock(board.clock)
    clock.synced = synced
    smp = Sampler(board, [], {}, (0, None, 0, None, 3600))
    st = Station(board, path, addr, ident, 0, clock, outbox, smp, uart, boot_count, first)
    st.config_from = None
    return st


def _raw(path):
    """The config as JSON, whatever it holds, else the last good one's, else {}."""
    import json
    for p in (path, path + ".bak"):
        try:
            with open(p) as f:
                cfg = json.load(f)
            if isinstance(cfg, dict):
                return cfg
        except Exception:
            pass
    return {}


def _board(b):
    """The board of the config's ``board`` object, else this port's with its defaults."""
    port = {"esp32": "esp32", "rp2": "rp2"}.get(sys.platform, "unix")
    for name, cfg in ((b.get("name"), b), (port, {"name": port})):
        try:
            return __import__("hal_" + str(name)).Board(cfg)
        except Exception as e:  # not this port's board, or its config is unusable
            log.e("config: board:", name, repr(e))
    raise OSError("no board")


class _NoLink:
    """No usable link in the config: the console alone answers."""

    def readinto(self, buf, timeout_ms):
        self.waiting(timeout_ms)
        return 0

    def waiting(self, timeout_ms):
        time.sleep_ms(timeout_ms)
        return False

    def write(self, data):
        pass

    def close(self):
        pass


def _link(board, link):
    try:
        if board.name == "unix" and not isinstance(link["port"], str):
            raise ValueError("a port on the unix board is a device path")  # not a descriptor
        return board.uart(link["port"], link.get("baud", 9600))
    except Exception as e:
        log.e("config: link:", repr(e), "- no gateway link in safe mode")
        return _NoLink()
