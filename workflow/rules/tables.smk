# Tables: a pure pandas reduction of the runs' metrics files (plus train_status.json
# and the benchmark files for the cost columns). Rebuilding them never trains,
# samples or evaluates anything: edit ebm_bench/reports/tables.py and run
#   snakemake --forcerun tables
# `ebm-bench tables` imports pandas, not torch (the CLI's subcommands import lazily); only the configured datasets, variants and seeds are
# tabulated, whatever else an older config left under results/runs/. A
# config/reported.yaml (numbers the papers report, with their source) adds
# reproduction.md, ours beside theirs.


# Verdicts: every claim of config/claims.yaml judged from the same files (ebm_bench.claims):
# one report, each claim once with its verdict at every scale that ran. It reads this
# config's results and the results folder of every other config a design names (a design
# is judged only from runs that name its config file), so `make tables` and this rule
# write the same claims.csv. claims.md opens summary.md.
rule claims:
    input:
        unpack(tables_input),
        claims=CLAIMS,
    output:
        csv=report(
            f"{TABLES}/claims.csv",
            caption="../report/claims.rst",
            category="Claims",
            labels={"table": "claims (all columns)"},
        ),
        md=f"{TABLES}/claims.md",
    params:
        out_dir=lambda w, output: os.path.dirname(output.csv),
        results_dir=lambda w, output: os.path.dirname(os.path.dirname(output.csv)),
    log:
        f"{LOGS}/claims.log",
    localrule: True
    conda:
        CONDA_ENV
    shell:
        "ebm-bench claims --results-dir {params.results_dir:q}"
        " --out-dir {params.out_dir:q} --claims {input.claims:q} > {log:q} 2>&1"


rule tables:
    input:
        unpack(tables_input),
        claims_md=f"{TABLES}/claims.md",
    output:
        runs=report(
            f"{TABLES}/runs.csv",
            caption="../report/runs.rst",
            category="Tables",
            labels={"table": "all runs (tidy)"},
        ),
        summary=report(
            f"{TABLES}/summary.md",
            caption="../report/summary.rst",
            category="Tables",
            labels={"table": "summary"},
        ),
        per_dataset=[
            report(
                f"{TABLES}/{d}.csv",
                caption="../report/dataset_table.rst",
                category="Tables",
                labels={"table": d},
            )
            for d in config["datasets"]
        ],
        per_dataset_text=[
            f"{TABLES}/{d}.{ext}" for d in config["datasets"] for ext in ("md", "tex")
        ],
        reproduction=[
            report(
                f"{TABLES}/reproduction.md",
                caption="../report/reproduction.rst",
                category="Tables",
                labels={"table": "reproduction"},
            )
            for _ in reported_file()
        ],
    params:
        # results/tables/runs.csv -> results/tables, results
        out_dir=lambda w, output: os.path.dirname(output.runs),
        results_dir=lambda w, output: os.path.dirname(os.path.dirname(output.runs)),
        datasets=",".join(config["datasets"]),
        variants=",".join(config["variants"]),
        seeds=all_seeds(),
        reported=reported_arg,
    log:
        f"{LOGS}/tables.log",
    localrule: True
    conda:
        CONDA_ENV
    shell:
        "ebm-bench tables --results-dir {params.results_dir:q}"
        " --out-dir {params.out_dir:q} --datasets {params.datasets:q}"
        " --variants {params.variants:q} --seeds {params.seeds:q} {params.reported}"
        " --claims-md {input.claims_md:q} > {log:q} 2>&1"
