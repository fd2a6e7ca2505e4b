# Training: one job per (dataset, variant, seed).
#
# Declared outputs are only the finished products. The working files the trainer keeps
# in the run folder, checkpoint.pt and .train_log.partial.csv, are deliberately NOT
# outputs: Snakemake deletes the outputs of a failed or killed job, and those two files
# are what lets the re-run job (--rerun-incomplete, or a SLURM retry) resume from the
# last checkpoint instead of step 0.
#
# A run that diverges (NaN / exploding energy) is not a failure: `ebm-bench train`
# exits 0 with train_status.json {"status": "diverged", ...}, and the later stages
# record it, so one broken method never takes the suite down.


if not COMBINED:

    rule train:
        input:
            data_flag,
        output:
            model=run_file("model.pt"),
            log_csv=run_file("train_log.csv"),
            status=run_file("train_status.json"),
        params:
            spec=spec_param,
            tracked=tracked_param("train"),
            run_dir=parent_dir("model"),
        log:
            run_log("train"),
        benchmark:
            bench("train")
        threads: THREADS
        resources:
            gpu=GPU,
        conda:
            CONDA_ENV
        shell:
            "ebm-bench train --spec {params.spec:q} --run-dir {params.run_dir:q}"
            " --threads {threads} > {log:q} 2>&1"
