# ebm-bench: train every variant on every dataset for every seed, sample, evaluate,
# and reduce the metrics files to comparison tables.
#
#   snakemake --cores all                          # embedded suite (CPU, minutes)
#   snakemake -n                                   # dry run: what would run, and why
#   snakemake --profile profiles/slurm --configfile config/paper.yaml   # GPU cluster
#   snakemake --report results/report.html         # browsable report of a finished run
#
# The workflow only wires the `ebm-bench` command line together; every model, sampler,
# method and metric lives in the ebm_bench package.

from snakemake.utils import min_version

min_version("8.0")


# --- configuration ---------------------------------------------------------------
# config/config.yaml (the embedded default suite) is the config when no --configfile is
# given. A config file given with --configfile REPLACES it instead of being merged into
# it: Snakemake's default deep merge would add the embedded suite's datasets and
# variants to, say, config/paper.yaml. Keys a config file leaves out take the defaults
# of the schema; `--config key=value` still overrides single keys of either.
if not workflow.overwrite_configfiles:

    configfile: "config/config.yaml"


include: "workflow/rules/validate.smk"


# 1. structure, types and ranges (JSON schema; fills in defaults; names the bad key)
validate_config(config, "workflow/schemas/config.schema.yaml")
# 2. what only the package knows: registered datasets, methods, hyperparameter names
check_config_or_fail(config)


include: "workflow/rules/common.smk"


# dataset and variant names are folder names (the schema allows [A-Za-z0-9_]+)
wildcard_constraints:
    dataset="[A-Za-z0-9_]+",
    variant="[A-Za-z0-9_]+",
    seed="[0-9]+",


# --- the pipeline ------------------------------------------------------------------
report: "workflow/report/workflow.rst"


include: "workflow/rules/data.smk"
include: "workflow/rules/train.smk"
include: "workflow/rules/sample.smk"
include: "workflow/rules/evaluate.smk"
include: "workflow/rules/run.smk"
include: "workflow/rules/tables.smk"
include: "workflow/rules/report.smk"


rule all:
    input:
        table_files(),
        expand(f"{RUN}/samples.png", zip, **run_lists()),
        expand(f"{RUN}/train_curves.png", zip, **run_lists()),
        gmm_curve_files(),
    default_target: True
    localrule: True
