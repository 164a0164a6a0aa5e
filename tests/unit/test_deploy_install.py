"""deploy/install.sh into a temporary root (DESTDIR), as CI runs it: the files it lays down,
their modes, a config never overwritten, the user from its sysusers file, and the installed
units passing ``systemd-analyze verify``."""

from __future__ import annotations

import os
import shutil
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from watershed.gateway.config import load_config

REPO = Path(__file__).resolve().parents[2]
UNITS = ("watershed-gateway.service", "watershed-ingest.service")


def install(root: Path, *components: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "DESTDIR": str(root), "SKIP_PIP": "1", "PYTHON": sys.executable}
    return subprocess.run(["sh", str(REPO / "deploy" / "install.sh"), *components], env=env,
                          capture_output=True, text=True, timeout=120)


@pytest.fixture(scope="module")
def root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("root")
    done = install(root, "gateway", "ingest")
    assert done.returncode == 0, done.stderr
    return root


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_files_and_modes(root: Path) -> None:
    etc = root / "etc" / "watershed"
    assert mode(etc) == 0o750
    assert mode(etc / "gateway.toml") == mode(etc / "ingest.toml") == 0o640
    assert mode(etc / "stations.toml") == 0o640  # the station registry both can name
    assert (root / "opt/watershed/.venv/bin/python").exists()
    assert (root / "usr/lib/sysusers.d/watershed.conf").exists()
    journald = (root / "etc/systemd/journald.conf.d/watershed.conf").read_text()
    assert "SystemMaxUse=50M" in journald
    # The skeleton is the example, valid as it stands (TLS files aside: they are per site).
    assert load_config(etc / "gateway.toml").id == "gw-zamora"


def test_an_existing_config_is_kept(root: Path) -> None:
    config = root / "etc" / "watershed" / "gateway.toml"
    config.write_text(config.read_text().replace("gw-zamora", "gw-edited"))
    done = install(root, "gateway")
    assert done.returncode == 0, done.stderr
    assert "keeping" in done.stdout and 'id = "gw-edited"' in config.read_text()


def test_a_wrong_component_is_refused(tmp_path: Path) -> None:
    done = install(tmp_path, "gatway")
    assert done.returncode == 1 and "unknown component 'gatway'" in done.stderr


def test_the_sysusers_file_makes_the_user(root: Path, tmp_path: Path) -> None:
    if shutil.which("systemd-sysusers") is None:
        pytest.fail("systemd-sysusers is needed (scripts/install-system-deps.sh)")
    target = tmp_path / "sysroot"
    (target / "etc").mkdir(parents=True)
    for name in ("passwd", "group", "shadow", "gshadow"):
        (target / "etc" / name).write_text("dialout:x:20:\n" if name == "group" else "")
    done = subprocess.run(["systemd-sysusers", f"--root={target}",
                           str(root / "usr/lib/sysusers.d/watershed.conf")],
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert "watershed:" in (target / "etc/passwd").read_text()
    assert "dialout:x:20:watershed" in (target / "etc/group").read_text()


@pytest.mark.parametrize("unit", UNITS)
def test_the_installed_units_pass_systemd_analyze_verify(root: Path, unit: str,
                                                         tmp_path: Path) -> None:
    text = (root / "etc/systemd/system" / unit).read_text()
    assert "RestartPreventExitStatus=2" in text and "WatchdogSec=" in text
    assert "Type=notify" in text
    # SKIP_PIP left the venv without the command: verify against this checkout's.
    installed = Path(sys.executable).parent / "watershed"
    copy = tmp_path / unit
    copy.write_text(text.replace("/opt/watershed/.venv/bin/watershed", str(installed)))
    done = subprocess.run(["systemd-analyze", "verify", "--man=no", str(copy)],
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert unit not in done.stderr, done.stderr  # no warnings
