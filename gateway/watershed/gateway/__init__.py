"""The gateway: polls stations over serial links, stores readings durably, forwards them by MQTT.

    config     TOML -> GatewayConfig
    store      durable SQLite store of readings, ACK ranges, station HELLO info
    link       one serial link's polling thread (framed_port: frames on a port; poller: the
               exchange with one station)
    forwarder  store -> MQTT, marking readings sent only on PUBACK
    daemon     Gateway(config).start()/stop()/stats(); run(config_path) for the CLI
"""

from .config import ConfigError, GatewayConfig, LinkConfig, MqttConfig, StationConfig, load_config
from .daemon import Gateway, run
from .store import Store

__all__ = ["ConfigError", "Gateway", "GatewayConfig", "LinkConfig", "MqttConfig", "StationConfig",
           "Store", "load_config", "run"]
