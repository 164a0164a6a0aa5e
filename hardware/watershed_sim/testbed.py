"""The whole chain on one machine: simulated stations → links → gateway → mosquitto → ingest → influxd.

Every part is the real one: the firmware in the MicroPython unix port, the gateway and ingest
of the watershed package, the Debian mosquitto and influxd on loopback ports. The harness
supplies only what a site would: the sensors' truth (environment or replayed records), the
links between stations and gateway (RS-485 bus or radio, with their faults), power cuts, and
one simulated clock shared by the stations and the gateway, driven by the harness
(clock.HarnessClock): the same scenario stores the same readings however busy the machine is.
A Scenario says what to build.
"""

from __future__ import annotations

import logging
import time
import urllib.parse
import urllib.request
import uuid
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any

from watershed.devservers import Influxd, Mosquitto
from watershed.gateway.config import AlarmConfig, GatewayConfig
from watershed.ingest.config import IngestConfig
from watershed.ingest.service import Ingest
from watershed.ingest.writer import make_writer

from .clock import HarnessClock, StationDrift
from .environment import Catchment, RainEvent, Weather
from .gateway_host import GatewayProcess
from .line_noise import NoiseSettings
from watershed.firmware_build import compile_firmware
from .radio_link import RadioLink, RadioSettings
from .report import ChannelReport, compare, discharge_counts
from .scenario import GatewaySpec, LinkSpec, Scenario, SensorSpec, StationSpec
from .sensor_site import SensorSite
from .shared_bus import SharedBus
from .station_process import SimStation
from .timeline import Timeline
from .trace import MqttTap, RecordingWriter, explain

log = logging.getLogger(__name__)

DEFAULT_DATABASE = "watershed"
GATEWAY_ID = "gw-demo"
SUBSCRIBE_TIMEOUT_S = 30.0  # wall seconds the gateway waits for the ingest's subscription
RUN_UNTIL_LOOK_S = 0.05  # how often run_until looks at the simulated time
BASINS = ("santiago", "mayo-chinchipe", "catamayo-chira")

# Analog channels of a demo station: (channel no, ADC pin, interval s, full scale in units of
# 10**exponent, exponent). Value = raw * full_scale // 65535, exactly, in the firmware.
STAGE = (1, 26, 900, 5000, -3)  # 0-5 m pressure transducer, mm resolution
WATER_TEMP = (3, 27, 900, 4000, -2)  # 0-40 °C, 0.01 °C
BATTERY = (32, 28, 3600, 16500, -3)  # 0-16.5 V divider, mV
_DEMO_SOURCES = {STAGE: "stage_m", WATER_TEMP: "water_temp_c", BATTERY: "battery_v"}

Link = RadioLink | SharedBus


def demo_sensor(spec: tuple[int, int, int, int, int]) -> SensorSpec:
    number, pin, interval_s, full_scale, exponent = spec
    return SensorSpec(entry={"sensor": "analog", "channel": number, "pin": pin,
                             "interval_s": interval_s, "exponent": exponent,
                             "scale_num": full_scale, "scale_den": 65535},
                      sources=(_DEMO_SOURCES[spec],))


def demo_scenario(stations: int = 3, hours: float = 6.0, speed: int = 720,
                  start: int = 0) -> Scenario:
    """The built-in storm: ``stations`` on one RS-485 bus, a storm two hours in."""
    start = start or int(time.time()) // 3600 * 3600
    specs = tuple(
        StationSpec(id=f"{BASINS[i % 3][:3].upper()}-{i + 1:02d}", address=i + 1,
                    basin=BASINS[i % 3], link="bus", sensors=tuple(
                        demo_sensor(c) for c in (STAGE, WATER_TEMP, BATTERY)))
        for i in range(stations))
    storm = RainEvent(start + 2 * 3600, 2 * 3600, 25.0)
    return Scenario(name="demo-storm", path=None, start=start, duration_s=hours * 3600,
                    speed=speed, seed=1, gateway=GatewaySpec(),
                    links=(LinkSpec("bus", "bus", 9600, 0.0, NoiseSettings()),),
                    stations=specs, catchment=Catchment(rain=(storm,)), weather=Weather())


@dataclass
class PipelineSettings:
    """The demo's knobs; ``scenario`` replaces the built-in storm when given."""

    workdir: Path
    stations: int = 3
    speed: int = 720
    sim_epoch: int = 0  # 0: the current hour
    poll_interval_s: float = 0.5
    database: str = DEFAULT_DATABASE
    scenario: Scenario | None = None
    hours: float = 6.0
    trace: bool = True  # record each hop (trace.py) to explain a missing reading

    def resolved(self) -> Scenario:
        if self.scenario is not None:
            return self.scenario
        return demo_scenario(self.stations, self.hours, self.speed, self.sim_epoch)


@dataclass
class Pipeline:
    settings: PipelineSettings
    mosquitto: Mosquitto | None = None
    influxd: Influxd | None = None
    gateway: GatewayProcess | None = None
    ingest: Ingest | None = None
    stations: list[SimStation] = field(default_factory=list)
    clock: HarnessClock | None = None
    links: dict[str, Link] = field(default_factory=dict)
    sites: dict[str, SensorSite] = field(default_factory=dict)  # station id -> its sensors
    scenario: Scenario | None = None
    timeline: Timeline | None = None
    tap: MqttTap | None = None  # every readings message the broker carried, for explain()
    writer: RecordingWriter | None = None  # every line the ingest wrote, for explain()
    _own_servers: bool = False
    # Topic prefix and ingest id: the defaults on servers of its own; on a broker shared with
    # other tests, names of this run's own, so no other test's gateway, queued messages or
    # offline member of the ingests' shared subscription touches this run's readings.
    prefix: str = "watershed"
    ingest_id: str = "ingest-demo"

    def start(self) -> None:
        """Start everything; servers given at construction (test fixtures) are used as they
        are and left running at stop."""
        s = self.settings
        scenario = self.scenario = s.resolved()
        s.workdir.mkdir(parents=True, exist_ok=True)
        if self.mosquitto is None or self.influxd is None:
            self._own_servers = True
            self.mosquitto = Mosquitto(s.workdir / "mosquitto")
            self.mosquitto.start()
            self.influxd = Influxd(s.workdir / "influxd")
            self.influxd.start()
        else:
            if any(o.part != "ingest" for o in scenario.outages):
                raise ValueError(f"scenario {scenario.name}: an outage of the broker or InfluxDB "
                                 "needs servers of its own, not shared ones")
            run = uuid.uuid4().hex[:8]
            self.prefix, self.ingest_id = f"sim{run}", f"ingest-{run}"
        self._create_database()
        if s.trace:
            self.tap = MqttTap("127.0.0.1", self.mosquitto.port, prefix=self.prefix)
            self.tap.start()
        ingest_config = self._ingest_config()
        if s.trace:
            self.writer = RecordingWriter(make_writer(ingest_config.influx))
        self.ingest = Ingest(ingest_config, writer=self.writer)
        self.ingest.start()  # first: it connects and subscribes while the stations boot
        firmware = compile_firmware(s.workdir / "firmware")
        # Time starts a second before the scenario's and stays there while the stations boot (a
        # booting station holds it): their first slot is the scenario's start.
        # Each poll cycle of the gateway moves time (clock.py): by up to speed × the poll
        # interval, so each station is polled that often.
        self.clock = HarnessClock(scenario.start - 1, scenario.speed, s.workdir / "clock",
                                  step_s=scenario.speed * self._poll_interval_s())
        for i, link_spec in enumerate(scenario.links):
            link = self.links[link_spec.name] = self._make_link(link_spec, scenario,
                                                                seed=scenario.seed + 101 * i)
            _tie_to_clock(link, self.clock, link_spec, scenario)
        for spec in scenario.stations:
            site = self.sites[spec.id] = SensorSite(spec, s.workdir / spec.id / "io", self.clock,
                                                    scenario)
            port = self.links[spec.link].port_for(spec.id)
            station = SimStation(
                s.workdir / spec.id, firmware, self.clock, station_id=spec.id,
                address=spec.address, basin=spec.basin,
                channels=spec.entries(site.ports),
                extra=dict(spec.firmware), heap=f"{spec.heap_kb}K",
                drift=(StationDrift(spec.clock_ppm, t0_ms=scenario.start * 1000)
                       if spec.clock_ppm or spec.clock_steps else None),
                port=port, unread=partial(self.links[spec.link].hub.unread, port))
            site.start()
            self.stations.append(station)
            station.start()
        # The ingest's subscription must exist before the gateway publishes anything: a broker
        # keeps a QoS 1 message only for the subscriptions it has when the message arrives, and
        # acknowledges it to the gateway (which then marks it sent) even when there are none.
        # On a fresh broker the gateway's first messages were dropped whenever the ingest's
        # CONNECT + SUBSCRIBE took longer than the first poll (tests/integration/
        # test_sim_pipeline_startup.py).
        self._wait_until_subscribed()
        # The gateway in a process of its own (gateway_host.py), as on a Pi: its links, store
        # and forwarder do not share the harness's interpreter with every device and hub.
        self.gateway = GatewayProcess(self._gateway_config(), self.clock)
        self.gateway.start()
        self.timeline = Timeline(self.clock)
        self.clock.add_hold(self.timeline.next_time)
        for spec, station in zip(scenario.stations, self.stations):
            site = self.sites[spec.id]
            for at, by_s in spec.clock_steps:
                self.timeline.add(at, f"{spec.id} clock steps by {by_s:+g} s",
                                  _clock_step(self.clock, spec.id, by_s))
            for cut in spec.power_cuts:
                self.timeline.add(cut.start, f"{spec.id} power off", _power_off(station, site))
                self.timeline.add(cut.end, f"{spec.id} power on", _power_on(station, site))
            for slip in spec.misnamed:
                self.timeline.add(slip.window.start, f"{spec.id} configured as {slip.claims}",
                                  _configured_as(station, slip.claims))
                self.timeline.add(slip.window.end, f"{spec.id} configured as itself",
                                  _configured_as(station, None))
                self.timeline.add(slip.window.end, f"operator releases {slip.claims}'s "
                                  f"quarantine to {spec.id}",
                                  _release_quarantine(self.gateway, slip.claims, spec.id))
        for outage in scenario.outages:
            down, up = self._outage_actions(outage.part)
            self.timeline.add(outage.window.start, f"{outage.part} down", down)
            self.timeline.add(outage.window.end, f"{outage.part} up", up)
        self.timeline.start()
        self.clock.start()

    def _outage_actions(self, part: str) -> tuple[Any, Any]:
        """How ``part`` goes down and comes up again (scenario.PartOutage)."""
        if part == "ingest":
            return self._stop_ingest, self._start_ingest
        server = self.mosquitto if part == "broker" else self.influxd
        assert server is not None
        return server.kill, server.start

    def _stop_ingest(self) -> None:
        assert self.ingest is not None
        self.ingest.stop()

    def _start_ingest(self) -> None:
        self.ingest = Ingest(self._ingest_config(), writer=self.writer)
        self.ingest.start()

    def _wait_until_subscribed(self, timeout_s: float = SUBSCRIBE_TIMEOUT_S) -> None:
        assert self.ingest is not None
        deadline = time.monotonic() + timeout_s
        while not self.ingest.stats()["subscribed"]:
            if time.monotonic() > deadline:
                raise RuntimeError(f"the ingest has not subscribed to MQTT in {timeout_s:g} s; "
                                   "the gateway is not started, its messages would be dropped")
            time.sleep(0.02)

    def _make_link(self, spec: LinkSpec, scenario: Scenario, seed: int) -> Link:
        assert self.clock is not None
        if spec.kind == "radio":
            return RadioLink(RadioSettings(spec.baud, spec.latency_s, spec.noise),
                             clock=self.clock.now, speed=scenario.speed, seed=seed)
        return SharedBus([st.id for st in scenario.stations_on(spec.name)], baud=spec.baud,
                         noise=spec.noise, clock=self.clock.now, speed=scenario.speed, seed=seed)

    def _create_database(self) -> None:
        assert self.influxd is not None
        body = urllib.parse.urlencode({"q": f"CREATE DATABASE \"{self.settings.database}\""}).encode()
        urllib.request.urlopen(f"{self.influxd.url}/query", data=body, timeout=10).read()

    def _gateway_config(self) -> dict[str, Any]:
        assert self.mosquitto is not None and self.scenario is not None
        scenario = self.scenario
        gw = scenario.gateway
        poll_s = self._poll_interval_s()
        config = {
            # The simulation's clock is the truth here, whatever the host's NTP says.
            "gateway": {"id": GATEWAY_ID, "store": str(self.settings.workdir / "gateway.db"),
                        "time_source": "assume-synchronised",
                        "health_file": str(self.settings.workdir / "gateway-health.json")},
            # Loopback and simulated time: evidence that a reading was lost (the ingest's
            # statuses) comes within a second, so the gateway need not wait the field's 10 s.
            "mqtt": {"host": "127.0.0.1", "port": self.mosquitto.port, "confirm_grace_s": 2.0,
                     "prefix": self.prefix},
            "link": [{"port": self.links[spec.name].gateway_path, "baud": spec.baud,
                      "stations": [st.address for st in scenario.stations_on(spec.name)],
                      "poll_interval_s": poll_s, "reply_timeout_s": gw.reply_timeout_s,
                      **({"status_interval_s": max(gw.status_interval_s / scenario.speed, 0.01)}
                         if gw.status_interval_s else {})}
                     for spec in scenario.links if scenario.stations_on(spec.name)],
            # A station is silent after that many poll intervals on the gateway's clock
            # (simulated: speed × the links' poll interval each), as in the field.
            "alarms": {"silent_polls": min(AlarmConfig.silent_polls * scenario.speed,
                                           1_000_000)},
            "station": [{"id": st.id, "address": st.address, "basin": st.basin,
                         **({"alert": list(st.alerts)} if st.alerts else {})}
                        for st in scenario.stations],
        }
        GatewayConfig.from_dict(config)  # a config it would refuse: said here, not in its process
        return config

    def _poll_interval_s(self) -> float:
        assert self.scenario is not None
        if self.scenario.path is None:
            return self.settings.poll_interval_s
        return self.scenario.gateway.poll_interval_s

    def _ingest_config(self) -> IngestConfig:
        assert self.mosquitto is not None and self.influxd is not None
        return IngestConfig.from_dict({
            "ingest": {"id": self.ingest_id, "status_interval_s": 2.0,
                       "deadletter_file": str(self.settings.workdir / "deadletter.jsonl")},
            "mqtt": {"host": "127.0.0.1", "port": self.mosquitto.port, "prefix": self.prefix},
            "influx": {"api": "v1", "url": self.influxd.url, "database": self.settings.database,
                       "flush_interval_s": 0.2},
            "stations": [{"id": st.id, "ratings": list(st.ratings)}
                         for st in self.scenario.stations if st.ratings] if self.scenario else [],
        })

    # --- running and checking ---------------------------------------------------------------

    def run_for(self, sim_seconds: float) -> None:
        """Sleep while ``sim_seconds`` pass from the scenario's start (or from now, if later)."""
        assert self.clock is not None and self.scenario is not None
        self.run_until(max(self.clock.now(), self.scenario.start) + sim_seconds)

    def run_until(self, sim_time: float) -> None:
        """Sleep until simulated time is ``sim_time``; it goes no further meanwhile."""
        assert self.clock is not None
        self.clock.stop_at(sim_time)
        while self.clock.now() < sim_time:
            time.sleep(RUN_UNTIL_LOOK_S)

    def wait_for_last_slots(self, until: float, timeout_s: float = 30) -> bool:
        """Wait (at most ``timeout_s`` wall seconds) until every running station has printed
        its reading of each sensor's last slot at or before ``until``: a slot due right at the
        end is sampled a moment after the clock gets there, later still on a loaded machine.
        False if some did not come."""
        assert self.scenario is not None
        want = {(station.station_id, channel): (station, int(until) // sensor.interval_s
                                                * sensor.interval_s)
                for spec, station in zip(self.scenario.stations, self.stations)
                if station.running for sensor in spec.sensors for channel in sensor.channels
                if channel}
        deadline = time.monotonic() + timeout_s
        while want:
            for key, (station, slot) in list(want.items()):
                if any(r[1] == key[1] and r[2] >= slot for r in station.produced[-64:]):
                    del want[key]
            if not want or time.monotonic() > deadline:
                break
            time.sleep(0.05)
        if want:
            log.warning("no reading of the last slot yet: %s", sorted(want))
        return not want

    def produced(self, until: float | None = None) -> dict[str, list[Any]]:
        """What every station has stored so far (``until``: stamped at or before that time), the
        truth to check InfluxDB against. Time stops at the run's end (run_until), but a station
        whose clock runs ahead stamps its last readings later: those are delivered, not
        checked, and counted in the log."""
        produced = {st.station_id: [r for r in st.produced if until is None or r[2] <= until]
                    for st in self.stations}
        later = sum(len(st.produced) for st in self.stations) - sum(map(len, produced.values()))
        if later:
            log.info("%d readings stamped after %s are delivered but not checked", later, until)
        return produced

    def report(self, produced: dict[str, list[Any]]) -> list[ChannelReport]:
        assert self.influxd is not None
        return compare(self.influxd.url, self.settings.database, produced)

    def wait_until_stored(self, produced: dict[str, list[Any]],
                          timeout_s: float = 60) -> list[ChannelReport]:
        """Poll InfluxDB until every reading of ``produced`` is there whole (or the timeout
        passes). After the first look only the stations still missing some, or showing some
        in part (report.ChannelReport.partial), are asked again: a month of a fleet is a
        minute of queries, and the last readings of one station in flight at the end cost
        that minute again."""
        deadline = time.monotonic() + timeout_s
        reports = {(r.station, r.channel): r for r in self.report(produced)}
        while True:
            waiting = {station for (station, _), r in reports.items() if r.missing or r.partial}
            if not waiting or time.monotonic() > deadline:
                return list(reports.values())
            time.sleep(1.0)
            for r in self.report({station: produced[station] for station in waiting}):
                reports[(r.station, r.channel)] = r

    def discharge(self, until: float) -> dict[str, dict[str, int]]:
        """Per rated station, the discharge the ingest derived (report.discharge_counts)."""
        assert self.influxd is not None and self.scenario is not None
        rated = [st.id for st in self.scenario.stations if st.ratings]
        return discharge_counts(self.influxd.url, self.settings.database, rated, until)

    def quarantine(self) -> list[dict[str, Any]]:
        """The gateway's quarantine entries, open and settled: kind, ids, readings, outcome."""
        assert self.gateway is not None
        return self.gateway.quarantine_entries()

    def faults_done(self) -> list[tuple[float, str]]:
        """Every fault so far, in time order: the timeline's and the devices' own."""
        done = list(self.timeline.done) if self.timeline else []
        return sorted(done + [e for site in self.sites.values() for e in site.faults_done])

    def firmware_faults(self) -> list[str]:
        """Every station's crashes and out-of-memory lines (SimStation.faults)."""
        return [fault for station in self.stations for fault in station.faults()]

    def explain_missing(self, reports: list[ChannelReport], limit: int = 20) -> list[str]:
        """The trace (trace.py) of each reading the reports miss, from every hop."""
        assert self.influxd is not None
        produced = {(st.station_id, p[0]): p for st in self.stations for p in st.produced}
        missing: dict[str, list[tuple[int, str, int]]] = {}
        for r in reports:
            for seq in r.missing:
                time_ = produced[(r.station, seq)][2] if (r.station, seq) in produced else 0
                missing.setdefault(r.station, []).append((seq, r.channel, time_))
        if not missing:
            return []
        return explain(missing, store_path=str(self.settings.workdir / "gateway.db"),
                       tap=self.tap, writer=self.writer, influx_url=self.influxd.url,
                       database=self.settings.database, limit=limit)

    def link_stats(self) -> dict[str, Any]:
        return {name: link.stats() for name, link in self.links.items()}

    def stop(self, keep_servers: bool = False) -> None:
        if self.clock:
            self.clock.release()  # no gateway thread waits for time from here on
        if self.timeline:
            self.timeline.stop()
        for station in self.stations:
            station.close()
        for site in self.sites.values():
            site.stop()
        if self.gateway:
            self.gateway.stop()
        for link in self.links.values():
            link.close()
        if self.ingest:
            self.ingest.stop()
        if self.clock:
            self.clock.stop()
        if self.tap:
            self.tap.stop()
        if self._own_servers and not keep_servers:
            for server in (self.mosquitto, self.influxd):
                if server:
                    server.stop()


def _tie_to_clock(link: Link, clock: HarnessClock, spec: LinkSpec, scenario: Scenario) -> None:
    """Time holds while the link carries bytes; the gateway's poll cycles on it are a
    barrier; no reply is coming while it carries none, the gateway's end included."""
    clock.add_link(link.gateway_path, {st.address: st.id for st in scenario.stations_on(spec.name)},
                   busy=link.hub.busy, gateway_unread=partial(link.hub.unread, link.gateway_path))


def _clock_step(clock: HarnessClock, station: str, by_s: float) -> Any:
    return lambda: clock.step_station(station, by_s)


def _configured_as(station: SimStation, claims: str | None) -> Any:
    """The station restarts with a config naming ``claims`` (None: its own id)."""
    def reconfigure() -> None:
        station.stop()
        station.claims = claims
        station.start()
    return reconfigure


def _release_quarantine(gateway: GatewayProcess, claimed: str, station: str) -> Any:
    return lambda: gateway.release_quarantine(claimed, station)


def _power_off(station: SimStation, site: SensorSite) -> Any:
    def off() -> None:
        station.stop(kill=True)
        site.power_off()
    return off


def _power_on(station: SimStation, site: SensorSite) -> Any:
    def on() -> None:
        site.power_on()
        station.start()
    return on
