"""ebm-bench: reproducible benchmarks for energy-based generative models.

The package holds every dataset, network, sampler, method and metric; the Snakemake
workflow only wires them together (see ``docs/architecture.md``).
"""

__version__ = "0.1.0"
