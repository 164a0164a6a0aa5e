"""The gateway's TOML configuration, read into frozen dataclasses.

    [gateway]
    id = "gw-zamora"
    store = "/var/lib/watershed/gateway.db"
    time_sync = true              # this machine's clock is synchronised (NTP/GPS): push TIME
    store_quota_bytes = 2_000_000_000   # shed by priority beyond this (never a TTL)
    protected_event_readings = 50_000   # the newest flood-event readings are never shed
    keep_sent_readings = 10_000   # sent readings kept to recognise a reused seq; older pruned
    health_interval_s = 60.0      # retained health message

    [mqtt]
    host = "127.0.0.1"
    port = 1883
    prefix = "watershed"
    keepalive_s = 30
    username = "gw-zamora"        # optional, with password
    password = "..."
    tls = true                    # optional: ca_file (default: system CAs), cert_file + key_file
    ca_file = "/etc/watershed/ca.pem"
    require_consumer = true       # publish readings only while the broker holds a retained
                                  # ingest status (<prefix>/v1/ingest/+/status): see below
    replay_window_s = 30.0        # after a reconnect, publish again what the broker acknowledged
                                  # in the last this-many seconds before: see below

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

``require_consumer`` (default true): a broker acknowledges a QoS 1 message that matches no
subscription and drops it, so on a fresh broker readings published before the ingest's persistent
session has subscribed would be lost. With it, readings stay stored until the broker holds a
retained status under ``<prefix>/v1/ingest/+/status`` (any state); alerts are never held. A
consumer other than the ingest (Telegraf, say) keeps a persistent session and publishes such a
retained status itself, or its gateways set this false.

``replay_window_s`` (default 30, 0: off): a broker saves its store every few seconds
(deploy/mosquitto/watershed.conf: ``autosave_interval 5``), so a broker that crashes loses what
it acknowledged since its last save. After any reconnect the gateway therefore publishes again
the readings acknowledged within this window before the last acknowledgement; the ingest writes
a reading twice to the same point. Keep it well above the broker's ``autosave_interval``.

Every problem is reported at once, each naming its key (``link[0].baud: ...``), and unknown keys
are errors: a misspelt key silently falling back to a default is how a gateway ends up polling
the wrong port for a month.
"""

from __future__ import annotations

import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from types import MappingProxyType
from typing import Any

from watershed.contracts.channels import FIRST_STATION_SPECIFIC, NUMBERS
from watershed.contracts.ids import is_valid_id
from watershed.contracts.mqtt import DEFAULT_PREFIX

DEFAULT_STORE = "/var/lib/watershed/gateway.db"
UNASSIGNED_BASIN = "unassigned"  # basin of a station that is heard but not in the registry
MIN_ADDRESS, MAX_ADDRESS = 1, 254  # 0 is the gateway, 255 broadcast (contracts 1.1)
DEFAULT_QUOTA_BYTES = 2_000_000_000
MIN_QUOTA_BYTES = 1024 * 1024


class ConfigError(ValueError):
    """The configuration cannot be used; ``problems`` lists each one, naming its key."""

    def __init__(self, problems: list[str], source: str = "config") -> None:
        self.problems = problems
        super().__init__(f"{source}: " + "; ".join(problems))


@dataclass(frozen=True)
class MqttConfig:
    host: str = "127.0.0.1"
    port: int = 1883
    prefix: str = DEFAULT_PREFIX
    keepalive_s: int = 30
    username: str = ""
    password: str = ""
    max_readings_per_message: int = 50
    max_inflight: int = 20  # messages published and not yet acknowledged (PUBACK)
    reconnect_min_s: float = 0.5
    reconnect_max_s: float = 30.0
    backlog_readings_per_message: int = 500  # a backlog drains in large messages
    tls: bool = False
    ca_file: str = ""  # empty: the system's CA certificates
    cert_file: str = ""  # client certificate, with key_file
    key_file: str = ""
    require_consumer: bool = True  # readings only while a retained ingest status exists
    replay_window_s: float = 30.0  # after a reconnect, acknowledged this recently goes again


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


@dataclass(frozen=True)
class AlertRule:
    """Alert when ``channel`` crosses ``above`` upwards, or rises by ``rise`` within
    ``within_s`` (either may be None, not both)."""

    channel: str
    above: float | None = None
    rise: float | None = None
    within_s: float = 3600.0


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
    mqtt: MqttConfig = MqttConfig()
    links: tuple[LinkConfig, ...] = ()
    stations: tuple[StationConfig, ...] = ()

    def station(self, station_id: str) -> StationConfig | None:
        """The registry entry of a station, or None if it is not registered."""
        for station in self.stations:
            if station.id == station_id:
                return station
        return None

    @classmethod
    def from_dict(cls, d: Mapping[str, Any], source: str = "config") -> GatewayConfig:
        """Validate a parsed TOML document; raises ConfigError listing every problem."""
        problems: list[str] = []
        root = _Table(d, "", problems)
        gw = root.table("gateway", required=True)
        mqtt = root.table("mqtt")
        mqtt_config = MqttConfig(
            host=mqtt.text("host", MqttConfig.host),
            port=mqtt.integer("port", MqttConfig.port, 1, 65535),
            prefix=mqtt.topic_prefix("prefix", MqttConfig.prefix),
            keepalive_s=mqtt.integer("keepalive_s", MqttConfig.keepalive_s, 1, 65535),
            username=mqtt.text("username", "", allow_empty=True),
            password=mqtt.text("password", "", allow_empty=True),
            max_readings_per_message=mqtt.integer(
                "max_readings_per_message", MqttConfig.max_readings_per_message, 1, 1000),
            max_inflight=mqtt.integer("max_inflight", MqttConfig.max_inflight, 1, 1000),
            reconnect_min_s=mqtt.number("reconnect_min_s", MqttConfig.reconnect_min_s, 0.01, 3600),
            reconnect_max_s=mqtt.number("reconnect_max_s", MqttConfig.reconnect_max_s, 0.01, 3600),
            backlog_readings_per_message=mqtt.integer(
                "backlog_readings_per_message", MqttConfig.backlog_readings_per_message, 1,
                10_000),
            tls=mqtt.boolean("tls", False),
            ca_file=mqtt.text("ca_file", "", allow_empty=True),
            cert_file=mqtt.text("cert_file", "", allow_empty=True),
            key_file=mqtt.text("key_file", "", allow_empty=True),
            require_consumer=mqtt.boolean("require_consumer", True),
            replay_window_s=mqtt.number("replay_window_s", MqttConfig.replay_window_s, 0, 86400),
        )
        if mqtt_config.reconnect_max_s < mqtt_config.reconnect_min_s:
            problems.append("mqtt.reconnect_max_s: must not be below mqtt.reconnect_min_s")
        if (mqtt_config.ca_file or mqtt_config.cert_file) and not mqtt_config.tls:
            problems.append("mqtt.tls: must be true when ca_file or cert_file is set")
        if bool(mqtt_config.cert_file) != bool(mqtt_config.key_file):
            problems.append("mqtt.key_file: cert_file and key_file go together")
        if mqtt_config.password and not mqtt_config.username:
            problems.append("mqtt.password: set without mqtt.username")
        links = tuple(_link(t) for t in root.tables("link", required=True))
        stations = tuple(_station(t) for t in root.tables("station"))
        config = cls(
            id=gw.ident("id"),
            store=gw.text("store", DEFAULT_STORE),
            time_sync=gw.boolean("time_sync", True),
            store_quota_bytes=gw.integer("store_quota_bytes", DEFAULT_QUOTA_BYTES,
                                         MIN_QUOTA_BYTES, 1 << 50),
            protected_event_readings=gw.integer("protected_event_readings", 50_000, 0, 1 << 40),
            keep_sent_readings=gw.integer("keep_sent_readings", 10_000, 0, 1 << 40),
            health_interval_s=gw.number("health_interval_s", 60.0, 0.1, 86400),
            mqtt=mqtt_config,
            links=links,
            stations=stations,
        )
        for table in (root, gw, mqtt):
            table.reject_unknown()
        _check_unique(links, stations, problems)
        if problems:
            raise ConfigError(problems, source)
        return config


def load_config(path: str | Path) -> GatewayConfig:
    """Read and validate a TOML file. A relative ``store`` path is taken from the file's folder."""
    path = Path(path)
    try:
        with path.open("rb") as f:
            document = tomllib.load(f)
    except OSError as e:
        raise ConfigError([f"cannot read: {e.strerror or e}"], str(path)) from e
    except tomllib.TOMLDecodeError as e:
        raise ConfigError([f"not valid TOML: {e}"], str(path)) from e
    config = GatewayConfig.from_dict(document, str(path))
    store = Path(config.store)
    if not store.is_absolute():
        config = replace(config, store=str(path.parent / store))
    return config


# --- sections -----------------------------------------------------------------------------


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
    )
    t.reject_unknown()
    return config


def _station(t: _Table) -> StationConfig:
    config = StationConfig(
        id=t.ident("id"),
        address=t.integer("address", None, MIN_ADDRESS, MAX_ADDRESS),
        basin=t.ident("basin"),
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
    )
    if rule.above is None and rule.rise is None:
        t.problem("above", "an alert needs `above`, `rise` or both")
    t.reject_unknown()
    return rule


def _check_unique(links: tuple[LinkConfig, ...], stations: tuple[StationConfig, ...],
                  problems: list[str]) -> None:
    # Addresses may repeat across links (each bus has its own), ports and station ids may not.
    ports: set[str] = set()
    for i, link in enumerate(links):
        if link.port and link.port in ports:
            problems.append(f"link[{i}].port: {link.port!r} is used by an earlier link")
        ports.add(link.port)
    ids: set[str] = set()
    for i, station in enumerate(stations):
        if station.id and station.id in ids:
            problems.append(f"station[{i}].id: {station.id!r} is registered twice")
        ids.add(station.id)
    # One station per address per bus: more stations at an address than links polling it
    # means two of them on one bus, which no poll can tell apart (identity.py).
    at: dict[int, list[str]] = {}
    for station in stations:
        at.setdefault(station.address, []).append(station.id)
    for address, names in at.items():
        buses = sum(address in link.stations for link in links)
        if len(names) > max(buses, 1):
            i = max(i for i, s in enumerate(stations) if s.address == address)
            problems.append(f"station[{i}].address: {', '.join(names)} are all registered at "
                            f"address {address}, which {buses} link(s) poll: one station per "
                            "address per link")


# --- a checked view of one TOML table -----------------------------------------------------

_REQUIRED: Any = object()


class _Table:
    """Reads typed values out of one table, recording a problem (named by its key) per defect.

    A getter that finds a problem returns a harmless placeholder so that the rest of the file
    is still checked and every problem is reported in one go.
    """

    def __init__(self, data: Any, path: str, problems: list[str]) -> None:
        self._data: Mapping[str, Any] = data if isinstance(data, Mapping) else {}
        self._path = path
        self._problems = problems
        self._used: set[str] = set()

    def _key(self, key: str) -> str:
        return f"{self._path}.{key}" if self._path else key

    def _problem(self, key: str, message: str) -> None:
        self._problems.append(f"{self._key(key)}: {message}")

    def _get(self, key: str, default: Any) -> Any:
        self._used.add(key)
        if key in self._data:
            return self._data[key]
        if default is _REQUIRED:
            self._problem(key, "required")
        return default

    def reject_unknown(self) -> None:
        for key in self._data:
            if key not in self._used:
                known = ", ".join(sorted(self._used)) or "none"
                self._problem(key, f"unknown key (known here: {known})")

    def table(self, key: str, required: bool = False) -> _Table:
        value = self._get(key, _REQUIRED if required else {})
        if value is not _REQUIRED and not isinstance(value, Mapping):
            self._problem(key, f"expected a table [{self._key(key)}], got {_kind(value)}")
        return _Table(value, self._key(key), self._problems)

    def tables(self, key: str, required: bool = False) -> list[_Table]:
        value = self._get(key, [])
        if not isinstance(value, list) or not all(isinstance(v, Mapping) for v in value):
            self._problem(key, f"expected tables [[{self._key(key)}]], got {_kind(value)}")
            return []
        if required and not value:
            self._problem(key, f"at least one [[{self._key(key)}]] is required")
        return [_Table(v, f"{self._key(key)}[{i}]", self._problems) for i, v in enumerate(value)]

    def text(self, key: str, default: Any = _REQUIRED, allow_empty: bool = False) -> str:
        value = self._get(key, default)
        if not isinstance(value, str) or (not value and not allow_empty):
            if value is not _REQUIRED:
                self._problem(key, f"expected a non-empty string, got {_kind(value)}")
            return ""
        return value

    def ident(self, key: str) -> str:
        value = self.text(key)
        if value and not is_valid_id(value):
            self._problem(key, f"{value!r} is not a valid identifier (1-32 characters from "
                               "A-Z a-z 0-9 _ . -, starting with a letter or digit)")
        return value

    def topic_prefix(self, key: str, default: str) -> str:
        value = self.text(key, default)
        if value and not all(is_valid_id(level) for level in value.split("/")):
            self._problem(key, f"{value!r}: every topic level must be a valid identifier "
                               "(no empty levels, wildcards or spaces)")
        return value

    def problem(self, key: str, message: str) -> None:
        self._problem(key, message)

    def optional_number(self, key: str, low: float = -1e15, high: float = 1e15) -> float | None:
        value = self._get(key, None)
        if value is None:
            return None
        if type(value) not in (int, float) or not low <= value <= high:
            self._problem(key, f"expected a number from {low:g} to {high:g}, got {_kind(value)}")
            return None
        return float(value)

    def boolean(self, key: str, default: bool) -> bool:
        value = self._get(key, default)
        if not isinstance(value, bool):
            self._problem(key, f"expected true or false, got {_kind(value)}")
            return default
        return value

    def integer(self, key: str, default: int | None, low: int, high: int) -> int:
        value = self._get(key, _REQUIRED if default is None else default)
        if value is _REQUIRED:
            return low
        if type(value) is not int or not low <= value <= high:
            self._problem(key, f"expected an integer from {low} to {high}, got {_kind(value)}")
            return low
        return value

    def number(self, key: str, default: float, low: float, high: float) -> float:
        value = self._get(key, default)
        if type(value) not in (int, float) or not low <= value <= high:
            self._problem(key, f"expected a number from {low} to {high}, got {_kind(value)}")
            return default
        return float(value)

    def addresses(self, key: str) -> tuple[int, ...]:
        value = self._get(key, _REQUIRED)
        if value is _REQUIRED:
            return ()
        if (not isinstance(value, list) or not value
                or not all(type(a) is int and MIN_ADDRESS <= a <= MAX_ADDRESS for a in value)):
            self._problem(key, f"expected a non-empty list of bus addresses {MIN_ADDRESS}-"
                               f"{MAX_ADDRESS}, got {_kind(value)}")
            return ()
        if len(set(value)) != len(value):
            self._problem(key, f"an address is listed twice: {value}")
        return tuple(value)

    def channel_names(self, key: str) -> dict[int, str]:
        value = self._get(key, {})
        if not isinstance(value, Mapping):
            self._problem(key, f"expected a table of channel number = name, got {_kind(value)}")
            return {}
        names: dict[int, str] = {}
        for number_text, name in value.items():
            where = f"{key}.{number_text}"
            number = int(number_text) if number_text.isdigit() else -1
            if not FIRST_STATION_SPECIFIC <= number <= 255:
                self._problem(where, f"station-specific channels are {FIRST_STATION_SPECIFIC}-255 "
                                     "(1-127 are named by the network catalogue)")
            elif not isinstance(name, str) or not is_valid_id(name):
                self._problem(where, f"{name!r} is not a valid channel name")
            elif name in NUMBERS:
                self._problem(where, f"{name!r} is the catalogue's name of channel {NUMBERS[name]}")
            else:
                names[number] = name
        return names


def _kind(value: Any) -> str:
    if value is _REQUIRED:
        return "nothing"
    if isinstance(value, Mapping):
        return "a table"
    return repr(value)
