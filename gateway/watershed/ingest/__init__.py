"""Ingest: MQTT readings -> InfluxDB, at least once, acknowledging a message only once written.

Modules, one job each: ``config`` (TOML), ``messages`` (payload -> line protocol), ``writer``
(InfluxDB v1/v2 HTTP), ``deadletter`` (rejects to a local file), ``pipeline`` (batching, retries,
ordered acks), ``stats`` (counters), ``service`` (the MQTT client and threads, ``run``).
"""
