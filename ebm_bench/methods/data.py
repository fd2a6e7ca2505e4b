"""The reference row: held-out real data scored like a method (the floor of every metric)."""

from __future__ import annotations

from typing import Any

import torch

from ebm_bench.methods.base import Method, register_method


@register_method("data")
class HeldOutData(Method):
    """Held-out real data as the generator: the floor of every sample metric.

    Training does nothing. ``sample(n)`` returns a seeded random subset of the split that
    the FID/KID reference does *not* use (``held_out: auto``: the test split when the
    reference is the training split, and the other way round), at most ``n`` items
    without replacement. Its FID/KID are then the metric's own floor at this sample size
    (the data against itself), its mode errors the sampling noise of the data, and its
    probe feature ``pixels`` is the raw-pixel control of the linear probe.

    The sample stage hands it the dataset (``bind_data``) before sampling; nothing else
    of the suite knows it is special.
    """

    defaults: dict[str, Any] = {"held_out": "auto"}
    tiny: dict[str, Any] = {}
    grad_evals_per_iter = 0

    def __init__(self, params, data, device, seed):
        super().__init__(params, data, device, seed)
        self._pool: torch.Tensor | None = None
        self.real_split = "train"

    def bind_data(self, dataset, real_split: str = "train") -> None:
        held = self.params["held_out"]
        if held == "auto":
            held = "test" if real_split == "train" else "train"
        if held not in ("train", "test"):
            raise ValueError(f"data.held_out = {held!r}; expected auto, train or test")
        self._pool = dataset.x_test if held == "test" else dataset.x_train
        self.held_out = held

    def train_step(self, batch: torch.Tensor, step: int) -> dict[str, float]:
        return {}

    @torch.no_grad()
    def sample(self, n: int) -> torch.Tensor:
        if self._pool is None:
            raise RuntimeError("the data reference row samples from the dataset: call bind_data first")
        idx = torch.randperm(len(self._pool), generator=self.gen, device=self.device)[: min(n, len(self._pool))]
        return self._pool[idx.cpu()].clone()

    @torch.no_grad()
    def features(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        return {"pixels": x.reshape(len(x), -1).float()}
