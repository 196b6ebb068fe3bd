# Two entry points a newcomer needs: `make serve` and `make test`.
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: serve test lint proto install clean

$(STAMP): pyproject.toml
	test -d $(VENV) || $(PY) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -e '.[dev]'
	touch $(STAMP)

install: $(STAMP)

serve: $(STAMP)
	$(BIN)/crab serve

test: $(STAMP)
	$(BIN)/pytest -q

lint: $(STAMP)
	$(BIN)/ruff check crab tests
	$(BIN)/ruff format --check crab tests
	$(BIN)/mypy

# Regenerates crab/proto from crab/proto/crab.proto (tests fail when stale).
proto: $(STAMP)
	PATH=$(BIN):$$PATH $(BIN)/python -m grpc_tools.protoc -I crab/proto \
	  --python_betterproto2_out=crab/proto \
	  --python_betterproto2_opt=client_generation=async,server_generation=async \
	  --descriptor_set_out=crab/proto/crab.desc --include_imports \
	  crab/proto/crab.proto

clean:
	rm -rf $(VENV) build *.egg-info
