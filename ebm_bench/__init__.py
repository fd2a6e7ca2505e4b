"""ebm-bench: reproducible benchmarks for energy-based generative models.

The package holds every dataset, network, sampler, method and metric; the Snakemake
workflow only wires them together (see ``docs/architecture.md``).
"""

__version__ = "0.1.0"


def _check_workflow_dir() -> None:
    """A Snakemake job runs the package of the workflow that made it.

    The workflow sets ``EBM_BENCH_WORKFLOW_DIR`` (and puts that folder first on
    ``PYTHONPATH``); a job that imported ``ebm_bench`` from anywhere else (another
    checkout's editable install in a shared environment) stops here with one line naming
    both, before it runs code the workflow did not validate.
    """
    import os
    import sys

    want = os.environ.get("EBM_BENCH_WORKFLOW_DIR")
    if not want:
        return
    here = os.path.realpath(os.path.dirname(__file__))
    expected = os.path.realpath(os.path.join(want, "ebm_bench"))
    if here != expected:
        sys.stderr.write(
            f"ebm-bench: error: this job imported ebm_bench from {here}, but the workflow in {want} "
            f"runs its own package {expected}; run the job with PYTHONPATH={want} "
            f"(the workflow sets it) or unset EBM_BENCH_WORKFLOW_DIR\n"
        )
        raise SystemExit(2)


_check_workflow_dir()
