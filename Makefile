# Set-up and everyday commands. Each target creates the virtual environment first if needed.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
# The tested versions, torch 2.13.0 CPU build included, come from constraints.txt.
PIP_INSTALL := $(BIN)/pip install --disable-pip-version-check -q -c constraints.txt

.PHONY: setup system-deps demo test test-fast lint mlproject bench clean

$(VENV)/.installed: pyproject.toml constraints.txt
	$(PYTHON) -m venv $(VENV)
	$(PIP_INSTALL) torch==2.13.0
	$(PIP_INSTALL) -e '.[dev,hf,examples]'
	touch $@

setup: $(VENV)/.installed

# Debian's Chromium (tests/test_browser_e2e.py) and PostgreSQL (tests/test_team_server.py),
# installed when run as root (as CI does); elsewhere those tests are skipped and say why.
system-deps:
	@if [ "$$(id -u)" = 0 ] && { ! command -v chromedriver >/dev/null 2>&1 || \
		! ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1; }; then \
		apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q \
			chromium chromium-driver postgresql; \
	fi

demo: setup
	$(BIN)/soi-mlflow demo

test: setup system-deps
	$(BIN)/python -m pytest

# The tests not marked e2e (README, Development): about 2 minutes on 2 CPU cores.
test-fast: setup
	$(BIN)/python -m pytest -m "not e2e"

lint: setup
	$(BIN)/ruff check soi_mlflow tests bench examples experiments
	$(BIN)/ruff format --check soi_mlflow tests bench examples experiments

# MLproject is written from the commands' settings dataclasses; a test checks it is current.
mlproject: setup
	$(BIN)/python -m soi_mlflow.cli.mlproject > MLproject

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache
