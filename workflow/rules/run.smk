# One job per run: train, sample and evaluate in one process (config key
# combine_stages: true, the embedded suite). The outputs are exactly those of the three
# separate rules (train.smk, sample.smk, evaluate.smk), so everything downstream is the
# same; what changes is that a run pays the process start-up (torch, torch-fidelity,
# scikit-learn imports and the dataset load: ~5-8 s on the 2-core machine) once instead
# of three times, which on the embedded suite is more than the compute of most runs.
# Paper-scale configs keep the stages apart: each gets its own GPU job, resources and
# retries on a cluster.
#
# As with `rule train`, checkpoint.pt is not an output, so a killed job resumes its
# training where it stopped.


if COMBINED:

    rule run:
        input:
            data_flag,
            inception_flag,
            reference=reference_input,
            classifier=classifier_input,
        output:
            model=run_file("model.pt"),
            log_csv=run_file("train_log.csv"),
            status=run_file("train_status.json"),
            samples=run_file("samples.npz"),
            grid=report(
                run_file("samples.png"),
                caption="../report/samples.rst",
                category="Samples",
                subcategory="{dataset}",
                labels={"dataset": "{dataset}", "variant": "{variant}", "seed": "{seed}"},
            ),
            metrics=directory(run_file("metrics")),
        params:
            spec=spec_param,
            tracked=tracked_param("evaluate"),
            run_dir=parent_dir("model"),
            classifier=classifier_arg,
            reference=reference_arg,
        log:
            run_log("run"),
        benchmark:
            bench("run")
        threads: THREADS
        resources:
            gpu=GPU,
        conda:
            CONDA_ENV
        shell:
            "ebm-bench run --spec {params.spec:q} --run-dir {params.run_dir:q}"
            " {params.classifier} {params.reference} --threads {threads} > {log:q} 2>&1"
