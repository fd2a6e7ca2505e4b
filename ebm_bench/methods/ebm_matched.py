"""Paper 004's "EBM base": the NN-EFH's network as a plain EBM, trained with Langevin.

Paper 004 (Methods): the same neural network as the NN-EFH's sufficient statistics
U(x; phi) (``attention``: convolutions + self-attention), with the energy read out of its
penultimate layer by a learned vector, U_EBM(x) = w^T U(x; phi) + c; trained by the
standard MLE loss with (short-run) Langevin dynamics at the same step and temperature as
the NN-EFH (eps = 1, T = 5e-5).

Matching choices (ours, the paper does not spell them out): chains start from the same
law as the NN-EFH's, x ~ N(0, I) (``init_dist: normal``), fresh every update, and run as
many Langevin steps as one NN-EFH update does, K = M * L = 5 * 60 = 300; data noise 0.03
as for the NN-EFH. With the same seed the network starts from the same weights as the
NN-EFH's U. Features for the probe: ``penultimate`` = U(x) (Table 3, "EBM penultimate
layer").
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import torch

from ebm_bench.core import validation as V
from ebm_bench.methods.base import DataInfo, register_method
from ebm_bench.methods.langevin import LANGEVIN_DEFAULTS
from ebm_bench.methods.nnefh import DEFAULT_BATCH, resolve_sampler_batch
from ebm_bench.methods.short_run import ShortRun


@register_method("ebm_matched")
class EBMMatched(ShortRun):
    """Paper 004's EBM baseline: the NN-EFH network with a linear read-out, plain Langevin."""

    defaults = {
        **LANGEVIN_DEFAULTS,
        "net": "attention",
        "net_params": {"nf": 64, "n_features": 1024},
        "n_steps": 300,  # = M * L of the NN-EFH
        "init_dist": "normal",  # "normal": N(0, init_scale^2 I) like the NN-EFH; "uniform": U[-s, s]
        # the NN-EFH's reading of "energy normalised by the batch size" (nnefh.py): ULA at
        # step_size / B and temperature * B, B = sampler_batch (default train.batch_size)
        "sampler_batch_normalised": True,
        "sampler_batch": None,
    }
    checks = {"init_dist": V.choice("normal", "uniform"), "sampler_batch": V.count(nullable=True)}
    tiny = {"n_steps": 3}
    probe_untrained_control = True

    @classmethod
    def resolve_params(cls, params: dict[str, Any], train: dict[str, Any]) -> dict[str, Any]:
        return resolve_sampler_batch(params, train)

    @classmethod
    def tiny_params(cls, data: DataInfo) -> dict[str, Any]:
        net = ({"net": "attention", "net_params": {"nf": 4, "n_features": 8}} if data.is_image
               else {"net": "mlp", "net_params": {"hidden": 16, "depth": 2}})
        return {**net, **cls.tiny}

    def __init__(self, params, data, device, seed):
        super().__init__(params, data, device, seed)
        p = self.params
        if p["init_dist"] not in ("normal", "uniform"):
            raise ValueError(f"init_dist must be 'normal' or 'uniform', got {p['init_dist']!r}")
        if p["sampler_batch_normalised"]:
            b = int(p["sampler_batch"] or DEFAULT_BATCH)
            self.sampler = replace(self.sampler, step_size=float(p["step_size"]) / b,
                                   temperature=float(p["temperature"]) * b)

    def init_chains(self, n: int) -> torch.Tensor:
        if self.params["init_dist"] == "uniform":
            return super().init_chains(n)
        s = float(self.params["init_scale"])
        return s * torch.randn((n, *self.data.shape), generator=self.gen, device=self.device)
