"""The three contracts every stage shares: wire protocol, MQTT payload, InfluxDB schema.

Specified in docs/contracts.md; test vectors in tests/vectors/.
"""
