# Two commands set everything up on a fresh machine: `make run` and `make test`.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed-stamp
DATA   ?= data
HOST   ?= 127.0.0.1
PORT   ?= 8000
# Debian packages the tests drive for real (one per line of need; see scripts/system_deps.sh)
SYSTEM_PACKAGES := chromium fonts-dejavu-core

.PHONY: setup run import-sample test bench loadtest sample clean

setup: $(STAMP)

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -e '.[dev]'
	touch $(STAMP)

import-sample: setup
	$(BIN)/diemthi import --data-dir $(DATA) --year 2026 --activate data/sample/*.csv
	$(BIN)/diemthi import-distribution --data-dir $(DATA) --bundled

run: import-sample
	$(BIN)/diemthi serve --data-dir $(DATA) --host $(HOST) --port $(PORT)

test: setup
	bash scripts/system_deps.sh $(SYSTEM_PACKAGES)
	$(BIN)/python -m pytest -q

sample: setup
	$(BIN)/python scripts/make_sample.py

clean:
	rm -rf $(DATA)/snapshots $(DATA)/active $(DATA)/reports $(DATA)/national reports

loadtest: setup
	$(BIN)/python scripts/loadtest.py
