"""The one seam between our programs (gateway forwarder, ingest) and an MQTT broker.

``session`` says what a program may ask of a connection (``Session``) and what it hears back
(``Handlers``); ``paho_session`` is the one module that drives paho-mqtt, private parts
included. Tests drive the programs through an in-memory session (tests/fixtures/memory_mqtt.py).
"""

from .session import NOT_UTF8_TOPIC, Endpoint, Handlers, Session, Will

__all__ = ["NOT_UTF8_TOPIC", "Endpoint", "Handlers", "Session", "Will"]
