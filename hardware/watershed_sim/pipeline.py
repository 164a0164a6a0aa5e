"""The whole chain on one machine: simulated stations → gateway → mosquitto → ingest → influxd.

Every part is the real one: the firmware in the MicroPython unix port, the gateway and ingest
of the watershed package, the Debian mosquitto and influxd on loopback ports. Only the ADC
counts and the clock come from the harness. Used by the demo and the end-to-end tests.
"""

from __future__ import annotations

import logging
import math
import threading
import time
import urllib.parse
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from watershed.devservers import Influxd, Mosquitto
from watershed.gateway.config import GatewayConfig
from watershed.gateway.daemon import Gateway
from watershed.ingest.config import IngestConfig
from watershed.ingest.service import Ingest

from .clock import SimClock
from .micropython import compile_firmware
from .report import ChannelReport, compare
from .station_process import SimStation

log = logging.getLogger(__name__)

DEFAULT_DATABASE = "watershed"
GATEWAY_ID = "gw-demo"
BASINS = ("santiago", "mayo-chinchipe", "catamayo-chira")

# Analog channels of a demo station: (channel no, ADC pin, interval s, full scale in units of
# 10**exponent, exponent). Value = raw * full_scale // 65535, exactly, in the firmware.
STAGE = (1, 26, 900, 5000, -3)  # 0-5 m pressure transducer, mm resolution
WATER_TEMP = (3, 27, 900, 4000, -2)  # 0-40 °C, 0.01 °C
BATTERY = (32, 28, 3600, 16500, -3)  # 0-16.5 V divider, mV


def channel_config(spec: tuple[int, int, int, int, int]) -> dict[str, Any]:
    number, pin, interval_s, full_scale, exponent = spec
    return {"no": number, "pin": pin, "interval_s": interval_s, "scale_num": full_scale,
            "scale_den": 65535, "exponent": exponent}


def hydrograph_m(t: float, start: float, station_index: int) -> float:
    """Stage of a flashy headwater river: base flow, then a storm's rise and recession."""
    storm_at = start + 3600 * (1.5 + station_index)
    peak_after_s = 2400.0
    base = 0.42 + 0.05 * station_index
    if t <= storm_at:
        return base
    x = (t - storm_at) / peak_after_s
    return base + 1.9 * x * math.exp(1 - x)


def counts(value: float, full_scale_units: int, exponent: int) -> int:
    return max(0, min(65535, round(value / (full_scale_units * 10.0 ** exponent) * 65535)))


@dataclass
class PipelineSettings:
    workdir: Path
    stations: int = 3
    speed: int = 720
    sim_epoch: int = 0  # 0: the current hour
    poll_interval_s: float = 0.5
    database: str = DEFAULT_DATABASE


@dataclass
class Pipeline:
    settings: PipelineSettings
    mosquitto: Mosquitto | None = None
    influxd: Influxd | None = None
    gateway: Gateway | None = None
    ingest: Ingest | None = None
    stations: list[SimStation] = field(default_factory=list)
    clock: SimClock | None = None
    _stop_environment: threading.Event = field(default_factory=threading.Event)
    _environment: threading.Thread | None = None
    _own_servers: bool = False

    def start(self) -> None:
        """Start everything; servers given at construction (test fixtures) are used as they
        are and left running at stop."""
        s = self.settings
        s.workdir.mkdir(parents=True, exist_ok=True)
        if self.mosquitto is None or self.influxd is None:
            self._own_servers = True
            self.mosquitto = Mosquitto(s.workdir / "mosquitto")
            self.mosquitto.start()
            self.influxd = Influxd(s.workdir / "influxd")
            self.influxd.start()
        self._create_database()
        firmware = compile_firmware(s.workdir / "firmware")
        sim_epoch = s.sim_epoch or int(time.time()) // 3600 * 3600
        self.clock = SimClock(sim_epoch=sim_epoch, speed=s.speed)
        for i in range(s.stations):
            station = SimStation(
                s.workdir / f"station{i + 1}", firmware, self.clock,
                station_id=f"{BASINS[i % 3][:3].upper()}-{i + 1:02d}", address=i + 1,
                basin=BASINS[i % 3],
                channels=[channel_config(c) for c in (STAGE, WATER_TEMP, BATTERY)])
            self.stations.append(station)
            self._drive_sensors(i, station)
            station.start()
        self._environment = threading.Thread(target=self._environment_loop, daemon=True)
        self._environment.start()
        self.gateway = Gateway(self._gateway_config(), clock=self.clock.now)
        self.gateway.start()
        self.ingest = Ingest(self._ingest_config())
        self.ingest.start()

    def _create_database(self) -> None:
        assert self.influxd is not None
        body = urllib.parse.urlencode({"q": f"CREATE DATABASE \"{self.settings.database}\""}).encode()
        urllib.request.urlopen(f"{self.influxd.url}/query", data=body, timeout=10).read()

    def _gateway_config(self) -> GatewayConfig:
        assert self.mosquitto is not None
        return GatewayConfig.from_dict({
            "gateway": {"id": GATEWAY_ID, "store": str(self.settings.workdir / "gateway.db")},
            "mqtt": {"host": "127.0.0.1", "port": self.mosquitto.port},
            "link": [{"port": st.gateway_port, "baud": 9600, "stations": [st.address],
                      "poll_interval_s": self.settings.poll_interval_s, "reply_timeout_s": 1.0}
                     for st in self.stations],
            "station": [{"id": st.station_id, "address": st.address, "basin": st.basin}
                        for st in self.stations],
        })

    def _ingest_config(self) -> IngestConfig:
        assert self.mosquitto is not None and self.influxd is not None
        return IngestConfig.from_dict({
            "ingest": {"id": "ingest-demo",
                       "deadletter_file": str(self.settings.workdir / "deadletter.jsonl")},
            "mqtt": {"host": "127.0.0.1", "port": self.mosquitto.port},
            "influx": {"api": "v1", "url": self.influxd.url, "database": self.settings.database,
                       "flush_interval_s": 0.2},
        })

    # --- environment ------------------------------------------------------------------------

    def _drive_sensors(self, index: int, station: SimStation) -> None:
        assert self.clock is not None
        t = self.clock.now()
        stage = hydrograph_m(t, self.clock.sim_epoch, index)
        station.set_adc(STAGE[1], counts(stage, STAGE[3], STAGE[4]))
        water_c = 14.0 + 3.0 * math.sin(2 * math.pi * (t % 86400) / 86400) - 2.0 * (stage - 0.4)
        station.set_adc(WATER_TEMP[1], counts(water_c, WATER_TEMP[3], WATER_TEMP[4]))
        battery_v = 12.4 + 0.6 * max(0.0, math.sin(2 * math.pi * ((t % 86400) / 86400 - 0.25)))
        station.set_adc(BATTERY[1], counts(battery_v, BATTERY[3], BATTERY[4]))

    def _environment_loop(self) -> None:
        while not self._stop_environment.wait(0.1):
            for i, station in enumerate(self.stations):
                self._drive_sensors(i, station)

    # --- running and checking ---------------------------------------------------------------

    def run_for(self, sim_seconds: float) -> None:
        assert self.clock is not None
        time.sleep(self.clock.wall_seconds(sim_seconds))

    def produced(self) -> dict[str, list[Any]]:
        """What every station has stored so far: the truth to check InfluxDB against. The
        stations keep running, so readings taken later are delivered but not checked."""
        return {st.station_id: list(st.produced) for st in self.stations}

    def report(self, produced: dict[str, list[Any]]) -> list[ChannelReport]:
        assert self.influxd is not None
        return compare(self.influxd.url, self.settings.database, produced)

    def wait_until_stored(self, produced: dict[str, list[Any]],
                          timeout_s: float = 60) -> list[ChannelReport]:
        """Poll InfluxDB until every reading of ``produced`` is there (or the timeout passes)."""
        deadline = time.monotonic() + timeout_s
        while True:
            reports = self.report(produced)
            if all(not r.missing for r in reports) or time.monotonic() > deadline:
                return reports
            time.sleep(0.5)

    def stop(self, keep_servers: bool = False) -> None:
        self._stop_environment.set()
        for station in self.stations:
            station.close()
        if self.gateway:
            self.gateway.stop()
        if self.ingest:
            self.ingest.stop()
        if self._own_servers and not keep_servers:
            for server in (self.mosquitto, self.influxd):
                if server:
                    server.stop()
