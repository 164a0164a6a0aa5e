"""What a program may ask of an MQTT connection, and what it hears back.

A ``Session`` is driven by one thread, the program's network thread: it calls ``loop()``, which
does one round of network I/O and reports what happened through the ``Handlers`` on that same
thread, and in between publishes, subscribes and acknowledges. Only ``wake()`` may be called
from another thread. MQTT 3.1.1; QoS as each call says.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import NamedTuple, Protocol

NOT_UTF8_TOPIC = "<topic not UTF-8>"  # a message's topic that cannot be decoded


class Will(NamedTuple):
    """The message the broker publishes for us if we vanish without a clean disconnect."""

    topic: str
    payload: bytes
    qos: int
    retain: bool


@dataclass(frozen=True)
class Endpoint:
    """Where the broker is and how this client presents itself."""

    host: str
    port: int
    client_id: str
    keepalive_s: int = 30
    clean_session: bool = False  # False: the broker keeps our subscriptions and QoS 1 messages
    username: str = ""
    password: str = field(default="", repr=False)
    tls: bool = False
    ca_file: str = ""  # empty: the system's CA certificates
    cert_file: str = ""
    key_file: str = ""
    will: Will | None = None
    max_inflight: int | None = None  # outgoing QoS 1 messages awaiting PUBACK; None: paho's 20
    manual_ack: bool = False  # True: a message is acknowledged only by ack()
    read_ahead: bool = False  # read the socket in large chunks (a stream of many messages)


def _ignore(*args: object) -> None:
    pass


@dataclass(frozen=True)
class Handlers:
    """What the session reports, on the thread that calls ``loop()``."""

    # (session_present, refused): refused is the broker's reason, None when accepted
    on_connect: Callable[[bool, str | None], None] = _ignore
    on_disconnect: Callable[[str], None] = _ignore  # the reason
    on_subscribe: Callable[[list[str]], None] = _ignore  # refusals (empty: all granted)
    on_publish: Callable[[int], None] = _ignore  # the broker acknowledged this message id
    # (topic, payload, qos, retain, mid): a message from the broker
    on_message: Callable[[str, bytes, int, bool, int], None] = _ignore


class Session(Protocol):
    def connect(self) -> None:
        """Open a connection; the broker's answer comes as ``on_connect``. Raises OSError when
        the broker cannot be reached."""

    def is_open(self) -> bool:
        """A connection is open (perhaps not yet accepted)."""

    def loop(self, timeout: float, read_burst: int = 0) -> str | None:
        """One round of network I/O, waiting at most ``timeout`` for traffic; then up to
        ``read_burst`` more reads while messages keep arriving. Returns None, or why the
        connection is lost."""

    def publish(self, topic: str, payload: bytes, qos: int, retain: bool = False) -> int:
        """Queue a message; returns its id (``on_publish`` names it once acknowledged)."""

    def subscribe(self, topic: str, qos: int) -> None: ...

    def ack(self, mids: Sequence[int], qos: int = 1) -> None:
        """Acknowledge received messages (``manual_ack``), in this order, in one write."""

    def disconnect(self) -> None: ...

    def wake(self) -> None:
        """Cut short a ``loop()`` waiting for traffic; any thread."""


SessionFactory = Callable[[Endpoint, Handlers], Session]
