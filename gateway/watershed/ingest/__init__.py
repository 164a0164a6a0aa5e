"""Ingest: MQTT readings -> InfluxDB, at least once, acknowledging a message only once written.

Modules, one job each: ``config`` (TOML), ``messages`` (payload -> line protocol), ``writer``
(InfluxDB v1/v2 HTTP), ``deadletter`` (rejects to a local file), ``batches`` (what the worker
holds and tells the network thread), ``pipeline`` (batching, ordered acks), ``batch_write`` (a
batch written: retries, bad points found by bisection), ``ratings_setup`` (the stations'
ratings, loaded at start), ``owners`` (which gateway owns a station), ``metrics`` and ``stats``
(counters), ``service`` (the threads, ``run``, which ``watershed ingest`` calls). MQTT goes
through the session in ``watershed.mqtt`` (reads ahead, batches acks). Tools that read the
database back are in ``watershed.hydro``.
"""
