# Two commands on a fresh machine:  make demo   (the main job)   and   make test   (the test suite).
# Both build .venv first: torch 2.14.1 + torchvision 0.29.1 (pip takes them from local disk here),
# then this project with its test extras, editable.
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
# LiteRT (onnx2tf) in its own environment: onnx2tf pins old onnx/onnxruntime/numpy/protobuf
LITERT := .venv-litert
LITERT_STAMP := $(LITERT)/.installed
export POOLPORT_LITERT_PYTHON := $(abspath $(LITERT))/bin/python
# the two environments build side by side (each pip run mostly unpacks wheels on one core)
MAKEFLAGS += --jobs=2

$(STAMP): pyproject.toml requirements-dev.txt
	test -x $(BIN)/python || $(PY) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -r requirements-dev.txt
	touch $(STAMP)

$(LITERT_STAMP): requirements-litert.txt
	test -x $(LITERT)/bin/python || $(PY) -m venv $(LITERT)
	$(LITERT)/bin/python -m pip install -q --upgrade pip
	$(LITERT)/bin/python -m pip install -q -r requirements-litert.txt
	touch $(LITERT_STAMP)

.PHONY: venv litert demo test test-slow lint bench
venv: $(STAMP)
litert: $(LITERT_STAMP)

demo: $(STAMP) $(LITERT_STAMP)
	$(BIN)/poolport demo

# tests run in parallel, one worker per core (pytest-xdist); the 15 slowest are listed at the end
test: $(STAMP) $(LITERT_STAMP)
	$(BIN)/ruff check src tests benchmarks
	$(BIN)/python -m pytest -q -n auto --durations=15

lint: $(STAMP)
	$(BIN)/ruff check src tests benchmarks

test-slow: $(STAMP) $(LITERT_STAMP)
	$(BIN)/python -m pytest -q -m slow

# per_runtime.py: one table per runtime (ONNX Runtime, OpenVINO, ncnn, MNN, LiteRT; those not installed are
# listed as such), --forms the small-map formulations in ONNX Runtime; BENCH_REPEAT=30 for a quicker pass
BENCH_REPEAT ?= 100
bench: $(STAMP) $(LITERT_STAMP)
	$(BIN)/python benchmarks/adaptive_ort.py --markdown docs/bench-adaptive-ort.md
	$(BIN)/python benchmarks/per_runtime.py --forms --repeat $(BENCH_REPEAT) --markdown docs/bench-runtimes.md
	$(BIN)/python benchmarks/export_overhead.py --markdown docs/bench-export.md
	$(BIN)/python benchmarks/quantization.py --markdown docs/bench-quantization.md
