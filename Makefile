# Set-up and the two entry points of README.md: `make demo` and `make test` (lint, then the default tests).
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)
# Debian packages: espeak-ng makes the demo voices; chromium drives the dashboard test; the tests start their own
# PostgreSQL server from postgresql's binaries.
APT_PACKAGES := espeak-ng chromium postgresql

.PHONY: demo test lint system-deps clean

LINTED := src tests benchmarks training

demo: system-deps $(VENV)/.installed
	$(BIN)/voxwatch demo

# lint is a prerequisite: it runs, and must pass, before the tests.
test: system-deps $(VENV)/.installed lint
	$(BIN)/python -m pytest -m "not slow" -q

lint: $(VENV)/.installed
	$(BIN)/ruff check $(LINTED)
	$(BIN)/ruff format --check $(LINTED)

system-deps:
	@missing=""; for p in $(APT_PACKAGES); do dpkg -s $$p >/dev/null 2>&1 || missing="$$missing $$p"; done; \
	if [ -n "$$missing" ]; then $(SUDO) apt-get update -qq && $(SUDO) apt-get install -y -qq $$missing; fi

# The models ship inside voxwatch; their sources, resemblyzer and silero-vad, are installed for their files only
# (--no-deps keeps torch out): the tests check the shipped copies against them, and training starts from GE2E.
$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -e '.[test]'
	$(BIN)/pip install -q --no-deps resemblyzer==0.1.4 silero-vad==6.2.3
	touch $@

clean:
	rm -rf $(VENV) demo-out
