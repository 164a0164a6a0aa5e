"""The network-wide channel catalogue (docs/contracts.md, section 1.6).

On the wire a channel is one byte. Numbers 1-127 mean the same quantity at every station, so a
gateway names them without any per-station setup; 128-255 are station-specific and get their
names from the gateway's station registry (``ch<N>`` when it has none).
Names carry their unit, so a hydrologist reading InfluxDB never has to guess it.
"""

CATALOGUE: dict[int, tuple[str, str]] = {
    # river
    1: ("stage_m", "river stage (water level above the gauge datum), metres"),
    2: ("stage_spread_m", "spread (max - min) of the stage burst behind a stage reading, metres"),
    3: ("water_temp_c", "water temperature, degrees Celsius"),
    4: ("discharge_m3s", "discharge, cubic metres per second"),
    5: ("velocity_ms", "surface velocity, metres per second"),
    6: ("conductivity_uscm", "electrical conductivity, microsiemens per centimetre"),
    7: ("range_m", "raw distance from a radar/ultrasonic sensor to the water, metres"),
    8: ("loop_ma", "raw 4-20 mA loop current, milliamperes"),
    # weather
    16: ("rain_mm", "rain total over the reading's interval, millimetres"),
    17: ("air_temp_c", "air temperature, degrees Celsius"),
    18: ("rh_pct", "relative humidity, percent"),
    19: ("pressure_hpa", "barometric pressure, hectopascals"),
    20: ("wind_speed_ms", "wind speed, metres per second"),
    21: ("wind_dir_deg", "wind direction, degrees from north"),
    22: ("wind_gust_ms", "wind gust, metres per second"),
    23: ("solar_wm2", "solar radiation, watts per square metre"),
    24: ("vapour_pressure_kpa", "vapour pressure, kilopascals"),
    # housekeeping
    32: ("battery_v", "battery voltage, volts"),
    33: ("solar_v", "solar panel voltage, volts"),
    34: ("logger_temp_c", "logger enclosure temperature, degrees Celsius"),
    # the station's own report, never a sensor's (firmware/gap.py)
    35: ("not_sampled_s", "a gap: seconds before this reading's time in which the station "
                          "took no sample (power cut, reboot)"),
}

NAMES = {number: name for number, (name, _) in CATALOGUE.items()}
NUMBERS = {name: number for number, name in NAMES.items()}
FIRST_STATION_SPECIFIC = 128
# A station's report of slots it could not sample: every slot in [time - value, time] without a
# reading was not sampled (contracts 1.6). Written by the firmware itself, so no sensor may
# store readings on it.
NOT_SAMPLED = "not_sampled_s"
# Channels whose reading is a total over its interval: a window's value is their sum, not their
# mean (`watershed query --every`, the hourly rollups' default sum_channels).
TOTALS = frozenset({"rain_mm"})


def channel_name(number: int, station_channels: dict[int, str] | None = None) -> str:
    """The name a reading's channel is published and stored under."""
    if station_channels and number in station_channels:
        return station_channels[number]
    return NAMES.get(number, f"ch{number}")
