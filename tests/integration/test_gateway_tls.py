"""The gateway's uplink over TLS with a client certificate, to a real mosquitto that requires one:
readings get through; a gateway that does not trust the broker's certificate never sends a byte
of them and keeps them stored."""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from watershed.devservers import free_port
from watershed.gateway.config import GatewayConfig
from watershed.gateway.daemon import Gateway
from watershed_sim.py_station import PyStation, StationBus
from watershed_sim.serial_link import VirtualSerialLink

from .test_gateway_end_to_end import (
    SAN,
    Subscriber,
    config_dict,
    expected,
    received,
    sample,
    wait_until,
)

pytestmark = pytest.mark.integration  # openssl comes from scripts/install-system-deps.sh


PKI_SCRIPT = Path(__file__).resolve().parents[2] / "deploy" / "watershed-pki.sh"
GATEWAY_ID = "gw-client"  # the CN of its certificate: the broker's name for it


def pki_script(d: Path, *args: str) -> None:
    subprocess.run([str(PKI_SCRIPT), str(d), *args], check=True, capture_output=True,
                   timeout=60)


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Made by deploy/watershed-pki.sh, as deployed."""
    d = tmp_path_factory.mktemp("pki")
    for args in (["ca"], ["server", "localhost", "127.0.0.1"], ["client", GATEWAY_ID]):
        pki_script(d, *args)
    other = tmp_path_factory.mktemp("other-pki")
    pki_script(other, "ca")
    return {"ca": d / "ca.crt", "server_key": d / "server.key", "server_cert": d / "server.crt",
            "client_key": d / f"{GATEWAY_ID}.key", "client_cert": d / f"{GATEWAY_ID}.crt",
            "other_ca": other / "ca.crt"}


@pytest.fixture
def tls_broker(mosquitto_factory, pki: dict[str, Path]):
    """A private mosquitto: its plain listener for the test's subscriber, and a TLS listener
    that requires a client certificate signed by the test CA."""
    tls_port = free_port()
    broker = mosquitto_factory(config_extra=f"""
listener {tls_port} 127.0.0.1
cafile {pki["ca"]}
certfile {pki["server_cert"]}
keyfile {pki["server_key"]}
require_certificate true
""")
    broker.tls_port = tls_port
    return broker


@pytest.fixture
def link() -> Iterator[VirtualSerialLink]:
    with VirtualSerialLink() as vl:
        yield vl


def tls_config(tmp_path: Path, gateway_id: str, port: int, serial: str, ca: Path,
               pki: dict[str, Path]) -> GatewayConfig:
    d = config_dict(tmp_path, gateway_id, port, serial)
    d["link"][0]["stations"] = [SAN]
    d["mqtt"].update(tls=True, ca_file=str(ca), cert_file=str(pki["client_cert"]),
                     key_file=str(pki["client_key"]))
    return GatewayConfig.from_dict(d)


def test_readings_go_over_tls_with_a_client_certificate(
        tmp_path: Path, tls_broker, pki: dict[str, Path], link: VirtualSerialLink) -> None:
    gateway_id = GATEWAY_ID
    bus = StationBus(link.station_path, PyStation(SAN, "SAN-01"))
    subscriber = Subscriber(tls_broker.port, gateway_id)  # on the plain listener
    gateway = Gateway(tls_config(tmp_path, gateway_id, tls_broker.tls_port, link.gateway_path,
                                 pki["ca"], pki))
    gateway.start()
    try:
        sample(bus, SAN, ["1.234", "1.50", "-0.75"])
        wait_until(lambda: set(received(subscriber)) >= set(expected(bus)), timeout_s=30,
                   what="readings over TLS")
        assert received(subscriber) == expected(bus)
        wait_until(lambda: subscriber.gateway_state() == "online", what="online status")
        assert gateway.forwarder.stats()["connect_failures"] == 0
    finally:
        gateway.stop()
        bus.close()
        subscriber.close()


def test_a_broker_whose_certificate_is_not_trusted_gets_nothing(
        tmp_path: Path, tls_broker, pki: dict[str, Path], link: VirtualSerialLink) -> None:
    gateway_id = GATEWAY_ID
    bus = StationBus(link.station_path, PyStation(SAN, "SAN-01"))
    subscriber = Subscriber(tls_broker.port, gateway_id)
    gateway = Gateway(tls_config(tmp_path, gateway_id, tls_broker.tls_port, link.gateway_path,
                                 pki["other_ca"], pki))
    gateway.start()
    try:
        sample(bus, SAN, ["2.0", "2.1"])
        wait_until(bus.outbox_empty, what="the readings stored and acknowledged")
        wait_until(lambda: gateway.forwarder.stats()["connect_failures"] >= 2,
                   what="refused handshakes")
        assert not gateway.forwarder.connected
        assert gateway.store.counts()["unsent"] == 2  # kept, waiting for a broker it trusts
        assert subscriber.readings() == []
    finally:
        gateway.stop()
        bus.close()
        subscriber.close()
