# Entry point for the common tasks. `make help` lists them.
# The two that matter: `make site` (lab up + the main job) and `make test` (everything).

SHELL := /bin/bash
VENV := .venv
BIN := $(VENV)/bin
export PATH := $(CURDIR)/$(BIN):$(PATH)
export ANSIBLE_COLLECTIONS_PATH := $(CURDIR)/$(VENV)/collections
export ANSIBLE_CONFIG := $(CURDIR)/ansible.cfg
export ANSIBLE_FORCE_COLOR ?= 0
LAB := $(BIN)/python tests/lab/lab.py
LAB_APPS ?= 3
INVENTORY ?= .lab/seedops-lab/inventory.yml
VERSION ?= 1.0.0

.PHONY: help venv lab-up lab-down lab-status site test unit go-test sanity lint compat integration app build ee bench clean

help:
	@echo "make site         lab up, site.yml (deploys 1.0.0), then a rolling deploy of 2.0.0 under load, with the report"
	@echo "make test         run every test: unit, sanity, lint, integration (brings the lab up)"
	@echo "make unit         pytest unit tests and the sample service's go test"
	@echo "make sanity       ansible-test sanity on a temporary ansible_collections/ tree"
	@echo "make lint         ansible-lint and antsibull-changelog lint"
	@echo "make compat       unit tests and sanity under the older ansible-core releases the collection supports"
	@echo "make integration  integration tests, two workers on two labs (INTEGRATION_WORKERS=1: one)"
	@echo "make lab-up       bring the lab up (LAB_APPS=$(LAB_APPS) app hosts); lab-status; lab-down"
	@echo "make app          build the sample service packages (VERSION=$(VERSION)) into tests/fixtures/app/dist/"
	@echo "make build        ansible-galaxy collection build"
	@echo "make ee           the execution environment for AWX (awx/ee/, ansible-builder) in the lab's Docker engine"
	@echo "make bench        benchmarks side by side with the alternatives (JSON in benchmarks/results/)"
	@echo "make venv         install Debian packages (as root) and the Python environment; other targets do it"

venv:
	@tests/utils/bootstrap.sh

lab-up: venv
	$(LAB) up --apps $(LAB_APPS)

lab-down: venv
	$(LAB) down
	$(LAB) --name seedops-lab2 down
	$(LAB) --name seedops-mixed down

lab-status: venv
	$(LAB) status

site: lab-up
	$(BIN)/python tests/lab/demo.py

unit: venv go-test
	$(BIN)/pytest tests/unit

go-test: venv
	cd tests/fixtures/app && go vet ./... && go test ./...

sanity: venv
	tests/utils/sanity.sh

lint: venv
	$(BIN)/ansible-lint --offline
	$(BIN)/antsibull-changelog lint

# Unit tests and sanity under the older ansible-core releases meta/runtime.yml supports (tests/utils/compat.sh).
compat: venv
	tests/utils/compat.sh

# Two pytest-xdist workers, each on a lab of its own (seedops-lab, seedops-lab2), each given whole test files as it
# frees up, in the order tests/integration/conftest.py's FILE_ORDER gives them (mostly the longest first;
# --no-loadscope-reorder keeps pytest-xdist from putting the files with the most tests first); the labs' names and
# ports come from tests/integration/conftest.py. -v names the worker of each test and --durations lists every step
# over 5 s: the whole make test is CPU-bound on two cores, and these show where it goes.
# INTEGRATION_WORKERS=1 runs every file in one process on one lab.
INTEGRATION_WORKERS ?= 2
integration: venv
	$(BIN)/pytest tests/integration -v --durations=0 --durations-min=5 $(if $(filter 1,$(INTEGRATION_WORKERS)),,-n $(INTEGRATION_WORKERS) --dist loadfile --no-loadscope-reorder)

# The checks, with the lab and the Go build cache made ready beside them (tests/utils/test-all.sh), then integration.
test: venv
	tests/utils/test-all.sh

app: venv
	tests/fixtures/app/build.sh $(VERSION)

build: venv
	$(BIN)/ansible-galaxy collection build --force .

# ansible-builder on the lab's Debian image, no registry (tests/lab/ee.py); prints the image's name.
ee: venv
	$(BIN)/python tests/lab/ee.py build

clean:
	rm -rf tests/output tests/fixtures/app/dist seedops-deploy-*.tar.gz .pytest_cache

bench: venv
	$(BIN)/python benchmarks/run.py
