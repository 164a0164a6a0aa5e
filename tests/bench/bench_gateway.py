"""Gateway: readings/s from serial decode to PUBACK, drain rate and peak RSS of a 1,000,000-reading
backlog, and CPU use when idle with 50 stations at one reading a minute.

Everything is real but the stations: a private mosquitto (watershed.devservers), the gateway
daemon as its own process (``python -m watershed.cli gateway``, so its RSS and CPU time are its
own), its SQLite store on this machine's disk, and virtual serial links (raw ptys,
hardware/watershed_sim/serial_link.py) to stations simulated in this process with the contract
codec (hardware/watershed_sim/py_station.py). The ptys have no baud rate: the serial figure is
what the gateway's CPU and fsyncs allow, far above a real 9600-baud line (~100 readings/s a
link at 9.25 wire bytes a reading).

Figures on a shared 2-core machine are noisy; targets (issue 5): drain >= 20,000 readings/s,
peak RSS <= 40 MB, idle CPU < 1%.
"""

from __future__ import annotations

import os
import sqlite3
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion

from watershed.contracts.mqtt import MessageReading, Topics
from watershed.devservers import Mosquitto
from watershed.gateway.config import LinkConfig
from watershed.gateway.store import Store
from watershed_sim.py_station import T0, PyStation, StationBus
from watershed_sim.serial_link import VirtualSerialLink

from tests.integration.test_gateway_end_to_end import _toml  # the gateway tests' config writer

REPO = Path(__file__).resolve().parents[2]
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")
SHM = Path("/dev/shm")

# (a) serial decode to PUBACK
SERIAL_LINKS = 4
SERIAL_STATIONS_PER_LINK = 4
SERIAL_READINGS_PER_STATION = 8000
# (b), (c) the backlog
BACKLOG_READINGS = 1_000_000
BACKLOG_STATIONS = 50
# (d) idle
IDLE_BUSES = 5
IDLE_STATIONS_PER_BUS = 10
IDLE_WARMUP_S = 8.0
IDLE_MEASURE_S = 45.0
INSTALLED_COMMIT_CYCLES = 2  # deploy/gateway/gateway.example.toml (the default is 1)
IDLE_READING_INTERVAL_S = 60.0
ALIGNED_FIRST_S = 12.0  # the first aligned sampling falls inside the measured window
ALIGNED_INTERVAL_S = 20.0


# --- simulated stations ---------------------------------------------------------------


class Buses:
    """``count`` virtual links with ``per_bus`` stations each, addresses 1..per_bus."""

    def __init__(self, count: int, per_bus: int, prefix: str) -> None:
        self.links = [VirtualSerialLink() for _ in range(count)]
        self.buses = [StationBus(link.station_path,
                                 *(PyStation(addr, f"{prefix}-{b:02d}-{addr:02d}")
                                   for addr in range(1, per_bus + 1)))
                      for b, link in enumerate(self.links)]

    def all_stations(self) -> list[tuple[StationBus, PyStation]]:
        return [(bus, s) for bus in self.buses for s in bus.stations.values()]

    def close(self) -> None:
        for bus in self.buses:
            bus.close()
        for link in self.links:
            link.close()


# --- the gateway process --------------------------------------------------------------


def gateway_config(work: Path, gateway_id: str, broker: Mosquitto, links: list[str],
                   stations_per_link: int, *, link: dict | None = None,
                   mqtt: dict | None = None, registry: list[PyStation] = ()) -> Path:
    d = {
        "gateway": {"id": gateway_id, "store": str(work / f"{gateway_id}.db"),
                    "store_quota_bytes": 8_000_000_000,
                    # On tmpfs, as /run/watershed is on a Pi: its rewrites wear no card.
                    "health_file": str(Path(SHM if SHM.is_dir() else work) / f"{gateway_id}-"
                                       f"{os.getpid()}-health.json")},
        "mqtt": {"host": "127.0.0.1", "port": broker.port, **(mqtt or {})},
        "link": [{"port": path, "stations": list(range(1, stations_per_link + 1)),
                  **(link or {})} for path in links],
    }
    if registry:  # as a field gateway knows its stations (no "not in the registry" lines)
        d["station"] = [{"id": s.station_id, "address": s.addr, "basin": "santiago"}
                        for s in registry]
    path = work / f"{gateway_id}.toml"
    path.write_text(_toml(d))
    return path


def process_cpu_s(pid: int | None) -> float:
    """User + system CPU time of process ``pid`` so far (0 if it is gone)."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / CLOCK_TICKS  # utime, stime (14, 15)


class GatewayProcess:
    """``watershed gateway --config FILE`` (or another service) as a child process, with /proc
    readings of it."""

    def __init__(self, config: Path, service: str = "gateway") -> None:
        self.service = service
        self.log = config.with_suffix(".log")
        env = {**os.environ, "PYTHONPATH": os.pathsep.join(
            [str(REPO / "gateway"), str(REPO / "hardware"), str(REPO)])}
        with self.log.open("wb") as log:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "watershed.cli", service, "--config", str(config)],
                env=env, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
        self.pid = self.process.pid

    def cpu_s(self) -> float:
        """User + system CPU time of the gateway so far."""
        return process_cpu_s(self.pid)

    def memory_kb(self) -> dict[str, int]:
        out = {}
        with open(f"/proc/{self.pid}/status") as f:
            for line in f:
                if line.startswith(("VmHWM:", "VmRSS:")):
                    out[line.split(":")[0]] = int(line.split()[1])
        return out

    def disk_writes(self) -> dict[str, int]:
        """Bytes the gateway caused to be written to storage, and its write calls, so far."""
        with open(f"/proc/{self.pid}/io") as f:
            io = dict(line.split(": ") for line in f.read().splitlines())
        return {"write_bytes": int(io["write_bytes"]), "syscw": int(io["syscw"])}

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(30)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        if self.process.returncode not in (0, -15):
            raise RuntimeError(f"{self.service} exited with {self.process.returncode}: "
                               f"{self.log.read_text()[-2000:]}")


def store_counter(db: Path, name: str) -> int:
    """A counter of the gateway's store, read by a second connection (WAL: never blocks it)."""
    try:
        con = sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=5)
    except sqlite3.OperationalError:
        return 0
    try:
        row = con.execute("SELECT value FROM counters WHERE name = ?", (name,)).fetchone()
    except sqlite3.OperationalError:  # not created yet
        return 0
    finally:
        con.close()
    return 0 if row is None else int(row[0])


class ReadingCounter:
    """A subscriber counting the readings one gateway publishes."""

    def __init__(self, port: int, gateway_id: str) -> None:
        self.readings = 0
        self.messages = 0
        ready = threading.Event()
        self.client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=f"count-{gateway_id}")
        topic = Topics().readings(gateway_id, "+")
        self.client.on_connect = lambda c, *a: c.subscribe(topic, qos=1)
        self.client.on_subscribe = lambda *a: ready.set()
        self.client.on_message = self._on_message
        self.client.connect("127.0.0.1", port, keepalive=30)
        self.client.loop_start()
        if not ready.wait(10):
            raise RuntimeError("counting subscriber could not subscribe")

    def _on_message(self, client: Any, userdata: Any, message: mqtt.MQTTMessage) -> None:
        self.readings += message.payload.count(b'"seq":')
        self.messages += 1

    def close(self) -> None:
        self.client.loop_stop()
        self.client.disconnect()


def wait_for(condition, timeout_s: float, what: str, interval_s: float = 0.02) -> float:
    deadline = time.monotonic() + timeout_s
    while not condition():
        if time.monotonic() > deadline:
            raise TimeoutError(f"timed out after {timeout_s:.0f} s waiting for {what}")
        time.sleep(interval_s)
    return time.monotonic()


# --- (a) serial decode to PUBACK ------------------------------------------------------


def serial_to_puback(work: Path, broker: Mosquitto) -> dict:
    gateway_id = "gw-bench-serial"
    buses = Buses(SERIAL_LINKS, SERIAL_STATIONS_PER_LINK, "SER")
    total = SERIAL_LINKS * SERIAL_STATIONS_PER_LINK * SERIAL_READINGS_PER_STATION
    for _, station in buses.all_stations():
        station.take(SERIAL_READINGS_PER_STATION)
    config = gateway_config(work, gateway_id, broker, [link.gateway_path for link in buses.links],
                            SERIAL_STATIONS_PER_LINK,
                            link={"poll_interval_s": 0.05, "reply_timeout_s": 1.0})
    db = work / f"{gateway_id}.db"
    counter = ReadingCounter(broker.port, gateway_id)
    gateway = GatewayProcess(config)
    try:
        t_first = wait_for(lambda: store_counter(db, "readings_sent") > 0, 30, "a first PUBACK")
        cpu_first = gateway.cpu_s()
        sent_first = store_counter(db, "readings_sent")
        t_all = wait_for(lambda: store_counter(db, "readings_sent") >= total, 120,
                         "every reading acknowledged by the broker")
        cpu_all = gateway.cpu_s()
        wait_for(lambda: counter.readings >= total, 30, "every reading at the subscriber")
        outboxes_left = sum(len(s.outbox) for _, s in buses.all_stations())
    finally:
        gateway.stop()
        counter.close()
        buses.close()
    elapsed = t_all - t_first
    return {
        "serial_links": SERIAL_LINKS,
        "serial_stations": SERIAL_LINKS * SERIAL_STATIONS_PER_LINK,
        "serial_readings": total,
        "serial_seconds": round(elapsed, 2),
        "serial_readings_per_s": round((total - sent_first) / elapsed),
        "serial_gateway_cpu_ms_per_1000_readings": round(
            1e6 * (cpu_all - cpu_first) / max(1, total - sent_first), 1),
        "serial_subscriber_readings": counter.readings,
        "serial_station_outboxes_left": outboxes_left,
    }


# --- (b), (c) a 1,000,000-reading backlog ---------------------------------------------


def fill_backlog(db: Path) -> float:
    started = time.monotonic()
    per_station = BACKLOG_READINGS // BACKLOG_STATIONS
    with Store(db, quota_bytes=None) as store:
        for s in range(BACKLOG_STATIONS):
            readings = [MessageReading(seq, "stage_m", T0 + 900 * seq, 1000 + seq % 997, -3, 0)
                        for seq in range(1, per_station + 1)]
            for i in range(0, per_station, 20_000):
                store.add(f"OLD-{s:02d}", "santiago", readings[i:i + 20_000])
    return time.monotonic() - started


def backlog_drain(work: Path, broker: Mosquitto) -> dict:
    gateway_id = "gw-bench-drain"
    db = work / f"{gateway_id}.db"
    fill_s = fill_backlog(db)
    store_mb = sum(p.stat().st_size for p in work.glob(f"{gateway_id}.db*")) / 1e6
    link = VirtualSerialLink()  # one station on one link, quiet: the drain is all there is
    bus = StationBus(link.station_path, PyStation(1, "LIVE-01"))
    config = gateway_config(work, gateway_id, broker, [link.gateway_path], 1)
    counter = ReadingCounter(broker.port, gateway_id)
    gateway = GatewayProcess(config)
    peak = {"VmHWM": 0, "VmRSS": 0}
    samples = 0

    def sample_memory() -> bool:
        nonlocal samples
        memory = gateway.memory_kb()
        samples += 1
        for key in peak:
            peak[key] = max(peak[key], memory.get(key, 0))
        return False

    try:
        t_spawn = time.monotonic()
        t_first = wait_for(lambda: sample_memory() or store_counter(db, "readings_sent") > 0,
                           60, "the first PUBACK")
        sent_first = store_counter(db, "readings_sent")
        cpu_first = gateway.cpu_s()
        t_all = wait_for(lambda: sample_memory() or store_counter(db, "readings_sent")
                         >= BACKLOG_READINGS, 300, "the whole backlog acknowledged")
        cpu_all = gateway.cpu_s()
        sample_memory()
        t_sub = wait_for(lambda: counter.readings >= BACKLOG_READINGS, 120,
                         "the whole backlog at the subscriber")
    finally:
        gateway.stop()
        counter.close()
        bus.close()
        link.close()
    drained = BACKLOG_READINGS - sent_first
    return {
        "backlog_readings": BACKLOG_READINGS,
        "backlog_fill_s": round(fill_s, 1),
        "backlog_store_mb": round(store_mb, 1),
        "drain_seconds": round(t_all - t_first, 2),
        "drain_readings_per_s": round(drained / (t_all - t_first)),
        "drain_readings_per_s_from_process_start": round(BACKLOG_READINGS / (t_all - t_spawn)),
        "drain_subscriber_readings": counter.readings,
        "drain_subscriber_messages": counter.messages,
        "drain_subscriber_lag_s": round(t_sub - t_all, 2),
        "drain_gateway_cpu_ms_per_1000_readings": round(
            1e6 * (cpu_all - cpu_first) / max(1, drained), 1),
        "target_drain_readings_per_s": 20_000,
        "peak_rss_mb": round(peak["VmHWM"] / 1024, 1),
        "max_sampled_rss_mb": round(peak["VmRSS"] / 1024, 1),
        "rss_samples": samples,
        "target_peak_rss_mb": 40,
    }


# --- (d) idle -------------------------------------------------------------------------


class IdleRun:
    """The idle gateway (50 stations on 5 links, link settings as installed) measured
    over IDLE_MEASURE_S while ``sampler(stations, stop)`` makes the stations take readings."""

    def __init__(self, work: Path, broker: Mosquitto, gateway_id: str, prefix: str,
                 sampler: Any, first_contact: bool = False) -> None:
        """``first_contact``: the sampler's first readings (one per station) are stored before
        the measurement starts."""
        buses = Buses(IDLE_BUSES, IDLE_STATIONS_PER_BUS, prefix)
        self.stations = buses.all_stations()
        stop = threading.Event()
        thread = threading.Thread(target=sampler, args=(self.stations, stop),
                                  name="idle-sampler", daemon=True)
        config = gateway_config(work, gateway_id, broker,
                                [link.gateway_path for link in buses.links],
                                IDLE_STATIONS_PER_BUS, registry=[s for _, s in self.stations],
                                link={"commit_cycles": INSTALLED_COMMIT_CYCLES})
        gateway = GatewayProcess(config)
        db = work / f"{gateway_id}.db"
        try:
            thread.start()
            time.sleep(IDLE_WARMUP_S)  # start-up, first HELLOs and TIME
            deadline = time.monotonic() + 60
            while (first_contact and time.monotonic() < deadline
                   and store_counter(db, "readings_received") < len(self.stations)):
                time.sleep(0.5)
            # Readings taken in (durable before the ACK): the broker's acknowledgements are
            # written in batches (store/delivery.py), so readings_sent in the file lags.
            cpu0, self.t0 = gateway.cpu_s(), time.monotonic()
            received0 = store_counter(db, "readings_received")
            io0 = gateway.disk_writes()
            time.sleep(IDLE_MEASURE_S)
            cpu1, self.t1 = gateway.cpu_s(), time.monotonic()
            self.readings = store_counter(db, "readings_received") - received0
            self.written = gateway.disk_writes()["write_bytes"] - io0["write_bytes"]
            self.cpu_s = cpu1 - cpu0
            self.memory = gateway.memory_kb()
        finally:
            stop.set()
            thread.join(5)
            gateway.stop()
            buses.close()

    @property
    def kb_per_min(self) -> int:
        return round(self.written / 1024 * 60 / (self.t1 - self.t0))

    @property
    def kb_per_reading(self) -> float:
        return round(self.written / 1024 / max(1, self.readings), 1)


def spread_sampler(stations: list, stop: threading.Event) -> None:
    """One reading a minute per station, spread over the minute (the worst case for sharing
    commits: each poll cycle finds a few readings, on one link)."""
    step = IDLE_READING_INTERVAL_S / len(stations)
    # First contact during the warm-up: a gateway met its stations long ago, and a station's
    # first reading writes more (its ACK floor) than every later one.
    for bus, station in stations:
        with bus.lock:
            station.take(1)
    started = time.monotonic() + IDLE_WARMUP_S
    i = 0
    while not stop.wait(max(0.0, started + i * step - time.monotonic())):
        bus, station = stations[i % len(stations)]
        with bus.lock:
            station.take(1)
        i += 1


def aligned_sampler(stations: list, stop: threading.Event) -> None:
    """Every station takes a reading at the same moment, every ALIGNED_INTERVAL_S: schedules
    aligned to the clock (contracts 1.4), as in the field."""
    if stop.wait(ALIGNED_FIRST_S):
        return
    while True:
        for bus, station in stations:
            with bus.lock:
                station.take(1)
        if stop.wait(ALIGNED_INTERVAL_S):
            return


def idle_cpu(work: Path, broker: Mosquitto) -> dict:
    spread = IdleRun(work, broker, "gw-bench-idle", "IDL", spread_sampler, first_contact=True)
    return {
        "idle_stations": len(spread.stations),
        "idle_links": IDLE_BUSES,
        "idle_poll_interval_s": LinkConfig.poll_interval_s,
        "idle_measured_s": round(spread.t1 - spread.t0, 1),
        "idle_readings_forwarded": spread.readings,
        "idle_cpu_percent": round(100 * spread.cpu_s / (spread.t1 - spread.t0), 2),
        # SD wear (issue 15: <= 200 KB/min, <= 2 KB a reading), as the kernel counts it (whole
        # 4 KiB pages dirtied, /proc/PID/io write_bytes). A poll with nothing new writes nothing
        # (store/facts.py: station facts batched once a minute); what a link's stations sent
        # waits for one durable commit every commit_cycles (2, installed) poll cycles, then the
        # ACKs (held_readings.py, link.py), and links' commits made at once are shared
        # (store/group_commit.py); pages of 512 bytes (store/database.py); the broker's
        # acknowledgements are batched every 30 s (store/delivery.py). Spread: one reading a
        # minute per station, spread evenly (a few readings a cycle: the worst case), after
        # each station's first reading (which also sets its ACK floor) in the warm-up.
        "idle_disk_write_kb_per_min": spread.kb_per_min,
        "idle_disk_write_kb_per_reading": spread.kb_per_reading,
        "idle_rss_mb": round(spread.memory["VmRSS"] / 1024, 1),
        "target_idle_cpu_percent": 1,
        "target_idle_disk_write_kb_per_min": 200,
        "target_idle_disk_write_kb_per_reading": 2,
    }


def idle_aligned(work: Path, broker: Mosquitto) -> dict:
    """SD wear when every station samples at once (clock-aligned schedules, as in the field)."""
    aligned = IdleRun(work, broker, "gw-bench-aln", "ALN", aligned_sampler)
    return {
        "aligned_reading_interval_s": ALIGNED_INTERVAL_S,
        "aligned_readings": aligned.readings,
        "aligned_disk_write_kb_per_min": aligned.kb_per_min,
        "aligned_disk_write_kb_per_reading": aligned.kb_per_reading,
    }


def disk_writes_only() -> dict:
    """The SD-wear figures alone (``python -m tests.bench gateway_disk``): both idle runs."""
    return _with_broker(idle_cpu, idle_aligned)


def _with_broker(*parts: Any) -> dict:
    with tempfile.TemporaryDirectory(prefix="bench-gateway-") as tmp:
        work = Path(tmp)
        broker = Mosquitto(work / "mosquitto").start()
        try:
            figures: dict[str, Any] = {}
            for part in parts:
                figures.update(part(work, broker))
        finally:
            broker.stop()
            for health in SHM.glob(f"gw-bench-*-{os.getpid()}-health.json"):
                health.unlink()
    return figures


def run() -> dict:
    figures = _with_broker(serial_to_puback, backlog_drain, idle_cpu, idle_aligned)
    figures["note"] = ("shared 2-core VM, other work running: figures are noisy; store on the VM "
                       "disk (fsync real), not an SD card; ptys have no baud limit")
    return figures
