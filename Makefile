# The two commands: `make run` (embedded default with demo data) and `make test` (the suite).
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
# Two pytest-xdist workers, whole files per worker; each worker has its own database (test_gw0, test_gw1).
PYTEST_ARGS ?= -n 2 --dist loadfile
export HF_HUB_OFFLINE := 1
export TRANSFORMERS_OFFLINE := 1

.PHONY: run test test-chaos fuzz install install-test chromium lint fmt migrate clean bench

# torch==2.13.0 (CPU) goes in first: with no torch installed, sentence-transformers pulls a multi-GB CUDA build.
$(BIN)/.installed: pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet torch==2.13.0
	$(BIN)/python -m pip install --quiet -e .
	touch $@

$(BIN)/.installed-test: $(BIN)/.installed pyproject.toml
	$(BIN)/python -m pip install --quiet -e '.[test]'
	touch $@

install: $(BIN)/.installed

install-test: $(BIN)/.installed-test chromium

# The browser tests' Chromium (tests/web): Debian's packages, as root (CI); elsewhere it says what to run.
chromium:
	@test -x /usr/bin/chromium || (apt-get update -qq && apt-get install -y -qq chromium chromium-driver) \
	  || echo "browser tests need Chromium: sudo apt-get install -y chromium chromium-driver"

# make run PORT=8080 HOST=0.0.0.0: serve elsewhere than 127.0.0.1:8000.
HOST ?= 127.0.0.1
PORT ?= 8000

run: install
	$(BIN)/real-align serve --demo --host $(HOST) --port $(PORT)

test: install-test
	@$(BIN)/python -m tests.preflight
	$(BIN)/python -m pytest $(PYTEST_ARGS)

# The chaos suite (tests/chaos, about 10 minutes): its own Postgres and Redis on free ports, `real-align api`
# with 2 workers, a Celery worker and beat; worker SIGKILLs, Redis and Postgres outages, 100 annotators for
# 2 minutes, exports of one snapshot. Not part of `make test`; .ci/run runs both.
test-chaos: install-test
	$(BIN)/python -m pytest tests/chaos -m chaos -p no:xdist -o log_cli=true --log-cli-level=WARNING

# The CPU benchmarks in one go, each at a size that keeps the whole run near 10 minutes on 2 cores (Postgres on
# 127.0.0.1:5432, Redis for the production shape); each prints its table. docs/benchmarks.md has the full-size
# commands and their recorded results.
bench: install-test
	$(BIN)/python bench/selection.py --prompts 20000 --repeat 1
	$(BIN)/python -m bench.neighbors --sizes 5000 --queries 100
	$(BIN)/python -m bench.queue --seconds 10 --annotators 1,50 --db postgres
	$(BIN)/python -m bench.ingest --batches 5 --upload --upload-prompts 20000
	$(BIN)/python -m bench.export --pairs 20000 --db postgres,sqlite
	$(BIN)/python -m bench.pipeline --prompts 20 --answers 5 --shapes embedded --rounds 2
	$(BIN)/python -m bench.backends --prompts 20

# The deep schema fuzz: 200 examples per operation and role (make test runs 25).
fuzz: install-test
	@$(BIN)/python -m tests.preflight
	REAL_FUZZ_EXAMPLES=200 $(BIN)/python -m pytest tests/contract $(PYTEST_ARGS)

# ruff, and mypy strict over app/ and real_align/ ([tool.mypy] in pyproject.toml); .ci/run runs it too.
lint: install-test
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy

fmt: install-test
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

migrate: install
	$(BIN)/real-align migrate

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache exports real-align.db real-align.db-wal real-align.db-shm
