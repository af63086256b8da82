# whimbrel: `make demo` runs the main job on the local lab; `make test` passes the tests.
# Both set everything up from nothing on Debian 12 (as root: the lab needs namespaces).
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
WHIMBREL := $(BIN)/whimbrel
PYTEST_ARGS ?=

.PHONY: setup system venv demo test unit lint format bench bench-grid bench-report lab-up lab-down

setup: system venv

system:
	bash backends/lab/install-system.sh

venv: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -e '.[dev]'
	touch $@

LAB_CONFIG := /var/lib/wblab/config.toml

# The main job on the lab: see it, measure the path, plan, and move a live Redis across the
# WAN and back; then, in a terminal, the console on the lab (headless otherwise, as in CI).
demo: setup
	$(WHIMBREL) lab up
	$(WHIMBREL) --config $(LAB_CONFIG) ls
	$(WHIMBREL) --config $(LAB_CONFIG) probe east-1 west-1
	$(WHIMBREL) --config $(LAB_CONFIG) dirty east-1/hot --seconds 3
	$(WHIMBREL) model --size 512MiB --dirty-rate 8MiB/s --bandwidth 200Mbit --rtt 40ms --compare
	$(WHIMBREL) --config $(LAB_CONFIG) migrate east-1/kv --to west-1 --yes
	$(WHIMBREL) --config $(LAB_CONFIG) migrate west-1/kv --to east-1 --yes
	$(WHIMBREL) --config $(LAB_CONFIG) history
	@if [ -t 0 ] && [ -t 1 ]; then $(WHIMBREL) demo; \
	  else echo "demo: no terminal, so no console: open it with $(WHIMBREL) demo"; fi

# Lint, bring the lab up, run every test (lab tests included: they fail, never skip, without
# the lab), and take the lab down whatever happened.
test: setup lint
	$(WHIMBREL) lab up
	status=0; $(BIN)/pytest -p no:cacheprovider $(PYTEST_ARGS) || status=$$?; \
	  $(WHIMBREL) lab down; exit $$status

unit: venv
	$(BIN)/pytest -p no:cacheprovider -m "not lab" $(PYTEST_ARGS)

lint: venv
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

format: venv
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

bench: setup
	$(BIN)/python benchmarks/model_grid.py
	$(BIN)/python benchmarks/dirty_cost.py
	$(WHIMBREL) lab up
	$(BIN)/python benchmarks/backends.py
	$(BIN)/python benchmarks/migration.py
	rm -f bench-results/grid-quick.jsonl
	$(WHIMBREL) bench --quick
	$(WHIMBREL) bench report --quick

# The full grid's runs, report and fitted costs are the repository's own files.
BENCH_RUNS := docs/benchmark-runs.jsonl
BENCH_EARLIER := \
	--earlier "docs/benchmark-runs-one-stream.jsonl=one SSH stream, opened after the freeze" \
	--earlier "docs/benchmark-runs-session-per-round.jsonl=striped, but sessions opened for every round" \
	--earlier "docs/benchmark-runs-copied-final.jsonl=rounds staged apart from the container, freed memory handed to the VM's host"

bench-grid: setup
	$(WHIMBREL) lab up
	$(WHIMBREL) bench --results $(BENCH_RUNS)
	$(MAKE) bench-report

# From the recorded runs alone (no lab): the report, and the costs the engine plans from.
bench-report: venv
	$(WHIMBREL) bench report --results $(BENCH_RUNS) --report docs/benchmark.md $(BENCH_EARLIER)
	$(WHIMBREL) bench costs --results $(BENCH_RUNS) --costs backends/costs.json

lab-up: setup
	$(WHIMBREL) lab up

lab-down: venv
	$(WHIMBREL) lab down
