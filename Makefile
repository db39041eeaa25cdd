# pilotchain — the two commands a newcomer needs are `make demo` and `make test`.
# Every target creates .venv when it is missing and installs the project into it.

PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed-stamp

.PHONY: demo test test-fast bench soak fuzz spark lint typecheck clean system-deps help

help:
	@echo "make demo       - create .venv, install, run the local multi-organisation demo"
	@echo "make test       - create .venv if needed, install, run the whole test suite"
	@echo "make bench      - benchmarks (crypto, ledger, state commitment); results in bench/results/"
	@echo "make soak       - long runs: simulator seeds, vault crashes, multi-host rounds, byzantine-process cycles"
	@echo "make fuzz       - every fuzz target for FUZZ_SECONDS each (default 180); new inputs kept in fuzz/corpus/"
	@echo "make spark      - the AML SQL on Apache Spark (installs PySpark; needs Java), compared with DuckDB"
	@echo "make lint       - ruff + mypy + the layer contract (import-linter)"

$(STAMP): pyproject.toml scripts/system-deps.sh
	@bash scripts/system-deps.sh
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade "pip>=23.2"
	$(BIN)/python -m pip install --quiet -e ".[dev]"
	@touch $(STAMP)

system-deps:
	@bash scripts/system-deps.sh

demo: $(STAMP)
	$(BIN)/pilotchain demo $(DEMO_ARGS)

test: $(STAMP)
	$(BIN)/ruff check src tests fuzz
	$(BIN)/mypy
	$(BIN)/lint-imports --no-logo
	$(BIN)/python -m pytest -n 2 $(PYTEST_ARGS)

test-fast: $(STAMP)
	$(BIN)/python -m pytest -n 2 -x -m "not slow and not spark" $(PYTEST_ARGS)

bench: $(STAMP)
	$(BIN)/pilotchain bench --mode stress --nodes 4 --crypto intl $(BENCH_ARGS)
	$(BIN)/pilotchain bench micro

PLENUM_PEER ?= ../shared/peers/plenum
bench-compare: $(STAMP)
	$(BIN)/pilotchain bench compare --plenum-peer $(PLENUM_PEER) $(COMPARE_ARGS)

JEPSEN_ROUNDS ?= 40
# attack + withhold cycles of the byzantine validator process (~13 s each; one runs in make test)
BYZANTINE_CYCLES ?= 20
soak: $(STAMP)
	$(BIN)/pilotchain sim --nodes 4 --seeds 10000 --faults all
	$(BIN)/pilotchain sim --nodes 7 --seeds 10000 --faults all
	$(BIN)/pilotchain sim --nodes 10 --seeds 5000 --faults all
	PILOTCHAIN_CRASH_ROUNDS=12 $(BIN)/python -m pytest -p no:cacheprovider tests/apps/exchange/test_live_crash.py
	PILOTCHAIN_JEPSEN_ROUNDS=$(JEPSEN_ROUNDS) $(BIN)/python -m pytest -s -p no:cacheprovider tests/jepsen/test_multihost.py
	PILOTCHAIN_BYZANTINE_CYCLES=$(BYZANTINE_CYCLES) $(BIN)/python -m pytest -p no:cacheprovider tests/node/test_byzantine_process.py

# the AML rules' SQL on Apache Spark, compared with DuckDB (PySpark ~300 MB and a Java runtime)
spark: $(STAMP)
	bash scripts/system-deps.sh java
	$(BIN)/python -m pip install --quiet -e ".[dev,spark]"
	$(BIN)/python -m pytest -s -m spark -p no:cacheprovider tests/apps/currency/test_spark.py

# FUZZ_SECONDS per target, one target at a time; FUZZ_TARGETS="codec block" runs only those
FUZZ_SECONDS ?= 180
fuzz: $(STAMP)
	$(BIN)/python -m fuzz.run fuzz --seconds $(FUZZ_SECONDS) $(FUZZ_TARGETS)

lint: $(STAMP)
	$(BIN)/ruff check src tests fuzz
	$(BIN)/mypy
	$(BIN)/lint-imports --no-logo

clean:
	rm -rf $(VENV) build dist src/*.egg-info .pytest_cache .mypy_cache .ruff_cache
