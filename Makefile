# One command per chore. Every target creates .venv and installs what it needs.
PY ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
export DO_NOT_TRACK := 1
export PREFECT_SERVER_ANALYTICS_ENABLED := false
export PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS := 60
export MPLBACKEND := Agg

.PHONY: install install-chromium demo test test-fast bench bench-gpu figures lint clean

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PY) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -e '.[dev,bench]'
	touch $(STAMP)

install: $(STAMP) install-chromium

# headless Chromium (Debian) for the report tests; skipped by those tests when absent
install-chromium:
	command -v chromium >/dev/null 2>&1 || (apt-get update && apt-get install -y chromium) || \
		echo "chromium not installed (needs root and apt): the browser test of the reports will skip"

demo: $(STAMP)
	$(BIN)/vertfrac demo --out demo_out

test: $(STAMP) install-chromium
	$(BIN)/python -m pytest -q

test-fast: $(STAMP)
	$(BIN)/python -m pytest -q -m "not slow"

# benchmarks screen synthetic phantoms only: a fixed, public pseudonym key is enough there
bench: export VERTFRAC_PSEUDONYM_KEY ?= benchmark-phantoms-public-key
bench: $(STAMP)
	$(BIN)/python -m benchmarks.run_all

# one prepared script (under 5 minutes) timing analyze end to end on a CUDA GPU
bench-gpu: $(STAMP)
	timeout 300 $(BIN)/python -m benchmarks.bench_analyze cuda

figures: $(STAMP)
	$(BIN)/python -m benchmarks.figures

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/mypy

clean:
	rm -rf $(VENV) demo_out .pytest_cache .mypy_cache .ruff_cache
