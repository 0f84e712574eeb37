# The two commands a newcomer needs:  make run   and   make test
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
SIDECAR := whatsapp/sidecar

.PHONY: run test test-unit venv sidecar-deps lint migrate bench bench-quick soak clean units

venv: $(VENV)/.installed

$(VENV)/.installed: requirements.txt requirements-dev.txt
	@$(PYTHON) -c 'import sys; assert sys.version_info >= (3, 11), "Python 3.11+ is required"'
	test -d $(VENV) || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --disable-pip-version-check -r requirements-dev.txt
	touch $@

sidecar-deps:
	@if [ -f $(SIDECAR)/package.json ]; then $(MAKE) --no-print-directory $(SIDECAR)/node_modules/.installed; fi

$(SIDECAR)/node_modules/.installed: $(SIDECAR)/package.json $(SIDECAR)/package-lock.json
	cd $(SIDECAR) && npm ci --no-audit --no-fund --loglevel=error
	touch $@

## Set up everything and run the whole system (web, workers, beat, Flower, sidecar).
run: venv sidecar-deps
	scripts/run.sh

## Set up everything and run every test (lint, sidecar tests, Python unit and integration tests).
test: venv sidecar-deps
	scripts/test.sh

## Only lint and the Python unit tests (tests/unit/: no worker, server, Redis or sidecar to start).
test-unit: venv
	scripts/test.sh --unit

## Benchmarks: print the numbers and record them in docs/PERFORMANCE.md (several minutes).
bench: venv sidecar-deps
	$(BIN)/python -m scripts.bench.run all

## The webhook and pipeline ratios against their targets in under a minute (records nothing).
bench-quick: venv sidecar-deps
	$(BIN)/python -m scripts.bench.run --quick

## The chaos soak: bounded in time; prints answered once / dead-lettered / lost / twice.
soak: venv sidecar-deps
	$(BIN)/python -m scripts.soak

lint: venv
	$(BIN)/ruff check .

migrate: venv
	$(BIN)/python manage.py migrate

clean:
	rm -rf $(VENV) $(SIDECAR)/node_modules .run .test-db.sqlite3

## systemd units for one host, generated from the Procfile (deploy/systemd/units).
units: venv
	rm -rf deploy/systemd/units
	$(BIN)/honcho export systemd deploy/systemd/units -f "$(CURDIR)/Procfile" -t deploy/systemd/templates \
		-a whatsapp -d /srv/whatsapp -u whatsapp -s /bin/sh -e /dev/null 2>/dev/null
