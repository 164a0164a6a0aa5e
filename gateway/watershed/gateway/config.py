"""The gateway's TOML configuration, read into frozen dataclasses.

    [gateway]
    id = "gw-zamora"
    store = "/var/lib/watershed/gateway.db"
    time_sync = true              # push TIME to stations (only while the clock is synchronised)
    time_source = "system"        # who says the clock is synchronised: "system" (the kernel,
                                  # adjtimex) or "assume-synchronised" (clock_sync.py)
    health_file = "/run/watershed/gateway-health.json"  # the health, for `watershed gateway
                                  # status`; on tmpfs: rewritten every health_interval_s
    metrics_port = 0              # Prometheus metrics on 127.0.0.1:PORT (0: none; metrics.py)
    store_quota_bytes = 2_000_000_000   # shed by priority beyond this (never a TTL)
    protected_event_readings = 50_000   # the newest flood-event readings are never shed
    keep_sent_readings = 10_000   # sent readings kept to recognise a reused seq; older pruned
    health_interval_s = 60.0      # retained health message
    registry = "stations.toml"    # optional: the station registry (hydro/registry.py), relative
                                  # to this file; a [[station]] then takes its basin from it

    [mqtt]
    host = "127.0.0.1"
    port = 1883
    prefix = "watershed"
    keepalive_s = 30
    username = "gw-zamora"        # optional, with password (must be the gateway id: below)
    password_file = "mqtt-password"  # or password_env = "VAR", or password = "..." inline
                                  # (refused in a file group/others can read); a relative
                                  # password_file is in $CREDENTIALS_DIRECTORY (systemd
                                  # LoadCredential=), else beside this file
    tls = true                    # optional: ca_file (default: system CAs), cert_file + key_file
    ca_file = "/etc/watershed/ca.pem"
    confirm_grace_s = 10.0        # unconfirmed readings go again on evidence of loss: see below

    [[link]]
    port = "/dev/ttyUSB0"         # a device path or a pyserial URL (socket://, rfc2217://, loop://)
    baud = 9600
    stations = [1, 2]             # bus addresses polled on this link
    poll_interval_s = 5.0
    reply_timeout_s = 2.0
    status_interval_s = 300.0     # ask each station for STATUS this often
    backfill_interval_s = 60.0    # ask a station for its holes at most this often
    wake_preamble = 0             # idle-fill bytes (0x00) sent before each frame: a station
                                  # that sleeps between samples wakes on the first of them
    commit_cycles = 1             # a short DATA's readings wait up to this many poll cycles
                                  # to share one durable commit (SD wear); then the ACK
                                  # (2 in the installed config: half the SD-card writes)

    [[station]]
    id = "SAN-01"
    address = 1                   # binds the address to this id (identity.py); one station per
                                  # address per link
    basin = "santiago"
    channels = { 128 = "stage_backup_m" }

    [[station.alert]]             # edge flood alerts, evaluated at the gateway
    channel = "stage_m"
    above = 3.5                   # threshold crossed upwards, and/or
    rise = 0.5                    # a rise of this much within within_s
    within_s = 3600
    command = ["/usr/local/bin/flood-sms", "+34600000000"]  # optional: also run this locally
                                  # (alert_commands.py), so an uplink outage does not silence it

    [alarms]                      # the gateway's own alarms (alarms.py); every key optional
    disk_free_min_bytes = 200_000_000  # the store's disk has less free than this
    store_quota_fraction = 0.8    # the store takes more than this fraction of its quota
    silent_polls = 12             # a station unheard for this many of its link's poll intervals
    station_clock_max_offset_s = 30.0  # a station's clock this far off (its last STATUS)
    link_error_rate = 0.5         # a station's recent polls unanswered above this share
    no_confirmation_s = 3600.0    # readings wait unconfirmed, no ingest confirmed for this long
    command = ["/usr/local/bin/alarm-sms"]  # optional: run at each alarm raised or cleared

``confirm_grace_s`` (default 10): a reading leaves the gateway's must-deliver set only when an
ingest confirms it is in InfluxDB (contracts.md 2, "Nothing lost, end to end"). One the broker
acknowledged and no ingest confirmed is published again when an ingest confirmed one the broker
acknowledged this much later, or every online ingest has since reported nothing outstanding
(redelivery.py). Raise it on an uplink with seconds of latency.

Every problem is reported at once, each naming its key (``link[0].baud: ...``), and unknown keys
are errors: a misspelt key silently falling back to a default is how a gateway ends up polling
the wrong port for a month.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from types import MappingProxyType
from typing import Any

from watershed.config_reader import ConfigError, Table, load_toml, of_mapping
from watershed.contracts.channels import FIRST_STATION_SPECIFIC, NUMBERS
from watershed.contracts.ids import is_valid_id
from watershed.mqtt.config import MqttConfig, read_mqtt
from watershed.hydro.registry import Registry, registry_key

from . import clock_sync

__all__ = ["AlarmConfig", "AlertRule", "ConfigError", "GatewayConfig", "GatewayMqttConfig",
           "LinkConfig", "StationConfig", "load_config"]

DEFAULT_STORE = "/var/lib/watershed/gateway.db"
# Topic levels where a gateway id goes that the network uses for itself (contracts.mqtt.Topics)
RESERVED_IDS = ("ingest", "deadletter")
DEFAULT_HEALTH_FILE = "/run/watershed/gateway-health.json"  # tmpfs: spares the SD card
UNASSIGNED_BASIN = "unassigned"  # basin of a station that is heard but not in the registry
MIN_ADDRESS, MAX_ADDRESS = 1, 254  # 0 is the gateway, 255 broadcast (contracts 1.1)
DEFAULT_QUOTA_BYTES = 2_000_000_000
MIN_QUOTA_BYTES = 1024 * 1024


@dataclass(frozen=True, slots=True)
class GatewayMqttConfig(MqttConfig):
    """The broker connection (mqtt/config.py) and how the gateway publishes over it: these keys
    are the gateway's alone (the ingest's keepalive is fixed, it publishes no readings)."""

    keepalive_s: int = 30
    max_readings_per_message: int = 50
    max_inflight: int = 20  # messages published and not yet acknowledged (PUBACK)
    reconnect_min_s: float = 0.5
    reconnect_max_s: float = 30.0
    backlog_readings_per_message: int = 500  # a backlog drains in large messages
    # Unconfirmed readings are published again when an ingest confirmed one acknowledged this
    # much later, or has settled everything since (redelivery.py).
    confirm_grace_s: float = 10.0


@dataclass(frozen=True)
class LinkConfig:
    port: str
    baud: int = 9600
    stations: tuple[int, ...] = ()
    poll_interval_s: float = 5.0
    reply_timeout_s: float = 2.0
    status_interval_s: float = 300.0
    backfill_interval_s: float = 60.0
    wake_preamble: int = 0
    commit_cycles: int = 1


@dataclass(frozen=True)
class AlertRule:
    """Alert when ``channel`` crosses ``above`` upwards, or rises by ``rise`` within
    ``within_s`` (either may be None, not both)."""

    channel: str
    above: float | None = None
    rise: float | None = None
    within_s: float = 3600.0
    command: tuple[str, ...] = ()  # run locally when it fires (alert_commands.py); () none


@dataclass(frozen=True)
class AlarmConfig:
    """Thresholds of the gateway's own alarms (alarms.py)."""

    disk_free_min_bytes: int = 200_000_000
    store_quota_fraction: float = 0.8
    silent_polls: int = 12
    station_clock_max_offset_s: float = 30.0
    link_error_rate: float = 0.5
    no_confirmation_s: float = 3600.0
    command: tuple[str, ...] = ()


@dataclass(frozen=True)
class StationConfig:
    id: str
    address: int
    basin: str
    channels: Mapping[int, str] = field(default_factory=lambda: MappingProxyType({}))
    alerts: tuple[AlertRule, ...] = ()


@dataclass(frozen=True)
class GatewayConfig:
    id: str
    store: str = DEFAULT_STORE
    time_sync: bool = True
    store_quota_bytes: int = DEFAULT_QUOTA_BYTES
    protected_event_readings: int = 50_000
    keep_sent_readings: int = 10_000
    health_interval_s: float = 60.0
    time_source: str = clock_sync.SYSTEM
    health_file: str = DEFAULT_HEALTH_FILE
    metrics_port: int = 0
    alarms: AlarmConfig = AlarmConfig()
    mqtt: GatewayMqttConfig = GatewayMqttConfig()
    links: tuple[LinkConfig, ...] = ()
    stations: tuple[StationConfig, ...] = ()

    def station(self, station_id: str) -> StationConfig | None:
        """The registry entry of a station, or None if it is not registered."""
        for station in self.stations:
            if station.id == station_id:
                return station
        return None

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> GatewayConfig:
        """Validate a parsed TOML document; raises ConfigError listing every problem."""
        return cls.from_table(_Table.of(of_mapping(d)))

    @classmethod
    def from_table(cls, root: Table) -> GatewayConfig:
        """Read the root table of a document; raises ConfigError listing every problem."""
        root = _Table.of(root)
        gw = root.table("gateway", required=True)
        gateway_id = gw.ident("id")
        if gateway_id in RESERVED_IDS:
            gw.problem("id", f"{gateway_id!r} is reserved: the topic level <prefix>/v1/"
                             f"{gateway_id}/ is the network's own (docs/contracts.md 2)")
        mqtt = root.table("mqtt")
        mqtt_config = _mqtt(mqtt, gateway_id)
        link_tables = root.tables("link", required=True)
        links = tuple(_link(t) for t in link_tables)
        source = root.problems.source
        registry = registry_key(gw, Path(source).parent if source else None)
        station_tables = root.tables("station")
        stations = tuple(_station(t, registry, gateway_id) for t in station_tables)
        config = cls(
            id=gateway_id,
            store=gw.text("store", DEFAULT_STORE),
            time_sync=gw.boolean("time_sync", True),
            store_quota_bytes=gw.integer("store_quota_bytes", DEFAULT_QUOTA_BYTES,
                                         MIN_QUOTA_BYTES, 1 << 50),
            protected_event_readings=gw.integer("protected_event_readings", 50_000, 0, 1 << 40),
            keep_sent_readings=gw.integer("keep_sent_readings", 10_000, 0, 1 << 40),
            health_interval_s=gw.number("health_interval_s", 60.0, 0.1, 86400),
            time_source=gw.choice("time_source", clock_sync.SOURCES, clock_sync.SYSTEM),
            health_file=gw.text("health_file", DEFAULT_HEALTH_FILE, allow_empty=True),
            metrics_port=gw.integer("metrics_port", 0, 0, 65535),
            alarms=_alarms(root.table("alarms")),
            mqtt=mqtt_config,
            links=links,
            stations=stations,
        )
        for table in (root, gw, mqtt):
            table.reject_unknown()
        _check_unique(zip(link_tables, links), zip(station_tables, stations))
        root.check()
        return config


def load_config(path: str | Path) -> GatewayConfig:
    """Read and validate a TOML file. A relative ``store`` path is taken from the file's folder.
    Raises ConfigError listing every problem as ``file:line: key: message``."""
    path = Path(path)
    config = GatewayConfig.from_table(load_toml(path))
    store = Path(config.store)
    if not store.is_absolute():
        config = replace(config, store=str(path.parent / store))
    health = Path(config.health_file)
    if config.health_file and not health.is_absolute():
        config = replace(config, health_file=str(path.parent / health))
    return config


def missing_files(config: GatewayConfig) -> list[str]:
    """The files the config names that cannot be read on this machine, each named with its key
    (the daemon checks them at start and reload: a missing CA file must say so, not surface
    later as a failed TLS handshake or a store error)."""
    problems = []
    for key in ("ca_file", "cert_file", "key_file"):
        name = getattr(config.mqtt, key)
        if not name:
            continue
        try:
            with open(name, "rb"):
                pass
        except OSError as e:
            problems.append(f"mqtt.{key}: cannot read the TLS file {name}: {e.strerror}")
    return problems


# --- sections -----------------------------------------------------------------------------


def _mqtt(t: _Table, gateway_id: str) -> GatewayMqttConfig:
    # A prefix of several levels is allowed here (the ingest's is one level: ingest/config.py).
    d = GatewayMqttConfig()
    config = GatewayMqttConfig(
        **read_mqtt(t, t.one_level_prefix("prefix", d.prefix), gateway_id,
                    "gateway.id").connection(),
        keepalive_s=t.integer("keepalive_s", d.keepalive_s, 1, 65535),
        max_readings_per_message=t.integer(
            "max_readings_per_message", d.max_readings_per_message, 1, 1000),
        max_inflight=t.integer("max_inflight", d.max_inflight, 1, 1000),
        reconnect_min_s=t.number("reconnect_min_s", d.reconnect_min_s, 0.01, 3600),
        reconnect_max_s=t.number("reconnect_max_s", d.reconnect_max_s, 0.01, 3600),
        backlog_readings_per_message=t.integer(
            "backlog_readings_per_message", d.backlog_readings_per_message, 1, 10_000),
        confirm_grace_s=t.number("confirm_grace_s", d.confirm_grace_s, 0.1, 86400),
    )
    if config.reconnect_max_s < config.reconnect_min_s:
        t.problem("reconnect_max_s", "must not be below mqtt.reconnect_min_s")
    return config


def _link(t: _Table) -> LinkConfig:
    stations = t.addresses("stations")
    config = LinkConfig(
        port=t.text("port"),
        baud=t.integer("baud", LinkConfig.baud, 50, 4_000_000),
        stations=stations,
        poll_interval_s=t.number("poll_interval_s", LinkConfig.poll_interval_s, 0.01, 86400),
        reply_timeout_s=t.number("reply_timeout_s", LinkConfig.reply_timeout_s, 0.01, 60),
        status_interval_s=t.number("status_interval_s", LinkConfig.status_interval_s, 0.01,
                                   86400),
        backfill_interval_s=t.number("backfill_interval_s", LinkConfig.backfill_interval_s,
                                     0.01, 86400),
        wake_preamble=t.integer("wake_preamble", LinkConfig.wake_preamble, 0, 64),
        commit_cycles=t.integer("commit_cycles", LinkConfig.commit_cycles, 1, 60),
    )
    t.reject_unknown()
    return config


def _station(t: _Table, registry: Registry | None, gateway_id: str) -> StationConfig:
    station_id = t.ident("id")
    basin = None
    if registry is not None and station_id:
        info = registry.station(station_id)
        if info is None:
            t.problem("id", f"{station_id!r} is not in the station registry (gateway.registry);"
                            f" known: {', '.join(registry.stations)}")
        else:
            basin = info.basin
            if info.gateways and gateway_id not in info.gateways:
                t.problem("id", f"the station registry gives {station_id!r} to "
                                f"{', '.join(info.gateways)}, not to {gateway_id!r}")
            if t.given("basin") and t.value("basin") != basin:
                t.problem("basin", f"{t.value('basin')!r} differs from the registry's "
                                   f"{basin!r}: name the basin once, there")
    config = StationConfig(
        id=station_id,
        address=t.integer("address", low=MIN_ADDRESS, high=MAX_ADDRESS),
        basin=t.ident("basin", basin) if basin is not None else t.ident("basin"),
        channels=MappingProxyType(t.channel_names("channels")),
        alerts=tuple(_alert(a) for a in t.tables("alert")),
    )
    t.reject_unknown()
    return config


def _alert(t: _Table) -> AlertRule:
    rule = AlertRule(
        channel=t.ident("channel"),
        above=t.optional_number("above"),
        rise=t.optional_number("rise", low=1e-9),
        within_s=t.number("within_s", AlertRule.within_s, 1, 7 * 86400),
        command=t.texts("command"),
    )
    if rule.above is None and rule.rise is None:
        t.problem("above", "an alert needs `above`, `rise` or both")
    t.reject_unknown()
    return rule


def _alarms(t: _Table) -> AlarmConfig:
    d = AlarmConfig()
    config = AlarmConfig(
        disk_free_min_bytes=t.integer("disk_free_min_bytes", d.disk_free_min_bytes, 0, 1 << 50),
        store_quota_fraction=t.number("store_quota_fraction", d.store_quota_fraction, 0.01, 1.0),
        silent_polls=t.integer("silent_polls", d.silent_polls, 1, 1_000_000),
        station_clock_max_offset_s=t.number("station_clock_max_offset_s",
                                            d.station_clock_max_offset_s, 1, 86400 * 365),
        link_error_rate=t.number("link_error_rate", d.link_error_rate, 0.01, 1.0),
        no_confirmation_s=t.number("no_confirmation_s", d.no_confirmation_s, 1, 86400 * 30),
        command=t.texts("command"),
    )
    t.reject_unknown()
    return config


def _check_unique(links: Iterable[tuple[Table, LinkConfig]],
                  stations: Iterable[tuple[Table, StationConfig]]) -> None:
    # Addresses may repeat across links (each bus has its own), ports and station ids may not.
    links, stations = list(links), list(stations)  # each is gone through more than once
    ports: set[str] = set()
    for table, link in links:
        if link.port and link.port in ports:
            table.problem("port", f"{link.port!r} is used by an earlier link")
        ports.add(link.port)
    ids: set[str] = set()
    for table, station in stations:
        if station.id and station.id in ids:
            table.problem("id", f"{station.id!r} is registered twice")
        ids.add(station.id)
    # One station per address per bus: more stations at an address than links polling it
    # means two of them on one bus, which no poll can tell apart (identity.py).
    at: dict[int, list[tuple[Table, str]]] = {}
    for table, station in stations:
        at.setdefault(station.address, []).append((table, station.id))
    for address, entries in at.items():
        buses = sum(address in link.stations for _, link in links)
        if len(entries) > max(buses, 1):
            names = ", ".join(name for _, name in entries)
            entries[-1][0].problem("address", f"{names} are all registered at address {address},"
                                              f" which {buses} link(s) poll: one station per "
                                              "address per link")


# --- the gateway's own kinds of value -----------------------------------------------------


class _Table(Table):
    """The shared typed table, plus the values only the gateway reads."""

    def one_level_prefix(self, key: str, default: str) -> str:
        """The topic prefix: one level, as the ingest parses <prefix>/v1/<gateway>/..."""
        value = self.text(key, default)
        if value and not is_valid_id(value):
            self.problem(key, f"{value!r}: must be one topic level, a valid identifier (no "
                              "'/', wildcards or spaces): the ingest reads <prefix>/v1/...")
        return value

    def addresses(self, key: str) -> tuple[int, ...]:
        value = self.value(key)
        if value is None:
            return ()
        if (not isinstance(value, list) or not value
                or not all(type(a) is int and MIN_ADDRESS <= a <= MAX_ADDRESS for a in value)):
            self.problem(key, f"expected a non-empty list of bus addresses {MIN_ADDRESS}-"
                              f"{MAX_ADDRESS}, got {value!r}")
            return ()
        if len(set(value)) != len(value):
            self.problem(key, f"an address is listed twice: {value}")
        return tuple(value)

    def channel_names(self, key: str) -> dict[int, str]:
        value = self.value(key, {})
        if not isinstance(value, Mapping):
            self.problem(key, f"expected a table of channel number = name, got {value!r}")
            return {}
        names: dict[int, str] = {}
        for number_text, name in value.items():
            where = (*self.path, key, number_text)
            number = int(number_text) if number_text.isdigit() else -1
            if not FIRST_STATION_SPECIFIC <= number <= 255:
                self.problems.add(where, f"station-specific channels are "
                                         f"{FIRST_STATION_SPECIFIC}-255 (1-127 are named by the "
                                         "network catalogue)")
            elif not isinstance(name, str) or not is_valid_id(name):
                self.problems.add(where, f"{name!r} is not a valid channel name")
            elif name in NUMBERS:
                self.problems.add(where, f"{name!r} is the catalogue's name of channel "
                                         f"{NUMBERS[name]}")
            else:
                names[number] = name
        return names
