# agi-data: the two commands are `make demo` (the main job) and `make test`.
PYTHON ?= python3.11
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.agi-installed
export PATH := $(CURDIR)/$(BIN):$(PATH)
# MPI as root (containers, CI) needs these; harmless otherwise.
export OMPI_ALLOW_RUN_AS_ROOT := 1
export OMPI_ALLOW_RUN_AS_ROOT_CONFIRM := 1

.PHONY: setup system venv lint test demo bench services clean-store

setup: system $(STAMP)
	@$(BIN)/agi setup --quiet

system:
	@bash scripts/install-system.sh

# Reinstall only when the project's dependency list changes.
$(STAMP): pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	@$(BIN)/python -m pip install -q --upgrade pip
	@$(BIN)/python -m pip install -q -e '.[test]'
	@touch $(STAMP)

lint: $(STAMP)
	@$(BIN)/ruff check .
	@$(BIN)/pylint --disable=all --enable=duplicate-code --score=n agi_data

test: setup lint
	@$(BIN)/python -m pytest tests $(PYTEST_ARGS)

demo: setup
	@$(BIN)/agi demo

bench: setup
	@for b in benchmarks/*.py; do echo "== $$b"; $(BIN)/python $$b || exit 1; done

# PostgreSQL + RabbitMQ on loopback for an AiiDA profile at scale (tests/test_aiida_services.py runs it too)
services:
	@bash scripts/services.sh

clean-store:
	rm -rf store/data store/aiida store/reports
