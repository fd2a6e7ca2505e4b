# Evaluation: one JSON file per metric family in the run's metrics/ folder, each with
# its protocol (backend and version, feature extractor and weights hash, sample
# counts) and the run's status. The domain classifier that gives non-natural-image
# datasets their feature space (and reads the modes of generated samples) is trained
# once per labelled dataset and shared by all its runs.
#
# Both jobs run on the config's device: on cuda they request a GPU like train and
# sample do (an Inception pass over tens of thousands of images is GPU work, and a
# cuda job placed on a CPU-only node would fail).


rule classifier:
    input:
        data_flag,
    output:
        CLASSIFIER,
    params:
        spec=dataset_spec_param,
        tracked=dataset_tracked_param,
    log:
        f"{LOGS}/classifier/{{dataset}}.log",
    benchmark:
        f"{R}/benchmarks/classifier/{{dataset}}.tsv"
    threads: THREADS
    resources:
        gpu=GPU,
    conda:
        CONDA_ENV
    shell:
        "ebm-bench classifier --spec {params.spec:q} --out {output:q} --threads {threads}"
        " > {log:q} 2>&1"


# The FID/KID/IS reference of a dataset: features of the configured real split
# (evaluate.real_split, train by default) computed once and read by every run's evaluate
# job (stages.reference_stage).
rule reference:
    input:
        data_flag,
        inception_flag,
        classifier=classifier_input,
    output:
        npz=REFERENCE,
        meta=REFERENCE.replace(".npz", ".json"),
    params:
        spec=reference_spec_param,
        tracked=reference_tracked_param,
        classifier=classifier_arg,
    log:
        f"{LOGS}/reference/{{dataset}}.log",
    benchmark:
        f"{R}/benchmarks/reference/{{dataset}}.tsv"
    threads: THREADS
    resources:
        gpu=GPU,
    conda:
        CONDA_ENV
    shell:
        "ebm-bench reference --spec {params.spec:q} {params.classifier} --out {output.npz:q}"
        " --threads {threads} > {log:q} 2>&1"


if not COMBINED:

    rule evaluate:
        input:
            data_flag,
            inception_flag,
            reference=reference_input,
            model=run_file("model.pt"),  # the linear probe reads the model's features
            samples=run_file("samples.npz"),
            status=run_file("train_status.json"),
            classifier=classifier_input,
        output:
            metrics=directory(run_file("metrics")),
        params:
            spec=spec_param,
            tracked=tracked_param("evaluate"),
            run_dir=parent_dir("metrics"),
            classifier=classifier_arg,
            reference=reference_arg,
        log:
            run_log("evaluate"),
        benchmark:
            bench("evaluate")
        threads: THREADS
        resources:
            gpu=GPU,
        conda:
            CONDA_ENV
        shell:
            "ebm-bench evaluate --spec {params.spec:q} --run-dir {params.run_dir:q}"
            " {params.classifier} {params.reference} --threads {threads} > {log:q} 2>&1"
