# Two entry points, each doing all set-up on a fresh machine:
#   make run    the embedded default suite (CPU, minutes) -> results/tables/summary.md
#   make test   the test suite
VENV      ?= .venv
PYTHON    ?= python3
TORCH     ?= torch==2.14.1 torchvision==0.29.1
CORES     ?= all
PROFILE   ?= profiles/default
SNAKEARGS ?=

BIN := $(VENV)/bin
STAMP := $(VENV)/.ebm-bench-installed

.PHONY: run test dry-run report tables bench clean-results

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet $(TORCH)
	$(BIN)/python -m pip install --quiet -e '.[test]'
	touch $(STAMP)

run: $(STAMP)
	$(BIN)/snakemake --profile $(PROFILE) --cores $(CORES) $(SNAKEARGS)
	@echo "tables: results/tables/summary.md"

test: $(STAMP)
	$(BIN)/python -m pytest -n 2 -q

dry-run: $(STAMP)
	$(BIN)/snakemake --profile $(PROFILE) --cores $(CORES) -n $(SNAKEARGS)

report: $(STAMP)
	$(BIN)/snakemake --profile $(PROFILE) --cores $(CORES) --report results/report.html

tables: $(STAMP)
	$(BIN)/ebm-bench tables --results-dir results --out-dir results/tables

bench: $(STAMP)
	$(BIN)/ebm-bench bench

clean-results:
	rm -rf results/runs results/tables results/benchmarks results/classifiers results/reference results/report*
