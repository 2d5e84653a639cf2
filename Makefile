# The two commands: `make run` and `make test`. Everything else is a helper.
PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
SOURCES_SHA := $(shell cat pyproject.toml src/gordon_manager/_rowjson.c | sha1sum | cut -c1-12)
STAMP  := $(VENV)/.installed-$(SOURCES_SHA)
RUN_STAMP := $(VENV)/.run-installed-$(SOURCES_SHA)
TS_STAMP := clients/ts/node_modules/.gordon-lock-sha256
CONSOLE_STAMP := console/node_modules/.gordon-lock-sha256
# What the console's build is made of: its sources, its config and the typed client it imports.
CONSOLE_SRC := $(shell find console/src console/index.html console/vite.config.ts console/tsconfig.json console/package.json clients/ts/src -type f 2>/dev/null)

.PHONY: run test openapi asyncapi bench lint typecheck clean system-deps console console-test image

$(PY):
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip

$(STAMP): pyproject.toml src/gordon_manager/_rowjson.c | $(PY)
	$(PY) -m pip install -q -e '.[test]'
	rm -f $(VENV)/.installed-*
	touch $@

# `make run` needs the runtime dependencies only (`make test` adds the test extras)
$(RUN_STAMP): pyproject.toml src/gordon_manager/_rowjson.c | $(PY)
	$(PY) -m pip install -q -e .
	rm -f $(VENV)/.run-installed-*
	touch $@

## make run: install if needed, build the console when missing or stale, then serve on :8083 (embedded PostgreSQL unless GORDON_DATABASE_URL is set); Ctrl-C or SIGTERM stops it, its embedded database and the bots it ran as processes
run: $(RUN_STAMP) console
	exec $(VENV)/bin/gordon-manager serve

## make test: install if needed (Python deps and the Debian packages the real-peer tests use), run the suite with coverage gates
test: $(STAMP) system-deps console lint
	$(PY) -m pytest -q -p no:cacheprovider --cov=gordon_manager --cov-report=term --cov-report=json:coverage.json $(PYTEST_ARGS)
	$(PY) ci/coverage_gate.py coverage.json

system-deps:
	@if [ -x ci/install-system-deps.sh ] || [ -f ci/install-system-deps.sh ]; then bash ci/install-system-deps.sh; fi

## make lint: ruff over the code, tests, benchmarks and CI scripts, the import layers (lint-imports), then mypy; rules and config in pyproject.toml; `make test` runs it first
lint: $(STAMP)
	$(VENV)/bin/ruff check src tests bench ci
	$(VENV)/bin/lint-imports
	$(VENV)/bin/mypy

## make typecheck: mypy over src/gordon_manager alone (pydantic plugin; strict on execution, reconcile, deploys, botrunner)
typecheck: $(STAMP)
	$(VENV)/bin/mypy

## make asyncapi: regenerate asyncapi.yaml (src/gordon_manager/events/asyncapi.base.yaml + the payload models)
asyncapi: $(STAMP)
	$(VENV)/bin/gordon-manager asyncapi > asyncapi.yaml

## make openapi: regenerate openapi.yaml from the app, then the TypeScript client's types (clients/ts/src/schema.d.ts; src/ws.d.ts from asyncapi.yaml)
openapi: $(STAMP) $(TS_STAMP)
	$(VENV)/bin/gordon-manager openapi > openapi.yaml
	cd clients/ts && npm run -s generate

# clients/ts's pinned tools (openapi-typescript, TypeScript, Spectral): `npm ci` again only when the lock changes
$(TS_STAMP): clients/ts/package-lock.json
	cd clients/ts && npm ci --ignore-scripts --no-audit --no-fund
	sha256sum clients/ts/package-lock.json | cut -d' ' -f1 > $@

## make console: build the operator console (console/ -> console/dist) when a source is newer than the build
console: console/dist/index.html

console/dist/index.html: $(CONSOLE_STAMP) $(CONSOLE_SRC)
	cd console && npm run -s build
	touch $@

# console/'s pinned dependencies (React, Vite, lightweight-charts, Vitest, axe-core): `npm ci` again only when the lock changes
$(CONSOLE_STAMP): console/package-lock.json
	cd console && npm ci --no-audit --no-fund
	sha256sum console/package-lock.json | cut -d' ' -f1 > $@

## make console-test: the console's unit tests (Vitest); `make test` runs them too (tests/console/test_unit.py)
console-test: $(CONSOLE_STAMP)
	cd console && npx vitest run

## make bench: run every benchmark in bench/ (not part of `make test`)
bench: $(STAMP)
	$(PY) -m pip install -q -e '.[test,bench]'
	for f in bench/[a-z]*.py; do case $$f in */seed_bff.py) continue;; esac; echo "== $$f"; $(PY) $$f || exit 1; done

IMAGE ?= ghcr.io/dlepaux/gordon-manager:3.8.0
BASE  ?= python:3.11-slim
## make image: build $(IMAGE): the wheels on the host (build/wheels), then the Dockerfile with no network (BASE=<image> for another Python 3.11 base)
image: $(STAMP) console
	rm -rf build/wheels
	$(PY) -m pip wheel -q --disable-pip-version-check --wheel-dir build/wheels .
	DOCKER_BUILDKIT=$${DOCKER_BUILDKIT:-$$(docker buildx version >/dev/null 2>&1 && echo 1 || echo 0)} \
	  docker build --network none --build-arg BASE=$(BASE) \
	  --build-arg REVISION=$$(git rev-parse --short HEAD 2>/dev/null || echo unknown) -t $(IMAGE) .

clean:
	rm -rf $(VENV) .coverage .coverage.* coverage.json htmlcov .pytest_cache .mypy_cache
