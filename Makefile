# Promenade: the two commands the README names, and the schema export.
#
#   make up      run the control plane on embedded defaults (SQLite in ./.promenade, in-process bus)
#   make test    the services the tests need (scripts/test-services), then ruff check,
#                ruff format --check, mypy --strict, the console's checks (make console-test),
#                pytest: stops at the first failure
#   make console the web console (console/, TypeScript): npm ci, then build it into
#                app/console/dist, which is committed (the API serves it at /)
#   make console-test  the console's type check (tsc), unit tests (vitest), and that the committed
#                build is the build of its sources
#   make test-kubernetes  the KUBERNETES runtime against a real cluster (tests/kubernetes: marker
#                kubernetes, which make test and make test-fast leave out); needs
#                PROMENADE_TEST_KUBECONFIG, a kubeconfig of a cluster the tests may use
#   make test-fast  the tests that need nothing but Python (SQLite, in-process bus): no
#                PostgreSQL, RabbitMQ, Docker, Node.js or `promenade` processes; two pytest workers
#   make screenshots  the README's pictures of the console (docs/console-*.png), taken by its
#                browser test (tests/console) in Chromium
#   make schema  rewrite schema.graphql from the code (tests/test_schema.py fails when it drifts)
#   make docker-stop  stop the Docker Engine that make test started (scripts/docker-engine)
#   make contract     copy the design's API contract (../shared) into tests/contract/
#
# Each one first makes ./.venv (python3 -m venv) if it is missing and runs
# `pip install -e '.[test]'` when pyproject.toml is newer than the last install (a stamp file in
# .venv records it).
#
# The tests need a PostgreSQL server, a RabbitMQ broker and a Docker Engine; scripts/test-services
# starts them (as root: installs Debian's docker.io and starts an engine with no networking of
# its own, kept running between runs so its test images stay built). The tests read:
#   PROMENADE_TEST_DATABASE_URL  default postgresql://postgres@127.0.0.1:5432/test
#   PROMENADE_TEST_AMQP_URL      default amqp://guest:guest@127.0.0.1:5672/
#   DOCKER_HOST                  default: the engine scripts/docker-engine runs, if it does
# The defaults apply only when a variable is unset. Set one to your own server's URL, or to an
# empty value to have the fixtures start a container with testcontainers (needs a Docker
# engine; the end-to-end tests need a real RabbitMQ URL):
#   PROMENADE_TEST_DATABASE_URL= make test
# PYTEST_ARGS passes options to pytest: make test PYTEST_ARGS='-k settings -x'

PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.promenade-installed

export PROMENADE_TEST_DATABASE_URL ?= postgresql://postgres@127.0.0.1:5432/test
export PROMENADE_TEST_AMQP_URL ?= amqp://guest:guest@127.0.0.1:5672/

.DEFAULT_GOAL := help
.PHONY: help up test test-fast test-kubernetes services lint typecheck pytest schema install docker-stop contract console console-test screenshots

help:
	@sed -n 's/^#   make /make /p' $(MAKEFILE_LIST)

up: $(STAMP)
	exec $(BIN)/promenade up

# One recipe, one step per line: make stops at the first step that fails. pytest exits 5 when
# it collected no test, which fails the run like any other non-zero exit.
test: $(STAMP) services
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy app workers tests bench
	$(MAKE) --no-print-directory console-test
	$(BIN)/pytest --durations=30 -m 'not kubernetes' $(PYTEST_ARGS)

# What a test needs is a marker derived from its fixtures and folder (tests/conftest.py).
FAST := not postgres and not rabbitmq and not docker and not processes and not kubernetes

# Bytecode is written even where the environment says not to (PYTHONDONTWRITEBYTECODE, as in
# many container images): without it each of the two workers compiles and assertion-rewrites
# every module again, some 5 s a run.
test-fast: $(STAMP)
	PYTHONDONTWRITEBYTECODE= $(BIN)/pytest -n 2 -m '$(FAST)' $(PYTEST_ARGS)

# Against the cluster of PROMENADE_TEST_KUBECONFIG, with the image PROMENADE_TEST_KUBERNETES_IMAGE
# (default greeter:1.0.0, examples/greeter) already on its nodes: tests/kubernetes/conftest.py.
test-kubernetes: $(STAMP)
	@if [ -z "$$PROMENADE_TEST_KUBECONFIG" ]; then \
		echo "make test-kubernetes: set PROMENADE_TEST_KUBECONFIG to the kubeconfig of a cluster the tests may use (they create and delete namespaces promtest-*), e.g. kind get kubeconfig > /tmp/kind.kubeconfig; and load the greeter image into it: docker build -t greeter:1.0.0 examples/greeter && kind load docker-image greeter:1.0.0" >&2; \
		exit 2; \
	fi
	$(BIN)/pytest -m kubernetes tests/kubernetes $(PYTEST_ARGS)

services:
	scripts/test-services

docker-stop:
	scripts/docker-engine stop

contract:
	cp ../shared/design/api-contract.graphql tests/contract/api-contract.graphql

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

typecheck: $(STAMP)
	$(BIN)/mypy app workers tests bench

pytest: $(STAMP)
	$(BIN)/pytest -m 'not kubernetes' $(PYTEST_ARGS)

screenshots: $(STAMP) services
	PROMENADE_SCREENSHOT_DIR=docs $(BIN)/pytest -q tests/console/test_console.py -k promote_with_an_override

schema: $(STAMP)
	$(BIN)/strawberry export-schema app.graphql.schema:schema --output schema.graphql

install: $(STAMP)

# The console's packages (console/package-lock.json), installed again when the lock changes.
CONSOLE_MODULES := console/node_modules/.package-lock.json

$(CONSOLE_MODULES): console/package-lock.json
	cd console && npm ci --no-audit --no-fund

console: $(CONSOLE_MODULES)
	cd console && npm run build

# The build is reproducible: built again into a scratch folder, it must equal what is committed.
console-test: $(CONSOLE_MODULES)
	cd console && npm run check && npm test
	@scratch=$$(mktemp -d) && \
	(cd console && npx vite build --logLevel warn --outDir "$$scratch" --emptyOutDir) && \
	if diff -r "$$scratch" app/console/dist; then rm -rf "$$scratch"; else \
		rm -rf "$$scratch"; \
		echo "app/console/dist is not the build of console/src: run make console and commit it" >&2; \
		exit 1; fi

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)

$(STAMP): pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install -e '.[test]'
	touch $@

# Not part of `make test`: see bench/README.md. BENCH_ARGS passes options, e.g.
# make bench BENCH_ARGS='--integrations 100 --json'
#   make bench   promotions/s with two workers against the raw RabbitMQ publish rate (bench/README.md)
#   make bench-read  { __typename } with a token against a plain Strawberry app (bench/README.md)
.PHONY: bench bench-read bench-all
bench: $(STAMP)
	$(BIN)/python -m bench.promotions $(BENCH_ARGS)

bench-read: $(STAMP)
	$(BIN)/python -m bench.read_path $(BENCH_ARGS)

bench-all: $(STAMP)
	$(BIN)/python -m bench.report $(BENCH_ARGS)
