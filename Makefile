# The two commands of the README, plus helpers. Everything runs inside .venv.
VENV ?= .venv
PY := $(VENV)/bin/python
export DAGSTER_HOME ?= $(CURDIR)/.dagster_home

.PHONY: setup demo test test-fast lint check ui ui-check bench scale-out scale-out-down bench-scale-out clean

setup:
	./scripts/setup.sh

## Set up, then run the main job on the embedded defaults (today's partitions).
demo: setup
	$(VENV)/bin/unwritten demo

## Set up, then run the whole test suite.
test: setup
	$(PY) -m pytest $(PYTEST_ARGS)

test-fast:
	$(PY) -m pytest -m "not slow"

## ruff: formatting and lint rules of pyproject.toml (CI runs this before the tests).
lint:
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/ruff check .

## Is the configured LLM backend reachable, are its models there?
check:
	$(VENV)/bin/unwritten check

## The Dagster UI on http://127.0.0.1:3000 over the persistent instance.
ui:
	mkdir -p $(DAGSTER_HOME) && cp dagster.yaml $(DAGSTER_HOME)/dagster.yaml
	$(VENV)/bin/dagster dev -h 127.0.0.1 -p 3000 -w workspace.yaml

## Webserver + GraphQL + headless Chromium: every asset shown, lineage screenshot in ui-lineage.png.
ui-check:
	$(PY) scripts/ui_check.py --screenshot ui-lineage.png

## Generation benchmark on the real llama.cpp server: llm_batches code path vs direct backend
## calls, and parallel_requests=2 vs 1.
bench:
	$(PY) scripts/bench_generation.py --llama-server -n 6 --samples-per-call 2 --rounds 4 --parallel 2

## Redis, PostgreSQL, two Celery workers (queues llm, train) and the daemon on 127.0.0.1; logs
## in <data_root>/scale_out/logs (docs/scale-out.md). Stop them with make scale-out-down.
scale-out:
	$(VENV)/bin/unwritten scale-out up

scale-out-down:
	$(VENV)/bin/unwritten scale-out down

## One Celery llm worker vs two against a capacity-2 loopback LLM server.
bench-scale-out:
	$(PY) scripts/bench_scale_out.py

clean:
	rm -rf $(VENV) .dagster_home .pytest_cache
