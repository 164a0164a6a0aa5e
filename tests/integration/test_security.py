"""Issue 12's attacks, against the shipped configuration on real servers: deploy/mosquitto's
watershed.conf and watershed.acl on mosquitto (paths and ports aside), deploy/ingest/ingest.toml
with its secrets as systemd hands them over, InfluxDB with authentication on and the users
`watershed influx setup` makes, certificates from deploy/watershed-pki.sh. Each attack fails,
and leaves a line in a log (the broker's, the ingest's) or an error that names it.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import queue
import ssl
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion

from watershed.config_reader import parse_toml
from watershed.contracts.confirm import decode_confirmation
from watershed.contracts.mqtt import MessageReading, ReadingsMessage, Topics, encode_readings
from watershed.devservers import Influxd, Mosquitto, free_port
from watershed.hydro.influx_setup import User, runner, setup, users
from watershed.ingest.config import IngestConfig
from watershed.ingest.owners import REFRESH_S
from watershed.ingest.service import Ingest

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "deploy"
PKI_SCRIPT = DEPLOY / "watershed-pki.sh"
BROKER_NAME = "localhost"  # the name in the broker's certificate; 127.0.0.1 is not in it
TIMEOUT_S = 15.0
INGEST_MQTT_PASSWORD = "mqtt-Pw-4-ingest"
INGEST_INFLUX_PASSWORD = "influx-Pw-4-ingest"
OPERATOR_PASSWORD = "op-Pw-77"
ADMIN = ("admin", "adm1n-Pw-99")
TOPICS = Topics()


def wait_until(condition, what: str, timeout: float = TIMEOUT_S) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.02)


# -- the shipped configuration, on real servers ----------------------------------------------


def pki_script(d: Path, *args: str) -> None:
    subprocess.run([str(PKI_SCRIPT), str(d), *args], check=True, capture_output=True,
                   timeout=60)


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Path:
    d = tmp_path_factory.mktemp("pki")
    pki_script(d, "ca")
    pki_script(d, "server", BROKER_NAME)
    for client in ("gw-a", "gw-b", "ingest-1", "gw-stolen"):
        pki_script(d, "client", client)
    pki_script(d, "revoke", "gw-stolen")
    other = tmp_path_factory.mktemp("other-pki")
    pki_script(other, "ca")
    pki_script(other, "client", "gw-b")  # the right name from the wrong CA
    (d / "other").symlink_to(other)
    return d


def shipped(text: str, replacements: dict[str, str]) -> str:
    for old, new in replacements.items():
        assert old in text, f"the shipped file no longer holds {old!r}"
        text = text.replace(old, new)
    return text


@pytest.fixture
def broker(tmp_path: Path, pki: Path, mosquitto_factory) -> Mosquitto:
    """deploy/mosquitto/watershed.conf and watershed.acl. The dev broker's own listener (on
    broker.port) stands in for the shipped `listener 1883 127.0.0.1`, whose settings follow it;
    the TLS listener is on broker.tls_port, with the revocation list enabled as documented."""
    passwd = tmp_path / "watershed.passwd"
    passwd.touch()
    for user, password in (("ingest-1", INGEST_MQTT_PASSWORD), ("operator", OPERATOR_PASSWORD)):
        subprocess.run(["mosquitto_passwd", "-b", str(passwd), user, password], check=True,
                       capture_output=True, timeout=30)
    tls_port = free_port()
    conf = shipped((DEPLOY / "mosquitto" / "watershed.conf").read_text(), {
        "/etc/mosquitto/watershed.passwd": str(passwd),
        "/etc/mosquitto/watershed.acl": str(DEPLOY / "mosquitto" / "watershed.acl"),
        "/etc/mosquitto/certs/ca.crt": str(pki / "ca.crt"),
        "/etc/mosquitto/certs/server.crt": str(pki / "server.crt"),
        "/etc/mosquitto/certs/server.key": str(pki / "server.key"),
        "# crlfile /etc/mosquitto/certs/ca.crl": f"crlfile {pki / 'ca.crl'}",
        "listener 1883 127.0.0.1\n": "",
        "listener 8883\n": f"listener {tls_port} 127.0.0.1\n",
    })
    server = mosquitto_factory(allow_anonymous=False, config_extra=conf)
    server.tls_port = tls_port
    return server


@pytest.fixture
def credentials(tmp_path: Path, monkeypatch) -> Path:
    """What systemd makes of the ingest unit's LoadCredential= lines."""
    d = tmp_path / "credentials"
    d.mkdir()
    secrets = {"ingest-mqtt-password": INGEST_MQTT_PASSWORD,
               "ingest-influx-password": INGEST_INFLUX_PASSWORD}
    unit = (DEPLOY / "ingest" / "watershed-ingest.service").read_text()
    for name, secret in secrets.items():
        assert f"LoadCredential={name}:" in unit
        (d / name).write_text(secret + "\n")
    monkeypatch.setenv("CREDENTIALS_DIRECTORY", str(d))
    return d


@pytest.fixture
def influx(influxd_factory) -> Influxd:
    return influxd_factory(admin=ADMIN)


def ingest_config(tmp_path: Path, broker: Mosquitto, influx: Influxd, **mqtt: object
                  ) -> IngestConfig:
    """deploy/ingest/ingest.toml with this test's addresses and files."""
    text = shipped((DEPLOY / "ingest" / "ingest.toml").read_text(), {
        'url = "http://127.0.0.1:8086"': f'url = "{influx.url}"',
        "port = 1883": f"port = {broker.port}",
        '"/var/lib/watershed/deadletter.jsonl"': f'"{tmp_path / "deadletter.jsonl"}"',
        "metrics_port = 9102": "metrics_port = 0",  # tests bind no fixed port
    })
    config = IngestConfig.from_table(parse_toml(text, "ingest.toml"), DEPLOY / "ingest")
    config = dataclasses.replace(config, influx=dataclasses.replace(config.influx,
                                                                    flush_interval_s=0.1))
    if mqtt:
        config = dataclasses.replace(config, mqtt=dataclasses.replace(config.mqtt, **mqtt))
    return config


def setup_influx(config: IngestConfig) -> None:
    """`watershed influx setup --admin-user admin`: the ingest's user may only write."""
    run = runner(config, *ADMIN)
    setup(config, run)
    users(config, [User(config.influx.username, "WRITE", config.influx.password)], run)


@pytest.fixture
def started() -> Iterator[list[Ingest]]:
    ingests: list[Ingest] = []
    yield ingests
    for ingest in ingests:
        ingest.stop()


def start_ingest(config: IngestConfig, started: list[Ingest]) -> Ingest:
    ingest = Ingest(config)
    started.append(ingest)
    ingest.start()
    return ingest


class Client:
    """A paho client (a gateway over TLS with its certificate, or a local user), recording
    what happens to it."""

    def __init__(self, port: int, client_id: str, *, cert: Path | None = None,
                 ca: Path | None = None, user: tuple[str, str] | None = None,
                 host: str = BROKER_NAME, max_tls: ssl.TLSVersion | None = None) -> None:
        self.events: queue.Queue = queue.Queue()
        self.disconnects: list[str] = []
        self.inbox: queue.Queue = queue.Queue()
        c = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=client_id,
                        protocol=mqtt.MQTTv311)
        if ca is not None:
            context = ssl.create_default_context(cafile=str(ca))
            if cert is not None:
                context.load_cert_chain(str(cert), str(cert.with_suffix(".key")))
            if max_tls is not None:
                context.minimum_version = context.maximum_version = max_tls
            c.tls_set_context(context)
        if user is not None:
            c.username_pw_set(*user)
        c.on_connect = lambda _c, _u, _f, rc, _p: self.events.put(("connect", rc.value))
        c.on_disconnect = self._on_disconnect
        c.on_subscribe = lambda _c, _u, _m, rcs, _p: self.events.put(("suback", rcs))
        c.on_message = lambda _c, _u, m: self.inbox.put((m.topic, m.payload))
        self.client = c
        try:
            c.connect(host, port)
        except (OSError, ssl.SSLError) as e:
            self.events.put(("refused", str(e)))
            return
        c.loop_start()

    def _on_disconnect(self, _c: object, _u: object, _f: object, rc: object, _p: object) -> None:
        self.disconnects.append(str(rc))
        self.events.put(("disconnect", str(rc)))

    def accepted(self) -> bool:
        try:
            kind, value = self.events.get(timeout=TIMEOUT_S)
        except queue.Empty:
            return False
        return kind == "connect" and value == 0

    def subscribe(self, topic: str) -> None:
        self.client.subscribe(topic, 1)
        assert self.events.get(timeout=TIMEOUT_S)[0] == "suback"

    def publish(self, topic: str, payload: bytes) -> None:
        self.client.publish(topic, payload, qos=1).wait_for_publish(TIMEOUT_S)

    def close(self) -> None:
        self.client.loop_stop()
        self.client.disconnect()


@pytest.fixture
def clients() -> Iterator[list[Client]]:
    made: list[Client] = []
    yield made
    for c in made:
        c.close()


def gateway(broker: Mosquitto, pki: Path, clients: list[Client], name: str,
            client_id: str | None = None, cert: str | None = None) -> Client:
    c = Client(broker.tls_port, client_id or name, cert=pki / f"{cert or name}.crt",
               ca=pki / "ca.crt")
    clients.append(c)
    return c


def readings(gateway_id: str, station: str, seq: int, mantissa: int) -> bytes:
    ts = int(time.time()) - 60
    return encode_readings(ReadingsMessage(gateway_id, station, "santiago", (
        MessageReading(seq=seq, channel="stage_m", ts=ts, mantissa=mantissa, exponent=-3,
                       flags=0),)))


def points(influx: Influxd, station: str) -> list[dict]:
    [result] = influx.query(f"SELECT value, gateway FROM readings WHERE station = '{station}'",
                            db="watershed")
    series = result.get("series", [])
    return [dict(zip(series[0]["columns"], row)) for row in series[0]["values"]] if series else []


# -- the attacks -------------------------------------------------------------------------------


def test_a_gateway_cannot_overwrite_another_gateways_station(
        tmp_path: Path, broker: Mosquitto, pki: Path, credentials: Path, influx: Influxd,
        started: list[Ingest], clients: list[Client], caplog) -> None:
    """Issue: gw-a published SAN-02 (gw-b's, not in the registry) on its own topic and the point
    changed to 99.999. Now SAN-02 is gw-b's (heard from it first), durably: gw-a's readings are
    refused one by one, dead-lettered, confirmed `rejected` to gw-a, counted and alerted, also
    after the ingest restarts."""
    caplog.set_level(logging.INFO)
    config = ingest_config(tmp_path, broker, influx)
    setup_influx(config)
    ingest = start_ingest(config, started)
    wait_until(lambda: ingest.stats()["subscribed"], "the ingest subscribed")
    gw_b = gateway(broker, pki, clients, "gw-b")
    gw_a = gateway(broker, pki, clients, "gw-a")
    assert gw_b.accepted() and gw_a.accepted()
    gw_a.subscribe(TOPICS.confirm("gw-a"))
    gw_b.publish(TOPICS.readings("gw-b", "SAN-02"), readings("gw-b", "SAN-02", 1, 1000))
    wait_until(lambda: points(influx, "SAN-02"), "gw-b's point")
    gw_a.publish(TOPICS.readings("gw-a", "SAN-02"), readings("gw-a", "SAN-02", 1, 99999))
    wait_until(lambda: ingest.stats()["readings_not_owned"] == 1, "gw-a's reading refused")
    confirmation = decode_confirmation(gw_a.inbox.get(timeout=TIMEOUT_S)[1])
    [(station, [(first, end, reason)])] = confirmation.rejected.items()
    assert (station, first, end) == ("SAN-02", 1, 2)
    assert "gateway gw-a does not own station SAN-02 (owned by gw-b" in reason
    assert [(p["value"], p["gateway"]) for p in points(influx, "SAN-02")] == [(1.0, "gw-b")]
    [dead] = [json.loads(line) for line in (tmp_path / "deadletter.jsonl").read_text()
              .splitlines()]
    assert dead["topic"] == TOPICS.readings("gw-a", "SAN-02")
    assert "does not own station SAN-02" in dead["reason"]
    assert ("ALERT gateway gw-a published readings of station SAN-02, which gateway gw-b (since "
            in caplog.text)
    assert ingest.status()["readings"]["not_owned"] == 1

    # Restarted, the ingest still knows SAN-02 is gw-b's (the owners file).
    ingest.stop()
    ingest = start_ingest(config, started)
    wait_until(lambda: ingest.stats()["subscribed"], "the ingest subscribed again")
    gw_a.publish(TOPICS.readings("gw-a", "SAN-02"), readings("gw-a", "SAN-02", 2, 99999))
    wait_until(lambda: ingest.stats()["readings_not_owned"] == 1, "refused after a restart")
    assert [p["value"] for p in points(influx, "SAN-02")] == [1.0]
    # Until an operator moves it: then gw-a's readings are written, and gw-b's refused.
    result = subprocess.run([sys.executable, "-m", "watershed.cli", "station", "move", "SAN-02",
                             "--to", "gw-a", "--config", str(write_config(tmp_path, config)),
                             "--by", "alice"], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    time.sleep(REFRESH_S + 0.1)  # the ingest re-reads the owners file this often
    gw_a.publish(TOPICS.readings("gw-a", "SAN-02"), readings("gw-a", "SAN-02", 3, 2500))
    wait_until(lambda: 2.5 in [p["value"] for p in points(influx, "SAN-02")], "gw-a's point")
    for secret in (INGEST_MQTT_PASSWORD, INGEST_INFLUX_PASSWORD):
        assert secret not in caplog.text and secret not in broker.log_path.read_text()


def write_config(tmp_path: Path, config: IngestConfig) -> Path:
    """A config file naming the same owners file (for `watershed station move`)."""
    path = tmp_path / "ingest-cli.toml"
    path.write_text(f'[ingest]\ndeadletter_file = "{config.ingest.deadletter_file}"\n')
    return path


def test_no_client_can_take_another_ones_client_id(
        tmp_path: Path, broker: Mosquitto, pki: Path, credentials: Path, influx: Influxd,
        started: list[Ingest], clients: list[Client]) -> None:
    """Issue: gw-a connecting as client id `ingest-1` knocked the ingest off 13 times in 8 s, and
    as `gw-b` knocked gw-b off. The broker now makes the certificate's CN (or the user name) the
    client id: the attempts connect as gw-a (and operator), and the victims stay connected."""
    config = ingest_config(tmp_path, broker, influx)
    setup_influx(config)
    ingest = start_ingest(config, started)
    wait_until(lambda: ingest.stats()["subscribed"], "the ingest subscribed")
    victim = gateway(broker, pki, clients, "gw-b")
    assert victim.accepted()
    for stolen_id in ("ingest-1", "gw-b", "ingest-1", "gw-b"):
        attacker = gateway(broker, pki, clients, "gw-a", client_id=stolen_id)
        assert attacker.accepted()
    operator = Client(broker.port, "ingest-1", user=("operator", OPERATOR_PASSWORD))
    clients.append(operator)
    assert operator.accepted()  # on the local listener, as "operator"
    # mosquitto closes a session's older connection while it handles the newer CONNECT, before
    # its CONNACK (awaited above): a round trip of the victim's comes after any such close.
    victim.publish(TOPICS.readings("gw-b", "SAN-09"), readings("gw-b", "SAN-09", 1, 1))
    assert victim.disconnects == []
    assert ingest.stats()["connects"] == 1 and ingest.stats()["connected"]
    log = broker.log_path.read_text()
    assert "as gw-a (p2, c1, k60, u'gw-a')" in log  # every attempt is logged as what it is
    assert "as operator (p2, c1, k60, u'operator')" in log
    assert "Client gw-b already connected" not in log
    assert "Client ingest-1 already connected" not in log


def test_the_tls_listener_takes_only_certificates_of_the_ca(
        broker: Mosquitto, pki: Path, clients: list[Client]) -> None:
    """Issue: the deployed broker accepted a password alone over TLS. Now a client needs a
    certificate from the network's CA, not revoked; TLS 1.2 is a minimum, 1.3 is accepted."""
    tries = {
        "a password, no certificate": Client(broker.tls_port, "x", ca=pki / "ca.crt",
                                             user=("ingest-1", INGEST_MQTT_PASSWORD)),
        "another CA's certificate": Client(broker.tls_port, "gw-b", ca=pki / "ca.crt",
                                           cert=pki / "other" / "gw-b.crt"),
        "a revoked certificate": Client(broker.tls_port, "gw-stolen", ca=pki / "ca.crt",
                                        cert=pki / "gw-stolen.crt"),
    }
    clients.extend(tries.values())
    for what, client in tries.items():
        assert not client.accepted(), what
    log = broker.log_path.read_text()
    assert "peer did not return a certificate" in log
    # the other CA's and the revoked one (valid but for the revocation list)
    assert log.count("certificate verify failed") == 2
    for version in (ssl.TLSVersion.TLSv1_2, ssl.TLSVersion.TLSv1_3):
        ok = Client(broker.tls_port, "gw-a", ca=pki / "ca.crt", cert=pki / "gw-a.crt",
                    max_tls=version)
        clients.append(ok)
        assert ok.accepted(), version
    # A password alone still works only on the local listener, for a local user.
    local = Client(broker.port, "x", user=("ingest-1", INGEST_MQTT_PASSWORD))
    clients.append(local)
    assert local.accepted()


def test_an_oversize_message_disconnects_its_sender(
        broker: Mosquitto, pki: Path, clients: list[Client]) -> None:
    """Issue: a 12 MB message was accepted. Now the sender is cut off, and the log says why."""
    listener = Client(broker.port, "x", user=("operator", OPERATOR_PASSWORD))
    clients.append(listener)
    assert listener.accepted()
    listener.subscribe("watershed/v1/#")
    big = gateway(broker, pki, clients, "gw-a")
    assert big.accepted()
    big.client.publish(TOPICS.readings("gw-a", "SAN-01"), b"x" * 12_000_000, qos=1)
    wait_until(lambda: big.disconnects, "the sender disconnected")
    assert "disconnected due to oversize packet" in broker.log_path.read_text()
    assert listener.inbox.empty()


def test_an_ingest_off_the_broker_host_connects_over_tls_and_checks_the_name(
        tmp_path: Path, broker: Mosquitto, pki: Path, credentials: Path, influx: Influxd,
        started: list[Ingest], caplog) -> None:
    """The ingest over TLS with its own certificate (CN ingest-1), as ingest.toml's commented
    lines say; it checks the broker's name against the broker's certificate."""
    tls = dict(port=broker.tls_port, tls=True, ca_file=str(pki / "ca.crt"),
               cert_file=str(pki / "ingest-1.crt"), key_file=str(pki / "ingest-1.key"),
               username="", password="")
    config = ingest_config(tmp_path, broker, influx, host=BROKER_NAME, **tls)
    setup_influx(config)
    ingest = start_ingest(config, started)
    wait_until(lambda: ingest.stats()["subscribed"], "the ingest subscribed over TLS")
    ingest.stop()
    wrong_name = ingest_config(tmp_path / "2", broker, influx, host="127.0.0.1", **tls)
    ingest = start_ingest(wrong_name, started)
    wait_until(lambda: "IP address mismatch" in caplog.text, "the name check refusing")
    assert ingest.stats()["connects"] == 0


def test_secrets_stay_out_of_config_files_logs_and_errors(tmp_path: Path, pki: Path) -> None:
    """Issue: passwords only inline in 0644 files, a wrong one echoed. Now a readable inline
    secret stops the service (exit 2, the fix in the message), and a gateway whose certificate
    names another gateway does not start either."""
    inline = tmp_path / "ingest.toml"
    inline.write_text('[mqtt]\nusername = "ingest-1"\npassword = "s3cret-Inline"\n')
    inline.chmod(0o644)
    result = subprocess.run([sys.executable, "-m", "watershed.cli", "ingest", "--config",
                             str(inline)], capture_output=True, text=True, timeout=60)
    assert result.returncode == 2
    assert f"chmod 600 {inline}" in result.stderr and "password_file" in result.stderr
    assert "s3cret-Inline" not in result.stderr + result.stdout

    config = tmp_path / "gateway.toml"
    config.write_text(f'[gateway]\nid = "gw-a"\nstore = "{tmp_path}/gw.db"\n'
                      f'[mqtt]\ntls = true\nca_file = "{pki}/ca.crt"\n'
                      f'cert_file = "{pki}/gw-b.crt"\nkey_file = "{pki}/gw-b.key"\n'
                      '[[link]]\nport = "loop://"\nstations = [1]\n')
    result = subprocess.run([sys.executable, "-m", "watershed.cli", "gateway", "--config",
                             str(config)], capture_output=True, text=True, timeout=60)
    assert result.returncode == 2
    # (the gateway logs to stdout, one line per problem)
    assert "the certificate's CN is 'gw-b' but this program's id is 'gw-a'" in result.stdout


def test_a_real_gateway_on_the_shipped_broker_counts_its_refused_readings(
        tmp_path: Path, broker: Mosquitto, pki: Path, credentials: Path, influx: Influxd,
        started: list[Ingest]) -> None:
    """The whole path, as deployed: a gateway daemon with its certificate over TLS, for a
    station another gateway owns. Its readings are refused, confirmed `rejected`, and the
    gateway counts them (loss ledger: rejected_by_ingest) and owes nothing more."""
    from watershed.gateway.config import GatewayConfig
    from watershed.gateway.daemon import Gateway
    from watershed.ingest.owners import Owners
    from watershed_sim.py_station import PyStation, StationBus
    from watershed_sim.serial_link import VirtualSerialLink

    from .test_gateway_end_to_end import SAN, config_dict, sample

    config = ingest_config(tmp_path, broker, influx)
    setup_influx(config)
    Owners(config.ingest.owners_path).claim("SAN-07", "gw-b")  # heard from gw-b before
    ingest = start_ingest(config, started)
    wait_until(lambda: ingest.stats()["subscribed"], "the ingest subscribed")
    with VirtualSerialLink() as link:
        bus = StationBus(link.station_path, PyStation(SAN, "SAN-07"))
        d = config_dict(tmp_path, "gw-a", broker.tls_port, link.gateway_path)
        d["station"][0]["id"] = "SAN-07"
        d["mqtt"].update(host=BROKER_NAME, tls=True, ca_file=str(pki / "ca.crt"),
                         cert_file=str(pki / "gw-a.crt"), key_file=str(pki / "gw-a.key"))
        d["link"][0]["stations"] = [SAN]
        gw = Gateway(GatewayConfig.from_dict(d))
        gw.start()
        try:
            sample(bus, SAN, ["1.234", "2.5"])
            wait_until(lambda: gw.store.counts()["readings_rejected"] == 2,
                       "the gateway counting its refused readings", timeout=30)
            counts = gw.store.counts()
            assert (counts["readings_confirmed"], counts["unsent"], counts["unconfirmed"]) == \
                (0, 0, 0)
        finally:
            gw.stop()
            bus.close()
    assert ingest.stats()["readings_not_owned"] == 2
    assert points(influx, "SAN-07") == []
