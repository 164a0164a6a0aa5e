"""Ingest: MQTT readings -> InfluxDB, at least once, acknowledging a message only once written.

Modules, one job each: ``config`` (TOML), ``messages`` (payload -> line protocol), ``writer``
(InfluxDB v1/v2 HTTP), ``deadletter`` (rejects to a local file), ``pipeline`` (batching, retries,
ordered acks), ``ratings_setup`` (the stations' ratings, loaded at start), ``metrics`` and
``stats`` (counters), ``service`` (the threads, ``run``, which ``watershed ingest`` calls). MQTT
goes through the session in ``watershed.mqtt`` (reads ahead, batches acks). Tools that read the database back are in
``watershed.hydro``.
"""
