# Two entry points a newcomer needs: `make serve` and `make test` (`make test-fast`
# for the quick part).
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: serve test test-fast test-postgres test-no-fast-paths lint proto install clean

# The server and, beside it, the bench: its own distribution (bench/).
$(STAMP): pyproject.toml bench/pyproject.toml
	test -d $(VENV) || $(PY) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -e '.[dev,calls]' -e ./bench
	touch $(STAMP)

install: $(STAMP)

serve: $(STAMP)
	$(BIN)/crab serve

test: $(STAMP)
	$(BIN)/pytest -q

# Everything but the `slow` tests (external services, processes, tmux, or
# seconds each): what a change needs first, in well under a minute.
test-fast: $(STAMP)
	$(BIN)/pytest -q -m "not slow"

# The API-level flows once more, on a real PostgreSQL that the tests start
# (tests/helpers/services.py): each test gets a fresh database. `make test` already
# runs the storage contract suite on both SQLite and PostgreSQL.
PG_FLOWS := tests/integration/test_flows.py tests/integration/test_more_flows.py \
	tests/integration/test_bad_input.py tests/integration/test_authorization.py \
	tests/integration/test_refresh.py tests/integration/test_calls.py
test-postgres: $(STAMP)
	CRAB_TEST_DATABASE=postgresql $(BIN)/pytest -q $(PG_FLOWS)

# The flows once more with every fast path off (crab/core/api/internals.py):
# what grpclib's own path does when an internal is gone must work too.
test-no-fast-paths: $(STAMP)
	CRAB_FAST_PATHS=0 $(BIN)/pytest -q tests/integration/test_flows.py tests/integration/test_more_flows.py

lint: $(STAMP)
	$(BIN)/ruff check crab bench tests
	$(BIN)/ruff format --check crab bench tests
	$(BIN)/mypy

# Regenerates crab/proto from crab/proto/crab.proto (tests fail when stale).
proto: $(STAMP)
	PATH=$(BIN):$$PATH $(BIN)/python -m grpc_tools.protoc -I crab/proto \
	  --python_betterproto2_out=crab/proto \
	  --python_betterproto2_opt=client_generation=async,server_generation=async \
	  --descriptor_set_out=crab/proto/crab.desc --include_imports \
	  crab/proto/crab.proto

clean:
	rm -rf $(VENV) build *.egg-info bench/build bench/*.egg-info
