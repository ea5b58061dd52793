# slimlab: the two commands that work on a fresh machine are `make demo` and `make test`.
# Both create .venv if it is missing and install slimlab into it.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
# torch is declared as a range (torch>=2.4) in pyproject.toml, so an existing build is kept.
# When the venv has no torch yet we install this spec first: on the project's CI machines it is a
# small CPU wheel that pip finds on local disk. Override it, e.g. `make demo TORCH_SPEC='torch>=2.4'`.
TORCH_SPEC ?= torch==2.13.0
# pip byte-compiles every file it installs, and that is most of the set-up time (torch alone: about 45 s of
# 70 on 2 cores). We install with --no-compile and let Python compile only what it imports, once, on first
# use; PYTHONDONTWRITEBYTECODE is cleared for the commands below so that it can write those .pyc files.
PIP_INSTALL := $(PY) -m pip install -q --no-compile
export PYTHONDONTWRITEBYTECODE :=
STAMP := $(VENV)/.slimlab-installed
DEV_STAMP := $(VENV)/.slimlab-dev-installed

.PHONY: setup setup-dev demo test test-slow lint bench clean

setup: $(STAMP)

# The demo needs slimlab alone; the tests add pytest, ruff, Ray and mlflow-skinny (the .[dev] extras).
$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -c "import torch" 2>/dev/null || $(PIP_INSTALL) "$(TORCH_SPEC)"
	$(PIP_INSTALL) -e .
	touch $(STAMP)

setup-dev: $(DEV_STAMP)

$(DEV_STAMP): $(STAMP)
	$(PIP_INSTALL) -e ".[dev]"
	touch $(DEV_STAMP)

demo: setup
	$(VENV)/bin/slimlab demo

test: setup-dev
	$(VENV)/bin/ruff check src tests benchmarks
	$(PY) -m pytest -q -m "not slow"

test-slow: setup-dev
	$(PY) -m pytest -q -m slow

# Every reference workload on every backend in one run; rewrites the benchmark section of BENCHMARKS.md.
# Takes several minutes (torch.compile and ONNX export per workload, ~3 s per measurement). BENCH_ARGS=--quick
# gives a smoke test; BENCH_ARGS="--threads 4" pins threads.
BENCH_ARGS ?=
bench: setup-dev
	$(PY) benchmarks/run_benchmarks.py --out BENCHMARKS.md --json runs/bench/records.json $(BENCH_ARGS)

lint: setup-dev
	$(VENV)/bin/ruff check src tests benchmarks
	$(VENV)/bin/ruff format --check src tests

clean:
	rm -rf $(VENV) runs .pytest_cache .ruff_cache
