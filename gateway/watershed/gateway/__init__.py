"""The gateway: polls stations over serial links, stores readings durably, forwards them by MQTT.

    config       TOML -> GatewayConfig
    daemon       Gateway(config).start()/stop()/stats(); run(config_path) for ``watershed gateway``
    link         one serial link's polling thread; framed_port (frames on a port), poller (the
                 exchange with one station; station_session, what it knows of one), identity
                 and address_disputes (who answers at an address), quarantine, runs
                 (sequence-number ranges)
    store        durable SQLite store (a package, one module per concern) of readings, ACK
                 ranges, delivery states, losses, quota, station facts, alerts, bindings;
                 priorities (what a full store gives up first)
    forwarder    store -> MQTT at QoS 1, and what to send again (send_order, redelivery);
                 incoming (confirmations, ingests' statuses, commands from the broker); health
                 (the health message), alerts (flood alert rules), remote (operations from the
                 gateway's cmd topic)
    logs, notify structured log lines; systemd's notify protocol
"""

from .config import (ConfigError, GatewayConfig, GatewayMqttConfig, LinkConfig, StationConfig,
                     load_config)
from .daemon import Gateway, run
from .store import Store

__all__ = ["ConfigError", "Gateway", "GatewayConfig", "GatewayMqttConfig", "LinkConfig",
           "StationConfig", "Store", "load_config", "run"]
