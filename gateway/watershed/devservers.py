"""Launch real, throw-away mosquitto and influxd servers on 127.0.0.1.

Used by `watershed demo` and by the test suite. Everything a server writes (config, data, logs)
lives under its `workdir`; ports are picked once and kept across restarts, so a restarted server
comes back at the same address with the same data.

Stdlib only, so importing this module never needs the servers or any third-party package.
"""

from __future__ import annotations

import base64
import json
import os
import pwd
import shutil
import signal
import socket
import subprocess
import time
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path
from types import TracebackType
from typing import Any, Self

__all__ = ["MissingDependency", "ServerStartError", "Mosquitto", "Influxd", "free_port"]

LOCALHOST = "127.0.0.1"
# Debian installs the daemons in sbin, which is not on an ordinary user's PATH.
_EXTRA_SEARCH_PATH = ("/usr/sbin", "/sbin", "/usr/bin")


class MissingDependency(RuntimeError):
    """A server binary is not installed; the message says how to install it."""


class ServerStartError(RuntimeError):
    """A server was launched but did not become ready; the message holds its log tail."""


def free_port() -> int:
    """A currently free TCP port on 127.0.0.1 (the OS picks it; a tiny reuse race is accepted)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((LOCALHOST, 0))
        return int(sock.getsockname()[1])


def _accepts_connections(port: int) -> bool:
    try:
        with socket.create_connection((LOCALHOST, port), timeout=0.5):
            return True
    except OSError:
        return False


class _DevServer:
    """Shared lifecycle: write config, Popen, poll readiness, stop/kill/restart."""

    name: str  # executable name, also used for file names in workdir
    debian_package: str

    host = LOCALHOST

    def __init__(self, workdir: Path, port: int | None = None, binary: str | None = None) -> None:
        self.workdir = Path(workdir).resolve()
        self.port = port if port is not None else free_port()
        self._binary = binary
        self._process: subprocess.Popen[bytes] | None = None

    # -- subclass hooks ------------------------------------------------------------------------

    def _write_config(self) -> Path:
        raise NotImplementedError

    def _command(self, binary: str, config: Path) -> list[str]:
        raise NotImplementedError

    def _is_ready(self) -> bool:
        raise NotImplementedError

    # -- public API ----------------------------------------------------------------------------

    @property
    def log_path(self) -> Path:
        return self.workdir / f"{self.name}.log"

    @property
    def running(self) -> bool:
        return self._process is not None and self._process.poll() is None

    @property
    def pid(self) -> int | None:
        return self._process.pid if self.running and self._process else None

    def start(self, timeout: float = 20.0) -> Self:
        """Launch the server and return once it serves requests."""
        if self.running:
            raise RuntimeError(f"{self.name} is already running on port {self.port}")
        binary = self._find_binary()
        if _accepts_connections(self.port):
            # Otherwise the readiness probe would happily talk to the foreign process.
            raise ServerStartError(f"{self.name}: port {self.host}:{self.port} is already in use")
        self.workdir.mkdir(parents=True, exist_ok=True)
        config = self._write_config()
        with open(self.log_path, "ab") as log:  # append: keep earlier runs' logs across restarts
            self._process = subprocess.Popen(
                self._command(binary, config),
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                cwd=self.workdir,
                # Own session: a Ctrl-C meant for the demo must not kill the servers before the
                # demo has shut down in order; stop() ends them.
                start_new_session=True,
            )
        self._wait_until_ready(timeout)
        return self

    def stop(self, timeout: float = 10.0) -> None:
        """Graceful shutdown (SIGTERM); SIGKILL if it does not exit within `timeout`."""
        process = self._process
        if process is None or process.poll() is not None:
            return
        process.terminate()
        try:
            process.wait(timeout)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()

    def kill(self) -> None:
        """SIGKILL: simulate a crash (no shutdown handlers, no final save)."""
        process = self._process
        if process is None or process.poll() is not None:
            return
        process.kill()
        process.wait()

    def restart(self, timeout: float = 20.0) -> Self:
        """Stop if still running, then start again on the same port with the same data."""
        self.stop()
        return self.start(timeout)

    def log_tail(self, lines: int = 30) -> str:
        try:
            text = self.log_path.read_text(errors="replace")
        except FileNotFoundError:
            return "(no log written)"
        return "\n".join(text.splitlines()[-lines:])

    def __enter__(self) -> Self:
        return self if self.running else self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    def __repr__(self) -> str:
        state = "running" if self.running else "stopped"
        return f"<{type(self).__name__} {self.host}:{self.port} {state} workdir={self.workdir}>"

    # -- internals -----------------------------------------------------------------------------

    def _find_binary(self) -> str:
        hint = (f"{self.name} not found: run `make deps` "
                f"(installs Debian package {self.debian_package})")
        if self._binary is not None:
            if os.path.isfile(self._binary) and os.access(self._binary, os.X_OK):
                return self._binary
            raise MissingDependency(f"{hint}; looked for {self._binary}")
        search_path = os.pathsep.join([os.environ.get("PATH", ""), *_EXTRA_SEARCH_PATH])
        found = shutil.which(self.name, path=search_path)
        if found is None:
            raise MissingDependency(hint)
        return found

    def _wait_until_ready(self, timeout: float) -> None:
        assert self._process is not None
        deadline = time.monotonic() + timeout
        delay = 0.01
        while time.monotonic() < deadline:
            if self._process.poll() is not None:
                raise ServerStartError(
                    f"{self.name} exited with code {self._process.returncode} during startup; "
                    f"log {self.log_path}:\n{self.log_tail()}"
                )
            if self._is_ready():
                return
            time.sleep(delay)
            delay = min(delay * 2, 0.1)  # quick first polls, then don't spin
        self.kill()
        raise ServerStartError(
            f"{self.name} not ready on {self.host}:{self.port} after {timeout:.0f} s; "
            f"log {self.log_path}:\n{self.log_tail()}"
        )


class Mosquitto(_DevServer):
    """A mosquitto 2.x broker with anonymous access and persistence saved as deployed.

    The store is saved every ``autosave_s`` seconds (deploy/mosquitto/watershed.conf: 5) and at a
    clean stop; a SIGKILL loses what changed since the last save, as a crash would (gateways
    publish what was acknowledged recently again after a reconnect). `persistence_file` lets
    tests wait for a save; `save()` asks for one now (SIGUSR1).
    """

    name = "mosquitto"
    debian_package = "mosquitto"

    def __init__(
        self,
        workdir: Path,
        port: int | None = None,
        config_extra: str = "",
        *,
        allow_anonymous: bool = True,
        binary: str | None = None,
        autosave_s: int = 5,
    ) -> None:
        super().__init__(workdir, port, binary)
        self.config_extra = config_extra
        self.allow_anonymous = allow_anonymous
        self.autosave_s = autosave_s

    @property
    def config_path(self) -> Path:
        return self.workdir / "mosquitto.conf"

    @property
    def persistence_file(self) -> Path:
        return self.workdir / "mosquitto-data" / "mosquitto.db"

    def save(self, timeout: float = 10.0) -> None:
        """Have the broker save its store now (SIGUSR1) and wait until it has."""
        process = self._process
        if process is None or process.poll() is not None:
            raise RuntimeError("mosquitto is not running")
        before = self._saved_state()
        process.send_signal(signal.SIGUSR1)
        deadline = time.monotonic() + timeout
        while self._saved_state() == before:
            if time.monotonic() > deadline:
                raise TimeoutError("mosquitto did not save its store")
            time.sleep(0.01)

    def _saved_state(self) -> tuple[int, int] | None:
        """Identity of the saved file: a save writes a new one and renames it over the old."""
        try:
            st = self.persistence_file.stat()
        except FileNotFoundError:
            return None
        return st.st_ino, st.st_mtime_ns

    def _write_config(self) -> Path:
        if any(ch.isspace() for ch in str(self.workdir)):
            # mosquitto.conf has no quoting, paths are split at spaces.
            raise ValueError(f"mosquitto workdir must not contain whitespace: {self.workdir!r}")
        self.persistence_file.parent.mkdir(parents=True, exist_ok=True)
        # Started as root, mosquitto drops to user "mosquitto", which cannot write our workdir.
        run_as = pwd.getpwuid(os.geteuid()).pw_name
        config = f"""\
# Written by watershed.devservers on every start; edits are overwritten.
listener {self.port} {self.host}
allow_anonymous {str(self.allow_anonymous).lower()}
user {run_as}

persistence true
# mosquitto appends the file name to this prefix, so it must end with a slash.
persistence_location {self.persistence_file.parent}/
persistence_file {self.persistence_file.name}
# Every few seconds, as deployed (deploy/mosquitto/watershed.conf says why not on changes).
autosave_on_changes false
autosave_interval {self.autosave_s}
# Never drop queued messages for offline persistent sessions (default cap is 1000).
max_queued_messages 0

log_dest file {self.log_path}
log_type error
log_type warning
log_type notice
log_type information
connection_messages true
log_timestamp_format %Y-%m-%dT%H:%M:%S
"""
        if self.config_extra:
            config += "\n# config_extra\n" + self.config_extra.rstrip("\n") + "\n"
        self.config_path.write_text(config)
        return self.config_path

    def _command(self, binary: str, config: Path) -> list[str]:
        return [binary, "-c", str(config)]

    def _is_ready(self) -> bool:
        return _accepts_connections(self.port)


class Influxd(_DevServer):
    """An InfluxDB 1.x server (v1 HTTP API, InfluxQL) with everything under workdir."""

    name = "influxd"
    debian_package = "influxdb"

    def __init__(
        self, workdir: Path, port: int | None = None, *, binary: str | None = None,
        admin: tuple[str, str] | None = None,
    ) -> None:
        super().__init__(workdir, port, binary)
        # The backup/restore RPC service always listens; keep it off the default 8088.
        self.rpc_port = free_port()
        # (user, password): authentication on, with this admin (made on first start); query()
        # runs as it.
        self.admin = admin

    def start(self, timeout: float = 20.0) -> Self:
        super().start(timeout)
        if self.admin is not None and not self._admin_works():
            # With auth on and no user yet, 1.x takes exactly this statement unauthenticated.
            self._post_query(f"CREATE USER \"{self.admin[0]}\" WITH PASSWORD "
                             f"'{self.admin[1]}' WITH ALL PRIVILEGES", auth=False)
        return self

    def _admin_works(self) -> bool:
        try:
            self.query("SHOW USERS")
            return True
        except RuntimeError:  # not yet created (a restart keeps it)
            return False

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    @property
    def config_path(self) -> Path:
        return self.workdir / "influxdb.conf"

    def _write_config(self) -> Path:
        data = self.workdir / "influxdb-data"
        config = f"""\
# Written by watershed.devservers on every start; edits are overwritten.
# Debian's 1.6 build names this "reporting-enabled"; upstream uses "reporting-disabled".
# Unknown keys are ignored, so set both: never phone home.
reporting-enabled = false
reporting-disabled = true
bind-address = "{self.host}:{self.rpc_port}"

[meta]
  dir = {json.dumps(str(data / "meta"))}
  logging-enabled = false

[data]
  dir = {json.dumps(str(data / "data"))}
  wal-dir = {json.dumps(str(data / "wal"))}
  query-log-enabled = false

[monitor]
  store-enabled = false

[http]
  enabled = true
  bind-address = "{self.host}:{self.port}"
  log-enabled = false
  pprof-enabled = false
  auth-enabled = {str(self.admin is not None).lower()}

[continuous_queries]
  enabled = true
  log-enabled = false

[logging]
  suppress-logo = true
"""
        self.config_path.write_text(config)
        return self.config_path

    def _command(self, binary: str, config: Path) -> list[str]:
        return [binary, "run", "-config", str(config)]

    def _is_ready(self) -> bool:
        try:
            with urllib.request.urlopen(f"{self.url}/ping", timeout=0.5) as response:
                return bool(response.status == 204)
        except (OSError, urllib.error.URLError):
            return False

    def query(self, q: str, db: str | None = None, timeout: float = 10.0) -> list[dict[str, Any]]:
        """Run InfluxQL via POST /query; return the `results` list, raising on any error.

        POST because the v1 API refuses writes such as CREATE DATABASE over GET.
        """
        return self._post_query(q, db, timeout)

    def _post_query(self, q: str, db: str | None = None, timeout: float = 10.0,
                    auth: bool = True) -> list[dict[str, Any]]:
        params = {"q": q, **({"db": db} if db else {})}
        request = urllib.request.Request(
            f"{self.url}/query",
            data=urllib.parse.urlencode(params).encode(),
            method="POST",
        )
        if auth and self.admin is not None:
            token = base64.b64encode(f"{self.admin[0]}:{self.admin[1]}".encode()).decode()
            request.add_header("Authorization", f"Basic {token}")
        try:
            with urllib.request.urlopen(request, timeout=timeout) as response:
                body = json.load(response)
        except urllib.error.HTTPError as error:
            detail = f"{error.code} {error.read()!r}"
            raise RuntimeError(f"influxd query {q!r} failed: {detail}") from error
        results: list[dict[str, Any]] = body.get("results", [])
        errors = [r["error"] for r in results if "error" in r]
        if "error" in body or errors:
            raise RuntimeError(f"influxd query {q!r} failed: {body.get('error') or errors}")
        return results
