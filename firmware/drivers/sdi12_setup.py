"""SDI-12 commands for installing a sensor: ``a!``, ``aI!``, ``aAb!``, on a master of sdi12.py.

Not imported by the sampling engine (RAM is scarce): the technician's tools import it, use it and
drop it::

    from drivers import sdi12, sdi12_setup
    master = sdi12.SDI12Master(board.sdi12(2))
    sdi12_setup.identify(master, "0")        # b"14OTT HYDRPLS   140..."
    sdi12_setup.change_address(master, "0", "3")
"""

from drivers.sdi12 import _addr

_EIO = 5


def acknowledge(master, addr):
    """``a!``: True if the sensor answers."""
    try:
        return master.command(_addr(addr), b"") == 1
    except OSError:
        return False


def identify(master, addr):
    """``aI!``: the identification text after the address (version, vendor, model...)."""
    n = master.command(_addr(addr), b"I")
    return bytes(master._rx[1:n])


def change_address(master, addr, new):
    """``aAb!``: give the sensor at ``addr`` the address ``new``; OSError if it did not take it."""
    n = master.command(_addr(addr), b"A" + bytes((_addr(new),)))
    if n != 1 or master._rx[0] != _addr(new):
        raise OSError(_EIO)
