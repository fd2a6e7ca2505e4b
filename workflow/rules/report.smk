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
        "ebm-bench plot curves --logs {input.logs:q} --out {output.curves:q}"
        " > {log:q} 2>&1"


# Paper 003's GMM teacher-student figure (mass of mode a, KL on the data, Jarzynski's
# cross-entropy estimate against the exact one, ESS, over training steps) and its table,
# for every gmm_teacher dataset whose variants run at temperature 1 (config/gmm.yaml).
def gmm_datasets():
    return [d for d in config["datasets"] if dataset_spec(config, d)["type"] == "gmm_teacher"]


def gmm_curve_files():
    return [f"{TABLES}/{d}_curves.{ext}" for d in gmm_datasets() for ext in ("png", "md")]


rule gmm_curves:
    input:
        logs=lambda w: expand(
            run_file("train_log.csv"),
            dataset=w.dataset,
            variant=(config["datasets"][w.dataset] or {}).get("variants") or list(config["variants"]),
            seed=dataset_seeds(w.dataset),
        ),
    output:
        png=report(
            f"{TABLES}/{{dataset}}_curves.png",
            caption="../report/gmm_curves.rst",
            category="GMM teacher-student",
            labels={"dataset": "{dataset}"},
        ),
        md=f"{TABLES}/{{dataset}}_curves.md",
    params:
        spec=dataset_spec_param,
    log:
        f"{LOGS}/gmm_curves/{{dataset}}.log",
    localrule: True
    conda:
        CONDA_ENV
    shell:
        "ebm-bench gmm-teacher --figure --spec {params.spec:q}"
        " --logs {input.logs:q} --png {output.png:q} --md {output.md:q} > {log:q} 2>&1"
