# Data and weights that must be on disk before any compute job starts. Compute nodes
# are often offline, so these are local rules: on a cluster they run on the machine
# that runs Snakemake. `snakemake download_all` fetches everything ahead of time.
# Embedded datasets (scikit-learn digits, synthetic densities) need no download and
# no flag: the train/sample/evaluate rules only ask for the flag of the others.


rule download:
    """Fetch one torchvision dataset into data_root; the flag says it is complete."""
    output:
        flag=DATA_FLAG,
    params:
        spec=dataset_spec_param,
        tracked=dataset_tracked_param,
        data_root=config["data_root"],
    log:
        f"{LOGS}/download/{{dataset}}.log",
    conda:
        CONDA_ENV
    localrule: True
    shell:
        "ebm-bench download --spec {params.spec:q} --data-root {params.data_root:q}"
        " --flag {output.flag:q} > {log:q} 2>&1"


rule fetch_inception:
    """Inception weights for FID/IS (only when some dataset uses inception features)."""
    output:
        flag=INCEPTION_FLAG,
    params:
        dest=inception_dest_arg(),
    log:
        f"{LOGS}/download/inception.log",
    conda:
        CONDA_ENV
    localrule: True
    shell:
        "ebm-bench fetch-inception {params.dest} --flag {output.flag:q} > {log:q} 2>&1"


rule download_all:
    """Every download the configured suite needs (run it where there is internet)."""
    input:
        lambda w: [
            DATA_FLAG.format(dataset=d)
            for d in config["datasets"]
            if not is_embedded(config, d)
        ],
        [INCEPTION_FLAG] if any_inception() else [],
    localrule: True
