# The two commands: `make run` sets up and runs Folio; `make test` sets up and runs the suite.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
TEST_STAMP := $(VENV)/.installed-test
BENCH_STAMP := $(VENV)/.installed-bench
# thumbor, the image-transform benchmark's baseline, needs Pillow < 13: a virtual environment of its own.
THUMBOR_STAMP := .venv-thumbor/.installed
CHROMIUM ?= /usr/bin/chromium

.PHONY: run test bench lint clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip

$(STAMP): $(BIN)/python pyproject.toml
	$(BIN)/pip install --quiet -e .
	touch $@

$(TEST_STAMP): $(STAMP)
	$(BIN)/pip install --quiet -e '.[test]'
	touch $@

$(BENCH_STAMP): $(TEST_STAMP)
	$(BIN)/pip install --quiet -e '.[test,bench]'
	touch $@

# The browser tests (tests/test_browser_cors.py) drive Debian's headless Chromium.
$(CHROMIUM):
	@if [ "$$(id -u)" = 0 ]; then apt-get update && DEBIAN_FRONTEND=noninteractive apt-get install -y chromium; \
	else echo "the tests need Debian's chromium: sudo apt-get install -y chromium" >&2; exit 1; fi

run: $(STAMP)
	$(BIN)/folio serve --config config.toml

test: $(TEST_STAMP) $(CHROMIUM)
	PATH="$(CURDIR)/$(BIN):$$PATH" $(BIN)/python -m pytest -q

# A failed thumbor install (no network) is not fatal: the run reports thumbor unavailable.
$(THUMBOR_STAMP): $(BENCH_STAMP)
	-$(BIN)/python -m bench.thumbor_env

bench: $(BENCH_STAMP) $(THUMBOR_STAMP)
	PATH="$(CURDIR)/$(BIN):$$PATH" $(BIN)/python -m bench.run

lint: $(TEST_STAMP)
	$(BIN)/ruff check .

clean:
	rm -rf $(VENV)
