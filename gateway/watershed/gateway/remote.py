"""Remote operations, taken only from the gateway's own topic ``<prefix>/v1/<gw>/cmd``.

    {"id": "op-1", "op": "config",   "station": "SAN-01", "config": {...}}
    {"id": "op-2", "op": "backfill", "station": "SAN-01", "first_seq": 100, "end_seq": 200}
    {"id": "op-3", "op": "reboot",   "station": "SAN-01"}
    {"id": "op-7", "op": "sample-now", "station": "SAN-01"}
    {"id": "op-8", "op": "config-get", "station": "SAN-01"}
    {"id": "op-4", "op": "quarantine", "action": "list"}
    {"id": "op-5", "op": "quarantine", "action": "release", "quarantine": 3, "to": "SAN-01"}
    {"id": "op-6", "op": "quarantine", "action": "drop", "quarantine": 3}

Each is answered on ``…/cmd/result`` with ``{"v":1, "gateway", "id", "op", "station", "ok",
"status", "detail", "at"}``; ``status`` is ``ok``, ``bad_request`` (the command is wrong),
``unknown_station``, ``link_down``, ``no_answer`` or the station's RESULT (``rejected``,
``busy`` …). ``config-get`` is answered from the store, at once: the wire has no frame that reads
a station's config, so it says the hash the station reported in its last HELLO
(``station_config_hash``) and the config this gateway last pushed to it that the station took
(``config``, ``config_hash``, ``pushed_at``; null if none), and whether the two hashes agree
(``matches``). The operation runs on the station's link thread between polls, so it never
talks over an exchange in progress. ``quarantine`` (quarantine.py) works on the store alone and
is done at once: ``list`` answers with ``entries``, ``release`` with ``readings``, ``new`` and
``duplicate``, ``drop`` with ``readings`` and ``lost``; one that cannot be done (no such open
entry, a station with no readings yet) is ``rejected``.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable, Sequence
from typing import Any

from watershed.contracts import wire
from watershed.contracts.mqtt import PAYLOAD_VERSION

from .config import GatewayConfig
from .framed_port import FramedPort
from .link import SerialLink
from .poller import Poller
from .quarantine import Quarantine, QuarantineError, describe
from .store import Store

log = logging.getLogger(__name__)

OPERATIONS = ("config", "backfill", "reboot", "sample-now", "config-get")
_COMMAND_CODES = {"reboot": wire.CMD_REBOOT, "sample-now": wire.CMD_SAMPLE_NOW}
QUARANTINE_ACTIONS = ("list", "release", "drop")
_RESULT_NAMES = {wire.RESULT_OK: "ok", wire.RESULT_BAD_REQUEST: "bad_request",
                 wire.RESULT_REJECTED: "rejected", wire.RESULT_BUSY: "busy"}
MAX_BACKFILL_SPAN = 1_000_000


class CommandError(ValueError):
    def __init__(self, status: str, detail: str) -> None:
        super().__init__(detail)
        self.status = status


class RemoteOperations:
    def __init__(self, config: GatewayConfig, links: Sequence[SerialLink],
                 publish_result: Callable[[bytes], None],
                 clock: Callable[[], float] = time.time,
                 quarantine: Quarantine | None = None, store: Store | None = None) -> None:
        self._config = config
        self._store = store
        self._quarantine = quarantine
        self._links = links
        self._publish_result = publish_result
        self._clock = clock

    def handle(self, payload: bytes) -> None:
        """Parse a command and hand it to its station's link (the forwarder's thread: quick)."""
        command: dict[str, Any] = {}
        try:
            command = _json_object(payload)  # so that even a bad command's id is echoed
            if command.get("op") == "quarantine":
                self._on_quarantine(command)
                return
            _check(command)
            if command["op"] == "config-get":
                self._config_get(command)
                return
            link, addr = self._route(command["station"])
        except CommandError as e:
            self._answer(command, e.status, str(e))
            return
        log.info("remote operation %s %s for station %s", command.get("id"), command["op"],
                 command["station"])
        link.submit(lambda port, poller: self._run(command, addr, port, poller))

    def _on_quarantine(self, command: dict[str, Any]) -> None:
        action = command.get("action")
        entry: Any = command.get("quarantine")
        to: Any = command.get("to")
        if self._quarantine is None or action not in QUARANTINE_ACTIONS:
            raise CommandError("bad_request", f"action: expected one of "
                                              f"{', '.join(QUARANTINE_ACTIONS)}")
        if action != "list" and type(entry) is not int:
            raise CommandError("bad_request", "quarantine: expected an entry id")
        if action == "release" and not isinstance(to, str):
            raise CommandError("bad_request", "to: expected a station id")
        try:
            if action == "list":
                entries = [describe(e) for e in self._quarantine.entries()]
                self._answer(command, "ok", f"{len(entries)} open", entries=entries)
            elif action == "release":
                done = self._quarantine.release(entry, to)
                self._answer(command, "ok", f"released to {to}", **done)
            else:
                done = self._quarantine.drop(entry)
                self._answer(command, "ok", "dropped", **done)
        except QuarantineError as e:
            self._answer(command, "rejected", str(e))

    def _config_get(self, command: dict[str, Any]) -> None:
        station = command["station"]
        if self._config.station(station) is None:
            raise CommandError("unknown_station", f"station {station!r} is not in the registry")
        if self._store is None:
            raise CommandError("bad_request", "config-get needs the gateway's store")
        info = self._store.station(station)
        reported = None if info is None else info.config_hash
        pushed = self._store.pushed_config(station)
        body: dict[str, Any] = {"station_config_hash": reported, "config": None,
                                "config_hash": None, "pushed_at": None}
        if pushed is not None:
            body.update(config=json.loads(pushed.config), config_hash=pushed.config_hash,
                        pushed_at=int(pushed.pushed_at))
        body["matches"] = pushed is not None and pushed.config_hash == reported
        detail = ("no HELLO heard from it yet" if reported is None else
                  "the config this gateway pushed last" if body["matches"] else
                  "its config was not pushed by this gateway (set locally or elsewhere)")
        self._answer(command, "ok", detail, **body)

    def _route(self, station: str) -> tuple[SerialLink, int]:
        registered = self._config.station(station)
        if registered is None:
            raise CommandError("unknown_station", f"station {station!r} is not in the registry")
        links = [link for link in self._links if link.polls_address(registered.address)]
        # Where one address is on several buses, the link that has heard this station wins.
        links.sort(key=lambda link: link.station_at(registered.address) != station)
        if not links:
            raise CommandError("unknown_station", f"no link polls address {registered.address}")
        return links[0], registered.address

    def _run(self, command: dict[str, Any], addr: int, port: FramedPort | None,
             poller: Poller) -> None:
        if port is None:
            self._answer(command, "link_down", "the serial port is not open")
            return
        op = command["op"]
        if op == "backfill":
            try:
                count = poller.backfill_now(port, addr, command["first_seq"], command["end_seq"])
            except LookupError as e:
                self._answer(command, "no_answer", str(e))
                return
            self._answer(command, "ok", f"{count} readings received", readings=count)
            return
        if op == "config":
            blob = json.dumps(command["config"], sort_keys=True, separators=(",", ":")).encode()
            result = poller.push_config(port, addr, blob)
            if result is not None and result.status == wire.RESULT_OK and self._store is not None:
                self._store.record_pushed_config(command["station"], blob.decode())
        else:
            result = poller.send_command(port, addr, _COMMAND_CODES[op])
        if result is None:
            self._answer(command, "no_answer", "the station did not answer")
        else:
            self._answer(command, _RESULT_NAMES.get(result.status, f"status_{result.status}"),
                         result.detail)

    def _answer(self, command: dict[str, Any], status: str, detail: str, **extra: Any) -> None:
        body = {"v": PAYLOAD_VERSION, "gateway": self._config.id,
                **{k: command.get(k) if isinstance(command.get(k), str | int | None) else None
                   for k in ("id", "op", "station")},
                "ok": status == "ok", "status": status, "detail": detail, **extra,
                "at": int(self._clock())}
        level = logging.INFO if status == "ok" else logging.WARNING
        log.log(level, "remote operation %s %s: %s (%s)", body["id"], body["op"], status, detail)
        self._publish_result(json.dumps(body, separators=(",", ":")).encode())


def _json_object(payload: bytes) -> dict[str, Any]:
    try:
        command = json.loads(payload)
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        raise CommandError("bad_request", f"not JSON: {e}") from e
    if not isinstance(command, dict):
        raise CommandError("bad_request", "a command is a JSON object")
    return command


def _check(command: dict[str, Any]) -> None:
    if command.get("op") not in OPERATIONS:
        raise CommandError("bad_request", f"op: expected one of {', '.join(OPERATIONS)}")
    if not isinstance(command.get("station"), str):
        raise CommandError("bad_request", "station: expected a station id")
    if command["op"] == "config" and not isinstance(command.get("config"), dict):
        raise CommandError("bad_request", "config: expected a JSON object")
    if command["op"] == "backfill":
        first, end = command.get("first_seq"), command.get("end_seq")
        if (type(first) is not int or type(end) is not int or not 1 <= first < end
                or end - first > MAX_BACKFILL_SPAN):
            raise CommandError("bad_request", "first_seq, end_seq: expected integers with "
                                              f"1 <= first_seq < end_seq, at most "
                                              f"{MAX_BACKFILL_SPAN} apart")
