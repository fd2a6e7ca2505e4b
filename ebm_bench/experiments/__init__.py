"""Ready-made experiments that drive registered methods outside the Snakemake DAG."""
