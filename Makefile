# Set-up and everyday commands. Each target creates the virtual environment first if needed.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
# The tested versions, torch 2.13.0 CPU build included, come from constraints.txt.
PIP_INSTALL := $(BIN)/pip install --disable-pip-version-check -q -c constraints.txt

.PHONY: setup demo test test-fast lint bench clean

$(VENV)/.installed: pyproject.toml constraints.txt
	$(PYTHON) -m venv $(VENV)
	$(PIP_INSTALL) torch==2.13.0
	$(PIP_INSTALL) -e '.[dev,hf,examples]'
	touch $@

setup: $(VENV)/.installed

demo: setup
	$(BIN)/soi-mlflow demo

test: setup
	$(BIN)/python -m pytest

test-fast: setup
	$(BIN)/python -m pytest -m "not e2e"

lint: setup
	$(BIN)/ruff check soi_mlflow tests bench examples

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache
