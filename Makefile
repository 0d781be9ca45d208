# beam-kinesis-sink: everything a fresh machine needs is installed from here.
#   make demo   run the sample pipeline against a local Kinesis server
#   make test   install what is needed and run the whole suite: lint, the suite
#               on apache-beam 2.77.0, unit + integration on 2.62.0 (the lowest
#               supported Beam), and Flink on the matched pair (Python SDK
#               2.62.0 with the Beam 2.62.0 Flink job server)
SHELL := /bin/bash
PYTHON ?= python3
# apache-beam 2.77.0 (requirements/constraints.txt): the main venv
VENV := .venv
PY := $(VENV)/bin/python
PIP_STAMP := $(VENV)/.installed
# apache-beam 2.62.0 (requirements/constraints-beam-2.62.txt): the lowest Beam
# setup.py allows, and the version of the Flink job server Maven Central serves
VENV_LOW := .venv-beam-2.62
PY_LOW := $(VENV_LOW)/bin/python
PIP_LOW_STAMP := $(VENV_LOW)/.installed
# the Flink workers' "SDK image" for tests/flink/test_flink_runner.py:
# apache-beam 2.62.0 and the sink's dependencies, not the sink (shipped by --setup_file)
VENV_WORKER := .venv-beam-2.62-worker
WORKER_STAMP := $(VENV_WORKER)/.installed
# Beam's Python SDK boot (the entry point of Beam's SDK container images), from
# Beam's Go module. The checksum database has no entry for that module
# (sum.golang.org answers 404), hence GONOSUMDB for it alone.
BEAM_BOOT_VERSION := 2.62.0
# Downloads and builds kept between runs and clones (beam_kinesis_sink/testing/user_cache.py)
USER_CACHE := $(or $(XDG_CACHE_HOME),$(HOME)/.cache)/beam-kinesis-sink
BEAM_BOOT_DIR := $(USER_CACHE)/beam-boot/$(BEAM_BOOT_VERSION)
BEAM_BOOT := $(BEAM_BOOT_DIR)/boot
NPM_STAMP := node_modules/.installed
PYTEST_ARGS ?=
# On 2.62, one cell of the integration fault matrix: the other 8 (~20 s each)
# differ from it only in fault rates, which no Beam version changes.
# `make test-low LOW_SELECT=` runs them all.
LOW_SELECT ?= -k "not test_fault_matrix_loses_nothing or 0.1-0.05"
FLINK_ENV := BEAM_SDK_BOOT=$(abspath $(BEAM_BOOT)) BEAM_WORKER_VENV=$(abspath $(VENV_WORKER))

.PHONY: install install-low demo test lane-main lane-rest test-main test-unit test-integration test-pipelines test-low \
	test-flink test-boto3-codec flink-install beam-boot lint bench clean

$(PIP_STAMP): setup.py beam_kinesis_sink/_version.py pyproject.toml requirements/constraints.txt
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -c requirements/constraints.txt -e ".[test]"
	touch $@

$(PIP_LOW_STAMP): setup.py beam_kinesis_sink/_version.py pyproject.toml requirements/constraints-beam-2.62.txt
	test -x $(PY_LOW) || $(PYTHON) -m venv $(VENV_LOW)
	$(PY_LOW) -m pip install --quiet --upgrade pip
	$(PY_LOW) -m pip install --quiet -c requirements/constraints-beam-2.62.txt -e ".[test]"
	touch $@

$(WORKER_STAMP): requirements/constraints-beam-2.62.txt
	test -x $(VENV_WORKER)/bin/python || $(PYTHON) -m venv $(VENV_WORKER)
	$(VENV_WORKER)/bin/python -m pip install --quiet --upgrade pip
	$(VENV_WORKER)/bin/python -m pip install --quiet -c requirements/constraints-beam-2.62.txt \
		apache-beam boto3 fastavro
	touch $@

$(BEAM_BOOT):
	mkdir -p $(BEAM_BOOT_DIR)
	GOBIN=$(abspath $(BEAM_BOOT_DIR)) GONOSUMDB=github.com/apache/beam GOFLAGS=-buildvcs=false \
		go install github.com/apache/beam/sdks/v2/python/container@v$(BEAM_BOOT_VERSION)
	mv $(BEAM_BOOT_DIR)/container $@

$(NPM_STAMP): package.json package-lock.json
	npm ci --no-audit --no-fund --loglevel=error
	touch $@

install: $(PIP_STAMP) $(NPM_STAMP)

install-low: $(PIP_LOW_STAMP) $(NPM_STAMP)

beam-boot: $(BEAM_BOOT)

flink-install: $(PIP_LOW_STAMP)
	$(PY_LOW) -m tools.flink_cluster install

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

# everything but Flink, on apache-beam 2.77.0
test-main: install
	$(PY) -m pytest tests --ignore=tests/flink $(PYTEST_ARGS)

# the whole integration suite through the plain boto3 PutRecords path
# (request_codec="boto3" for every writer that names no codec)
test-boto3-codec: install
	$(PY) -m pytest tests/integration --request-codec=boto3 $(PYTEST_ARGS)

# the lowest supported Beam: unit and DirectRunner integration tests on 2.62.0 (LOW_SELECT)
test-low: install-low
	$(PY_LOW) -m pytest tests/unit tests/integration $(LOW_SELECT) $(PYTEST_ARGS)

# Flink on the matched pair: the Python SDK (submission and worker pool) is
# apache-beam 2.62.0, as the job server is
test-flink: install-low flink-install $(WORKER_STAMP) $(BEAM_BOOT)
	$(FLINK_ENV) $(PY_LOW) -m pytest tests/flink $(PYTEST_ARGS)

# Everything, on 2 cores: the installs side by side, lint, then two lanes side
# by side (each lane's output is shown when it ends):
#   lane-main  the suite on apache-beam 2.77.0
#   lane-rest  Flink on the matched pair, then unit + integration on 2.62.0,
#              then the integration suite through the plain boto3 codec
test:
	$(MAKE) --no-print-directory -j3 --output-sync=target install install-low flink-install \
		$(WORKER_STAMP) $(BEAM_BOOT)
	$(MAKE) --no-print-directory lint
	@echo "make test: two lanes side by side; each lane's output is shown when it ends"
	$(MAKE) --no-print-directory -j2 --output-sync=target lane-main lane-rest

lane-main: install
	$(PY) -m pytest tests --ignore=tests/flink $(PYTEST_ARGS)

lane-rest: install install-low flink-install $(WORKER_STAMP) $(BEAM_BOOT)
	$(FLINK_ENV) $(PY_LOW) -m pytest tests/flink $(PYTEST_ARGS)
	$(PY_LOW) -m pytest tests/unit tests/integration $(LOW_SELECT) $(PYTEST_ARGS)
	$(PY) -m pytest tests/integration --request-codec=boto3 $(PYTEST_ARGS)

bench: install
	$(PY) -m bench

clean:
	rm -rf $(VENV) $(VENV_LOW) $(VENV_WORKER) .cache/beam-boot node_modules .pytest_cache .hypothesis
