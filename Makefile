# The CRM's front door. Needs only Python 3.11+ and make: the first run installs uv into .tools/
# and every dependency (pinned by uv.lock) into .venv/.
PYTHON ?= python3
TOOLS := .tools
UV := $(TOOLS)/bin/uv
VENV := .venv
UV_VERSION := 0.13.9
export UV_PYTHON_DOWNLOADS := never
PYTEST_ARGS ?=

.PHONY: up down demo test install lint format migrate distributed bench bench-slice sdk clean check-python

check-python:
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else "Python 3.11+ is required (found " + sys.version.split()[0] + "); set PYTHON=python3.x")'

$(UV): | check-python
	$(PYTHON) -m venv $(TOOLS)
	$(TOOLS)/bin/python -m pip install --quiet --disable-pip-version-check uv==$(UV_VERSION)

$(VENV)/.synced: $(UV) uv.lock pyproject.toml $(wildcard libs/*/pyproject.toml services/*/pyproject.toml gateway/pyproject.toml)
	$(UV) sync --frozen --all-packages --python $(PYTHON)
	@touch $@

install: $(VENV)/.synced

## Run the whole CRM on the embedded default: http://127.0.0.1:8000 (docs at /docs).
up: install
	$(VENV)/bin/crm up

## Load a sample company into the CRM that `make up` runs (another terminal; CRM_URL=... for another).
demo: install
	$(VENV)/bin/crm demo --url $(CRM_URL)

## Stop the CRM that `make up` runs (from another terminal; Ctrl+C does the same).
down:
	@if [ -x $(VENV)/bin/crm ]; then $(VENV)/bin/crm down; else echo "Nothing to stop: the CRM was never installed here."; fi

## Run the tests (unit, service, integration on Postgres + RabbitMQ, end-to-end); lists the 25 slowest.
test: install
	$(VENV)/bin/pytest -n 2 --dist loadgroup --durations=25 $(PYTEST_ARGS)

migrate: install
	$(VENV)/bin/crm migrate all

## One process per service on the local Postgres and RabbitMQ (see README).
distributed: install
	$(VENV)/bin/python -m crm_gateway.distributed

## A typed Python client generated from a running CRM, outside version control (build/ is ignored).
## The generator's post hooks run ruff from PATH: the venv's own one.
CRM_URL ?= http://127.0.0.1:8000
SDK_DIR ?= build/crm-api-client
sdk: install
	PATH="$(CURDIR)/$(VENV)/bin:$$PATH" $(VENV)/bin/openapi-python-client generate --url $(CRM_URL)/openapi.json \
		--config docs/openapi-python-client.yaml --output-path $(SDK_DIR) --overwrite

## The CRM beside the bare stack in one run (bench/compare.py; bench/README.md says what it prints).
bench: install
	$(VENV)/bin/python bench/compare.py

bench-slice: install
	$(VENV)/bin/python bench/slice.py

## ruff, and mypy on libs/common and the gateway (its settings: [tool.mypy] in pyproject.toml).
lint: install
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/mypy

format: install
	$(VENV)/bin/ruff format .
	$(VENV)/bin/ruff check --fix .

clean:
	rm -rf $(VENV) $(TOOLS) .pytest_cache .ruff_cache build
