# Two commands set everything up on a fresh machine: `make run` and `make test`.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed-stamp
DATA   ?= data
HOST   ?= 127.0.0.1
PORT   ?= 8000
# Debian packages the tests drive for real (one per line of need; see scripts/system_deps.sh)
SYSTEM_PACKAGES := prometheus systemd chromium fonts-dejavu-core nginx-light wrk

.PHONY: setup run import-sample test bench loadtest sample clean lock wheelhouse miniapp

# The editable install leaves our sources uncompiled, and where PYTHONDONTWRITEBYTECODE is
# set nothing caches them: every command would compile ~6,000 lines again (30 ms of each
# `diemthi import`'s start). compileall writes the .pyc files, as installing a wheel does,
# and only for what changed since.
setup: $(STAMP)
	$(BIN)/python -m compileall -q src

# The venv holds exactly the locked versions (hashes checked); the project itself is
# installed editable on top, without resolving anything again.
$(STAMP): pyproject.toml requirements.lock requirements-dev.lock
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q --require-hashes -r requirements-dev.lock
	$(BIN)/python -m pip install -q --no-deps -e .
	touch $(STAMP)

# Refresh the hashed locks from pyproject.toml (uv resolves; both files are committed).
lock:
	test -x $(BIN)/uv || $(BIN)/python -m pip install -q uv
	$(BIN)/uv pip compile -q pyproject.toml --extra dev --generate-hashes --python-version 3.11 -o requirements-dev.lock
	$(BIN)/uv pip compile -q pyproject.toml --generate-hashes --python-version 3.11 -c requirements-dev.lock -o requirements.lock

# Everything an offline province server needs: the project's wheel and every locked
# dependency's, installable with `pip install --no-index --find-links dist/wheelhouse diemthi`.
wheelhouse: setup
	rm -rf dist/wheelhouse
	$(BIN)/python -m pip wheel -q --no-deps -w dist/wheelhouse .
	$(BIN)/python -m pip wheel -q --require-hashes -r requirements.lock -w dist/wheelhouse
	@ls dist/wheelhouse | wc -l | xargs echo "dist/wheelhouse: wheels:"

import-sample: setup
	$(BIN)/diemthi import --data-dir $(DATA) --year 2026 --activate --skip-unchanged data/sample/*.csv
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

# The Zalo Mini App (miniapp/): install from the lock, build into miniapp/www (what `zmp deploy`
# uploads), print its gzipped weight. Configured at build time:
#   make miniapp DIEMTHI_MINIAPP_API=https://diemthi.example DIEMTHI_MINIAPP_OA_ID=123
miniapp:
	cd miniapp && npm ci --no-audit --no-fund
	cd miniapp && DIEMTHI_MINIAPP_API="$(DIEMTHI_MINIAPP_API)" \
	  DIEMTHI_MINIAPP_OA_ID="$(DIEMTHI_MINIAPP_OA_ID)" npm run build
	$(PYTHON) scripts/miniapp_size.py miniapp/www
