#!/usr/bin/env bash
# Run by Snakemake inside the freshly created envs/ebm-bench.yaml environment, from
# the workflow's working directory (the repository root, where the Snakefile is).
# Installs this checkout into it, editable: the dependencies come from the env file.
set -euo pipefail
if [ ! -f pyproject.toml ] || [ ! -d ebm_bench ]; then
    echo "ebm-bench post-deploy: run Snakemake from the repository root ($(pwd) is not)" >&2
    exit 1
fi
python -m pip install --no-deps --no-build-isolation -e .
