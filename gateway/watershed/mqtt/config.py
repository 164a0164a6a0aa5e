"""The ``[mqtt]`` table every program that connects to the broker reads: where the broker is
(host, port, prefix) and who the program is to it (username with password, password_file or
password_env: config_reader.py; tls with ca_file, cert_file and key_file). The gateway's
publisher adds keys of its own (gateway/config.py ``GatewayMqttConfig``); the ingest reads just
these. Each program's file documents them with an example.
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields
from typing import Any

from ..config_reader import Table
from ..contracts.mqtt import DEFAULT_PREFIX
from .identity import identity_problem
from .session import Endpoint

__all__ = ["MqttConfig", "read_mqtt"]


@dataclass(frozen=True, slots=True)
class MqttConfig:
    host: str = "127.0.0.1"
    port: int = 1883
    prefix: str = DEFAULT_PREFIX
    username: str = ""  # the program's own id (the broker makes it the client id), or empty
    password: str = field(default="", repr=False)
    # TLS (a program off the broker's host): the broker's certificate is checked against
    # ca_file (empty: the system's CAs) and host; cert_file + key_file: the program's client
    # certificate, CN = its id (deploy/watershed-pki.sh)
    tls: bool = False
    ca_file: str = ""
    cert_file: str = ""
    key_file: str = ""

    def connection(self) -> dict[str, Any]:
        """This table's own fields by name: what a subclass is built from."""
        return {f.name: getattr(self, f.name) for f in fields(MqttConfig)}

    def endpoint(self, client_id: str, **options: Any) -> Endpoint:
        """The session's endpoint for this broker and credentials; ``options``: the rest of
        ``Endpoint`` (keepalive_s, clean_session, will ...)."""
        return Endpoint(self.host, self.port, client_id, username=self.username,
                        password=self.password, tls=self.tls, ca_file=self.ca_file,
                        cert_file=self.cert_file, key_file=self.key_file, **options)


def read_mqtt(t: Table, prefix: str, own_id: str, id_key: str) -> MqttConfig:
    """The connection keys of ``t`` (``prefix`` is read by the caller: its rule is the
    program's), checked together and against the program's id (``id_key`` names where that
    is set, for the message). Leaves ``t`` open: the caller reads its own keys, then rejects
    unknown ones."""
    d = MqttConfig()
    config = MqttConfig(host=t.text("host", d.host), port=t.integer("port", d.port, 1, 65535),
                        prefix=prefix,
                        username=t.text("username", d.username, allow_empty=True),
                        password=t.secret("password"),
                        tls=t.boolean("tls", d.tls),
                        ca_file=t.text("ca_file", d.ca_file, allow_empty=True),
                        cert_file=t.text("cert_file", d.cert_file, allow_empty=True),
                        key_file=t.text("key_file", d.key_file, allow_empty=True))
    if config.password and not config.username:
        t.problem("password", "set without mqtt.username")
    if (config.ca_file or config.cert_file) and not config.tls:
        t.problem("tls", "must be true when ca_file or cert_file is set")
    if bool(config.cert_file) != bool(config.key_file):
        t.problem("key_file", "cert_file and key_file go together")
    mismatch = identity_problem(own_id, config.username, config.cert_file)
    if mismatch is not None:
        t.problem(mismatch[0], f"{mismatch[1]} ({id_key})")
    return config
