"""Passwords and tokens: inline only in a file nobody else can read, else from a file of their
own (systemd LoadCredential=, $CREDENTIALS_DIRECTORY) or an environment variable; never shown."""

from __future__ import annotations

from pathlib import Path

import pytest

from watershed.gateway.config import load_config as load_gateway
from watershed.ingest.config import ConfigError, load_config as load_ingest

SECRET = "hunter2-Zq9"


def ingest_file(tmp_path: Path, mqtt: str, influx: str = "", mode: int = 0o644) -> Path:
    path = tmp_path / "ingest.toml"
    path.write_text(f'[mqtt]\nusername = "ingest-1"\n{mqtt}\n[influx]\n{influx}\n')
    path.chmod(mode)
    return path


def test_inline_secret_in_a_readable_file_is_refused_with_the_fix(tmp_path: Path) -> None:
    path = ingest_file(tmp_path, f'password = "{SECRET}"', mode=0o640)
    with pytest.raises(ConfigError) as e:
        load_ingest(path)
    text = str(e.value)
    assert "mqtt.password: a secret inline in a file readable by group or others (mode 0640)" \
        in text
    assert f"chmod 600 {path}" in text and "password_file" in text
    assert SECRET not in text
    path.chmod(0o600)
    assert load_ingest(path).mqtt.password == SECRET


def test_password_file_from_the_credentials_directory(tmp_path: Path, monkeypatch) -> None:
    credentials = tmp_path / "credentials"
    credentials.mkdir()
    (credentials / "mqtt-password").write_text(SECRET + "\n")
    (credentials / "influx-token").write_text("t0ken")
    monkeypatch.setenv("CREDENTIALS_DIRECTORY", str(credentials))
    path = ingest_file(tmp_path, 'password_file = "mqtt-password"',
                       'api = "v2"\norg = "o"\nbucket = "b"\ntoken_file = "influx-token"')
    config = load_ingest(path)  # mode 0644 is fine: no secret in it
    assert (config.mqtt.password, config.influx.token) == (SECRET, "t0ken")
    assert SECRET not in repr(config) and "t0ken" not in repr(config)


def test_password_file_beside_the_config_and_from_the_environment(tmp_path: Path,
                                                                   monkeypatch) -> None:
    monkeypatch.delenv("CREDENTIALS_DIRECTORY", raising=False)
    (tmp_path / "pw").write_text(SECRET)
    assert load_ingest(ingest_file(tmp_path, 'password_file = "pw"')).mqtt.password == SECRET
    monkeypatch.setenv("WS_MQTT_PW", SECRET)
    path = ingest_file(tmp_path, 'password_env = "WS_MQTT_PW"')
    assert load_ingest(path).mqtt.password == SECRET
    monkeypatch.delenv("WS_MQTT_PW")
    with pytest.raises(ConfigError, match="environment variable WS_MQTT_PW is not set"):
        load_ingest(path)


def test_missing_file_and_two_sources_are_named_without_the_secret(tmp_path: Path,
                                                                   monkeypatch) -> None:
    monkeypatch.delenv("CREDENTIALS_DIRECTORY", raising=False)
    with pytest.raises(ConfigError, match=r"mqtt.password_file: cannot read .*nope: No such"):
        load_ingest(ingest_file(tmp_path, 'password_file = "nope"'))
    with pytest.raises(ConfigError) as e:
        load_ingest(ingest_file(tmp_path, f'password = "{SECRET}"\npassword_file = "x"',
                                mode=0o600))
    assert "give one of password, password_file, not several" in str(e.value)
    assert SECRET not in str(e.value)
    with pytest.raises(ConfigError) as e:
        load_ingest(ingest_file(tmp_path, "password = 123456789", mode=0o600))
    assert "123456789" not in str(e.value) and "an integer" in str(e.value)


def test_the_gateway_reads_its_password_the_same_way(tmp_path: Path, monkeypatch) -> None:
    credentials = tmp_path / "credentials"
    credentials.mkdir()
    (credentials / "mqtt-password").write_text(SECRET)
    monkeypatch.setenv("CREDENTIALS_DIRECTORY", str(credentials))
    body = ('[gateway]\nid = "gw-a"\n[mqtt]\nusername = "gw-a"\n{secret}\n'
            '[[link]]\nport = "loop://"\nstations = [1]\n')
    path = tmp_path / "gateway.toml"
    path.write_text(body.format(secret='password_file = "mqtt-password"'))
    config = load_gateway(path)
    assert config.mqtt.password == SECRET and SECRET not in repr(config)
    path.write_text(body.format(secret=f'password = "{SECRET}"'))
    path.chmod(0o644)
    with pytest.raises(ConfigError, match="mqtt.password: a secret inline") as e:
        load_gateway(path)
    assert SECRET not in str(e.value)


def test_a_broker_identity_other_than_the_own_id_is_refused_at_start(tmp_path: Path) -> None:
    """The broker knows a client by its user name or its certificate's CN (and makes that its
    client id): a gateway or ingest whose id differs is refused before it connects."""
    import subprocess

    pki = tmp_path / "pki"
    script = Path(__file__).parents[2] / "deploy" / "watershed-pki.sh"
    for args in (["ca"], ["client", "gw-b"]):
        subprocess.run([str(script), str(pki), *args], check=True, capture_output=True,
                       timeout=60)
    body = ('[gateway]\nid = "gw-a"\n[mqtt]\ntls = true\n{mqtt}\n'
            '[[link]]\nport = "loop://"\nstations = [1]\n')
    path = tmp_path / "gateway.toml"
    path.write_text(body.format(mqtt=f'cert_file = "{pki}/gw-b.crt"\n'
                                     f'key_file = "{pki}/gw-b.key"'))
    with pytest.raises(ConfigError) as e:
        load_gateway(path)
    assert ("mqtt.cert_file: the certificate's CN is 'gw-b' but this program's id is 'gw-a'"
            in str(e.value))
    path.write_text(body.format(mqtt='username = "gw-b"\npassword_env = "HOME"'))
    with pytest.raises(ConfigError, match="mqtt.username: 'gw-b' differs from this program's "
                                          "id 'gw-a'"):
        load_gateway(path)
    path.write_text(body.replace('"gw-a"', '"ingest"').format(mqtt=""))
    with pytest.raises(ConfigError, match="gateway.id: 'ingest' is reserved"):
        load_gateway(path)
    ingest = ingest_file(tmp_path, f'tls = true\ncert_file = "{pki}/gw-b.crt"\n'
                                   f'key_file = "{pki}/gw-b.key"')
    with pytest.raises(ConfigError, match="CN is 'gw-b' but this program's id is 'ingest-1'"):
        load_ingest(ingest)


def test_credentials_in_the_influx_url_are_refused_unshown(tmp_path: Path) -> None:
    path = ingest_file(tmp_path, "", f'url = "http://ingest:{SECRET}@127.0.0.1:8086"')
    with pytest.raises(ConfigError) as e:
        load_ingest(path)
    assert "influx.url: holds credentials" in str(e.value) and SECRET not in str(e.value)
