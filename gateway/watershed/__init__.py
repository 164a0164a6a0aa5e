"""watershed: the gateway, the ingest and the tools of the remote watershed monitoring network.

Subpackages: ``contracts`` (wire protocol, MQTT payload, InfluxDB schema: docs/contracts.md),
``gateway`` (serial links -> SQLite store -> MQTT), ``ingest`` (MQTT -> InfluxDB), ``hydro``
(queries, database setup, recompute: tools over what the ingest wrote), ``ratings``
(stage-discharge ratings). Modules: ``cli`` (the ``watershed`` command), ``firmware_build``
(``watershed firmware build``), ``backoff`` (retry delays, for both programs), ``devservers``
(throw-away mosquitto and influxd on loopback, for the simulator and the tests). Package data:
``firmware/`` (the station firmware, a link to the repository's firmware/) and ``data/`` (a real
USGS rating for examples).

The simulator is a package of its own, ``watershed_sim``; nothing here imports it.
"""

__version__ = "0.1.0"
