"""I2C on the unix/HIL board (hal_unix.py): a register image per device in a file.

``<io_dir>/i2c<bus>_<addr>.bin`` holds up to 256 bytes, each register at its offset, written by
the harness; the firmware's writes go into it too. A missing file is a device that does not
acknowledge (OSError ENODEV). Imported by ``hal_unix.Board.i2c`` only: a station without an I2C
sensor does not carry it.
"""

_ENODEV = 19


class I2C:
    """I2C through register images (see the module docstring), machine.I2C's memory methods."""

    def __init__(self, io_dir, bus):
        self._prefix = "%s/i2c%d_" % (io_dir, bus)

    def _path(self, addr):
        return "%s%02x.bin" % (self._prefix, addr)

    def readfrom_mem_into(self, addr, reg, buf):
        try:
            with open(self._path(addr), "rb") as f:
                f.seek(reg)
                n = f.readinto(buf)
        except OSError:
            raise OSError(_ENODEV)
        for i in range(n, len(buf)):
            buf[i] = 0

    def writeto_mem(self, addr, reg, data):
        try:
            with open(self._path(addr), "r+b") as f:
                f.seek(reg)
                f.write(data)
        except OSError:
            raise OSError(_ENODEV)
