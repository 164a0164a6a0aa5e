"""The three contracts every stage shares: wire protocol, MQTT payload, InfluxDB schema.

Specified in docs/contracts.md; test vectors in tests/vectors/. Modules: ``wire`` (station <->
gateway frames, a package), ``mqtt`` (gateway -> ingest topics and payloads), ``influx`` (the
InfluxDB schema and line protocol), ``channels`` (the channel catalogue), ``ids`` (the
identifiers every stage carries), ``decimals`` (exact values, mantissa and exponent, as every
contract carries them).
"""
