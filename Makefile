# Two commands on a fresh Debian machine: `make demo` and `make test`. Each installs what it needs.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
export WATERSHED_CACHE ?= $(HOME)/.cache/watershed
export WATERSHED_MICROPYTHON ?= $(WATERSHED_CACHE)/micropython/micropython

.PHONY: deps system-deps micropython venv test demo bench chaos typecheck typecheck-firmware clean

deps: system-deps micropython venv

system-deps:
	@bash scripts/install-system-deps.sh

micropython: system-deps
	@bash scripts/build-micropython.sh

venv: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e '.[dev]'
	touch $@

test: deps
	$(PY) -m pytest -q

demo: deps
	$(VENV)/bin/watershed demo

bench: deps
	$(PY) -m tests.bench --out .bench

# The long chaos run (hardware/watershed_sim/chaos): 1,000,000 readings while every process is
# killed again and again; figures in .bench/chaos.json (as `make bench` writes them); fails unless
# nothing was lost, altered or misattributed. `make test` runs the short one.
chaos: deps
	$(PY) -m tests.bench --out .bench chaos
	@$(PY) -c "import json, sys; sys.exit(not json.load(open('.bench/chaos.json'))['figures']['passed'])" \
		|| { echo "chaos: FAILED (.bench/chaos.json)"; exit 1; }

# mypy on the firmware against the esp32, rp2 and unix MicroPython stubs (installed once into
# .stubs/<board>); tests/firmware/test_typecheck.py runs the same, so `make test` includes it.
typecheck-firmware: venv
	$(PY) scripts/typecheck_firmware.py

# mypy on the host code: the gateway package and the simulator (settings in
# scripts/mypy-host.ini); tests/unit/test_typecheck_host.py runs the same.
typecheck: venv
	$(PY) -m mypy --config-file scripts/mypy-host.ini gateway/watershed hardware/watershed_sim

clean:
	rm -rf $(VENV) .bench .demo .stubs
