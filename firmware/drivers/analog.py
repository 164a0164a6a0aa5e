"""Analog inputs through the board's ADC: 4–20 mA transducers, battery and solar voltage.

One driver for all three: an ADC count (``read_u16``, 0–65535, the mean of ``samples`` reads)
becomes a value by per-channel calibration in integer arithmetic, so the same count always gives
the same exact decimal::

    value = (offset + count * scale_num // scale_den) × 10**exponent

Examples (3.3 V reference):

- 4–20 mA pressure transducer, 0–5 m, through a 150 Ω shunt (4 mA = 0.6 V = count 11916,
  20 mA = 3.0 V = count 59578): stage in mm = (count − 11916) × 5000 / 47662, so
  ``offset: -1250, scale_num: 5000, scale_den: 47662, exponent: -3`` (the offset term is folded
  in: −11916 × 5000 / 47662 = −1250); ``raw_min: 10725`` (3.6 mA: below is a broken loop,
  MISSING) and ``raw_max: 62556`` (21 mA: above is a fault, MISSING); counts between the fault
  limits and 4/20 mA are flagged OUT_OF_RANGE (``valid_min``/``valid_max``);
- battery through a 1:4 divider: mV = count × 3300 × 4 / 65535: ``scale_num: 13200,
  scale_den: 65535, exponent: -3`` (volts with 3 decimals);
- solar panel the same with its own divider.

The calibration constants are the ones a technician sets per channel after a two-point check.

Config (sensor kind ``"analog"``)::

    {"sensor": "analog", "pin": 34, "channel": 8,
     "offset": 0, "scale_num": 1, "scale_den": 1, "exponent": 0,
     "samples": 4,                          reads averaged (integer mean)
     "raw_min": 0, "raw_max": 65535,        outside: sensor fault, MISSING
     "valid_min": 0, "valid_max": 65535}    outside (but within raw_*): OUT_OF_RANGE
"""

import wire


class Analog:
    def __init__(self, adc, channel, offset=0, scale_num=1, scale_den=1, exponent=0, samples=4,
                 raw_min=0, raw_max=65535, valid_min=0, valid_max=65535):
        if scale_den <= 0 or samples < 1:
            raise ValueError("analog: scale_den and samples must be positive")
        self.adc = adc
        self.channel = channel
        self.channels = (channel,)
        self.offset = offset
        self.scale_num = scale_num
        self.scale_den = scale_den
        self.exponent = exponent
        self.samples = samples
        self.raw_min = raw_min
        self.raw_max = raw_max
        self.valid_min = valid_min
        self.valid_max = valid_max
        self.last_raw = -1

    def raw(self):
        total = 0
        for _ in range(self.samples):
            total += self.adc.read_u16()
        return total // self.samples

    def value(self, count):
        return self.offset + count * self.scale_num // self.scale_den

    def read(self):
        count = self.raw()
        self.last_raw = count
        if count < self.raw_min or count > self.raw_max:
            return [(self.channel, 0, 0, wire.MISSING)]
        flags = 0 if self.valid_min <= count <= self.valid_max else wire.OUT_OF_RANGE
        return [(self.channel, self.value(count), self.exponent, flags)]


def from_config(cfg, board):
    return Analog(board.adc(cfg["pin"]), cfg["channel"], cfg.get("offset", 0),
                  cfg.get("scale_num", 1), cfg.get("scale_den", 1), cfg.get("exponent", 0),
                  cfg.get("samples", 4), cfg.get("raw_min", 0), cfg.get("raw_max", 65535),
                  cfg.get("valid_min", 0), cfg.get("valid_max", 65535))
