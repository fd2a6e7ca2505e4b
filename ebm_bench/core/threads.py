"""Thread limits of a job process, set before numpy, scikit-learn or torch start.

OpenMP and BLAS read their thread counts once, when the library loads: set after
``import numpy`` they no longer bind scikit-learn's or numpy's pools. The CLI calls
:func:`limit_threads` first thing (it imports nothing heavy before); torch's own pool is
set again with ``torch.set_num_threads`` where torch is used (``runs.set_threads``).
"""

from __future__ import annotations

import os

THREAD_VARS = ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS", "NUMEXPR_NUM_THREADS",
               "VECLIB_MAXIMUM_THREADS", "BLIS_NUM_THREADS")


def limit_threads(threads: int | None) -> None:
    """Every thread-count variable of the process (and its children) to ``threads``."""
    if threads:
        for var in THREAD_VARS:
            os.environ[var] = str(int(threads))
