# The two commands: `make run` and `make test`. Everything else is a helper.
PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed-$(shell cat pyproject.toml src/gordon_manager/_rowjson.c | sha1sum | cut -c1-12)
TS_STAMP := clients/ts/node_modules/.gordon-lock-sha256

.PHONY: run test openapi asyncapi bench lint clean system-deps image

$(PY):
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip

$(STAMP): pyproject.toml src/gordon_manager/_rowjson.c | $(PY)
	$(PY) -m pip install -q -e '.[test]'
	rm -f $(VENV)/.installed-*
	touch $@

## make run: install if needed, then serve on :8083 (embedded PostgreSQL unless GORDON_DATABASE_URL is set)
run: $(STAMP)
	$(VENV)/bin/gordon-manager serve

## make test: install if needed (Python deps and the Debian packages the real-peer tests use), run the suite with coverage gates
test: $(STAMP) system-deps
	$(PY) -m pytest -q -p no:cacheprovider --cov=gordon_manager --cov-report=term --cov-report=json:coverage.json $(PYTEST_ARGS)
	$(PY) ci/coverage_gate.py coverage.json

system-deps:
	@if [ -x ci/install-system-deps.sh ] || [ -f ci/install-system-deps.sh ]; then bash ci/install-system-deps.sh; fi

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

## make bench: run every benchmark in bench/ (not part of `make test`)
bench: $(STAMP)
	$(PY) -m pip install -q -e '.[test,bench]'
	for f in bench/[a-z]*.py; do case $$f in */seed_bff.py) continue;; esac; echo "== $$f"; $(PY) $$f || exit 1; done

IMAGE ?= ghcr.io/dlepaux/gordon-manager:3.8.0
BASE  ?= python:3.11-slim
## make image: build $(IMAGE): the wheels on the host (build/wheels), then the Dockerfile with no network (BASE=<image> for another Python 3.11 base)
image: $(STAMP)
	rm -rf build/wheels
	$(PY) -m pip wheel -q --disable-pip-version-check --wheel-dir build/wheels .
	DOCKER_BUILDKIT=$${DOCKER_BUILDKIT:-$$(docker buildx version >/dev/null 2>&1 && echo 1 || echo 0)} \
	  docker build --network none --build-arg BASE=$(BASE) \
	  --build-arg REVISION=$$(git rev-parse --short HEAD 2>/dev/null || echo unknown) -t $(IMAGE) .

clean:
	rm -rf $(VENV) .coverage .coverage.* coverage.json htmlcov .pytest_cache
