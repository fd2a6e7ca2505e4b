# Figures for `snakemake --report`: the training curves of every run.
#
# One local job plots them all, rather than one `plot` job per run: on the embedded
# suite a job per run costs more in start-up than the plotting itself (a Snakemake job
# plus `ebm-bench`'s torch import is ~3 s; a curve is ~0.1 s of matplotlib), on a
# cluster it would not hold a GPU node or wait in the queue, and a plotting error
# cannot take the samples or the model down with it (Snakemake deletes the outputs of
# a failed job). Sample grids come from the sample job itself (ebm-bench sample).


rule training_curves:
    input:
        logs=expand(run_file("train_log.csv"), zip, **run_lists()),
    output:
        curves=[
            report(
                f"{R}/runs/{d}/{v}/seed{s}/train_curves.png",
                caption="../report/train_curves.rst",
                category="Training curves",
                subcategory=d,
                labels={"dataset": d, "variant": v, "seed": str(s)},
            )
            for d, v, s in zip(*run_lists().values())
        ],
    log:
        f"{LOGS}/training_curves.log",
    localrule: True
    conda:
        CONDA_ENV
    shell:
        "python -m ebm_bench.plots curves --logs {input.logs:q} --out {output.curves:q}"
        " > {log:q} 2>&1"
