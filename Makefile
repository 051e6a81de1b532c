# The two commands a user needs: `make synth` (the main job) and `make test`.
# Both install what is missing first: .venv exactly as uv.lock says, the pinned CDK CLI from package-lock.json.

SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
CDK := node_modules/.bin/cdk
UV_VERSION := 0.13.9
UV := $(VENV)/bin/uv
SERVICE_REQUIREMENTS := model_service/requirements.txt
TRAINING_REQUIREMENTS := training/requirements.txt
BRANCH ?=
export BRANCH
export JSII_SILENCE_WARNING_END_OF_LIFE_NODE_VERSION ?= 20,22,24
export CDK_DISABLE_VERSION_CHECK := 1
# a deploy from this machine builds the service image as the workflows do: one manifest, no attestation index
# (Lambda refuses an index: the serverless model service)
export BUILDX_NO_DEFAULT_ATTESTATIONS := 1

.PHONY: install install-cdk lock synth test postgres-server lint workspace clean pipeline benchmark-etl benchmark-extract benchmark-promotion train serve \
	benchmark-service benchmark-cold-start backfill mutation generate cost \
	local-deploy local-status local-destroy

CHECKOV_VENV := .venv-checkov

install: install-cdk $(CHECKOV_VENV)/.installed

# what deploying needs (the workflows): the project's venv and the pinned CDK CLI
install-cdk: $(VENV)/.installed node_modules/.installed

# uv installs the lock (exactly, fast); --inexact keeps uv itself, which the lock does not list
$(VENV)/.installed: pyproject.toml uv.lock
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	test -x $(UV) || $(PY) -m pip install --quiet --disable-pip-version-check uv==$(UV_VERSION)
	$(UV) sync --frozen --inexact --extra dev --python $(PY) --quiet
	touch $@

## lock: re-resolve pyproject.toml into uv.lock and export the image's pins from it (commit both)
lock:
	test -x $(UV) || $(PY) -m pip install --quiet --disable-pip-version-check uv==$(UV_VERSION)
	$(UV) lock
	{ echo "# The image's dependencies, exported from uv.lock by \`make lock\` (never edit by hand): exactly the"; \
	  echo "# versions the tests ran. tests/model_service/test_image.py runs the service from this file alone."; \
	  $(UV) export --frozen --extra service --no-dev --no-emit-project --no-hashes --no-header --no-annotate; \
	} > $(SERVICE_REQUIREMENTS)
	{ echo "# The training image's dependencies, exported from uv.lock by \`make lock\` (never edit by hand): the"; \
	  echo "# versions the tests ran, and the service's. The loop test trains from this file alone."; \
	  $(UV) export --frozen --extra training --no-dev --no-emit-project --no-hashes --no-header --no-annotate; \
	} > $(TRAINING_REQUIREMENTS)

# checkov pins an old boto3: it gets a virtual environment of its own.
$(CHECKOV_VENV)/.installed: requirements-checkov.txt
	test -x $(CHECKOV_VENV)/bin/python || $(PYTHON) -m venv $(CHECKOV_VENV)
	$(CHECKOV_VENV)/bin/python -m pip install --quiet --disable-pip-version-check -r requirements-checkov.txt
	touch $@

node_modules/.installed: package.json package-lock.json
	npm ci --no-audit --no-fund --loglevel=error
	touch $@

## synth: synthesise the current branch's workspace (or BRANCH=<ref>) into cdk.out
synth: install-cdk
	$(CDK) synth --quiet $${BRANCH:+-c "branch=$$BRANCH"}

## test: the whole suite (what CI runs), on two workers; a file's tests stay together (its fixtures are shared),
## the slowest files first (tests/conftest.py: SLOWEST_FIRST)
test: install postgres-server
	$(PY) -m pytest -n 2 --dist loadfile --no-loadscope-reorder

# the database extractor's tests start a local PostgreSQL (scripts/local_postgres.py): Debian's server, installed
# where it is missing and this runs as root (CI), else named
postgres-server:
	@ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 \
	  || { [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null && apt-get update -qq \
	       && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql >/dev/null; } \
	  || { echo "the tests need PostgreSQL's server: apt-get install postgresql (Debian 12: postgresql-15)"; exit 1; }

## pipeline: the pipeline end to end on this machine (moto S3 + local Spark), with counts and a per-file
## report; DATA=<folder> runs it on your own files, laid out as landing is (<dataset>/<table>/<file>);
## SOURCE=postgresql://user:pw@host/db extracts the tables of sources/ from that database first
pipeline: install
	@# not echoed, and SOURCE (its password) reaches the script in its environment, not its command line
	@$(if $(SOURCE),PIPELINE_SOURCE="$(SOURCE)") $(PY) scripts/run_pipeline_local.py \
	  $(if $(DATA),--data "$(DATA)") $(if $(CONTRACTS),--contracts "$(CONTRACTS)")

## generate: test data from TABLE=<dataset>/<table>'s contract into build/generated (ROWS=<n> valid rows, and a
## file of rows that each break one rule, with the reason): then `make pipeline DATA=build/generated`
generate: install
	$(PY) -m pipeline.generate --table "$(TABLE)" $(if $(ROWS),--rows $(ROWS)) --out build/generated

## benchmark-etl: raw_to_staging on 1M generated rows vs a plain CSV->Parquet copy (not a test)
benchmark-etl: install
	$(PY) scripts/benchmark_raw_to_staging.py --rows 1000000

## benchmark-extract: the database extractor on a local PostgreSQL table of 1M rows: a first run and a run after
## 1 % changed, rows/s and peak memory (not a test)
benchmark-extract: install
	$(PY) scripts/benchmark_extract.py --rows 1000000

## benchmark-promotion: the time to promote a table's 1,000th batch against its 1st (incremental builds), and a
## build from scratch over all 1,000 (not a test)
benchmark-promotion: install
	$(PY) scripts/benchmark_promotion.py --batches 1000

## mutation: mutation scores of the pure core, each module against its own tests (not part of `make test`;
## MODULE=<path> for one); fails where a module kills under 90 % of its mutants
mutation: install
	$(PY) scripts/mutation.py $(if $(MODULE),--module $(MODULE))

## train: train, log and register the model in MLflow (build/mlflow unless MLFLOW_TRACKING_URI is set), on its
## table's curated data from `make pipeline` where there is some
train: install
	$(PY) -m training.train

## serve: run the model service locally on 127.0.0.1:8080 (follows the champion of the local MLflow store)
serve: install
	MLFLOW_TRACKING_URI=$${MLFLOW_TRACKING_URI:-sqlite:///$(CURDIR)/build/mlflow/mlflow.db} \
	$(PY) -m model_service --host 127.0.0.1 --port 8080

## benchmark-service: req/s and p50/p99 of /v1/predict (1 and 100 records) vs a bare FastAPI endpoint
benchmark-service: install
	$(PY) scripts/benchmark_service.py

## benchmark-cold-start: the serverless service's cold start, started as Lambda starts the image (not a test)
benchmark-cold-start: install
	$(PY) scripts/benchmark_cold_start.py

## cost: the monthly cost at rest of a feature workspace, int and prd (or BRANCH=<ref>), from their synthesised
## templates and infra/prices/<region>.yaml; fails when a feature workspace has a resource it cannot price
cost: install-cdk
	$(PY) -m infra.cost $${BRANCH:-feature/cost-estimate main v1.0.0} --check

## backfill: run every raw file of TABLE=<dataset>/<table> through the pipeline of BRANCH's workspace again, and
## rebuild its curated table from scratch (CURATED_ONLY=1: rebuild curated from staging now); AWS credentials
backfill: install-cdk
	$(PY) -m infra.backfill --branch "$${BRANCH:-$$(git rev-parse --abbrev-ref HEAD)}" --table "$(TABLE)" \
		$(if $(CURATED_ONLY),--curated-only)

## local-deploy: start a local AWS emulator (moto) and deploy this branch's workspace (or BRANCH=<ref>) to it
## with the real CDK CLI; prints what was created and leaves it running for inspection
local-deploy: install-cdk
	$(PY) -m infra.emulator up --branch "$${BRANCH:-$$(git rev-parse --abbrev-ref HEAD)}"

## local-status: what the running emulator holds
local-status: install-cdk
	$(PY) -m infra.emulator status

## local-destroy: destroy the emulated workspace as the destroy workflow does, then stop the emulator
local-destroy: install-cdk
	$(PY) -m infra.emulator down

lint: install
	$(PY) -m ruff check .

## workspace: print the stage and workspace of BRANCH (or the current branch)
workspace: install-cdk
	$(PY) -m infra.workspace "$${BRANCH:-$$(git rev-parse --abbrev-ref HEAD)}"

clean:
	rm -rf cdk.out .pytest_cache build
