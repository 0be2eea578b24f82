# ser: set-up, tests and the main jobs. Run `make help` for the list.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
# Use the shared Emo-DB, EMOVO and RAVDESS copies when they exist (tests, CI, offline runs);
# otherwise data/emodb and data/ravdess, which train.py downloads on first use, and data/emovo
# (EMOVO has no download).
EMODB_ROOT ?= $(if $(wildcard ../shared/data/emodb/wav),$(abspath ../shared/data/emodb),data/emodb)
export SER_EMODB_ROOT := $(EMODB_ROOT)
EMOVO_ROOT ?= $(if $(wildcard ../shared/data/emovo/f1),$(abspath ../shared/data/emovo),data/emovo)
export SER_EMOVO_ROOT := $(EMOVO_ROOT)
RAVDESS_ROOT ?= $(if $(wildcard ../shared/data/ravdess/Actor_01),$(abspath ../shared/data/ravdess),data/ravdess)
export SER_RAVDESS_ROOT := $(RAVDESS_ROOT)
# Extra overrides for train/sweep, e.g. make train ARGS="model=acrnn fold=3"
ARGS ?=
# glibc: keep freed memory for reuse instead of returning every large tensor to the system
# (25-35% faster CPU training steps, same maths; see docs/hardware.md). Override with
# GLIBC_TUNABLES= to disable.
GLIBC_TUNABLES ?= glibc.malloc.mmap_max=0:glibc.malloc.trim_threshold=1073741824
FAST_MALLOC := GLIBC_TUNABLES=$(GLIBC_TUNABLES)
# make test and make test-fast: one pytest-xdist worker per core (at most 4), each with one
# torch thread (tests/conftest.py): most tests are small fits and CLI start-ups that a second
# thread barely speeds up. TEST_WORKERS=0 runs them in this process.
TEST_WORKERS ?= auto
XDIST := -n $(TEST_WORKERS) --maxprocesses=4

.PHONY: help install test test-fast test-cluster lint format train sweep bench clean

help:
	@echo "make install  create $(VENV) and install requirements + the ser package (idempotent)"
	@echo "make test     lint, then the whole test suite (without the cluster tests), one worker per core"
	@echo "make test-fast  the unit tier for the edit loop: no end-to-end fits or subprocesses"
	@echo "make test-cluster  the SLURM tests on a local cluster (root: installs slurm-wlm, munge, mariadb)"
	@echo "make lint     ruff check + ruff format --check"
	@echo "make train    python train.py with defaults (ADSRNN, Emo-DB, fold 0); ARGS=\"...\" adds overrides"
	@echo "make sweep    python sweep.py: 4 models x 10 folds on Emo-DB; ARGS=\"...\" adds overrides"
	@echo "make bench    model throughput table (bench/throughput.py)"

install: $(VENV)/.installed

$(VENV)/.installed: requirements.txt pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -r requirements.txt
	$(BIN)/python -m pip install --quiet --no-deps -e . --config-settings editable_mode=compat
	touch $@

lint: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

format: install
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

test: lint
	$(BIN)/python -m pytest $(XDIST)

test-fast: install
	$(BIN)/python -m pytest -m "not slow" -q $(XDIST)

# tests/cluster/slurm.sh starts (and stops) a one-node SLURM cluster on localhost
test-cluster: install
	$(BIN)/python -m pytest tests/cluster

train: install
	$(FAST_MALLOC) $(BIN)/python train.py $(ARGS)

sweep: install
	$(FAST_MALLOC) $(BIN)/python sweep.py $(ARGS)

bench: install
	$(BIN)/python bench/throughput.py

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache
