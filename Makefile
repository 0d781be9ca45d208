# beam-kinesis-sink: everything a fresh machine needs is installed from here.
#   make demo   run the sample pipeline against a local Kinesis server
#   make test   install what is needed and run the whole suite (lint, unit,
#               integration, pipelines, Flink)
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
PIP_STAMP := $(VENV)/.installed
NPM_STAMP := node_modules/.installed
FLINK_STAMP := .cache/flink/.installed
PYTEST_ARGS ?=

.PHONY: install demo test test-unit test-integration test-pipelines test-flink flink-install lint bench clean

$(PIP_STAMP): setup.py beam_kinesis_sink/_version.py pyproject.toml requirements/constraints.txt
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -c requirements/constraints.txt -e ".[test]"
	touch $@

$(NPM_STAMP): package.json package-lock.json
	npm ci --no-audit --no-fund --loglevel=error
	touch $@

install: $(PIP_STAMP) $(NPM_STAMP)

flink-install: $(PIP_STAMP)
	$(PY) -m tools.flink_cluster install

demo: install
	$(PY) examples/demo.py

lint: $(PIP_STAMP)
	$(PY) -m ruff check .

test-unit: $(PIP_STAMP)
	$(PY) -m pytest tests/unit $(PYTEST_ARGS)

test-integration: install
	$(PY) -m pytest tests/integration tests/testing $(PYTEST_ARGS)

test-pipelines: install
	$(PY) -m pytest tests/pipelines $(PYTEST_ARGS)

test-flink: install flink-install
	$(PY) -m pytest tests/flink $(PYTEST_ARGS)

test: install flink-install lint
	$(PY) -m pytest tests $(PYTEST_ARGS)

bench: install
	$(PY) -m bench

clean:
	rm -rf $(VENV) node_modules .pytest_cache .hypothesis
