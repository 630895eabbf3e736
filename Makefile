# image-gallery: every target installs what it needs. On a fresh Debian machine, Python 3.11 and make suffice.
#   make plan STACK=dev [FORMAT=json]     offline plan of a stack (no network, no credentials)
#   make replication STACK=dev [WATCH=1]  per-region replication progress of the stack's versions (read-only)
#   make recover STACK=dev [PREVIEW=1] [DEPROVISIONED=step]  after a killed `pulumi up`: the one command (README "When a run fails")
#   make demo                             a real `pulumi up` of a demo stack against local stand-ins (fake Azure)
#   make test                             the whole suite (installs test prerequisites with apt-get when root)
#   make e2e                              only the end-to-end tests under the real Pulumi CLI
#   make engine                           build (or reuse) the pinned Pulumi CLI; prints its bin directory
#   make lint | make bench | make clean | make mutation [MODULES=hooks/preflight/rules.py LIMIT=60 SEED=n]

SHELL := /bin/bash
.SHELLFLAGS := -eu -o pipefail -c
.DEFAULT_GOAL := help

STACK ?= dev
FORMAT ?= text
PYTHON ?= python3
UV_VERSION := 0.13.9
CACHE := .cache
BOOTSTRAP := $(CACHE)/bootstrap
UV := $(shell command -v uv 2>/dev/null || echo $(BOOTSTRAP)/bin/uv)
VENV_STAMP := .venv/.synced

# This environment may set PYTHONDONTWRITEBYTECODE; without byte-code caching every run recompiles
# pulumi-azure-native (seconds per process).
unexport PYTHONDONTWRITEBYTECODE
export UV_PYTHON := $(PYTHON)
export UV_PYTHON_DOWNLOADS := never

.PHONY: help venv plan replication test unit integration e2e engine demo lint typecheck bench sandbox prereqs clean mutation

help:
	@sed -n '2,10p' Makefile

# uv itself: the one on PATH, or a private copy installed with pip into .cache/bootstrap.
$(BOOTSTRAP)/bin/uv:
	@if ! $(PYTHON) -c 'import venv, ensurepip' 2>/dev/null; then \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
	    echo "installing python3-venv with apt-get"; apt-get update -qq; \
	    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends python3-venv; \
	  else echo "error: $(PYTHON) has no venv/ensurepip; install python3-venv (apt-get install python3-venv)" >&2; exit 1; fi; \
	fi
	$(PYTHON) -m venv $(BOOTSTRAP)
	$(BOOTSTRAP)/bin/python -m pip install -q --disable-pip-version-check "uv==$(UV_VERSION)"

$(VENV_STAMP): pyproject.toml uv.lock | $(if $(shell command -v uv 2>/dev/null),,$(BOOTSTRAP)/bin/uv)
	$(UV) sync --frozen
	@touch $@

venv: $(VENV_STAMP)

plan: $(VENV_STAMP)
	@$(UV) run --frozen --no-sync python -m commands.plan $(STACK) --format $(FORMAT)

# Reads the stack file and GETs each version's replication status (never writes to Azure); WATCH=1 follows it.
replication: $(VENV_STAMP)
	@$(UV) run --frozen --no-sync python -m commands.replication $(STACK) --format $(FORMAT) $(if $(WATCH),--watch)

# After a killed `pulumi up` (CI cancelled, runner lost): releases the stack's lock, imports what the killed run
# created in Azure and clears the rest of its pending creates, then `pulumi up` (PREVIEW=1: `pulumi preview`
# instead). WAIT_MINUTES bounds the wait for a version still replicating. DEPROVISIONED names the pending guest
# steps (space-separated) whose Linux guest was deprovisioned, when recovery cannot tell and says so. The up
# workflow's `recover` runs it too.
.PHONY: recover
recover: $(VENV_STAMP)
	@$(UV) run --frozen --no-sync python -m commands.recover $(STACK) $(if $(PREVIEW),--preview-only) \
	  $(if $(WAIT_MINUTES),--wait-minutes $(WAIT_MINUTES)) $(foreach name,$(DEPROVISIONED),--deprovisioned $(name))

lint: $(VENV_STAMP)
	$(UV) run --frozen --no-sync ruff check .
	$(UV) run --frozen --no-sync ruff format --check .
	$(UV) run --frozen --no-sync mypy
	$(UV) run --frozen --no-sync bandit -q -c pyproject.toml -r . --severity-level medium
	bash .ci/actionlint.sh

# Root-only prerequisites of the Linux guest tests: debootstrap, and the throwaway Debian root with the real
# waagent (built once, cached as a tarball under .cache/sandbox).
prereqs:
	@if [ "$$(id -u)" = 0 ]; then sh tests/fakes/install-prereqs.sh; \
	else echo "prereqs: not root: the waagent sandbox tests will be skipped (they need root for chroot/unshare)"; fi

sandbox: prereqs $(VENV_STAMP)
	@if [ "$$(id -u)" = 0 ]; then $(UV) run --frozen --no-sync python -m tests.fakes.sandbox build; fi

# The pinned Pulumi CLI (tools/engine/go.mod), built once into /var/cache/image-gallery/engine (or
# ~/.cache/image-gallery/engine without root), keyed by version: a warm cache does not rebuild.
engine:
	@bash tools/engine/build.sh

test: $(VENV_STAMP) sandbox engine lint
	$(UV) run --frozen --no-sync pytest

e2e: $(VENV_STAMP) sandbox engine
	$(UV) run --frozen --no-sync pytest tests/e2e

# A real `pulumi up` of a demo stack: fake ARM + azure-native test plugin, the sandboxed Linux guest (or, without
# root, a scripted SSH stand-in) and the fake WinRM guest. Uses a `pulumi` on PATH when its version fits.
demo: $(VENV_STAMP)
	@if [ "$$(id -u)" = 0 ]; then $(MAKE) --no-print-directory sandbox; fi
	@$(UV) run --frozen --no-sync python -m tools.demo

unit: $(VENV_STAMP)
	$(UV) run --frozen --no-sync pytest tests/unit

integration: $(VENV_STAMP) sandbox
	$(UV) run --frozen --no-sync pytest tests/integration

bench: $(VENV_STAMP)
	$(UV) run --frozen --no-sync python -m tools.bench --format $(FORMAT) $(BENCH_ARGS)

clean:
	rm -rf .venv $(CACHE) .pytest_cache .mypy_cache .ruff_cache

# Mutation testing (not part of `make test`): seeded mutants of the modules that decide, each run against the tests
# that cover its module (tools/mutation.py). MODULES=hooks/preflight/rules.py LIMIT=60 to narrow it. The sample's seed
# is the day of the year unless SEED=n is given; the run prints it, so SEED=n draws the same sample again.
MODULES ?=
LIMIT ?= 40
SEED ?=
mutation: $(VENV_STAMP)
	$(UV) run --frozen --no-sync python -m tools.mutation --limit $(LIMIT) $(if $(SEED),--seed $(SEED)) $(if $(MODULES),--modules $(MODULES))
