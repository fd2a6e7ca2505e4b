"""``ebm-bench bench reference --method NAME --reference-dir DIR``: our update against the
authors' code, side by side, update by update (issue 20; docs/reference-equivalence.md).

The references: github.com/submissionx12/EBMs_Jarzynski (paper 003: ``jarzynski_mnist``,
``jarzynski_cifar10``, ``pcd_cifar10``, ``gmm``), github.com/DSL-Lab/GRBM (paper 004's GRBM
baseline, Liao et al. 2022: ``grbm``) and github.com/enijkamp/short_run (Nijkamp et al. 2019:
``short_run``); nothing of them is copied here. What follows describes paper 003's; ``grbm.py``
and ``short_run.py`` say how theirs are run. At run time its files are imported from ``--reference-dir`` (``.py``) or their
code cells exec'd (``.ipynb``, only the cells named below, each checked to be there once),
and run unchanged; only their Lightning scaffolding is replaced by the few lines of its
loop they need (zero_grad, ``training_step``, backward, ``gradient_clip_val`` read from the
notebook, optimiser step), and their module-level ``device`` is the CPU.

Both run on CPU in float64 (``torch.set_default_dtype``), at the paper's network, from the
same initial parameters (ours are copied into theirs), on the same data batches. Noise: the
reference draws from torch's global generator exactly as it always does (its own calls, in
its own order); every draw it makes is recorded (``torch.rand``: initial walkers,
``torch.multinomial``: the walker mini-batches, ``Tensor.normal_``: the ULA noise) and our
update is fed the same draws in the same roles, by replacing ``torch.rand`` /
``torch.randn`` / ``torch.randperm`` while our update runs (a ``randperm`` gets the
recorded mini-batch first). The reference is not changed at all; a run reports whether our
update consumed exactly the recorded draws.

One job per file: ``common`` (loading the clone, the :class:`~.common.Tape` of draws,
the per-update differences), ``lightning`` (the Lightning loop paper 003's notebooks need),
``mnist``, ``cifar``, ``gmm`` (paper 003), ``grbm``, ``short_run``, ``runner`` (the names, the
CLI's ``run``, the table).

Reported after each update: the largest relative difference of the parameters and of the
walkers (max |ours - theirs| / max |theirs| per tensor, the largest over tensors), and the
largest absolute difference of the log weights. ``jarzynski_mnist`` is run with every
option the reference needs set (row ``reference options``) and, for each such option, with
that option back at the value ``config/paper.yaml`` runs (the other rows): a row that stays
at ~1e-12 says that option does not act within the compared updates.

``jarzynski_cifar10`` / ``pcd_cifar10``: the ``DeepEnergyModel`` cell of
``CIFAR-10_code/main_CIFAR_{Jarzynski,PCD}.ipynb`` (its ``Paper_net`` at the paper's
n_f = 128) with ``CIFAR-10_code/Sampler.py``; the sampler lines of its ``__init__`` (which
otherwise loads CIFAR-10 and the FID network) run here, each checked to be in the cell once.
``gmm``: ``GMM_code/GMM.py``, trimmed as ``bench gmm_reference`` trims it plus two hooks
(checked once each) that report its state; its ULA noise is read from its ``noise`` buffer.
"""

from ebm_bench.bench.reference.common import TOL
from ebm_bench.bench.reference.runner import COMPARISONS, METHODS, print_table, run

__all__ = ["COMPARISONS", "METHODS", "TOL", "print_table", "run"]
