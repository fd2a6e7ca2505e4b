# Sampling: the trained model draws sample.n samples into samples.npz, and a picture
# of them (image grid, or scatter over the real data) into samples.png.


if not COMBINED:

    rule sample:
        input:
            data_flag,
            model=run_file("model.pt"),
            status=run_file("train_status.json"),
        output:
            samples=run_file("samples.npz"),
            grid=report(
                run_file("samples.png"),
                caption="../report/samples.rst",
                category="Samples",
                subcategory="{dataset}",
                labels={"dataset": "{dataset}", "variant": "{variant}", "seed": "{seed}"},
            ),
        params:
            spec=spec_param,
            tracked=tracked_param("sample"),
            run_dir=parent_dir("samples"),
        log:
            run_log("sample"),
        benchmark:
            bench("sample")
        threads: THREADS
        resources:
            gpu=GPU,
        conda:
            CONDA_ENV
        shell:
            "ebm-bench sample --spec {params.spec:q} --run-dir {params.run_dir:q}"
            " --threads {threads} > {log:q} 2>&1"
